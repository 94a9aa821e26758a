import { allocate, formatMoney, max, min, percentOf, sum } from "./money.js";
import type { AppliesTo, Effect, Phase } from "./terms.js";

// What one phase's effects give on what is left of an invoice's lines. Discounts are computed on
// the eligible amount as a whole (so rounding happens once, not per line) and then spread back over
// the eligible lines by largest remainder, so the line discounts add up to the discount exactly and
// no line is taken below zero.

/** A line as effects see it: what identifies it for applies_to, and what is still left to discount. */
export interface EffectLine {
  planId: string;
  productId: string;
  /** The line's amount minus discounts already applied; never negative. */
  remainingMinor: bigint;
}

/** The currencies an application of effects involves. */
export interface EffectCurrencies {
  invoice: string;
  /** The promotion's currency; "" when its terms hold no amounts. */
  promotion: string;
  /**
   * Whether even a percentage needs the promotion's currency: a promotion with a budget counts
   * every discount against it, and a budget cannot be spent in a currency it is not kept in.
   */
  percentNeedsCurrency: boolean;
}

export interface SkippedEffect {
  kind: Effect["kind"];
  reason: "currency_mismatch" | "not_trialing" | "trial_already_extended";
  detail: string;
}

/** Whether a free trial extension may be granted on this invoice, and why not. */
export type TrialRule = { allowed: true } | { allowed: false; reason: "not_trialing" | "trial_already_extended"; detail: string };

export interface EffectsResult {
  /** Discount per line, by the index of the line given. */
  lineDiscounts: bigint[];
  discountMinor: bigint;
  creditMinor: bigint;
  trialDays: number;
  /** Effects that gave nothing because of the currency, with why. */
  skipped: SkippedEffect[];
}

/**
 * Whether a line is within an effect's applies_to. No narrowing (null, or both lists empty) means
 * every line; otherwise a line on a listed plan or a listed product qualifies, so "plan pro and
 * product seats" reads as both kinds of line, not only lines that are both.
 */
export function matchesAppliesTo(line: Pick<EffectLine, "planId" | "productId">, appliesTo: AppliesTo | null): boolean {
  if (!appliesTo || (appliesTo.planIds.length === 0 && appliesTo.productIds.length === 0)) return true;
  return (
    (line.planId !== "" && appliesTo.planIds.includes(line.planId)) ||
    (line.productId !== "" && appliesTo.productIds.includes(line.productId))
  );
}

/** The result of one phase's effects, applied in the order listed, each to what the ones before left. */
export function applyEffects(effects: readonly Effect[], lines: readonly EffectLine[], currencies: EffectCurrencies, trial: TrialRule = { allowed: true }): EffectsResult {
  const remaining = lines.map((l) => max(l.remainingMinor, 0n));
  const lineDiscounts = lines.map(() => 0n);
  const result: EffectsResult = { lineDiscounts, discountMinor: 0n, creditMinor: 0n, trialDays: 0, skipped: [] };
  const sameCurrency = currencies.invoice === currencies.promotion;

  // Takes `amount` off the eligible lines in proportion to what is left of each.
  const discount = (eligible: boolean[], amount: (eligibleMinor: bigint) => bigint): void => {
    const weights = remaining.map((r, i) => (eligible[i] ? r : 0n));
    const eligibleMinor = sum(weights);
    const taken = min(max(amount(eligibleMinor), 0n), eligibleMinor);
    if (taken === 0n) return;
    allocate(taken, weights).forEach((part, i) => {
      remaining[i] = (remaining[i] ?? 0n) - part;
      lineDiscounts[i] = (lineDiscounts[i] ?? 0n) + part;
    });
    result.discountMinor += taken;
  };

  for (const effect of effects) {
    if (effect.kind === "unset") continue;
    const eligible = lines.map((l) => matchesAppliesTo(l, effect.appliesTo));
    const needsCurrency = effect.kind === "fixed_discount" || effect.kind === "credit_grant" ||
      (effect.kind === "percentage_discount" && currencies.percentNeedsCurrency);
    if (needsCurrency && !sameCurrency) {
      result.skipped.push({ kind: effect.kind, reason: "currency_mismatch", detail: mismatchDetail(effect, currencies) });
      continue;
    }
    switch (effect.kind) {
      case "percentage_discount":
        discount(eligible, (eligibleMinor) => percentOf(eligibleMinor, effect.percentBps));
        break;
      case "fixed_discount":
        // Capped at what is left of the eligible lines: a fixed discount never creates a refund.
        discount(eligible, () => effect.amountMinor);
        break;
      case "credit_grant":
        // Account credit is not tied to a line, but a narrowed grant needs a line it is about.
        if (eligible.some(Boolean)) result.creditMinor += max(effect.amountMinor, 0n);
        break;
      case "free_trial_extension":
        if (!eligible.some(Boolean) || !Number.isSafeInteger(effect.days) || effect.days <= 0) break;
        if (trial.allowed) result.trialDays += effect.days;
        else result.skipped.push({ kind: effect.kind, reason: trial.reason, detail: trial.detail });
        break;
    }
  }
  return result;
}

function mismatchDetail(effect: Effect, currencies: EffectCurrencies): string {
  const promotion = currencies.promotion || "no currency";
  const invoice = currencies.invoice || "no currency";
  switch (effect.kind) {
    case "fixed_discount":
      return `fixed discount of ${formatMoney(effect.amountMinor, currencies.promotion)} skipped: the invoice is in ${invoice}`;
    case "credit_grant":
      return `credit of ${formatMoney(effect.amountMinor, currencies.promotion)} skipped: the invoice is in ${invoice}`;
    default:
      return `percentage discount skipped: its budget is kept in ${promotion} and the invoice is in ${invoice}`;
  }
}

/** One effect in words, with its phase's duration: "20% off on plan pro for 3 billing periods". */
export function describeEffect(effect: Exclude<Effect, { kind: "unset" }>, phase: Phase, currency: string): string {
  const scope = appliesToWords(effect.appliesTo);
  const n = phase.cycles ?? 0;
  const periods = `${n} billing ${n === 1 ? "period" : "periods"}`;
  const words = (what: string, once: string, repeating: string, forever: string): string => {
    const when = phase.duration === "REPEATING" ? repeating : phase.duration === "FOREVER" ? forever : once;
    return [what + scope, when].filter(Boolean).join(" ");
  };
  switch (effect.kind) {
    case "percentage_discount":
      return words(`${percentWords(effect.percentBps)} off`, "once", `for ${periods}`, "forever");
    case "fixed_discount":
      return words(`${formatMoney(effect.amountMinor, currency)} off`, "once", `for ${periods}`, "forever");
    case "credit_grant":
      return words(`${formatMoney(effect.amountMinor, currency)} account credit`, "once", `every billing period for ${n} ${n === 1 ? "period" : "periods"}`, "every billing period");
    case "free_trial_extension":
      return words(`${effect.days} extra trial ${effect.days === 1 ? "day" : "days"}`, "", `in each of ${periods}`, "every billing period");
  }
}

function appliesToWords(appliesTo: AppliesTo | null): string {
  if (!appliesTo) return "";
  const named = (noun: string, ids: readonly string[]): string =>
    ids.length === 0 ? "" : `${noun}${ids.length === 1 ? "" : "s"} ${joinOr(ids)}`;
  const parts = [named("plan", appliesTo.planIds), named("product", appliesTo.productIds)].filter(Boolean);
  return parts.length > 0 ? ` on ${parts.join(" or ")}` : "";
}

// Basis points as a percentage without floats: 2000 → "20%", 1250 → "12.5%", 1 → "0.01%".
function percentWords(bps: number): string {
  const whole = Math.trunc(bps / 100);
  const fraction = String(Math.abs(bps % 100)).padStart(2, "0").replace(/0+$/, "");
  return `${whole}${fraction ? `.${fraction}` : ""}%`;
}

function joinOr(parts: readonly string[]): string {
  if (parts.length <= 1) return parts.join("");
  return `${parts.slice(0, -1).join(", ")} or ${parts[parts.length - 1] ?? ""}`;
}
