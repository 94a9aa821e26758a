import { MikroORM, type Options } from "@mikro-orm/postgresql";
import { Migrator } from "@mikro-orm/migrations";
import { ENTITIES } from "./entities.js";
import { reclaimEndedClients } from "./pool-reclaim.js";
import { Migration20261125000000_initial } from "./migrations/Migration20261125000000_initial.js";
import { Migration20261125010000_billing_context } from "./migrations/Migration20261125010000_billing_context.js";
import { Migration20261125020000_codes_and_ledger } from "./migrations/Migration20261125020000_codes_and_ledger.js";
import { Migration20261201110000_codes_idempotency } from "./migrations/Migration20261201110000_codes_idempotency.js";
import { Migration20261201120000_events_and_webhooks } from "./migrations/Migration20261201120000_events_and_webhooks.js";
import { Migration20261201130000_billing_lifecycle } from "./migrations/Migration20261201130000_billing_lifecycle.js";

export type { MikroORM };
export type { EntityManager } from "@mikro-orm/postgresql";

/** Every migration, in order. Append-only: a released migration is never edited. */
export const MIGRATIONS = [
  { name: "Migration20261125000000_initial", class: Migration20261125000000_initial },
  { name: "Migration20261125010000_billing_context", class: Migration20261125010000_billing_context },
  { name: "Migration20261125020000_codes_and_ledger", class: Migration20261125020000_codes_and_ledger },
  { name: "Migration20261201110000_codes_idempotency", class: Migration20261201110000_codes_idempotency },
  { name: "Migration20261201120000_events_and_webhooks", class: Migration20261201120000_events_and_webhooks },
  { name: "Migration20261201130000_billing_lifecycle", class: Migration20261201130000_billing_lifecycle },
];

export interface OrmOptions {
  databaseUrl: string;
  /** Connection pool size per process. */
  poolMax?: number;
  debug?: boolean;
  /** A dead pool client was given back (pool-reclaim.ts). */
  onReclaimed?: () => void;
}

function options(opts: OrmOptions): Options {
  return {
    clientUrl: opts.databaseUrl,
    entities: ENTITIES,
    extensions: [Migrator],
    migrations: { migrationsList: MIGRATIONS, transactional: true, allOrNothing: true, snapshot: false, silent: true },
    pool: { min: 0, max: opts.poolMax ?? 10 },
    // Clients a failed COMMIT or ROLLBACK would leave checked out for good are given back.
    driverOptions: { onPoolCreated: (pool: Parameters<typeof reclaimEndedClients>[0]) => reclaimEndedClients(pool, { onReclaimed: opts.onReclaimed }) },
    debug: opts.debug ?? false,
    // Entities are plain schema definitions; there is no folder to scan.
    discovery: { warnWhenNoEntities: true },
    allowGlobalContext: false,
  };
}

/** Opens the pool. Fails fast with the driver's error when Postgres is unreachable. */
export async function openOrm(opts: OrmOptions): Promise<MikroORM> {
  return MikroORM.init(options(opts));
}

/** Creates the database when it is missing and applies every pending migration. */
export async function migrate(opts: OrmOptions): Promise<string[]> {
  const orm = await MikroORM.init({ ...options({ ...opts, poolMax: 2 }) });
  try {
    await orm.schema.ensureDatabase({ create: true });
    const applied = await orm.migrator.up();
    return applied.map((m) => m.name);
  } finally {
    await orm.close(true);
  }
}
