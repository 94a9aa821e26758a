import { describe, expect, it } from "vitest";
import type { Candidate, PricedInvoice, PromotionOutcome } from "../../src/domain/billing.js";
import { compareCandidates, evaluateEligibility, priceInvoice, summarizeEffects } from "../../src/domain/pipeline.js";
import type { Effect, PromotionTerms } from "../../src/domain/terms.js";
import {
  AT, context, credit, customer, fixed, line, offer, on, pct, phase, subscription, terms, trial,
} from "./support/pricing.js";

const one = (amount: bigint) => context([line("l1", amount)]);
const outcome = (priced: PricedInvoice, id: string): PromotionOutcome => {
  const found = priced.promotions.find((p) => p.promotionId === id);
  if (!found) throw new Error(`no outcome for ${id}`);
  return found;
};
const lineDiscounts = (priced: PricedInvoice) => priced.lines.map((l) => l.discountMinor);

describe("rounding: percentages are rounded half-to-even on the eligible amount", () => {
  it.each([
    ["12.5% of 100 is 12", 100n, 12n],
    ["12.5% of 300 is 38", 300n, 38n],
    ["12.5% of 500 is 62", 500n, 62n],
  ])("%s", (_name, amount, discount) => {
    const priced = priceInvoice(one(amount), [offer("p", [pct(1250)])]);
    expect(priced.discountMinor).toBe(discount);
    expect(priced.totalMinor).toBe(amount - discount);
  });

  it("10% of three lines of 3,333 / 3,333 / 3,334 is 1,000 exactly, spread 333 / 333 / 334", () => {
    const ctx = context([line("a", 3_333n), line("b", 3_333n), line("c", 3_334n)]);
    const priced = priceInvoice(ctx, [offer("p", [pct(1000)])]);
    expect(priced.discountMinor).toBe(1_000n);
    expect(lineDiscounts(priced)).toEqual([333n, 333n, 334n]);
    expect(priced.totalMinor).toBe(9_000n);
  });

  it("rounds once on the eligible total, not per line (3 × 5 at 10% is 2, not 3 × 1 = 3 or 3 × 0)", () => {
    const priced = priceInvoice(context([line("a", 5n), line("b", 5n), line("c", 5n)]), [offer("p", [pct(1000)])]);
    expect(priced.discountMinor).toBe(2n);
    expect(lineDiscounts(priced)).toEqual([1n, 1n, 0n]);
  });
});

const TRIAL_END = new Date("2026-06-20T00:00:00Z");
const trialing = subscription({ status: "TRIALING", trialEnd: TRIAL_END });

describe("effects", () => {
  const lines = [line("pro", 6_000n, { plan: "pro", product: "app" }), line("seats", 4_000n, { plan: "addon", product: "seats" })];
  const cases: [string, Effect[], { discount: bigint; lines: bigint[]; credit?: bigint; days?: number; reason?: string }][] = [
    ["a percentage discount takes its share of every line", [pct(2000)], { discount: 2_000n, lines: [1_200n, 800n] }],
    ["a percentage discount narrowed to a plan takes only from that plan's lines", [pct(2000, on(["pro"]))], { discount: 1_200n, lines: [1_200n, 0n] }],
    ["a percentage discount narrowed to a product takes only from that product's lines", [pct(5000, on([], ["seats"]))], { discount: 2_000n, lines: [0n, 2_000n] }],
    ["applies_to with a plan and a product covers lines of either", [pct(1000, on(["pro"], ["seats"]))], { discount: 1_000n, lines: [600n, 400n] }],
    ["a 100% discount makes the invoice free", [pct(10_000)], { discount: 10_000n, lines: [6_000n, 4_000n] }],
    ["a fixed discount is spread by largest remainder", [fixed(1_001n)], { discount: 1_001n, lines: [601n, 400n] }],
    ["a fixed discount larger than the invoice is capped at the invoice", [fixed(50_000n)], { discount: 10_000n, lines: [6_000n, 4_000n] }],
    ["a fixed discount larger than its eligible lines is capped at those lines", [fixed(50_000n, on(["addon"]))], { discount: 4_000n, lines: [0n, 4_000n] }],
    ["a credit grant is account credit, not a line discount", [credit(2_500n)], { discount: 0n, lines: [0n, 0n], credit: 2_500n }],
    ["a free trial extension adds days", [trial(14)], { discount: 0n, lines: [0n, 0n], days: 14 }],
    ["several effects of a phase apply in order, each on what is left", [pct(5000), fixed(1_000n)], { discount: 6_000n, lines: [3_600n, 2_400n] }],
    ["a percentage after a fixed discount is taken of what the fixed one left", [fixed(5_000n), pct(5000)], { discount: 7_500n, lines: [4_500n, 3_000n] }],
    ["everything at once", [pct(1000), credit(300n), trial(7)], { discount: 1_000n, lines: [600n, 400n], credit: 300n, days: 7 }],
    ["a discount narrowed to a plan not on the invoice gives nothing", [pct(2000, on(["enterprise"]))], { discount: 0n, lines: [0n, 0n], reason: "no_effect" }],
    ["a credit narrowed to a plan not on the invoice gives nothing", [credit(100n, on(["enterprise"]))], { discount: 0n, lines: [0n, 0n], reason: "no_effect" }],
  ];
  it.each(cases)("%s", (_name, effects, expected) => {
    // A trialing subscription, so trial extensions apply (they do only while trialing: see "trials").
    const priced = priceInvoice(context(lines, { subscription: trialing }), [offer("p", effects)]);
    const result = outcome(priced, "p");
    expect(priced.discountMinor).toBe(expected.discount);
    expect(lineDiscounts(priced)).toEqual(expected.lines);
    expect(priced.creditsGrantedMinor).toBe(expected.credit ?? 0n);
    expect(priced.trialDaysAdded).toBe(expected.days ?? 0);
    expect(result.reason).toBe(expected.reason ?? "");
    expect(result.applied).toBe(expected.reason === undefined);
    expect(priced.totalMinor).toBe(10_000n - expected.discount);
    expect(priced.lines.every((l) => l.totalMinor >= 0n)).toBe(true);
  });

  it("records each promotion's share on every line it discounted", () => {
    const priced = priceInvoice(context(lines), [offer("a", [pct(1000)], { stackable: true, priority: 2 }), offer("b", [fixed(500n, on(["pro"]))], { stackable: true })]);
    expect(priced.lines[0]?.discounts).toEqual([{ promotionId: "a", amountMinor: 600n }, { promotionId: "b", amountMinor: 500n }]);
    expect(priced.lines[1]?.discounts).toEqual([{ promotionId: "a", amountMinor: 400n }]);
  });

  it("never discounts a negative line (a credit the biller added)", () => {
    const priced = priceInvoice(context([line("a", 1_000n), line("refund", -300n)]), [offer("p", [pct(10_000)])]);
    expect(lineDiscounts(priced)).toEqual([1_000n, 0n]);
    expect(priced.subtotalMinor).toBe(700n);
    expect(priced.totalMinor).toBe(-300n);
  });
});

describe("durations and phase transitions, priced", () => {
  const phased: Partial<PromotionTerms> = {
    isPhased: true,
    phases: [phase("Welcome", [pct(5000)], "ONCE"), phase("Intro", [pct(2000)], "REPEATING", 2), phase("Loyal", [pct(1000)], "FOREVER")],
  };
  it.each([
    [0, "Welcome", 5_000n],
    [1, "Intro", 2_000n],
    [2, "Intro", 2_000n],
    [3, "Loyal", 1_000n],
    [10, "Loyal", 1_000n],
  ])("after %s used periods the %s phase prices the invoice at %s off", (cyclesUsed, phaseName, discount) => {
    const priced = priceInvoice(one(10_000n), [offer("p", [], phased, {}, { cyclesUsed })]);
    expect(outcome(priced, "p")).toMatchObject({ applied: true, phaseName, discountMinor: discount });
  });

  it.each([
    ["ONCE", [phase("Default", [pct(1000)], "ONCE")], [1_000n, 0n, 0n]],
    ["REPEATING 3", [phase("Default", [pct(1000)], "REPEATING", 3)], [1_000n, 1_000n, 1_000n, 0n]],
    ["FOREVER", [phase("Default", [pct(1000)], "FOREVER")], [1_000n, 1_000n, 1_000n, 1_000n]],
  ])("a %s promotion discounts its periods and then ends with phase", (_name, phases, discounts) => {
    const run = discounts.map((_, cyclesUsed) => outcome(priceInvoice(one(10_000n), [offer("p", [], { phases }, {}, { cyclesUsed })]), "p"));
    expect(run.map((o) => o.discountMinor)).toEqual(discounts);
    run.forEach((o, i) => expect(o.reason).toBe(discounts[i] === 0n ? "phase" : ""));
  });
});

describe("ladders priced over several cycles", () => {
  it("a loyalty ladder's discount rises: 10% → 15% → 20% forever", () => {
    const loyalty = { archetype: "LOYALTY_LADDER" as const, isPhased: true, phases: [
      phase("Bronze", [pct(1000)], "REPEATING", 2), phase("Silver", [pct(1500)], "REPEATING", 2), phase("Gold", [pct(2000)], "FOREVER"),
    ] };
    const discounts = [0, 1, 2, 3, 4, 5].map((cyclesUsed) => priceInvoice(one(10_000n), [offer("p", [], loyalty, {}, { cyclesUsed })]).discountMinor);
    expect(discounts).toEqual([1_000n, 1_000n, 1_500n, 1_500n, 2_000n, 2_000n]);
  });

  it("a growth ladder's discount falls: 50% once → 25% for 2 → 10% for 3, then ends", () => {
    const growth = { archetype: "GROWTH_LADDER" as const, isPhased: true, phases: [
      phase("Launch", [pct(5000)], "ONCE"), phase("Ramp", [pct(2500)], "REPEATING", 2), phase("Tail", [fixed(1_000n)], "REPEATING", 3),
    ] };
    const run = [0, 1, 2, 3, 4, 5, 6].map((cyclesUsed) => outcome(priceInvoice(one(10_000n), [offer("p", [], growth, {}, { cyclesUsed })]), "p"));
    expect(run.map((o) => o.discountMinor)).toEqual([5_000n, 2_500n, 2_500n, 1_000n, 1_000n, 1_000n, 0n]);
    expect(run.map((o) => o.phaseName)).toEqual(["Launch", "Ramp", "Ramp", "Tail", "Tail", "Tail", ""]);
    expect(run[6]?.reason).toBe("phase");
  });
});

describe("ordering and stacking", () => {
  const stack = (id: string, effects: Effect[], over: Partial<PromotionTerms> = {}, created = "2026-01-01T00:00:00Z") =>
    offer(id, effects, { stackable: true, ...over }, { createdAt: new Date(created) });
  const solo = (id: string, effects: Effect[], over: Partial<PromotionTerms> = {}, created = "2026-01-01T00:00:00Z") =>
    offer(id, effects, { stackable: false, ...over }, { createdAt: new Date(created) });

  const scenarios: [string, Candidate[], Record<string, [boolean, string, bigint]>][] = [
    ["stackables apply by priority, each on what the one before left", [stack("low", [pct(1000)]), stack("high", [pct(2000)], { priority: 5 })],
      { high: [true, "", 2_000n], low: [true, "", 800n] }],
    ["a non-stackable first applies alone; every later one is not_stackable", [solo("solo", [pct(3000)], { priority: 9 }), stack("s1", [pct(1000)]), stack("s2", [fixed(100n)])],
      { solo: [true, "", 3_000n], s1: [false, "not_stackable", 0n], s2: [false, "not_stackable", 0n] }],
    ["a non-stackable after a stackable has applied is not_stackable", [stack("first", [pct(1000)], { priority: 9 }), solo("solo", [pct(5000)])],
      { first: [true, "", 1_000n], solo: [false, "not_stackable", 0n] }],
    ["of two non-stackables only the first applies", [solo("a", [pct(1000)], { priority: 1 }), solo("b", [pct(5000)])],
      { a: [true, "", 1_000n], b: [false, "not_stackable", 0n] }],
    ["equal priority: the earlier created applies first", [stack("late", [fixed(9_000n)], {}, "2026-03-01T00:00:00Z"), stack("early", [fixed(5_000n)], {}, "2026-02-01T00:00:00Z")],
      { early: [true, "", 5_000n], late: [true, "", 5_000n] }],
    ["equal priority and created_at: the lower id applies first", [solo("b", [pct(5000)]), solo("a", [pct(1000)])],
      { a: [true, "", 1_000n], b: [false, "not_stackable", 0n] }],
    ["a non-stackable that gives nothing does not block the rest", [solo("nothing", [pct(5000, on(["enterprise"]))], { priority: 9 }), stack("s", [pct(1000)])],
      { nothing: [false, "no_effect", 0n], s: [true, "", 1_000n] }],
    ["a promotion that fails its checks does not block the rest", [solo("expired", [pct(5000)], { priority: 9, validTo: new Date("2026-01-01T00:00:00Z") }), solo("ok", [pct(1000)])],
      { expired: [false, "validity_window", 0n], ok: [true, "", 1_000n] }],
    ["stackables after a 100% discount find nothing left", [stack("all", [pct(10_000)], { priority: 9 }), stack("more", [fixed(100n)])],
      { all: [true, "", 10_000n], more: [false, "no_effect", 0n] }],
  ];
  it.each(scenarios)("%s", (_name, candidates, expected) => {
    const priced = priceInvoice(one(10_000n), candidates);
    for (const [id, [applied, reason, discount]] of Object.entries(expected)) {
      expect(outcome(priced, id)).toMatchObject({ applied, reason, discountMinor: discount });
    }
    expect(priced.discountMinor).toBe(priced.promotions.reduce((s, p) => s + p.discountMinor, 0n));
  });

  it("lists outcomes in the order promotions were applied, whatever the input order", () => {
    const a = solo("a", [pct(1000)], { priority: 1 });
    const b = stack("b", [pct(1000)], { priority: 1 }, "2025-01-01T00:00:00Z");
    const c = stack("c", [pct(1000)], { priority: 7 });
    expect(priceInvoice(one(10_000n), [a, b, c]).promotions.map((p) => p.promotionId)).toEqual(["c", "b", "a"]);
    expect([a, b, c].sort(compareCandidates).map((x) => x.promotion.id)).toEqual(["c", "b", "a"]);
  });

  it("explains a stacking refusal in its checks", () => {
    const priced = priceInvoice(one(10_000n), [solo("Solo", [pct(1000)], { priority: 1 }), stack("Extra", [pct(1000)])]);
    expect(outcome(priced, "Extra").checks.at(-1)).toEqual({ check: "stacking", passed: false, detail: "Solo already applied and is not stackable" });
  });
});

describe("currency", () => {
  const eur = { currency: "EUR" } as const;
  // Columns: effects, terms, applied, reason, discount, credit, whether a failed "currency" check explains a skip.
  it.each<[string, Effect[], Partial<PromotionTerms>, boolean, string, bigint, bigint, boolean]>([
    ["a fixed discount in another currency is skipped: currency_mismatch", [fixed(500n)], eur, false, "currency_mismatch", 0n, 0n, true],
    ["a credit in another currency is skipped: currency_mismatch", [credit(500n)], eur, false, "currency_mismatch", 0n, 0n, true],
    ["a percentage needs no currency and applies to any invoice", [pct(1000)], eur, true, "", 1_000n, 0n, false],
    ["a percentage of a budgeted promotion in another currency is skipped", [pct(1000)], { ...eur, maxBudget: 100_000n }, false, "currency_mismatch", 0n, 0n, true],
    ["the percentage of a mixed phase applies and the fixed part is skipped", [pct(1000), fixed(500n), credit(50n)], eur, true, "", 1_000n, 0n, true],
    ["a fixed discount in the invoice currency applies", [fixed(500n)], { currency: "USD" }, true, "", 500n, 0n, false],
  ])("%s", (_name, effects, over, applied, reason, discount, creditMinor, skipped) => {
    const result = outcome(priceInvoice(one(10_000n), [offer("p", effects, over)]), "p");
    expect(result).toMatchObject({ applied, reason, discountMinor: discount, creditMinor });
    expect(result.checks.find((c) => c.check === "currency")?.passed).toBe(skipped ? false : undefined);
  });

  it("says which effect was skipped and why", () => {
    const result = outcome(priceInvoice(one(10_000n), [offer("p", [fixed(500n)], { currency: "EUR" })]), "p");
    expect(result.checks.find((c) => c.check === "currency")?.detail).toBe("fixed discount of 5.00 EUR skipped: the invoice is in USD");
  });
});

describe("budget", () => {
  const budget = (maxBudget: bigint, budgetBehavior: "CAP" | "STRICT", used: bigint, effects: Effect[], lines = [line("l1", 10_000n)]) =>
    outcome(priceInvoice(context(lines, { subscription: trialing }), [offer("p", effects, { maxBudget, budgetBehavior }, { currentBudgetUsed: used })]), "p");

  it.each<[string, bigint, "CAP" | "STRICT", bigint, Effect[], Partial<PromotionOutcome>]>([
    ["CAP grants all when the budget covers it", 10_000n, "CAP", 0n, [pct(2000)], { applied: true, discountMinor: 2_000n, budgetConsumedMinor: 2_000n }],
    ["CAP grants exactly what is left", 10_000n, "CAP", 9_000n, [pct(2000)], { applied: true, discountMinor: 1_000n, budgetConsumedMinor: 1_000n }],
    ["CAP takes the discount first and credit from what is left after it", 10_000n, "CAP", 9_000n, [pct(600), credit(1_000n)], { applied: true, discountMinor: 600n, creditMinor: 400n, budgetConsumedMinor: 1_000n }],
    ["CAP leaves no credit when the discount uses the remainder", 10_000n, "CAP", 9_500n, [pct(600), credit(1_000n)], { applied: true, discountMinor: 500n, creditMinor: 0n, budgetConsumedMinor: 500n }],
    ["STRICT grants all when the budget covers it", 10_000n, "STRICT", 8_000n, [pct(2000)], { applied: true, discountMinor: 2_000n, budgetConsumedMinor: 2_000n }],
    ["STRICT grants nothing when the budget does not cover it all", 10_000n, "STRICT", 8_001n, [pct(2000)], { applied: false, reason: "budget_insufficient", discountMinor: 0n, budgetConsumedMinor: 0n }],
    ["STRICT grants no trial days either when money is short", 10_000n, "STRICT", 9_999n, [pct(2000), trial(7)], { applied: false, reason: "budget_insufficient", trialDays: 0 }],
    ["a used-up budget fails its check", 10_000n, "CAP", 10_000n, [pct(2000)], { applied: false, reason: "budget" }],
    ["trial days cost no budget", 100n, "STRICT", 99n, [trial(30)], { applied: true, trialDays: 30, budgetConsumedMinor: 0n }],
  ])("%s", (_name, maxBudget, behavior, used, effects, expected) => {
    expect(budget(maxBudget, behavior, used, effects)).toMatchObject(expected);
  });

  it("CAP re-spreads a capped discount over the promotion's lines by largest remainder", () => {
    const lines = [line("a", 1_000n), line("b", 2_000n)];
    const priced = priceInvoice(context(lines), [offer("p", [pct(3000)], { maxBudget: 1_000n }, { currentBudgetUsed: 500n })]);
    // 30% would be 300 + 600; the 500 left is spread 166.67 / 333.33 → 167 / 333.
    expect(lineDiscounts(priced)).toEqual([167n, 333n]);
    expect(outcome(priced, "p").checks.find((c) => c.check === "budget_remaining")?.detail).toBe("capped from 9.00 USD to the 5.00 USD left of the budget (CAP)");
  });

  it("a capped promotion leaves the rest of the invoice to the next one", () => {
    const priced = priceInvoice(one(10_000n), [
      offer("capped", [pct(5000)], { maxBudget: 1_000n, stackable: true, priority: 2 }),
      offer("next", [pct(1000)], { stackable: true }),
    ]);
    expect(priced.promotions.map((p) => p.discountMinor)).toEqual([1_000n, 900n]);
  });

  it("reports what an unbudgeted promotion would consume: discount plus credit", () => {
    expect(outcome(priceInvoice(one(10_000n), [offer("p", [pct(1000), credit(250n)])]), "p").budgetConsumedMinor).toBe(1_250n);
  });
});

describe("timing and coverage", () => {
  it("a NEXT_PERIOD promotion redeemed this period does not apply until the next", () => {
    const c = offer("p", [pct(1000)], { applicationTiming: "NEXT_PERIOD" }, {}, { redeemedAt: new Date("2026-06-10T00:00:00Z") });
    expect(outcome(priceInvoice(one(10_000n), [c]), "p")).toMatchObject({ applied: false, reason: "application_timing" });
    const nextPeriod = { ...one(10_000n), periodStart: new Date("2026-07-01T00:00:00Z"), periodEnd: new Date("2026-08-01T00:00:00Z"), at: new Date("2026-07-01T00:00:00Z") };
    expect(outcome(priceInvoice(nextPeriod, [c]), "p")).toMatchObject({ applied: true, discountMinor: 1_000n });
  });

  it.each(["PAST_DUE", "PAUSED", "CANCELED"] as const)("a %s subscription lapses a promotion that requires continuous coverage", (status) => {
    const ctx = context(undefined, { subscription: subscription({ status }) });
    const c = offer("p", [pct(1000)], { requiresContinuousCoverage: true });
    expect(outcome(priceInvoice(ctx, [c]), "p")).toMatchObject({ applied: false, reason: "continuous_coverage" });
    expect(outcome(priceInvoice(ctx, [offer("q", [pct(1000)])]), "q").applied).toBe(true);
  });
});

describe("gates", () => {
  const ok = (c: Candidate) => outcome(priceInvoice(one(10_000n), [c]), c.promotion.id);
  it.each<[string, Candidate, boolean, string, string?]>([
    ["an active promotion applies", offer("p", [pct(1000)]), true, ""],
    ["a draft does not apply without allowDraft", offer("p", [pct(1000)], {}, { status: "DRAFT" }), false, "status"],
    ["a draft is simulated as if active with allowDraft", offer("p", [pct(1000)], {}, { status: "DRAFT" }, { allowDraft: true }), true, "", "draft, simulated as if active"],
    ["an archived promotion never applies, even with allowDraft", offer("p", [pct(1000)], {}, { status: "ARCHIVED" }, { allowDraft: true }), false, "status"],
    ["before valid_from it does not apply", offer("p", [pct(1000)], { validFrom: new Date(AT.getTime() + 1) }), false, "validity_window"],
    ["at valid_from it applies", offer("p", [pct(1000)], { validFrom: AT }), true, ""],
    ["at valid_to it has expired", offer("p", [pct(1000)], { validTo: AT }), false, "validity_window"],
    ["with every redemption used it does not apply", offer("p", [pct(1000)], { maxRedemptions: 5n }, { currentRedemptions: 5n }), false, "max_redemptions"],
    ["a redemption already counted still applies at the limit", offer("p", [pct(1000)], { maxRedemptions: 5n }, { currentRedemptions: 5n }, { alreadyRedeemed: true }), true, ""],
    ["one of the promotion's codes applies", offer("p", [pct(1000)], { code: "SPRING25", applicationMethod: "CODE" }, {}, { code: { entered: "SPRING25", matches: true } }), true, ""],
    ["a code that is not one of the promotion's does not apply", offer("p", [pct(1000)], { code: "SPRING25", applicationMethod: "CODE" }, {}, { code: { entered: "SUMMER", matches: false } }), false, "code"],
    ["a code given for an automatic promotion does not apply", offer("p", [pct(1000)], { code: "", applicationMethod: "AUTOMATIC" }, {}, { code: { entered: "SPRING25", matches: false } }), false, "code"],
    ["unmet conditions stop it", offer("p", [pct(1000)], { conditions: [{ kind: "first_time_customer" }] }), false, "condition.first_time_customer"],
  ])("%s", (_name, c, applied, reason, statusDetail) => {
    const result = ok(c);
    expect(result).toMatchObject({ applied, reason });
    if (statusDetail) expect(result.checks[0]).toEqual({ check: "status", passed: true, detail: statusDetail });
  });

  it("never echoes the promotion's real code in a mismatch", () => {
    const checks = ok(offer("p", [pct(1000)], { code: "SECRET99", applicationMethod: "CODE" }, {}, { code: { entered: "GUESS", matches: false } })).checks;
    expect(JSON.stringify(checks)).not.toContain("SECRET99");
  });
});

describe("trials", () => {
  const lines = [line("l1", 10_000n)];

  it("extends a trialing subscription once, and says where the trial now ends", () => {
    const result = outcome(priceInvoice(context(lines, { subscription: trialing }), [offer("p", [trial(14)])]), "p");
    expect(result).toMatchObject({ applied: true, trialDays: 14, trialEnd: new Date("2026-07-04T00:00:00Z") });
  });

  it("refuses to extend a subscription that is not trialing (not_trialing), naming its status", () => {
    const result = outcome(priceInvoice(context(lines, { subscription: subscription({ status: "ACTIVE" }) }), [offer("p", [trial(14)])]), "p");
    expect(result).toMatchObject({ applied: false, reason: "not_trialing", trialDays: 0, trialEnd: null });
    expect(result.checks).toContainEqual({ check: "trial", passed: false, detail: "trial extension skipped: subscription sub_1 is ACTIVE" });
  });

  it("does not extend a trial an inline invoice cannot tell is running", () => {
    expect(outcome(priceInvoice(context(lines, { subscription: null }), [offer("p", [trial(14)])]), "p")).toMatchObject({ applied: false, reason: "not_trialing" });
  });

  it("extends once per redemption: a redemption whose trial was extended gives the rest of its effects only", () => {
    const extended = { trialExtended: true, lastPeriodEnd: null };
    const alone = outcome(priceInvoice(context(lines, { subscription: trialing }), [offer("p", [trial(14)], {}, {}, { redemptionId: "r1", history: extended })]), "p");
    expect(alone).toMatchObject({ applied: false, reason: "no_effect", trialDays: 0 });
    const withDiscount = outcome(priceInvoice(context(lines, { subscription: trialing }), [offer("p", [trial(14), pct(1000)], {}, {}, { redemptionId: "r1", history: extended })]), "p");
    expect(withDiscount).toMatchObject({ applied: true, trialDays: 0, discountMinor: 1_000n, trialEnd: null });
    expect(withDiscount.checks).toContainEqual({ check: "trial", passed: false, detail: "the trial extension of this redemption was granted already" });
  });
});

describe("STRICT exhaustion and counter refusals", () => {
  const lines = [line("l1", 10_000n)];

  it("a STRICT budget that refused a grant grants nothing more, even what would fit", () => {
    const result = outcome(priceInvoice(context(lines), [offer("p", [fixed(10n)], { maxBudget: 1_000n, budgetBehavior: "STRICT" }, { currentBudgetUsed: 500n, budgetExhausted: true })]), "p");
    expect(result).toMatchObject({ applied: false, reason: "budget" });
  });

  it.each([
    ["max_redemptions", { maxRedemptions: 10n }],
    ["customer_limit", { maxRedemptionsPerCustomer: 1n }],
    ["budget", { maxBudget: 5_000n }],
  ] as const)("a first application the counters refused on %s fails that gate", (check, over) => {
    const result = outcome(priceInvoice(context(lines), [offer("p", [pct(1000)], over, {}, { refusal: { check, detail: "the counters said no" } })]), "p");
    expect(result).toMatchObject({ applied: false, reason: check });
    expect(result.checks).toContainEqual({ check, passed: false, detail: "the counters said no" });
  });
});

describe("evaluateEligibility", () => {
  it("is eligible with every check passed", () => {
    const result = evaluateEligibility(one(10_000n), offer("p", [pct(1000)], { maxRedemptions: 10n, maxBudget: 50_000n }));
    expect(result.eligible).toBe(true);
    expect(result.reason).toBe("");
    expect(result.checks.map((c) => c.check)).toEqual(["status", "validity_window", "max_redemptions", "budget", "conditions", "phase", "budget_remaining", "effects"]);
    expect(result.checks.every((c) => c.passed)).toBe(true);
  });

  it("gives the first failing gate as its reason and still runs every check", () => {
    const c = offer("p", [pct(1000)], {
      validTo: new Date("2026-01-01T00:00:00Z"),
      conditions: [{ kind: "min_spend", amountMinor: 50_000n }],
    }, { status: "ARCHIVED" });
    const result = evaluateEligibility(one(10_000n), c);
    expect(result.eligible).toBe(false);
    expect(result.reason).toBe("status");
    expect(result.checks.filter((x) => !x.passed).map((x) => x.check)).toEqual(["status", "validity_window", "conditions", "condition.min_spend"]);
    expect(result.checks.find((x) => x.check === "condition.min_spend")?.detail).toBe("subtotal 100.00 USD is below the 500.00 USD minimum");
  });

  it("in ANY mode a failing condition is not the reason when another holds", () => {
    const c = offer("p", [pct(1000)], { conditionMode: "ANY", conditions: [{ kind: "first_time_customer" }, { kind: "customer_segments", anyOf: ["smb"] }] });
    const result = evaluateEligibility({ ...one(10_000n), customer: customer() }, c);
    expect(result).toMatchObject({ eligible: true, reason: "" });
  });
});

describe("summarizeEffects", () => {
  const phased = (...phases: PromotionTerms["phases"]): PromotionTerms => terms([], { isPhased: true, phases });
  it.each<[string, PromotionTerms]>([
    ["20% off for 3 billing periods, then 10% off forever", phased(phase("Intro", [pct(2000)], "REPEATING", 3), phase("After", [pct(1000)], "FOREVER"))],
    ["25.00 USD off once", terms([], { phases: [phase("Default", [fixed(2_500n)], "ONCE")] })],
    ["14 extra trial days", terms([], { phases: [phase("Default", [trial(14)], "ONCE")] })],
    ["10.00 USD account credit every billing period for 12 periods", terms([], { phases: [phase("Default", [credit(1_000n)], "REPEATING", 12)] })],
    ["12.5% off on plan pro forever", terms([pct(1250, on(["pro"]))])],
    ["5% off on plans pro or team for 1 billing period", terms([], { phases: [phase("Default", [pct(500, on(["pro", "team"]))], "REPEATING", 1)] })],
    ["20.5% off on plan pro or product seats once and 1 extra trial day", terms([], { phases: [phase("Default", [pct(2050, on(["pro"], ["seats"])), trial(1)], "ONCE")] })],
    ["50% off once, then 25% off for 2 billing periods, then 10.00 USD off forever and 5.00 USD account credit every billing period", phased(
      phase("Launch", [pct(5000)], "ONCE"), phase("Ramp", [pct(2500)], "REPEATING", 2), phase("Tail", [fixed(1_000n), credit(500n)], "FOREVER"),
    )],
    ["500 JPY off forever", terms([fixed(500n)], { currency: "JPY" })],
  ])("%s", (expected, t) => {
    expect(summarizeEffects(t)).toBe(expected);
  });
});

describe("the priced invoice", () => {
  it("adds up: subtotal, discount, total, credits, trial days", () => {
    const ctx = context([line("a", 2_500n, { quantity: 2 }), line("b", 5_000n, { plan: "addon" })], { subscription: trialing });
    const priced = priceInvoice(ctx, [
      offer("pct", [pct(1000)], { stackable: true, priority: 1 }),
      offer("credit", [credit(700n), trial(5)], { stackable: true }),
    ]);
    expect(priced).toMatchObject({ currency: "USD", subtotalMinor: 10_000n, discountMinor: 1_000n, totalMinor: 9_000n, creditsGrantedMinor: 700n, trialDaysAdded: 5 });
    expect(priced.lines.map((l) => [l.lineId, l.amountMinor, l.discountMinor, l.totalMinor])).toEqual([["a", 5_000n, 500n, 4_500n], ["b", 5_000n, 500n, 4_500n]]);
  });

  it("prices an invoice with no candidates at full price", () => {
    expect(priceInvoice(one(1_234n), [])).toMatchObject({ subtotalMinor: 1_234n, discountMinor: 0n, totalMinor: 1_234n, promotions: [] });
  });

  it("does not change its inputs", () => {
    const ctx = one(10_000n);
    const cands = [offer("p", [pct(1000)])];
    const before = JSON.stringify([ctx, cands], (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v));
    priceInvoice(ctx, cands);
    expect(JSON.stringify([ctx, cands], (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v))).toBe(before);
  });
});
