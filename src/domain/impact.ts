import { invoiceOf, type CandidatePromotion, type CustomerFacts, type SubscriptionFacts } from "./billing.js";
import { addInterval } from "./periods.js";
import { priceInvoice } from "./pipeline.js";

// Forecast of what a promotion would cost over the coming billing periods of every billable
// subscription. Subscriptions are fed one at a time (the caller streams them in batches), so
// memory stays flat whatever the tenant's size; only per-period totals are kept.

export interface PeriodForecast {
  period: number;
  eligibleSubscriptions: bigint;
  discountMinor: bigint;
  creditMinor: bigint;
  cumulativeCostMinor: bigint;
  budgetRemainingMinor: bigint | null;
}

export interface ImpactForecastResult {
  currency: string;
  evaluatedSubscriptions: bigint;
  eligibleSubscriptions: bigint;
  periods: PeriodForecast[];
  totalCostMinor: bigint;
  budgetExhaustedPeriod: number | null;
  skippedCurrencyMismatch: bigint;
}

interface RawPeriod {
  eligible: bigint;
  discount: bigint;
  credit: bigint;
}

/**
 * Accumulates a forecast. Each subscription is priced as if it had redeemed the promotion at its
 * current period (period k uses the phase for k cycles used). Budget is applied to the totals per
 * period, in order: the period whose cost reaches what is left is the one it runs out in (a STRICT
 * budget may run out slightly earlier in reality; this is the CAP bound).
 */
export class ImpactForecast {
  private readonly raw: RawPeriod[];
  private readonly unlimited: CandidatePromotion;
  private currency: string;
  private evaluated = 0n;
  private skipped = 0n;

  constructor(
    private readonly promotion: CandidatePromotion,
    private readonly periods: number,
    private readonly now: Date,
  ) {
    this.raw = Array.from({ length: periods }, () => ({ eligible: 0n, discount: 0n, credit: 0n }));
    // Limits are applied to the totals, not per subscription.
    this.unlimited = { ...promotion, terms: { ...promotion.terms, maxBudget: null, maxRedemptions: null } };
    this.currency = promotion.terms.currency;
  }

  /** Prices one subscription over every forecast period. */
  add(subscription: SubscriptionFacts, customer: CustomerFacts | null): void {
    this.evaluated++;
    if (this.currency === "") this.currency = subscription.currency;
    if (subscription.currency !== this.currency) {
      this.skipped++;
      return;
    }
    const invoice = invoiceOf(subscription);
    const start = subscription.currentPeriodStart ?? this.now;
    for (let k = 0; k < this.periods; k++) {
      const periodStart = addInterval(start, subscription.interval, k);
      const periodEnd = addInterval(start, subscription.interval, k + 1);
      const priced = priceInvoice(
        { customer, subscription, invoice, periodStart, periodEnd, at: periodStart },
        [{ key: this.unlimited.id, promotion: this.unlimited, cyclesUsed: k, redeemedAt: null, redemptionId: null, allowDraft: true, code: null, alreadyRedeemed: true }],
      );
      const outcome = priced.promotions[0];
      const bucket = this.raw[k];
      if (!outcome?.applied || !bucket) continue;
      bucket.eligible++;
      bucket.discount += outcome.discountMinor;
      bucket.credit += outcome.creditMinor;
    }
  }

  result(): ImpactForecastResult {
    const { maxBudget, currentBudgetUsed } = this.promotion.terms.maxBudget === null
      ? { maxBudget: null, currentBudgetUsed: 0n }
      : { maxBudget: this.promotion.terms.maxBudget, currentBudgetUsed: this.promotion.currentBudgetUsed };
    let remaining = maxBudget === null ? null : maxBudget > currentBudgetUsed ? maxBudget - currentBudgetUsed : 0n;
    let cumulative = 0n;
    let exhausted: number | null = null;
    const periods = this.raw.map((p, i): PeriodForecast => {
      let discount = p.discount;
      let credit = p.credit;
      if (remaining !== null) {
        const cost = discount + credit;
        if (cost > 0n && cost >= remaining && exhausted === null) exhausted = i + 1;
        // Discounts are granted before credits when the budget cannot cover both.
        discount = discount < remaining ? discount : remaining;
        credit = credit < remaining - discount ? credit : remaining - discount;
        remaining -= discount + credit;
      }
      cumulative += discount + credit;
      return {
        period: i + 1,
        eligibleSubscriptions: p.eligible,
        discountMinor: discount,
        creditMinor: credit,
        cumulativeCostMinor: cumulative,
        budgetRemainingMinor: remaining,
      };
    });
    return {
      currency: this.currency,
      evaluatedSubscriptions: this.evaluated,
      eligibleSubscriptions: this.raw[0]?.eligible ?? 0n,
      periods,
      totalCostMinor: cumulative,
      budgetExhaustedPeriod: exhausted,
      skippedCurrencyMismatch: this.skipped,
    };
  }
}
