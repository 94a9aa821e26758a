import type { CustomerFacts, InvoiceDraft, SubscriptionFacts } from "./billing.js";
import type { Violation } from "./errors.js";
import { checkCurrency, checkIdList, checkIntRange, checkMetadata, checkText, checkUuid, LIMITS } from "./checks.js";

// The rules for billing context a caller pushes or sends inline, in the same collect-then-fail
// style as validation.ts (whose field checks these reuse). Params are proto field paths.

const MAX_ITEMS = 100;
const MAX_SEGMENTS = 50;
const MAX_QUANTITY = 1_000_000;

function checkExternalId(out: Violation[], id: string, param: string): void {
  checkText(out, id, param, { min: 1, max: LIMITS.idLength });
}

function checkAmount(out: Violation[], amount: bigint, param: string): void {
  if (amount < 0n || amount > LIMITS.moneyMinor) {
    out.push({ param, code: "out_of_range", message: `${param} must be between 0 and ${LIMITS.moneyMinor} (got ${amount})` });
  }
}

function checkLines(
  out: Violation[],
  lines: readonly { planId: string; productId: string; unitAmountMinor: bigint; quantity: number }[],
  param: string,
): void {
  if (lines.length === 0) out.push({ param, code: "required", message: `${param} needs at least one entry` });
  if (lines.length > MAX_ITEMS) out.push({ param, code: "too_many", message: `${param} may have at most ${MAX_ITEMS} entries (got ${lines.length})` });
  lines.forEach((line, i) => {
    const at = `${param}[${i}]`;
    checkText(out, line.planId, `${at}.plan_id`, { max: LIMITS.idLength });
    checkText(out, line.productId, `${at}.product_id`, { max: LIMITS.idLength });
    checkAmount(out, line.unitAmountMinor, `${at}.unit_amount_minor`);
    checkIntRange(out, line.quantity, `${at}.quantity`, 1, MAX_QUANTITY);
  });
}

/** Every violation of a customer upsert (prefix "customer"). */
export function validateCustomer(c: CustomerFacts & { metadata: Record<string, string> }, updatedAt: Date | null): Violation[] {
  const out: Violation[] = [];
  checkExternalId(out, c.id, "customer.id");
  if (c.segments.length > MAX_SEGMENTS) {
    out.push({ param: "customer.segments", code: "too_many", message: `customer.segments may have at most ${MAX_SEGMENTS} entries` });
  }
  checkIdList(out, c.segments, "customer.segments");
  checkMetadata(out, c.metadata, "customer.metadata");
  if (updatedAt === null) out.push({ param: "customer.updated_at", code: "required", message: "customer.updated_at is required: it orders upserts" });
  return out;
}

/** Every violation of a subscription upsert (prefix "subscription"). */
export function validateSubscription(s: SubscriptionFacts, updatedAt: Date | null): Violation[] {
  const out: Violation[] = [];
  checkExternalId(out, s.id, "subscription.id");
  checkExternalId(out, s.customerId, "subscription.customer_id");
  if (s.currency === "") out.push({ param: "subscription.currency", code: "required", message: "subscription.currency is required" });
  checkCurrency(out, s.currency, "subscription.currency");
  checkLines(out, s.items, "subscription.items");
  if (s.currentPeriodStart && s.currentPeriodEnd && s.currentPeriodStart >= s.currentPeriodEnd) {
    out.push({ param: "subscription.current_period_end", code: "invalid_order", message: "subscription.current_period_end must be after current_period_start" });
  }
  if (updatedAt === null) out.push({ param: "subscription.updated_at", code: "required", message: "subscription.updated_at is required: it orders upserts" });
  return out;
}

/** Every violation of an inline invoice (prefix "invoice"). */
export function validateInvoice(invoice: InvoiceDraft, param = "invoice"): Violation[] {
  const out: Violation[] = [];
  if (invoice.currency === "") out.push({ param: `${param}.currency`, code: "required", message: `${param}.currency is required` });
  checkCurrency(out, invoice.currency, `${param}.currency`);
  checkLines(out, invoice.lines, `${param}.lines`);
  const ids = new Set<string>();
  invoice.lines.forEach((line, i) => {
    if (line.id !== "" && ids.has(line.id)) {
      out.push({ param: `${param}.lines[${i}].id`, code: "duplicate", message: `${param}.lines[${i}].id repeats ${line.id}` });
    }
    ids.add(line.id);
  });
  return out;
}

/** An ApplyPromotions request: the invoice id, who it is for, and the inline invoice if any. */
export function validateApplyRequest(r: { invoiceId: string; customerId: string; subscriptionId: string; invoice: InvoiceDraft | null }): Violation[] {
  const out: Violation[] = [];
  checkText(out, r.invoiceId, "invoice_id", { min: 1, max: LIMITS.idLength });
  checkText(out, r.customerId, "customer_id", { max: LIMITS.idLength });
  checkText(out, r.subscriptionId, "subscription_id", { max: LIMITS.idLength });
  if (r.invoice) {
    out.push(...validateInvoice(r.invoice));
    if (r.customerId === "") out.push({ param: "customer_id", code: "required", message: "customer_id is required with an inline invoice" });
  }
  return out;
}

/** A ReverseInvoice request: the invoice id, and a reason of bounded length. */
export function validateReverseRequest(r: { invoiceId: string; reason: string }): Violation[] {
  const out: Violation[] = [];
  checkText(out, r.invoiceId, "invoice_id", { min: 1, max: LIMITS.idLength });
  checkText(out, r.reason, "reason", { max: LIMITS.idLength });
  return out;
}

/** Bounds of the dry-run requests; exported so the proto comments and tests quote the same numbers. */
export const SIMULATION_LIMITS = {
  promotionIds: 50,
  cyclesUsed: 10_000,
  defaultPeriods: 12,
  maxPeriods: 120,
} as const;

/** SimulatePromotion's shape: every problem at once, each naming its field. */
export function validateSimulateRequest(r: { promotionIds: readonly string[]; cyclesUsed: number; invoice: InvoiceDraft | null }): Violation[] {
  const out: Violation[] = r.invoice ? validateInvoice(r.invoice) : [];
  if (r.promotionIds.length > SIMULATION_LIMITS.promotionIds) {
    out.push({ param: "promotion_ids", code: "too_many", message: `promotion_ids may have at most ${SIMULATION_LIMITS.promotionIds} entries` });
  }
  r.promotionIds.forEach((id, i) => checkUuid(out, id, `promotion_ids[${i}]`));
  checkIntRange(out, r.cyclesUsed, "cycles_used", 0, SIMULATION_LIMITS.cyclesUsed);
  return out;
}

/** PreviewPromotionEligibility's shape (the promotion id is checked first, on its own). */
export function validatePreviewRequest(r: { cyclesUsed: number; invoice: InvoiceDraft | null }): Violation[] {
  const out: Violation[] = r.invoice ? validateInvoice(r.invoice) : [];
  checkIntRange(out, r.cyclesUsed, "cycles_used", 0, SIMULATION_LIMITS.cyclesUsed);
  return out;
}

/** SimulatePromotionImpact's periods: 0 means the default. Returns the number of periods to forecast. */
export function impactPeriods(out: Violation[], periods: number): number {
  if (periods === 0) return SIMULATION_LIMITS.defaultPeriods;
  checkIntRange(out, periods, "periods", 1, SIMULATION_LIMITS.maxPeriods);
  return periods;
}
