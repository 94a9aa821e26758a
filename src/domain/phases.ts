import type { BillingContext, Candidate, Check, SubscriptionFacts, SubscriptionStatus } from "./billing.js";
import type { Phase, PromotionTerms } from "./terms.js";

// Which phase of a promotion prices this billing period, and whether the promotion is in force
// at all this period: its duration may be used up, its coverage lapsed, or its start deferred to
// the next period. Each answer is a check with a human detail, so a preview can explain it.

export interface PhaseInForce {
  phase: Phase;
  /** Position in terms.phases. */
  index: number;
  /** 1-based billing period within this phase. */
  cycleInPhase: number;
  /** Billing periods this phase lasts; null for FOREVER. */
  cyclesInPhase: number | null;
}

/** Subscription states in which coverage is broken: the customer is not paying for service. */
export const LAPSED_STATUSES: ReadonlySet<SubscriptionStatus> = new Set(["PAST_DUE", "PAUSED", "CANCELED"]);

/** Billing periods a phase lasts: ONCE 1, REPEATING its cycles, FOREVER null (unbounded). */
export function phaseLength(phase: Phase): number | null {
  switch (phase.duration) {
    case "FOREVER":
      return null;
    case "REPEATING":
      // Validation requires cycles ≥ 1; should bad terms slip through, zero cycles grants nothing
      // rather than something nobody wrote down.
      return phase.cycles !== null && phase.cycles > 0 ? phase.cycles : 0;
    case "ONCE":
    case null:
      return 1;
  }
}

/** Billing periods the phases last in all; null when one of them is FOREVER (the promotion never completes). */
export function totalCycles(phases: readonly Phase[]): number | null {
  let total = 0;
  for (const phase of phases) {
    const length = phaseLength(phase);
    if (length === null) return null;
    total += length;
  }
  return total;
}

/** The phase in force once `cyclesUsed` billing periods have been used, or null when all are used up. */
export function phaseAt(phases: readonly Phase[], cyclesUsed: number): PhaseInForce | null {
  if (!Number.isSafeInteger(cyclesUsed) || cyclesUsed < 0) {
    throw new RangeError(`cyclesUsed must be a whole number ≥ 0 (got ${cyclesUsed})`);
  }
  let start = 0;
  for (const [index, phase] of phases.entries()) {
    const length = phaseLength(phase);
    if (length === null || cyclesUsed < start + length) {
      return { phase, index, cycleInPhase: cyclesUsed - start + 1, cyclesInPhase: length };
    }
    start += length;
  }
  return null;
}

/** The "phase" check: which phase prices this period, or that the promotion's duration has ended. */
export function phaseCheck(phases: readonly Phase[], cyclesUsed: number): { check: Check; inForce: PhaseInForce | null } {
  const inForce = phaseAt(phases, cyclesUsed);
  if (!inForce) {
    const total = phases.reduce((n, p) => n + (phaseLength(p) ?? 0), 0);
    return {
      inForce,
      check: { check: "phase", passed: false, detail: `duration ended: all ${total} billing ${total === 1 ? "period" : "periods"} of the promotion are used` },
    };
  }
  const { phase, cycleInPhase, cyclesInPhase } = inForce;
  const of = cyclesInPhase === null ? "(forever)" : `of ${cyclesInPhase}`;
  return {
    inForce,
    check: { check: "phase", passed: true, detail: `phase ${phase.name} in force: billing period ${cycleInPhase} ${of}` },
  };
}

/**
 * The "continuous_coverage" check, for promotions that end when the subscription stops being
 * paid; null when not required. Coverage breaks when the subscription is not ACTIVE or TRIALING,
 * or when this billing period does not start where the last one the redemption applied to ended.
 */
export function coverageCheck(terms: PromotionTerms, ctx: Pick<BillingContext, "subscription" | "periodStart">, lastPeriodEnd: Date | null): Check | null {
  if (!terms.requiresContinuousCoverage) return null;
  const check = "continuous_coverage";
  const { subscription } = ctx;
  if (subscription && LAPSED_STATUSES.has(subscription.status)) {
    return { check, passed: false, detail: `coverage lapsed: subscription ${subscription.id} is ${subscription.status}` };
  }
  if (lastPeriodEnd !== null && lastPeriodEnd.getTime() !== ctx.periodStart.getTime()) {
    return { check, passed: false, detail: `coverage gap: this billing period starts ${ctx.periodStart.toISOString()}, the last one it applied to ended ${lastPeriodEnd.toISOString()}` };
  }
  // An inline invoice has no subscription whose coverage could have lapsed.
  if (!subscription) return { check, passed: true, detail: "no subscription is known, so no lapse in coverage" };
  return { check, passed: true, detail: `subscription ${subscription.id} is ${subscription.status}: coverage continuous` };
}

/** The "application_timing" check for NEXT_PERIOD promotions: redeemed this period means it starts with the next; null for IMMEDIATE. */
export function timingCheck(terms: PromotionTerms, candidate: Candidate, ctx: BillingContext): Check | null {
  if (terms.applicationTiming !== "NEXT_PERIOD") return null;
  const check = "application_timing";
  const redeemedAt = candidate.redeemedAt;
  // Automatic promotions have no redemption to defer from; they apply as soon as they are eligible.
  if (redeemedAt === null) return { check, passed: true, detail: "applies from the next period, and no redemption defers it" };
  // A redemption after this period started (inside it, or even later) cannot price this period.
  if (redeemedAt.getTime() >= ctx.periodStart.getTime()) {
    return {
      check,
      passed: false,
      detail: `redeemed ${redeemedAt.toISOString()}, within the billing period starting ${ctx.periodStart.toISOString()}; it starts with the next period`,
    };
  }
  return { check, passed: true, detail: `redeemed ${redeemedAt.toISOString()}, before this billing period` };
}
