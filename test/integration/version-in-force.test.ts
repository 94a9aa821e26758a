import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { versionInForce, type VersionFacts } from "../../src/domain/lifecycle.js";
import { defaultTerms, type PromotionStatus } from "../../src/domain/terms.js";
import { Promotions } from "../../src/promotions/promotions.js";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import type { Actor } from "../../src/store/promotion-store.js";
import { findCheckoutTerms, findPromotionView, queryPromotionViews } from "../../src/store/promotion-views.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { twoTenants } from "../support/tenants.js";

// "The version in force" is computed twice: in SQL, by every read that joins a promotion with its
// terms (src/store/promotion-views.ts), and in the domain (versionInForce), which the version
// lifecycle statuses are derived from. Random sets of versions, written to a real PostgreSQL, must
// get the same answer from both, at every instant and for every promotion status.

let db: TestDatabase;
let orm: MikroORM;
let actor: Actor;
let promotionId: string;
let template: string;

const NOW = new Date("2026-06-15T12:00:00Z");
/** Versions take effect on whole hours of a small range, so instants often fall exactly on one. */
const HOUR = 3_600_000;

beforeAll(async () => {
  db = await createTestDatabase("in_force");
  orm = await openOrm({ databaseUrl: db.url });
  ({ actor } = await twoTenants(orm));
  const view = await new Promotions(orm.em.fork()).create(actor, {
    ...defaultTerms(),
    name: "In force",
    phases: [{ name: "Default", duration: "FOREVER", cycles: null, effects: [{ kind: "percentage_discount", percentBps: 1000, appliesTo: null }] }],
  });
  promotionId = view.id;
  // Another promotion's version is the terms source; the versions under test are copies of it.
  template = await otherPromotion();
});

afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

async function otherPromotion(): Promise<string> {
  const view = await new Promotions(orm.em.fork()).create(actor, { ...defaultTerms(), name: "Template holder", phases: [{ name: "Default", duration: "FOREVER", cycles: null, effects: [{ kind: "percentage_discount", percentBps: 500, appliesTo: null }] }] });
  return view.liveVersionId;
}

const hour = (h: number) => new Date(NOW.getTime() + h * HOUR);
/** Archived a few hours before or after it took effect: cancelled before effect, or archived while in force. */
const archival = fc.oneof(
  fc.record({ archivedReason: fc.constant(null), archivedAt: fc.constant(null) }),
  fc.record({ archivedReason: fc.constantFrom("replaced_before_effective", "promotion_deactivated"), archivedAt: fc.integer({ min: -4, max: 4 }).map(hour) }),
);
const versionArb: fc.Arbitrary<Omit<VersionFacts, "version">> = fc.oneof(
  fc.tuple(fc.constant({ state: "draft" as const, effectiveFrom: null }), archival).map(([v, a]) => ({ ...v, ...a })),
  fc.tuple(fc.record({ state: fc.constant("published" as const), effectiveFrom: fc.integer({ min: -4, max: 4 }).map(hour) }), archival).map(([v, a]) => ({ ...v, ...a })),
);

async function install(status: PromotionStatus, versions: readonly VersionFacts[]): Promise<void> {
  const conn = orm.em.getConnection();
  await conn.execute(`delete from promotion_versions where promotion_id = ?`, [promotionId]);
  const columns = (await conn.execute<{ column_name: string }[]>(
    `select column_name from information_schema.columns where table_name = 'promotion_versions' order by ordinal_position`,
  )).map((c) => c.column_name);
  const set: Record<string, string> = { id: "gen_random_uuid()", promotion_id: "?", version: "?", state: "?", effective_from: "?", archived_reason: "?", archived_at: "?" };
  for (const v of versions) {
    const values: Record<string, unknown> = { promotion_id: promotionId, version: v.version, state: v.state, effective_from: v.effectiveFrom, archived_reason: v.archivedReason, archived_at: v.archivedAt };
    const params: unknown[] = columns.filter((c) => c in values).map((c) => values[c]);
    await conn.execute(`insert into promotion_versions (${columns.join(", ")}) select ${columns.map((c) => set[c] ?? c).join(", ")} from promotion_versions where id = ?`, [...params, template]);
  }
  await conn.execute(`update promotions set status = ?, version = ? where id = ?`, [status, Math.max(1, ...versions.map((v) => v.version)), promotionId]);
}

describe("the version in force", () => {
  it("is the same version in SQL (views, lists, the checkout's terms) and in the domain's versionInForce", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<PromotionStatus>("DRAFT", "ACTIVE", "ARCHIVED"),
        fc.array(versionArb, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: -5, max: 5 }),
        async (status, shapes, offset) => {
          const versions = shapes.map((v, i) => ({ ...v, version: i + 1 }));
          await install(status, versions);
          const at = new Date(NOW.getTime() + offset * HOUR);
          const expected = versionInForce(versions, status, at)?.version;
          const em = orm.em.fork();
          const view = await findPromotionView(em, actor.organizationId, promotionId, at);
          const listed = (await queryPromotionViews(em, { organizationId: actor.organizationId, now: at, filters: [{ field: "id", op: "eq", values: [promotionId] }] }))[0];
          const checkout = await findCheckoutTerms(em, actor.organizationId, promotionId, at);
          expect(view?.liveVersion).toBe(expected);
          expect(listed?.liveVersion).toBe(expected);
          expect(checkout?.view.liveVersion).toBe(expected);
        },
      ),
      { numRuns: 150, seed: 20261201 },
    );
  });
});
