import { create, isFieldSet } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromotionSchema, PromotionTermsSchema } from "../../gen/promotions/v1/promotion_pb.js";
import { CreatePromotionRequestSchema, UpdatePromotionRequestSchema } from "../../gen/promotions/v1/promotion_service_pb.js";
import { ConversionProblems, patchFromUpdateRequest, promotionToProto, termsFromCreateRequest, termsMessage } from "../../src/api/convert/promotion.js";
import { applyPatch, normalizeTerms } from "../../src/domain/editing.js";
import { defaultTerms, type PromotionTerms } from "../../src/domain/terms.js";
import { validateTerms } from "../../src/domain/validation.js";
import { Promotions } from "../../src/promotions/promotions.js";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import type { Actor } from "../../src/store/promotion-store.js";
import { findCheckoutTerms } from "../../src/store/promotion-views.js";
import { termsFromColumns, termsToColumns } from "../../src/store/terms-codec.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { twoTenants } from "../support/tenants.js";

// Every term field on every boundary it crosses: proto (create and update requests, the
// Promotion and PromotionTerms messages) → domain → columns (entity and raw SQL row) → domain →
// proto. The terms below set every field to something other than its default, so a field that
// any mapping forgets comes back as its default and the round trip fails.

const day = (iso: string) => new Date(`${iso}T00:00:00.000Z`);

/** Valid terms with every field set away from its default, each kind of condition and effect included. */
const FULL: PromotionTerms = normalizeTerms({
  name: "Every field",
  description: "internal notes",
  publicDescription: "Save on every plan",
  code: "EVERYFIELD",
  applicationMethod: "CODE",
  archetype: "LOYALTY_LADDER",
  visibility: "PUBLIC",
  stackable: true,
  priority: 7,
  applicationTiming: "NEXT_PERIOD",
  conditionMode: "ANY",
  conditions: [
    { kind: "min_spend", amountMinor: 1_500n },
    { kind: "plans", include: ["pro"], exclude: ["legacy"] },
    { kind: "products", include: ["app"], exclude: ["addon"] },
    { kind: "customer_segments", anyOf: ["vip", "smb"] },
    { kind: "first_time_customer" },
    { kind: "date_range", start: day("2026-01-01"), end: day("2027-01-01") },
  ],
  isPhased: true,
  phases: [
    { name: "Welcome", duration: "REPEATING", cycles: 3, effects: [{ kind: "percentage_discount", percentBps: 1_000, appliesTo: { planIds: ["pro"], productIds: ["app"] } }, { kind: "free_trial_extension", days: 7, appliesTo: null }] },
    { name: "Loyal", duration: "FOREVER", cycles: null, effects: [{ kind: "percentage_discount", percentBps: 1_500, appliesTo: null }, { kind: "fixed_discount", amountMinor: 200n, appliesTo: null }, { kind: "credit_grant", amountMinor: 300n, appliesTo: { planIds: [], productIds: ["seats"] } }] },
  ],
  currency: "USD",
  maxBudget: 9_000_000n,
  budgetBehavior: "STRICT",
  maxRedemptions: 500n,
  maxRedemptionsPerCustomer: 2n,
  validFrom: day("2026-02-01"),
  validTo: day("2026-12-31"),
  requiresContinuousCoverage: true,
  metadata: { campaign: "spring", owner: "growth" },
});

let db: TestDatabase;
let orm: MikroORM;
let actor: Actor;

beforeAll(async () => {
  db = await createTestDatabase("round_trip");
  orm = await openOrm({ databaseUrl: db.url });
  ({ actor } = await twoTenants(orm));
});

afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

describe("term fields round trip", () => {
  it("the fixture sets every field away from its default, and is valid", () => {
    const defaults = defaultTerms();
    for (const key of Object.keys(defaults) as (keyof PromotionTerms)[]) expect.soft(FULL[key], key).not.toEqual(defaults[key]);
    expect(validateTerms(FULL)).toEqual([]);
  });

  it("domain → PromotionTerms message sets every field of the message", () => {
    const message = termsMessage(FULL);
    for (const field of PromotionTermsSchema.fields) expect.soft(isFieldSet(message, field), field.name).toBe(true);
  });

  it("PromotionTerms message → CreatePromotionRequest → domain gives the same terms", () => {
    const { $typeName: _t, ...fields } = termsMessage(FULL);
    const req = create(CreatePromotionRequestSchema, fields);
    const problems = new ConversionProblems();
    const { terms } = termsFromCreateRequest(req, problems);
    expect(problems.violations).toEqual([]);
    expect(normalizeTerms(terms)).toEqual(FULL);
  });

  it("an UpdatePromotionRequest setting every field patches the defaults into the same terms", () => {
    const { $typeName: _t, conditions, phases, metadata, ...scalars } = termsMessage(FULL);
    const req = create(UpdatePromotionRequestSchema, { ...scalars, conditions: { conditions }, phases: { phases }, metadata: { entries: metadata } });
    const problems = new ConversionProblems();
    const patch = patchFromUpdateRequest(req, problems);
    expect(problems.violations).toEqual([]);
    expect(applyPatch(defaultTerms(), patch)).toEqual(FULL);
  });

  it("domain → entity columns → domain gives the same terms", () => {
    expect(termsFromColumns(termsToColumns(FULL))).toEqual(FULL);
  });

  it("written to PostgreSQL and read back by every read path (entity, joined view, checkout terms), then to the Promotion message", async () => {
    const promotions = new Promotions(orm.em.fork());
    const created = await promotions.create(actor, FULL);
    expect(created.terms).toEqual(FULL);
    expect((await promotions.get(actor.organizationId, created.id)).terms).toEqual(FULL);
    expect((await promotions.getVersion(actor.organizationId, created.id, 1)).terms).toEqual(FULL);
    expect((await findCheckoutTerms(orm.em.fork(), actor.organizationId, created.id, new Date()))?.view.terms).toEqual(FULL);

    const message = promotionToProto(created);
    const expected = termsMessage(FULL);
    for (const field of PromotionTermsSchema.fields) {
      const onPromotion = PromotionSchema.fields.find((f) => f.name === field.name);
      expect.soft(onPromotion, `Promotion has ${field.name}`).toBeDefined();
      expect.soft((message as unknown as Record<string, unknown>)[field.localName], field.name).toEqual((expected as unknown as Record<string, unknown>)[field.localName]);
    }
  });
});
