import type { EntityManager } from "@mikro-orm/postgresql";
import { CompiledQuery, type QueryResult } from "kysely";

// Bound-parameter SQL for src/events. Rows go to Postgres as parameters ($1, $2, …) straight
// through MikroORM's Kysely client, never escaped into the SQL text (what execute() does), and
// inside the caller's transaction when there is one: that is what lets an event be written in
// the same transaction as the change it is about.

/** What MikroORM's Kysely client and its transactions both are. */
interface KyselyExecutor {
  executeQuery<R>(query: CompiledQuery<R>): Promise<QueryResult<R>>;
}

export type Row = Record<string, unknown>;

export interface Sql {
  /** Runs `text` with `params` bound to $1, $2, …; returns the rows. */
  rows<R extends Row = Row>(text: string, params?: readonly unknown[]): Promise<R[]>;
  /** True when this runs inside a transaction (the caller's). */
  readonly inTransaction: boolean;
}

/** SQL on the EntityManager's transaction when it has one, else on the pool (autocommit). */
export function sqlOf(em: EntityManager): Sql {
  const trx = em.getTransactionContext<KyselyExecutor>();
  const executor: KyselyExecutor = trx ?? em.getConnection().getClient<Record<string, never>>();
  return {
    inTransaction: trx !== undefined,
    async rows<R extends Row = Row>(text: string, params: readonly unknown[] = []): Promise<R[]> {
      const result = await executor.executeQuery(CompiledQuery.raw(text, [...params]));
      return result.rows as R[];
    },
  };
}
