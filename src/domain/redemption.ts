import type { BillingContext, Check, InvoiceDraft } from "./billing.js";
import { validateInvoice } from "./billing-validation.js";
import { evaluateConditions, invoiceSubtotal } from "./conditions.js";
import { formatMoney } from "./money.js";
import type { Violation } from "./errors.js";
import type { PromotionTerms } from "./terms.js";
import { checkMetadata, checkText, checkUuid, LIMITS } from "./checks.js";

// What a redemption is checked against besides the counters: the promotion's conditions and the
// code's own restrictions, judged on the customer and the invoice the caller gave (if any). The
// counters (status, window, limits, budget) are judged atomically in Redis by reserve.lua.

/** Where a redemption stands (DESIGN §8). */
export const REDEMPTION_STATUSES = ["ACTIVE", "COMPLETED", "RELEASED", "ENDED"] as const;
export type RedemptionStatus = (typeof REDEMPTION_STATUSES)[number];

/** Statuses that hold a slot in every limit: the customer was reached (RELEASED gave the slot back). */
export const COUNTED_STATUSES: readonly RedemptionStatus[] = ["ACTIVE", "COMPLETED", "ENDED"];

/** How a redemption came to be: a code, an assignment by a service, or an automatic promotion's first application. */
export const REDEMPTION_KINDS = ["CODE", "ASSIGNED", "AUTOMATIC"] as const;
export type RedemptionKind = (typeof REDEMPTION_KINDS)[number];

/** Idempotency keys of automatic redemptions start with this; a client's key may not (src/checkout/automatic.ts). */
export const AUTOMATIC_KEY_PREFIX = "automatic:";

/** Why the system ended a redemption. */
export const END_REASONS = { promotionDeleted: "promotion_deleted", coverageGap: "coverage_gap" } as const;

export interface CodeRestrictions {
  minAmountMinor: bigint | null;
  firstTimeCustomersOnly: boolean;
}

export interface RedemptionEligibility {
  eligible: boolean;
  checks: Check[];
}

/** Whether anything needs the customer or invoice loaded (most codes need neither). */
export function needsContext(terms: PromotionTerms, code: CodeRestrictions | null): boolean {
  return terms.conditions.length > 0 || (code !== null && (code.minAmountMinor !== null || code.firstTimeCustomersOnly));
}

export function redemptionEligibility(terms: PromotionTerms, code: CodeRestrictions | null, ctx: BillingContext): RedemptionEligibility {
  const checks: Check[] = [];
  let eligible = true;
  if (terms.conditions.length > 0) {
    const conditions = evaluateConditions(terms, ctx);
    checks.push(...conditions.checks);
    eligible &&= conditions.passed;
  }
  if (code?.minAmountMinor != null) {
    const subtotal = invoiceSubtotal(ctx.invoice.lines);
    const currency = ctx.invoice.currency || terms.currency;
    const passed = subtotal >= code.minAmountMinor;
    checks.push({
      check: "code.min_amount",
      passed,
      detail: passed
        ? `subtotal ${formatMoney(subtotal, currency)} meets the code's ${formatMoney(code.minAmountMinor, currency)} minimum`
        : `subtotal ${formatMoney(subtotal, currency)} is below the code's ${formatMoney(code.minAmountMinor, currency)} minimum`,
    });
    eligible &&= passed;
  }
  if (code?.firstTimeCustomersOnly) {
    const passed = ctx.customer !== null && !ctx.customer.hasPaidBefore;
    checks.push({
      check: "code.first_time_customer",
      passed,
      detail: passed ? "the customer has never paid" : ctx.customer === null ? "the customer is unknown, so not known to be new" : "the customer has paid before",
    });
    eligible &&= passed;
  }
  return { eligible, checks };
}

/** One line naming every failed check, for the not_eligible error. */
export function failedChecksText(checks: readonly Check[]): string {
  return checks
    .filter((c) => !c.passed && c.check !== "conditions")
    .map((c) => `${c.check}: ${c.detail}`)
    .join("; ");
}

/** A redeem or validate request, its code already trimmed. */
export interface RedeemRequest {
  code: string;
  promotionId: string;
  customerId: string;
  subscriptionId: string;
  invoice: InvoiceDraft | null;
  idempotencyKey: string;
  metadata: Record<string, string>;
}

/** The shape of a redeem or validate request: every problem at once, each naming its field. */
export function validateRedeemRequest(r: RedeemRequest): Violation[] {
  const out: Violation[] = [];
  if (r.code === "" && r.promotionId === "") {
    out.push({ param: "code", code: "required", message: "give the code the customer entered, or promotion_id" });
  }
  if (r.code !== "") checkText(out, r.code, "code", { max: LIMITS.codeMaxLength });
  if (r.promotionId !== "") checkUuid(out, r.promotionId, "promotion_id");
  checkText(out, r.customerId, "customer_id", { min: 1, max: LIMITS.idLength });
  checkText(out, r.subscriptionId, "subscription_id", { max: LIMITS.idLength });
  if (r.subscriptionId !== "" && r.invoice !== null) {
    out.push({ param: "invoice", code: "exclusive", message: "give subscription_id or invoice, not both" });
  }
  checkText(out, r.idempotencyKey, "idempotency_key", { max: LIMITS.idLength });
  if (r.idempotencyKey.startsWith(AUTOMATIC_KEY_PREFIX)) {
    out.push({ param: "idempotency_key", code: "invalid_value", message: `idempotency_key may not start with "${AUTOMATIC_KEY_PREFIX}" (reserved for automatic promotions)` });
  }
  checkMetadata(out, r.metadata);
  if (r.invoice !== null) out.push(...validateInvoice(r.invoice));
  return out;
}

/** ListRedemptions lists one promotion's or one customer's redemptions: it needs one of them. */
export function checkRedemptionListScope(out: Violation[], r: { promotionId: string; customerId: string }): void {
  if (r.promotionId === "" && r.customerId === "") {
    out.push({ param: "promotion_id", code: "required", message: "give promotion_id or customer_id" });
  }
}
