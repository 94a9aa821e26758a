import type { BillingContext, Candidate, Check, EnteredCode, LineDiscount, PricedInvoice, PricedLine, PromotionOutcome } from "./billing.js";
import { evaluateConditions, lineAmount } from "./conditions.js";
import { applyEffects, describeEffect, type EffectsResult, type TrialRule } from "./effects.js";
import { allocate, formatMoney, max, min, sum } from "./money.js";
import { coverageCheck, phaseCheck, timingCheck, type PhaseInForce } from "./phases.js";
import type { Phase, PromotionTerms } from "./terms.js";

// The one pricing pipeline: simulation, eligibility preview, impact forecasts and real invoices all
// call priceInvoice, so a price can only ever be computed one way. It is pure — counters come in on
// the candidates, and what a promotion would consume goes out on its outcome for the caller to
// reserve or ignore.
//
// Decisions a billing engineer would ask about:
// - A refused promotion's reason is the name of its first failing gate check ("status",
//   "validity_window", "max_redemptions", "budget", "code", "phase", "continuous_coverage",
//   "application_timing"; for conditions in ALL mode the first failing "condition.<kind>", in ANY
//   mode "conditions"); after the gates come "not_stackable", "currency_mismatch",
//   "budget_insufficient" and "no_effect".
// - "no_effect": a promotion that passes every gate but gives nothing here (no discount, credit or
//   trial days — e.g. its applies_to matches no line, or earlier promotions left nothing) is not
//   applied. It then neither blocks the promotions after it (a non-stackable that gave nothing must
//   not cost the customer a stackable that would give something) nor consumes budget.
// - A free trial extension is granted once per redemption and only to a TRIALING subscription
//   ("not_trialing" when that is all a promotion would give); the outcome carries the new trial_end.
// - A STRICT budget that refused a grant it could no longer pay grants nothing more ("budget"), until
//   an edit raises max_budget.
// - Budget CAP: when discount + credit exceed what is left of max_budget, the discount is cut first
//   to the remainder (the promotion's line discounts re-spread by largest remainder, so each line
//   keeps at most what it had) and credit gets whatever is left after that. STRICT grants nothing.
// - evaluateEligibility prices the invoice with that promotion alone: eligible means it would apply.

/** Checks that stop a promotion when they fail; condition.<kind> checks feed the "conditions" gate. */
export const GATE_CHECKS: ReadonlySet<string> = new Set([
  "status",
  "validity_window",
  "max_redemptions",
  "customer_limit",
  "budget",
  "code",
  "conditions",
  "phase",
  "continuous_coverage",
  "application_timing",
]);

/** The order promotions apply in: priority desc, then created_at, then id (a total order, whatever the input order). */
export function compareCandidates(a: Candidate, b: Candidate): number {
  const pa = a.promotion;
  const pb = b.promotion;
  return (
    pb.terms.priority - pa.terms.priority ||
    pa.createdAt.getTime() - pb.createdAt.getTime() ||
    (pa.id < pb.id ? -1 : pa.id > pb.id ? 1 : 0) ||
    pa.version - pb.version
  );
}

/** Prices `ctx.invoice` with every candidate that passes its checks, in order, under the stacking rules. */
export function priceInvoice(ctx: BillingContext, candidates: readonly Candidate[]): PricedInvoice {
  const invoiceLines = ctx.invoice.lines;
  const amounts = invoiceLines.map(lineAmount);
  // Negative lines (credits the biller added) are the biller's own; promotions never discount them.
  const remaining = amounts.map((a) => max(a, 0n));
  const lineDiscounts: LineDiscount[][] = invoiceLines.map(() => []);
  const outcomes: PromotionOutcome[] = [];
  const applied: { name: string; stackable: boolean }[] = [];

  for (const candidate of [...candidates].sort(compareCandidates)) {
    const { promotion } = candidate;
    const { terms } = promotion;
    const gates = checkGates(ctx, candidate);
    const outcome: PromotionOutcome = {
      candidateKey: candidate.key,
      promotionId: promotion.id,
      promotionName: terms.name,
      version: promotion.version,
      applied: false,
      reason: gates.reason,
      phaseName: gates.inForce?.phase.name ?? "",
      discountMinor: 0n,
      creditMinor: 0n,
      trialDays: 0,
      budgetConsumedMinor: 0n,
      lineDiscounts: [],
      checks: gates.checks,
      trialEnd: null,
      redemptionId: null,
    };
    outcomes.push(outcome);
    if (gates.reason !== "" || !gates.inForce) continue;

    const blocker = applied.find((a) => !a.stackable) ?? (terms.stackable ? undefined : applied[0]);
    if (blocker) {
      const detail = blocker.stackable
        ? `not stackable, and ${blocker.name} already applied`
        : `${blocker.name} already applied and is not stackable`;
      outcome.checks.push({ check: "stacking", passed: false, detail });
      outcome.reason = "not_stackable";
      continue;
    }

    const result = applyEffects(
      gates.inForce.phase.effects,
      invoiceLines.map((l, i) => ({ planId: l.planId, productId: l.productId, remainingMinor: remaining[i] ?? 0n })),
      { invoice: ctx.invoice.currency, promotion: terms.currency, percentNeedsCurrency: terms.maxBudget !== null },
      trialRule(ctx, candidate),
    );
    const currencySkips = result.skipped.filter((s) => s.reason === "currency_mismatch");
    const trialSkips = result.skipped.filter((s) => s.reason !== "currency_mismatch");
    if (currencySkips.length > 0) {
      outcome.checks.push({ check: "currency", passed: false, detail: currencySkips.map((s) => s.detail).join("; ") });
    }
    if (trialSkips[0]) outcome.checks.push({ check: "trial", passed: false, detail: trialSkips[0].detail });
    if (result.discountMinor === 0n && result.creditMinor === 0n && result.trialDays === 0) {
      outcome.reason = currencySkips.length > 0 ? "currency_mismatch" : trialSkips.some((s) => s.reason === "not_trialing") ? "not_trialing" : "no_effect";
      outcome.checks.push({ check: "effects", passed: false, detail: "gives nothing on this invoice: nothing it applies to is left to discount" });
      continue;
    }
    if (!withinBudget(outcome, result, terms, promotion.currentBudgetUsed, ctx.invoice.currency)) continue;

    result.lineDiscounts.forEach((part, i) => {
      if (part === 0n) return;
      remaining[i] = (remaining[i] ?? 0n) - part;
      lineDiscounts[i]?.push({ promotionId: promotion.id, amountMinor: part });
      outcome.lineDiscounts.push({ lineId: invoiceLines[i]?.id ?? "", amountMinor: part });
    });
    outcome.applied = true;
    outcome.redemptionId = candidate.redemptionId;
    outcome.discountMinor = result.discountMinor;
    outcome.creditMinor = result.creditMinor;
    outcome.trialDays = result.trialDays;
    if (result.trialDays > 0) outcome.trialEnd = extendedTrialEnd(ctx, result.trialDays);
    outcome.budgetConsumedMinor = result.discountMinor + result.creditMinor;
    outcome.checks.push({ check: "effects", passed: true, detail: `gives ${describeResult(result, ctx.invoice.currency)}` });
    applied.push({ name: terms.name, stackable: terms.stackable });
  }

  const lines: PricedLine[] = invoiceLines.map((l, i) => {
    const amountMinor = amounts[i] ?? 0n;
    const discounts = lineDiscounts[i] ?? [];
    const discountMinor = sum(discounts.map((d) => d.amountMinor));
    return { lineId: l.id, planId: l.planId, productId: l.productId, amountMinor, discountMinor, totalMinor: amountMinor - discountMinor, discounts };
  });
  const subtotalMinor = sum(amounts);
  const discountMinor = sum(lines.map((l) => l.discountMinor));
  return {
    currency: ctx.invoice.currency,
    lines,
    subtotalMinor,
    discountMinor,
    totalMinor: subtotalMinor - discountMinor,
    creditsGrantedMinor: sum(outcomes.map((o) => o.creditMinor)),
    trialDaysAdded: outcomes.reduce((n, o) => n + o.trialDays, 0),
    promotions: outcomes,
  };
}

/** Whether one promotion would apply to this invoice on its own, why not, and every check behind the answer. */
export function evaluateEligibility(ctx: BillingContext, candidate: Candidate): { eligible: boolean; reason: string; checks: Check[] } {
  const outcome = priceInvoice(ctx, [candidate]).promotions[0];
  if (!outcome) throw new Error("priceInvoice returned no outcome for its one candidate");
  return { eligible: outcome.applied, reason: outcome.reason, checks: outcome.checks };
}

interface Gates {
  checks: Check[];
  /** "" when every gate passed. */
  reason: string;
  inForce: PhaseInForce | null;
}

// Every gate is evaluated even after one fails, so a preview explains everything at once.
function checkGates(ctx: BillingContext, candidate: Candidate): Gates {
  const { promotion } = candidate;
  const { terms } = promotion;
  const checks: Check[] = [statusCheck(candidate), windowCheck(candidate, ctx.at)];
  const refused = candidate.refusal;
  if (terms.maxRedemptions !== null) {
    const used = promotion.currentRedemptions;
    const limit = terms.maxRedemptions;
    checks.push(
      refused?.check === "max_redemptions"
        ? { check: "max_redemptions", passed: false, detail: refused.detail }
        : candidate.alreadyRedeemed
          ? { check: "max_redemptions", passed: true, detail: `this redemption is already counted (${used} of ${limit} used)` }
          : used < limit
            ? { check: "max_redemptions", passed: true, detail: `${used} of ${limit} redemptions used` }
            : { check: "max_redemptions", passed: false, detail: `all ${limit} redemptions are used` },
    );
  }
  if (refused?.check === "customer_limit") checks.push({ check: "customer_limit", passed: false, detail: refused.detail });
  if (terms.maxBudget !== null) {
    const used = formatMoney(promotion.currentBudgetUsed, terms.currency);
    const limit = formatMoney(terms.maxBudget, terms.currency);
    checks.push(
      refused?.check === "budget"
        ? { check: "budget", passed: false, detail: refused.detail }
        : promotion.budgetExhausted === true
          ? { check: "budget", passed: false, detail: `the ${limit} budget can no longer pay: a STRICT grant was refused (${used} used); raise max_budget to reopen it` }
          : promotion.currentBudgetUsed < terms.maxBudget
            ? { check: "budget", passed: true, detail: `${used} of the ${limit} budget used` }
            : { check: "budget", passed: false, detail: `the ${limit} budget is used up` },
    );
  }
  if (candidate.code !== null) checks.push(codeCheck(candidate.code, terms));
  checks.push(...evaluateConditions(terms, ctx).checks);
  const phase = phaseCheck(terms.phases, candidate.cyclesUsed);
  checks.push(phase.check);
  const coverage = coverageCheck(terms, ctx, candidate.history?.lastPeriodEnd ?? null);
  if (coverage) checks.push(coverage);
  const timing = timingCheck(terms, candidate, ctx);
  if (timing) checks.push(timing);
  return { checks, reason: firstFailure(checks, terms.conditionMode), inForce: phase.inForce };
}

/** The first failing gate; with ALL conditions, the first condition that failed names it more precisely. */
function firstFailure(checks: readonly Check[], mode: PromotionTerms["conditionMode"]): string {
  const failed = checks.find((c) => !c.passed && GATE_CHECKS.has(c.check));
  if (failed?.check === "conditions" && mode === "ALL") {
    return checks.find((c) => !c.passed && c.check.startsWith("condition."))?.check ?? failed.check;
  }
  return failed?.check ?? "";
}

function statusCheck(candidate: Candidate): Check {
  const { status } = candidate.promotion;
  // A redemption was admitted while the promotion was active; it keeps applying whatever happens after.
  if (candidate.redemptionId !== null && status !== "ACTIVE") {
    return { check: "status", passed: true, detail: `${status.toLowerCase()}, but this redemption was made while it was active and keeps applying` };
  }
  switch (status) {
    case "ACTIVE":
      return { check: "status", passed: true, detail: "active" };
    case "DRAFT":
      return candidate.allowDraft
        ? { check: "status", passed: true, detail: "draft, simulated as if active" }
        : { check: "status", passed: false, detail: "draft: not active yet (only a simulation prices drafts)" };
    case "ARCHIVED":
      return { check: "status", passed: false, detail: "archived: no longer applies" };
  }
}

// valid_from is inclusive and valid_to exclusive, as everywhere else in the service. An existing
// redemption was made inside the window, and the window gates new redemptions only.
function windowCheck(candidate: Candidate, at: Date): Check {
  const check = "validity_window";
  const { validFrom, validTo } = candidate.promotion.terms;
  const outside = validFrom && at.getTime() < validFrom.getTime()
    ? `not valid until ${validFrom.toISOString()}`
    : validTo && at.getTime() >= validTo.getTime()
      ? `expired at ${validTo.toISOString()}`
      : null;
  if (outside !== null) {
    return candidate.redemptionId !== null
      ? { check, passed: true, detail: `${outside}, but this redemption was made inside the window and keeps applying` }
      : { check, passed: false, detail: outside };
  }
  const from = validFrom ? `from ${validFrom.toISOString()}` : "";
  const to = validTo ? `until ${validTo.toISOString()}` : "";
  return { check, passed: true, detail: from || to ? `valid ${[from, to].filter(Boolean).join(" ")}` : "no validity window" };
}

// The detail never echoes the promotion's real code: a preview must not reveal a private code.
function codeCheck(code: EnteredCode, terms: PromotionTerms): Check {
  if (terms.applicationMethod !== "CODE") {
    return { check: "code", passed: false, detail: `this promotion is ${terms.applicationMethod.toLowerCase()} and takes no code` };
  }
  return code.matches
    ? { check: "code", passed: true, detail: `code ${code.entered} is one of this promotion's codes` }
    : { check: "code", passed: false, detail: `code ${JSON.stringify(code.entered)} is not one of this promotion's codes` };
}

/** A trial is extended once per redemption, and only while the subscription is trialing. */
function trialRule(ctx: BillingContext, candidate: Candidate): TrialRule {
  if (candidate.history?.trialExtended === true) {
    return { allowed: false, reason: "trial_already_extended", detail: "the trial extension of this redemption was granted already" };
  }
  const subscription = ctx.subscription;
  if (subscription?.status !== "TRIALING") {
    const what = subscription ? `subscription ${subscription.id} is ${subscription.status}` : "no subscription is trialing (an inline invoice)";
    return { allowed: false, reason: "not_trialing", detail: `trial extension skipped: ${what}` };
  }
  return { allowed: true };
}

/** Where the trial ends after `days` more: from its current end (or, when unknown, this period's start). */
function extendedTrialEnd(ctx: BillingContext, days: number): Date {
  const from = ctx.subscription?.trialEnd ?? ctx.periodStart;
  return new Date(from.getTime() + days * 86_400_000);
}

// Applies max_budget to what the effects would give; false (outcome marked) when STRICT refuses.
function withinBudget(outcome: PromotionOutcome, result: EffectsResult, terms: PromotionTerms, used: bigint, currency: string): boolean {
  if (terms.maxBudget === null) return true;
  const left = max(terms.maxBudget - used, 0n);
  const wanted = result.discountMinor + result.creditMinor;
  const leftText = formatMoney(left, currency);
  if (wanted <= left) {
    outcome.checks.push({ check: "budget_remaining", passed: true, detail: `${formatMoney(wanted, currency)} fits in the ${leftText} left` });
    return true;
  }
  if (terms.budgetBehavior === "STRICT") {
    outcome.checks.push({
      check: "budget_remaining",
      passed: false,
      detail: `needs ${formatMoney(wanted, currency)} but only ${leftText} of the budget is left (STRICT grants all or nothing)`,
    });
    outcome.reason = "budget_insufficient";
    return false;
  }
  const discount = min(result.discountMinor, left);
  result.lineDiscounts = allocate(discount, result.lineDiscounts);
  result.discountMinor = discount;
  result.creditMinor = min(result.creditMinor, left - discount);
  outcome.checks.push({
    check: "budget_remaining",
    passed: true,
    detail: `capped from ${formatMoney(wanted, currency)} to the ${leftText} left of the budget (CAP)`,
  });
  return true;
}

function describeResult(result: EffectsResult, currency: string): string {
  const parts: string[] = [];
  if (result.discountMinor > 0n) parts.push(`${formatMoney(result.discountMinor, currency)} off`);
  if (result.creditMinor > 0n) parts.push(`${formatMoney(result.creditMinor, currency)} account credit`);
  if (result.trialDays > 0) parts.push(days(result.trialDays));
  return joinAnd(parts);
}

/** A promotion's effects in words: "20% off for 3 billing periods, then 10% off forever". */
export function summarizeEffects(terms: PromotionTerms): string {
  const phases = terms.phases.map((p) => summarizePhase(p, terms.currency));
  return phases.length > 0 ? phases.join(", then ") : "no effect";
}

function summarizePhase(phase: Phase, currency: string): string {
  const parts = phase.effects.flatMap((e) => (e.kind === "unset" ? [] : [describeEffect(e, phase, currency)]));
  return parts.length > 0 ? parts.join(" and ") : "nothing";
}

function days(n: number): string {
  return `${n} extra trial ${n === 1 ? "day" : "days"}`;
}

function joinAnd(parts: readonly string[]): string {
  if (parts.length <= 1) return parts.join("");
  return `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1] ?? ""}`;
}
