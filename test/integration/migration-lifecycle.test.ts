import { randomBytes, randomUUID } from "node:crypto";
import { MikroORM } from "@mikro-orm/postgresql";
import { Migrator } from "@mikro-orm/migrations";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { automaticRedemptionKey } from "../../src/checkout/automatic.js";
import { ENTITIES } from "../../src/store/entities.js";
import { MIGRATIONS, openOrm } from "../../src/store/orm.js";
import { ADMIN_URL } from "../support/database.js";

// Migration20261201130000_billing_lifecycle on a database that already holds the data of the
// release before it: code-less promotions become AUTOMATIC, their past applications get the
// customer's AUTOMATIC redemption (with the key checkout derives, the cycles used and the
// applications pointing at it), used-up redemptions COMPLETE, and redemptions of deleted
// promotions END.

const name = `promotions_test_migration_${randomBytes(4).toString("hex")}`;
const url = (() => {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
})();
let orm: MikroORM;

async function migrateTo(to: string | undefined): Promise<void> {
  const m = await MikroORM.init({ clientUrl: url, entities: ENTITIES, extensions: [Migrator], migrations: { migrationsList: MIGRATIONS, transactional: true, snapshot: false, silent: true }, allowGlobalContext: false });
  try {
    await m.schema.ensureDatabase({ create: true });
    await m.migrator.up(to === undefined ? undefined : { to });
  } finally {
    await m.close(true);
  }
}

const org = randomUUID();
const automatic = randomUUID();
const coded = randomUUID();
const deleted = randomUUID();
const versions = { automatic: randomUUID(), coded: randomUUID(), deleted: randomUUID() };
const usedUp = randomUUID();
const live = randomUUID();

beforeAll(async () => {
  await migrateTo("Migration20261201120000_events_and_webhooks");
  orm = await openOrm({ databaseUrl: url, poolMax: 2 });
  const sql = (q: string, p: unknown[] = []) => orm.em.getConnection().execute(q, p, "run");
  await sql(`insert into organizations (id, slug, name, created_at) values (?, 'legacy', 'Legacy', now())`, [org]);
  const promotion = (id: string, version: string, code: string | null, phases: unknown[], deletedAt: string | null) =>
    Promise.all([
      sql(`insert into promotions (id, organization_id, status, code, version, head_version_id, created_at, updated_at, deleted_at) values (?, ?, 'ACTIVE', ?, 1, ?, now(), now(), ?)`, [id, org, code, version, deletedAt]),
    ]).then(() =>
      sql(
        `insert into promotion_versions (id, promotion_id, organization_id, version, state, effective_from, published_at, created_at, name, description, public_description, code,
           archetype, visibility, stackable, priority, application_timing, condition_mode, conditions, is_phased, phases, currency, budget_behavior, requires_continuous_coverage, metadata)
         values (?, ?, ?, 1, 'published', now() - interval '1 day', now(), now(), 'P', '', '', ?, 'STANDARD', 'PRIVATE', false, 0, 'IMMEDIATE', 'ALL', '[]', false, ?::jsonb, 'USD', 'CAP', false, '{}')`,
        [version, id, org, code, JSON.stringify(phases)],
      ),
    );
  const forever = [{ name: "Default", duration: "FOREVER", cycles: null, effects: [{ kind: "percentage_discount", percent_bps: 1000, applies_to: null }] }];
  const once = [{ name: "Default", duration: "ONCE", cycles: null, effects: [{ kind: "percentage_discount", percent_bps: 1000, applies_to: null }] }];
  await promotion(automatic, versions.automatic, null, forever, null);
  await promotion(coded, versions.coded, "LEGACY10", once, null);
  await promotion(deleted, versions.deleted, "GONE10", forever, "2026-11-01T00:00:00Z");
  // Three invoices of cus_a and one of cus_b had the automatic promotion applied, without a redemption.
  for (const [invoice, customer, when] of [["i1", "cus_a", "2026-09-01"], ["i2", "cus_a", "2026-10-01"], ["i3", "cus_a", "2026-11-01"], ["i4", "cus_b", "2026-11-01"]] as const) {
    await sql(`insert into invoices (organization_id, id, request_hash, customer_id, priced, created_at) values (?, ?, 'h', ?, '{}', ?)`, [org, invoice, customer, when]);
    await sql(
      `insert into invoice_applications (id, organization_id, promotion_id, status, epoch, invoice_id, redemption_id, version, phase_name, discount_minor, budget_consumed_minor, created_at)
       values (?, ?, ?, 'APPLIED', 0, ?, null, 1, 'Default', 100, 0, ?)`,
      [randomUUID(), org, automatic, invoice, when],
    );
  }
  const redemption = (id: string, promotionId: string, version: string, cycles: number) =>
    sql(
      `insert into redemptions (id, organization_id, promotion_id, status, epoch, promotion_version_id, version, code, customer_id, cycles_used, metadata, created_at)
       values (?, ?, ?, 'ACTIVE', 1, ?, 1, 'X', 'cus_c', ?, '{}', now())`,
      [id, org, promotionId, version, cycles],
    );
  await redemption(usedUp, coded, versions.coded, 1);
  await redemption(live, deleted, versions.deleted, 3);
  await orm.close();
  await migrateTo(undefined);
  orm = await openOrm({ databaseUrl: url, poolMax: 2 });
});

afterAll(async () => {
  await orm?.close();
  const admin = await openOrm({ databaseUrl: ADMIN_URL, poolMax: 1 });
  try {
    await admin.em.getConnection().execute(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.close();
  }
});

describe("Migration20261201130000_billing_lifecycle on existing data", () => {
  const rows = <T>(q: string, p: unknown[] = []) => orm.em.getConnection().execute<T[]>(q, p, "all");

  it("gives code-less promotions AUTOMATIC and the others CODE", async () => {
    expect(await rows(`select promotion_id, application_method from promotion_versions order by application_method, promotion_id`)).toEqual(
      [
        { promotion_id: automatic, application_method: "AUTOMATIC" },
        ...[coded, deleted].sort().map((id) => ({ promotion_id: id, application_method: "CODE" })),
      ],
    );
  });

  it("turns past automatic applications into one AUTOMATIC redemption per customer, with the cycles they used and the key checkout derives", async () => {
    const made = await rows<{ id: string; customer_id: string; cycles_used: number; idempotency_key: string; kind: string; status: string; cycles_total: number | null }>(
      `select id, customer_id, cycles_used, idempotency_key, kind, status, cycles_total from redemptions where promotion_id = ? order by customer_id`,
      [automatic],
    );
    expect(made.map(({ id: _id, ...r }) => r)).toEqual([
      { customer_id: "cus_a", cycles_used: 3, idempotency_key: automaticRedemptionKey(automatic, "cus_a"), kind: "AUTOMATIC", status: "ACTIVE", cycles_total: null },
      { customer_id: "cus_b", cycles_used: 1, idempotency_key: automaticRedemptionKey(automatic, "cus_b"), kind: "AUTOMATIC", status: "ACTIVE", cycles_total: null },
    ]);
    const linked = await rows<{ n: string }>(`select count(*) as n from invoice_applications where promotion_id = ? and redemption_id in (?)`, [automatic, made.map((r) => r.id)]);
    expect(Number(linked[0]?.n)).toBe(4);
    const [epoch] = await rows<{ counter_epoch: string }>(`select counter_epoch from promotions where id = ?`, [automatic]);
    expect(Number(epoch?.counter_epoch)).toBe(2); // counters are rebuilt with these redemptions counted
  });

  it("completes the redemptions that used all their cycles, and ends those of deleted promotions", async () => {
    expect(await rows(`select status, kind, cycles_total, end_reason from redemptions where id = ?`, [usedUp])).toEqual([{ status: "COMPLETED", kind: "CODE", cycles_total: 1, end_reason: null }]);
    expect(await rows(`select status, end_reason from redemptions where id = ?`, [live])).toEqual([{ status: "ENDED", end_reason: "promotion_deleted" }]);
  });
});
