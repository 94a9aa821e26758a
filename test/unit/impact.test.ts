import { describe, expect, it } from "vitest";
import type { CandidatePromotion } from "../../src/domain/billing.js";
import { ImpactForecast } from "../../src/domain/impact.js";
import { AT, customer, pct, phase, subscription, terms } from "./support/pricing.js";

// The impact forecast (src/domain/impact.ts): every billable subscription priced over the coming
// periods, the budget applied to the per-period totals, in order.

const items = [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }];
const promotion = (over: Partial<CandidatePromotion["terms"]> = {}, used = 0n): CandidatePromotion => ({
  id: "p1",
  createdAt: AT,
  status: "ACTIVE",
  version: 1,
  terms: terms([pct(1000)], over),
  currentRedemptions: 0n,
  currentBudgetUsed: used,
});

function forecast(p: CandidatePromotion, periods: number, subs = 3) {
  const f = new ImpactForecast(p, periods, AT);
  for (let i = 0; i < subs; i++) f.add(subscription({ id: `sub_${i}`, items }), customer());
  return f.result();
}

describe("ImpactForecast", () => {
  it("prices each subscription in every period and adds them up", () => {
    const r = forecast(promotion(), 3);
    expect(r.evaluatedSubscriptions).toBe(3n);
    expect(r.eligibleSubscriptions).toBe(3n);
    expect(r.periods.map((p) => [p.eligibleSubscriptions, p.discountMinor, p.cumulativeCostMinor])).toEqual([
      [3n, 3_000n, 3_000n],
      [3n, 3_000n, 6_000n],
      [3n, 3_000n, 9_000n],
    ]);
    expect(r.totalCostMinor).toBe(9_000n);
    expect(r.budgetExhaustedPeriod).toBeNull();
  });

  it("follows the phases: period k uses the phase for k cycles used, and a ONCE phase ends", () => {
    const r = forecast(promotion({ isPhased: true, phases: [phase("first", [pct(5000)], "ONCE"), phase("then", [pct(1000)], "FOREVER")] }), 2, 1);
    expect(r.periods.map((p) => p.discountMinor)).toEqual([5_000n, 1_000n]);
  });

  it("applies what is left of the budget to the periods in order and names the one it runs out in", () => {
    const r = forecast(promotion({ maxBudget: 10_000n }, 2_500n), 4);
    expect(r.periods.map((p) => [p.discountMinor, p.budgetRemainingMinor])).toEqual([
      [3_000n, 4_500n],
      [3_000n, 1_500n],
      [1_500n, 0n],
      [0n, 0n],
    ]);
    expect(r.budgetExhaustedPeriod).toBe(3);
    expect(r.totalCostMinor).toBe(7_500n);
  });

  it("counts subscriptions in another currency as skipped, not eligible", () => {
    const f = new ImpactForecast(promotion(), 1, AT);
    f.add(subscription({ items }), customer());
    f.add(subscription({ id: "eur", currency: "EUR", items }), customer());
    const r = f.result();
    expect(r).toMatchObject({ evaluatedSubscriptions: 2n, eligibleSubscriptions: 1n, skippedCurrencyMismatch: 1n });
  });

  it("ignores max_redemptions per subscription: the limit is the tenant's, not the forecast's", () => {
    const r = forecast({ ...promotion({ maxRedemptions: 1n }), currentRedemptions: 1n }, 1);
    expect(r.periods[0]?.eligibleSubscriptions).toBe(3n);
  });
});
