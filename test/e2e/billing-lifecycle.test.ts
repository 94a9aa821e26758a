import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SubscriptionStatus } from "../../gen/promotions/v1/customer_pb.js";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { ApplicationMethod, BudgetBehavior, DerivedStatus, VersionStatus } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { PromotionVersionService } from "../../gen/promotions/v1/promotion_version_service_pb.js";
import { RedemptionKind, RedemptionService, RedemptionStatus } from "../../gen/promotions/v1/redemption_service_pb.js";
import { PhaseDuration } from "../../gen/promotions/v1/types_pb.js";
import { client, startTestApp, type TestApp } from "../support/app.js";
import { promo, refusal } from "../support/rpc.js";
import { at, pushCustomerAndSubscription } from "./support/billing.js";

// The billing lifecycle end to end (DESIGN §8), one test per way the service used to give money
// away, each through a real client: automatic promotions under their limits, assigned promotions,
// one application per promotion, reversal, safe delete, STRICT exhaustion, continuous coverage,
// trials, and the smaller defects found on the way.

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp("billing_lifecycle");
});
afterAll(async () => t?.stop());

const pct = (bps: number) => ({ kind: { case: "percentageDiscount" as const, value: { percentBps: bps } } });
const fixed = (amountMinor: bigint) => ({ kind: { case: "fixedDiscount" as const, value: { amountMinor } } });
const trial = (days: number) => ({ kind: { case: "freeTrialExtension" as const, value: { days } } });
const invoiceOf = (amount: bigint) => ({ currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: amount, quantity: 1 }] });

/** A tenant with clients for every service it uses here. */
async function tenant(slug: string) {
  const { key } = await t.tenant(slug);
  const promotions = client(PromotionService, t.url, key);
  const redemptions = client(RedemptionService, t.url, key);
  const invoices = client(InvoiceService, t.url, key, "grpc");
  const customers = client(CustomerService, t.url, key);
  const versions = client(PromotionVersionService, t.url, key);
  const active = async (fields: Parameters<typeof promotions.createPromotion>[0]) => {
    const created = promo(await promotions.createPromotion({ name: "P", currency: "USD", ...fields }));
    return promo(await promotions.activatePromotion({ id: created.id }));
  };
  const apply = async (invoiceId: string, customerId: string, amount = 10_000n) => (await invoices.applyPromotions({ invoiceId, customerId, invoice: invoiceOf(amount) })).invoice;
  return { key, promotions, redemptions, invoices, customers, versions, active, apply };
}

describe("automatic promotions keep their limits", () => {
  it("max_redemptions 1 and 1 per customer: one customer reached, once; the others refused; 0 remaining", async () => {
    const b = await tenant("auto-limits");
    const p = await b.active({ effects: [pct(2000)], maxRedemptions: 1n, maxRedemptionsPerCustomer: 1n, phases: [] });
    expect(p.applicationMethod).toBe(ApplicationMethod.AUTOMATIC); // code-less, no method named
    const discounts: bigint[] = [];
    for (const customer of ["c1", "c2", "c3"]) {
      for (const n of [1, 2]) discounts.push((await b.apply(`${customer}-inv-${n}`, customer))?.discountMinor ?? -1n);
    }
    // c1 holds the one redemption (FOREVER: each of its invoices); c2 and c3 are never reached.
    expect(discounts).toEqual([2_000n, 2_000n, 0n, 0n, 0n, 0n]);
    const refused = await b.apply("c2-inv-3", "c2");
    expect(refused?.promotions[0]).toMatchObject({ applied: false, reason: "max_redemptions" });
    const after = promo(await b.promotions.getPromotion({ id: p.id }));
    expect(after).toMatchObject({ currentRedemptions: 1n, remainingRedemptions: 0n, derivedStatus: DerivedStatus.EXHAUSTED });
    const [r] = (await b.redemptions.listRedemptions({ promotionId: p.id })).redemptions;
    expect(r).toMatchObject({ customerId: "c1", kind: RedemptionKind.AUTOMATIC, status: RedemptionStatus.ACTIVE, cyclesUsed: 2 });
    expect(r?.cyclesRemaining).toBeUndefined(); // FOREVER
  });

  it("a ONCE automatic discount applies to a customer's first invoice only, and its redemption completes", async () => {
    const b = await tenant("auto-once");
    const p = await b.active({ phases: [{ name: "Default", duration: PhaseDuration.ONCE, effects: [pct(5000)] }] });
    expect((await b.apply("w-1", "cus_w"))?.discountMinor).toBe(5_000n);
    expect((await b.apply("w-2", "cus_w"))?.discountMinor).toBe(0n);
    const [r] = (await b.redemptions.listRedemptions({ promotionId: p.id })).redemptions;
    expect(r).toMatchObject({ status: RedemptionStatus.COMPLETED, cyclesUsed: 1, cyclesRemaining: 0 });
    expect(r?.completedAt).toBeDefined();
  });

  it("is not redeemed by id: it applies automatically (applies_automatically), and ValidateCode says so", async () => {
    const b = await tenant("auto-no-redeem");
    const p = await b.active({ effects: [pct(1000)] });
    const r = await refusal(b.redemptions.redeemPromotion({ promotionId: p.id, customerId: "c1" }));
    expect(r.code).toBe(Code.FailedPrecondition);
    expect(r.detail?.code).toBe("applies_automatically");
    expect(await b.redemptions.validateCode({ promotionId: p.id, customerId: "c1" })).toMatchObject({ valid: false, reason: "applies_automatically" });
  });
});

describe("assigned promotions", () => {
  it("a code-less promotion redeemed by id for one customer discounts that customer only", async () => {
    const b = await tenant("assigned");
    const p = await b.active({ effects: [pct(3000)], applicationMethod: ApplicationMethod.ASSIGNED });
    const r = (await b.redemptions.redeemPromotion({ promotionId: p.id, customerId: "vip" })).redemption;
    expect(r?.kind).toBe(RedemptionKind.ASSIGNED);
    expect((await b.apply("vip-1", "vip"))?.discountMinor).toBe(3_000n);
    expect((await b.apply("other-1", "someone-else"))?.discountMinor).toBe(0n);
    expect((await b.apply("other-1b", "someone-else"))?.promotions).toEqual([]);
  });

  it("refuses a code on an ASSIGNED promotion, and a method change once the promotion is live", async () => {
    const b = await tenant("assigned-rules");
    const withCode = await refusal(b.promotions.createPromotion({ name: "X", code: "NOPE1", effects: [pct(1000)], applicationMethod: ApplicationMethod.ASSIGNED }));
    expect(withCode.detail).toMatchObject({ param: "code", code: "not_allowed" });
    const p = await b.active({ effects: [pct(1000)], applicationMethod: ApplicationMethod.ASSIGNED });
    const change = await refusal(b.promotions.updatePromotion({ id: p.id, applicationMethod: ApplicationMethod.AUTOMATIC }));
    expect(change.code).toBe(Code.FailedPrecondition);
    expect(change.detail).toMatchObject({ code: "invalid_status", param: "application_method" });
  });
});

describe("codes cannot be cleared into a discount for everyone", () => {
  it("refuses UpdatePromotion {code: \"\"} on a CODE promotion, draft or live (code_required)", async () => {
    const b = await tenant("clear-code");
    const draft = promo(await b.promotions.createPromotion({ name: "D", code: "KEEPME1", effects: [pct(1000)] }));
    expect(draft.applicationMethod).toBe(ApplicationMethod.CODE);
    const live = await b.active({ code: "KEEPME2", effects: [pct(1000)] });
    for (const id of [draft.id, live.id]) {
      const r = await refusal(b.promotions.updatePromotion({ id, code: "" }));
      expect(r.code).toBe(Code.InvalidArgument);
      expect(r.detail).toMatchObject({ param: "code", code: "code_required" });
    }
    expect((await b.apply("nobody-1", "nobody"))?.discountMinor).toBe(0n);
    // Copying a CODE promotion needs a code of its own, for the same reason.
    expect((await refusal(b.promotions.copyPromotion({ id: live.id }))).detail).toMatchObject({ param: "code", code: "code_required" });
  });
});

describe("one application per promotion per invoice", () => {
  it("two redemptions of one stackable 20% promotion give 20% once (2,000 off 10,000), the oldest first", async () => {
    const b = await tenant("twice");
    const p = await b.active({ code: "TWICE20", stackable: true, effects: [pct(2000)], maxRedemptionsPerCustomer: 2n });
    const first = (await b.redemptions.redeemPromotion({ code: "TWICE20", customerId: "c1", idempotencyKey: "k1" })).redemption;
    await b.redemptions.redeemPromotion({ code: "TWICE20", customerId: "c1", idempotencyKey: "k2" });
    const inv = await b.apply("twice-1", "c1");
    expect(inv?.discountMinor).toBe(2_000n);
    expect(inv?.promotions.filter((o) => o.promotionId === p.id)).toHaveLength(1);
    expect(inv?.promotions[0]?.redemptionId).toBe(first?.id);
  });
});

describe("ReverseInvoice", () => {
  it("gives the budget back, un-uses the cycle (a completed redemption is ACTIVE again), refuses a re-apply and replays a retry", async () => {
    const b = await tenant("reverse");
    const p = await b.active({ code: "ONCE10", maxBudget: 50_000n, phases: [{ name: "Default", duration: PhaseDuration.ONCE, effects: [pct(1000)] }] });
    const r = (await b.redemptions.redeemPromotion({ code: "ONCE10", customerId: "c1" })).redemption;
    expect((await b.apply("rev-1", "c1"))?.discountMinor).toBe(1_000n);
    expect((await b.redemptions.getRedemption({ id: r?.id ?? "" })).redemption).toMatchObject({ status: RedemptionStatus.COMPLETED, cyclesUsed: 1 });
    expect(promo(await b.promotions.getPromotion({ id: p.id })).currentBudgetUsed).toBe(1_000n);

    const reversed = await b.invoices.reverseInvoice({ invoiceId: "rev-1", reason: "voided" });
    expect(reversed).toMatchObject({ replayed: false, budgetReturnedMinor: 1_000n, reason: "voided" });
    expect(promo(await b.promotions.getPromotion({ id: p.id })).currentBudgetUsed).toBe(0n);
    expect((await b.redemptions.getRedemption({ id: r?.id ?? "" })).redemption).toMatchObject({ status: RedemptionStatus.ACTIVE, cyclesUsed: 0, cyclesRemaining: 1 });

    const again = await refusal(b.invoices.applyPromotions({ invoiceId: "rev-1", customerId: "c1", invoice: invoiceOf(10_000n) }));
    expect(again.code).toBe(Code.FailedPrecondition);
    expect(again.detail?.code).toBe("invoice_reversed");
    expect(await b.invoices.reverseInvoice({ invoiceId: "rev-1", reason: "again" })).toMatchObject({ replayed: true, reason: "voided", budgetReturnedMinor: 1_000n });
    expect((await refusal(b.invoices.reverseInvoice({ invoiceId: "never-priced" }))).code).toBe(Code.NotFound);
    // The cycle is back: the next invoice gets the discount again.
    expect((await b.apply("rev-2", "c1"))?.discountMinor).toBe(1_000n);
  });
});

describe("DeletePromotion", () => {
  it("refuses a promotion with ACTIVE redemptions; with end_redemptions they read ENDED (promotion_deleted)", async () => {
    const b = await tenant("delete");
    const p = await b.active({ code: "GONE10", effects: [pct(1000)] });
    const r = (await b.redemptions.redeemPromotion({ code: "GONE10", customerId: "c1" })).redemption;
    const refused = await refusal(b.promotions.deletePromotion({ id: p.id }));
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.detail).toMatchObject({ code: "promotion_has_redemptions", param: "end_redemptions" });
    expect((await b.apply("del-1", "c1"))?.discountMinor).toBe(1_000n); // still live
    await b.promotions.deletePromotion({ id: p.id, endRedemptions: true });
    expect((await b.redemptions.getRedemption({ id: r?.id ?? "" })).redemption).toMatchObject({ status: RedemptionStatus.ENDED, endReason: "promotion_deleted" });
    expect((await b.apply("del-2", "c1"))?.discountMinor).toBe(0n);
    expect((await b.redemptions.listRedemptions({ customerId: "c1", status: [RedemptionStatus.ENDED] })).redemptions.map((x) => x.id)).toEqual([r?.id]);
    expect((await b.redemptions.listRedemptions({ customerId: "c1", status: [RedemptionStatus.ACTIVE] })).redemptions).toEqual([]);
  });
});

describe("STRICT budgets", () => {
  it("a budget that refused a grant reads EXHAUSTED and refuses redemptions until an edit raises it", async () => {
    const b = await tenant("strict");
    const p = await b.active({ code: "STRICT10", effects: [fixed(1_000n)], maxBudget: 1_500n, budgetBehavior: BudgetBehavior.STRICT });
    await b.redemptions.redeemPromotion({ code: "STRICT10", customerId: "c1" });
    await b.redemptions.redeemPromotion({ code: "STRICT10", customerId: "c2" });
    expect((await b.apply("s-1", "c1"))?.discountMinor).toBe(1_000n);
    const short = await b.apply("s-2", "c2");
    expect(short?.promotions[0]).toMatchObject({ applied: false, reason: "budget_insufficient" });
    expect(promo(await b.promotions.getPromotion({ id: p.id }))).toMatchObject({ derivedStatus: DerivedStatus.EXHAUSTED, currentBudgetUsed: 1_000n });
    const refused = await refusal(b.redemptions.redeemPromotion({ code: "STRICT10", customerId: "c3" }));
    expect(refused.detail?.code).toBe("budget_exhausted");
    expect(await b.redemptions.validateCode({ code: "STRICT10", customerId: "c3" })).toMatchObject({ valid: false, reason: "budget_exhausted" });
    // Raising the budget reopens it.
    await b.promotions.updatePromotion({ id: p.id, maxBudget: 5_000n });
    expect(promo(await b.promotions.getPromotion({ id: p.id })).derivedStatus).toBe(DerivedStatus.LIVE);
    expect((await b.redemptions.redeemPromotion({ code: "STRICT10", customerId: "c3" })).redemption?.status).toBe(RedemptionStatus.ACTIVE);
  });
});

describe("continuous coverage", () => {
  it("a ladder that requires coverage ends at a PAST_DUE invoice and does not resume", async () => {
    const b = await tenant("coverage");
    await pushCustomerAndSubscription(t.url, b.key, { customerId: "c1", subscriptionId: "s1", items: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] });
    await b.active({
      code: "LADDER",
      isPhased: true,
      archetype: 2,
      requiresContinuousCoverage: true,
      phases: [
        { name: "Start", duration: PhaseDuration.REPEATING, cycles: 1, effects: [pct(1000)] },
        { name: "Loyal", duration: PhaseDuration.FOREVER, effects: [pct(2000)] },
      ],
    });
    const r = (await b.redemptions.redeemPromotion({ code: "LADDER", customerId: "c1", subscriptionId: "s1" })).redemption;
    const period = (n: number, status: SubscriptionStatus) =>
      b.customers.upsertSubscription({
        subscription: {
          id: "s1", customerId: "c1", status, currency: "USD", interval: 3,
          currentPeriodStart: at(`2027-0${n}-01T00:00:00Z`), currentPeriodEnd: at(`2027-0${n + 1}-01T00:00:00Z`),
          items: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }], updatedAt: at(`2026-12-0${n}T00:00:00Z`),
        },
      });
    await period(1, SubscriptionStatus.ACTIVE);
    expect((await b.invoices.applyPromotions({ invoiceId: "cov-1", subscriptionId: "s1" })).invoice?.discountMinor).toBe(1_000n);
    await period(2, SubscriptionStatus.PAST_DUE);
    const gap = (await b.invoices.applyPromotions({ invoiceId: "cov-2", subscriptionId: "s1" })).invoice;
    expect(gap?.promotions[0]).toMatchObject({ applied: false, reason: "continuous_coverage" });
    expect((await b.redemptions.getRedemption({ id: r?.id ?? "" })).redemption).toMatchObject({ status: RedemptionStatus.ENDED, endReason: "coverage_gap" });
    await period(3, SubscriptionStatus.ACTIVE);
    expect((await b.invoices.applyPromotions({ invoiceId: "cov-3", subscriptionId: "s1" })).invoice?.discountMinor).toBe(0n);
  });

  it("ends when a billing period does not start where the last one it applied to ended", async () => {
    const b = await tenant("coverage-gap");
    await b.active({ code: "NOGAP", requiresContinuousCoverage: true, effects: [pct(1000)] });
    await b.redemptions.redeemPromotion({ code: "NOGAP", customerId: "c1" });
    const priced = (start: string, end: string, id: string) =>
      b.invoices.applyPromotions({ invoiceId: id, customerId: "c1", invoice: invoiceOf(10_000n), billingPeriodStart: at(start), billingPeriodEnd: at(end) });
    expect((await priced("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z", "g-1")).invoice?.discountMinor).toBe(1_000n);
    expect((await priced("2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z", "g-2")).invoice?.discountMinor).toBe(1_000n);
    const skipped = (await priced("2027-04-01T00:00:00Z", "2027-05-01T00:00:00Z", "g-3")).invoice;
    expect(skipped?.promotions[0]).toMatchObject({ applied: false, reason: "continuous_coverage" });
    expect((await b.redemptions.listRedemptions({ customerId: "c1" })).redemptions[0]).toMatchObject({ status: RedemptionStatus.ENDED, endReason: "coverage_gap" });
  });
});

describe("trial extensions", () => {
  it("extend a trialing subscription once per redemption, with the new trial_end; not_trialing otherwise", async () => {
    const b = await tenant("trials");
    await pushCustomerAndSubscription(
      t.url, b.key,
      { customerId: "c1", subscriptionId: "s1", items: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] },
      { subscription: { status: SubscriptionStatus.TRIALING, trialEnd: at("2026-11-15T00:00:00Z") } },
    );
    await pushCustomerAndSubscription(t.url, b.key, { customerId: "c2", subscriptionId: "s2", items: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] });
    await b.active({ code: "TRIAL14", effects: [trial(14)] });
    await b.redemptions.redeemPromotion({ code: "TRIAL14", customerId: "c1" });
    await b.redemptions.redeemPromotion({ code: "TRIAL14", customerId: "c2" });
    const first = (await b.invoices.applyPromotions({ invoiceId: "t-1", subscriptionId: "s1" })).invoice;
    expect(first).toMatchObject({ trialDaysAdded: 14 });
    expect(first?.promotions[0]?.trialEnd?.seconds).toBe(BigInt(Date.parse("2026-11-29T00:00:00Z") / 1000));
    expect((await b.invoices.applyPromotions({ invoiceId: "t-2", subscriptionId: "s1" })).invoice).toMatchObject({ trialDaysAdded: 0 });
    const active = (await b.invoices.applyPromotions({ invoiceId: "t-3", subscriptionId: "s2" })).invoice;
    expect(active).toMatchObject({ trialDaysAdded: 0 });
    expect(active?.promotions[0]).toMatchObject({ applied: false, reason: "not_trialing" });
  });
});

describe("smaller defects", () => {
  it("the version in force at deactivation reads archived_reason promotion_deactivated, and the promotion keeps its terms", async () => {
    const b = await tenant("deactivate");
    const p = await b.active({ code: "ARCH10", effects: [pct(1000)] });
    await b.promotions.deactivatePromotion({ id: p.id });
    const [v] = (await b.versions.listPromotionVersions({ id: p.id })).versions;
    expect(v).toMatchObject({ status: VersionStatus.ARCHIVED, archivedReason: "promotion_deactivated" });
    expect(promo(await b.promotions.getPromotion({ id: p.id }))).toMatchObject({ name: "P", liveVersion: 1n });
  });

  it("PreviewPromotionEligibility accepts any of the promotion's codes, not only the primary one", async () => {
    const b = await tenant("preview-codes");
    const p = await b.active({ code: "PRIMARY1", effects: [pct(1000)] });
    await b.promotions.createPromotionCodes({ promotionId: p.id, codes: ["EXTRA-ONE"] });
    await pushCustomerAndSubscription(t.url, b.key, { customerId: "c1", subscriptionId: "s1", items: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] });
    const preview = (code: string) => b.promotions.previewPromotionEligibility({ promotionId: p.id, customerId: "c1", subscriptionId: "s1", code });
    expect(await preview("extra-one")).toMatchObject({ eligible: true });
    expect(await preview("PRIMARY1")).toMatchObject({ eligible: true });
    expect(await preview("WRONG99")).toMatchObject({ eligible: false, reason: "code" });
  });

  it("ListPromotions finds code-less promotions with code.eq=null, and filters by application_method", async () => {
    const b = await tenant("codeless");
    const auto = await b.active({ effects: [pct(1000)] });
    const coded = await b.active({ code: "HASCODE", effects: [pct(1000)] });
    const ids = async (filter: string[]) => (await b.promotions.listPromotions({ filter })).promotions.map((x) => x.id);
    expect(await ids(["code.eq=null"])).toEqual([auto.id]);
    expect(await ids(["code.ne=null"])).toEqual([coded.id]);
    expect(await ids(["application_method.eq=automatic"])).toEqual([auto.id]);
  });

  it("an applied redemption's check detail agrees with the promotion's counts", async () => {
    const b = await tenant("details");
    const p = await b.active({ code: "COUNT10", effects: [pct(1000)], maxRedemptions: 1_000n });
    await b.redemptions.redeemPromotion({ code: "COUNT10", customerId: "c1" });
    const check = (await b.apply("d-1", "c1"))?.promotions[0]?.checks.find((c) => c.check === "max_redemptions");
    expect(check?.detail).toBe("this redemption is already counted (1 of 1000 used)");
    expect(promo(await b.promotions.getPromotion({ id: p.id })).currentRedemptions).toBe(1n);
  });
});
