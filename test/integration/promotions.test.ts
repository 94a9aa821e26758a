import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DomainError } from "../../src/domain/errors.js";
import { defaultApplicationMethod, defaultTerms, type PromotionTerms } from "../../src/domain/terms.js";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import { Promotions, type Actor } from "../../src/promotions/promotions.js";
import { queryPromotionViews } from "../../src/store/promotion-views.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { twoTenants } from "../support/tenants.js";

// Managing promotions (src/promotions/promotions.ts) against a real PostgreSQL: versions, the clock-driven switch to scheduled terms,
// row locking under concurrent edits, and code uniqueness.

let db: TestDatabase;
let orm: MikroORM;
let actor: Actor;
let other: Actor;

/** Valid terms; a code makes it a CODE promotion, as a request that names no method would. */
const terms = (overrides: Partial<PromotionTerms> = {}): PromotionTerms => ({
  ...defaultTerms(),
  name: "Spring sale",
  phases: [{ name: "Default", duration: "FOREVER", cycles: null, effects: [{ kind: "percentage_discount", percentBps: 1000, appliesTo: null }] }],
  applicationMethod: defaultApplicationMethod(overrides.code ?? ""),
  ...overrides,
});

/** The use cases with a clock the test moves by hand. */
function storeAt(clock: { now: Date }) {
  return new Promotions(orm.em.fork(), () => clock.now);
}

async function failure(work: Promise<unknown>): Promise<DomainError> {
  try {
    await work;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected a DomainError");
}

beforeAll(async () => {
  db = await createTestDatabase("store");
  orm = await openOrm({ databaseUrl: db.url });
  ({ actor, other } = await twoTenants(orm));
});

afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

describe("schema", () => {
  it("has every table, column and type the entities declare (migrations and entities agree)", async () => {
    // Checks, foreign keys and partial indexes live only in the migration, so only statements
    // about tables and columns count as drift.
    const diff = await orm.schema.getUpdateSchemaSQL({ wrap: false, safe: false, dropTables: true });
    const drift = diff
      .split("\n")
      .filter((line) => /create table|drop table|add column|drop column|alter column "[^"]+" type|set not null|drop not null/i.test(line));
    expect(drift).toEqual([]);
  });
});

describe("Promotions versions", () => {
  it("switches to a scheduled version when its time comes, without any job", async () => {
    const clock = { now: new Date("2026-03-01T00:00:00Z") };
    const created = await storeAt(clock).create(actor, terms({ priority: 1 }));
    await storeAt(clock).activate(actor, created.id);
    const at = new Date("2026-03-02T00:00:00Z");
    const scheduled = await storeAt(clock).update(actor, created.id, { priority: 2 }, { expectedVersion: 1, effectiveAt: at, saveAsDraft: false });
    expect(scheduled).toMatchObject({ version: 2, liveVersion: 1 });
    expect(scheduled.terms.priority).toBe(1);

    clock.now = new Date("2026-03-01T23:59:59.999Z");
    expect((await storeAt(clock).get(actor.organizationId, created.id)).terms.priority).toBe(1);
    clock.now = at;
    const live = await storeAt(clock).get(actor.organizationId, created.id);
    expect(live).toMatchObject({ liveVersion: 2, terms: { priority: 2 } });
    const versions = await storeAt(clock).listVersions(actor.organizationId, created.id, { statuses: [], beforeVersion: null, limit: 10 });
    expect(versions.map((v) => [v.version, v.status, v.effectiveTo?.toISOString() ?? null])).toEqual([
      [2, "PUBLISHED", null],
      [1, "SUPERSEDED", at.toISOString()],
    ]);
    // List filters see the same terms as Get at the same instant.
    const filtered = await queryPromotionViews(orm.em.fork(), {
      organizationId: actor.organizationId,
      now: clock.now,
      filters: [{ field: "priority", op: "eq", values: [2n] }, { field: "id", op: "eq", values: [created.id] }],
    });
    expect(filtered).toHaveLength(1);
  });

  it("cancels a scheduled version that another publish replaces before it took effect", async () => {
    const clock = { now: new Date("2026-03-01T00:00:00Z") };
    const p = await storeAt(clock).create(actor, terms());
    await storeAt(clock).activate(actor, p.id);
    const opts = { expectedVersion: null, saveAsDraft: false };
    await storeAt(clock).update(actor, p.id, { priority: 5 }, { ...opts, effectiveAt: new Date("2026-04-01T00:00:00Z") });
    await storeAt(clock).update(actor, p.id, { priority: 7 }, { ...opts, effectiveAt: null });
    clock.now = new Date("2026-05-01T00:00:00Z");
    const view = await storeAt(clock).get(actor.organizationId, p.id);
    expect(view).toMatchObject({ version: 3, liveVersion: 3, terms: { priority: 7 } });
    const statuses = await storeAt(clock).listVersions(actor.organizationId, p.id, { statuses: ["ARCHIVED"], beforeVersion: null, limit: 10 });
    expect(statuses.map((v) => [v.version, v.archivedReason])).toEqual([[2, "replaced_before_effective"]]);
  });

  it("lets exactly one of many concurrent updates with the same expected_version win", async () => {
    const clock = { now: new Date() };
    const p = await storeAt(clock).create(actor, terms());
    await storeAt(clock).activate(actor, p.id);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        storeAt(clock).update(actor, p.id, { priority: i + 10 }, { expectedVersion: 1, effectiveAt: null, saveAsDraft: false }),
      ),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost.every((r) => r.reason instanceof DomainError && r.reason.kind === "aborted")).toBe(true);
    expect((await storeAt(clock).get(actor.organizationId, p.id)).version).toBe(2);
  });

  it("gives a code to exactly one of two promotions created at once, case-insensitively", async () => {
    const clock = { now: new Date() };
    const results = await Promise.allSettled([
      storeAt(clock).create(actor, terms({ code: "RACE10" })),
      storeAt(clock).create(actor, terms({ code: "race10" })),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const refused = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(refused?.reason).toBeInstanceOf(DomainError);
    expect((refused?.reason as DomainError).details[0]).toMatchObject({ param: "code", code: "code_taken" });
  });

  it("frees a code when its promotion is archived or deleted, and lets another tenant use it", async () => {
    const clock = { now: new Date() };
    const first = await storeAt(clock).create(actor, terms({ code: "REUSE" }));
    await storeAt(clock).create(other, terms({ code: "REUSE" }));
    expect((await failure(storeAt(clock).create(actor, terms({ code: "REUSE" })))).kind).toBe("already_exists");
    await storeAt(clock).activate(actor, first.id);
    await storeAt(clock).deactivate(actor, first.id);
    const second = await storeAt(clock).create(actor, terms({ code: "REUSE" }));
    await storeAt(clock).softDelete(actor, second.id);
    await storeAt(clock).create(actor, terms({ code: "reuse" }));
  });

  it("never shows one tenant's promotion to another", async () => {
    const clock = { now: new Date() };
    const p = await storeAt(clock).create(actor, terms());
    expect((await failure(storeAt(clock).get(other.organizationId, p.id))).kind).toBe("not_found");
    expect((await failure(storeAt(clock).update(other, p.id, { name: "x" }, { expectedVersion: null, effectiveAt: null, saveAsDraft: false }))).kind).toBe("not_found");
    expect((await failure(storeAt(clock).softDelete(other, p.id))).kind).toBe("not_found");
    expect((await storeAt(clock).get(actor.organizationId, p.id)).terms.name).toBe("Spring sale");
  });

  it("keeps a bigint budget exactly through storage", async () => {
    const clock = { now: new Date() };
    const big = 999_999_999_999_999n;
    const p = await storeAt(clock).create(actor, terms({ currency: "USD", maxBudget: big }));
    expect((await storeAt(clock).get(actor.organizationId, p.id)).terms.maxBudget).toBe(big);
  });
});
