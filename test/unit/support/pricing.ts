// Builders for pricing-pipeline tests: a valid context, promotion and candidate, each with only
// the fields a case cares about overridden.

import type { BillingContext, Candidate, CandidatePromotion, CustomerFacts, InvoiceLine, SubscriptionFacts } from "../../../src/domain/billing.js";
import { DEFAULT_PHASE_NAME, defaultTerms, type AppliesTo, type Condition, type Effect, type Phase, type PromotionTerms } from "../../../src/domain/terms.js";

export const AT = new Date("2026-06-15T12:00:00Z");
export const PERIOD_START = new Date("2026-06-01T00:00:00Z");
export const PERIOD_END = new Date("2026-07-01T00:00:00Z");

export const on = (planIds: string[], productIds: string[] = []): AppliesTo => ({ planIds, productIds });
export const pct = (percentBps: number, appliesTo: AppliesTo | null = null): Effect => ({ kind: "percentage_discount", percentBps, appliesTo });
export const fixed = (amountMinor: bigint, appliesTo: AppliesTo | null = null): Effect => ({ kind: "fixed_discount", amountMinor, appliesTo });
export const credit = (amountMinor: bigint, appliesTo: AppliesTo | null = null): Effect => ({ kind: "credit_grant", amountMinor, appliesTo });
export const trial = (days: number, appliesTo: AppliesTo | null = null): Effect => ({ kind: "free_trial_extension", days, appliesTo });

export function phase(name: string, effects: Effect[], duration: Phase["duration"] = "FOREVER", cycles: number | null = null): Phase {
  return { name, duration, cycles, effects };
}

export function line(id: string, amount: bigint, opts: { plan?: string; product?: string; quantity?: number } = {}): InvoiceLine {
  return { id, planId: opts.plan ?? "pro", productId: opts.product ?? "app", unitAmountMinor: amount, quantity: opts.quantity ?? 1, description: id };
}

export function customer(over: Partial<CustomerFacts> = {}): CustomerFacts {
  return { id: "cus_1", segments: ["smb"], hasPaidBefore: true, createdAt: new Date("2025-01-01T00:00:00Z"), ...over };
}

export function subscription(over: Partial<SubscriptionFacts> = {}): SubscriptionFacts {
  return {
    id: "sub_1",
    customerId: "cus_1",
    status: "ACTIVE",
    currency: "USD",
    interval: "MONTH",
    currentPeriodStart: PERIOD_START,
    currentPeriodEnd: PERIOD_END,
    trialEnd: null,
    items: [],
    ...over,
  };
}

export function context(lines: InvoiceLine[] = [line("l1", 10_000n)], over: Partial<BillingContext> & { currency?: string } = {}): BillingContext {
  const { currency, ...rest } = over;
  return {
    customer: customer(),
    subscription: subscription(),
    invoice: { currency: currency ?? "USD", lines },
    periodStart: PERIOD_START,
    periodEnd: PERIOD_END,
    at: AT,
    ...rest,
  };
}

/** Valid, active, stackable-by-default-off terms with one FOREVER phase of the given effects. */
export function terms(effects: Effect[], over: Partial<PromotionTerms> = {}): PromotionTerms {
  return { ...defaultTerms(), name: "Promo", currency: "USD", phases: [phase(DEFAULT_PHASE_NAME, effects)], ...over };
}

export function conditions(mode: "ALL" | "ANY", list: Condition[]): Partial<PromotionTerms> {
  return { conditionMode: mode, conditions: list };
}

export function promotion(id: string, t: PromotionTerms, over: Partial<CandidatePromotion> = {}): CandidatePromotion {
  return {
    id,
    createdAt: new Date("2026-01-01T00:00:00Z"),
    status: "ACTIVE",
    version: 1,
    terms: { ...t, name: t.name === "Promo" ? id : t.name },
    currentRedemptions: 0n,
    currentBudgetUsed: 0n,
    ...over,
  };
}

export function candidate(p: CandidatePromotion, over: Partial<Candidate> = {}): Candidate {
  return { key: p.id, promotion: p, cyclesUsed: 0, redeemedAt: null, redemptionId: null, allowDraft: false, code: null, alreadyRedeemed: false, ...over };
}

/** A candidate for a promotion with `id` and these effects (and terms overrides). */
export function offer(id: string, effects: Effect[], over: Partial<PromotionTerms> = {}, promo: Partial<CandidatePromotion> = {}, cand: Partial<Candidate> = {}): Candidate {
  return candidate(promotion(id, terms(effects, over), promo), cand);
}
