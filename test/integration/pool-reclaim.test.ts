import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// Kysely releases a transaction's pooled connection only after its COMMIT or ROLLBACK succeeded
// (kysely-org/kysely#1990). A transaction whose connection Postgres ended (here: its backend
// terminated, as a restart does to every backend) fails both, and without src/store/pool-reclaim.ts
// its client stayed checked out for good: once every slot held one, every later query waited
// forever (a replica answered only DEADLINE_EXCEEDED in `npm run chaos`, FAULT_SEED=989400707).
// Only this test's own backends are terminated, on a database of its own.

let db: TestDatabase;
let admin: MikroORM;

beforeAll(async () => {
  db = await createTestDatabase("pool_reclaim");
  admin = await openOrm({ databaseUrl: db.url, poolMax: 1 });
});

afterAll(async () => {
  await admin?.close(true);
  await db?.drop();
});

/** `work`, or a rejection naming what did not finish within `ms`. */
function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

describe("the Postgres pool", () => {
  it("gives back the clients of transactions whose connection Postgres ended, so queries keep being answered", async () => {
    let reclaimed = 0;
    const orm = await openOrm({ databaseUrl: db.url, poolMax: 2, onReclaimed: () => reclaimed++ });
    try {
      // Twice as many such transactions as the pool has slots: each needs a slot a dead one held.
      for (let i = 0; i < 4; i++) {
        const failed = orm.em.fork().transactional(async (em) => {
          const rows = await em.getConnection().execute<{ pid: number }[]>("select pg_backend_pid() as pid", [], "all", em.getTransactionContext());
          await admin.em.getConnection().execute("select pg_terminate_backend(?)", [rows[0]?.pid]);
          await new Promise((r) => setTimeout(r, 50)); // the client sees its connection end
        });
        await expect(within(10_000, `transaction ${i + 1}`, failed)).rejects.toThrow(/terminat|Connection|ended/i);
      }
      const answered = await within(10_000, "a query after the four", orm.em.fork().getConnection().execute<{ one: number }[]>("select 1 as one"));
      expect(answered).toEqual([{ one: 1 }]);
      // The last one is given back too, once its grace has passed.
      for (let i = 0; i < 100 && reclaimed < 4; i++) await new Promise((r) => setTimeout(r, 50));
      expect(reclaimed).toBe(4);
    } finally {
      await orm.close(true);
    }
  }, 60_000);
});
