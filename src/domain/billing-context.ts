import { invoiceOf, type BillingContext, type CustomerFacts, type InvoiceDraft, type SubscriptionFacts } from "./billing.js";
import { DomainError, notFound } from "./errors.js";
import { addInterval } from "./periods.js";

// The rules of naming what to price: which invoice (a stored subscription's, or one given inline),
// for whom, and for which billing period. The one loader (store/billing-context-store.ts) reads
// the subscription and customer; these functions decide what the request may ask and what the
// pipeline then sees, for redeem, apply, simulate and preview alike.

/** What a pricing request names. */
export interface PricingTarget {
  customerId: string;
  subscriptionId: string;
  /** Inline invoice; exclusive with subscriptionId. */
  invoice: InvoiceDraft | null;
  periodStart: Date | null;
  periodEnd: Date | null;
  /** The evaluation instant (windows, date_range conditions). */
  at: Date;
}

/** How strict one use case is about its target. */
export interface PricingRules {
  /** Refuse a customer_id the billing system never pushed (simulate, preview); apply and redeem price for any id. */
  requireKnownCustomer: boolean;
  /**
   * Redeem only: neither a subscription nor an invoice is allowed, and the conditions are then
   * judged on an empty invoice in this currency. Unset: exactly one of the two is required.
   */
  emptyInvoiceCurrency?: string;
}

/** Refuses a target that names no invoice, or two (before anything is read). */
export function checkPricingTarget(target: PricingTarget, rules: PricingRules): void {
  const hasSubscription = target.subscriptionId !== "";
  const hasInvoice = target.invoice !== null;
  const neitherAllowed = rules.emptyInvoiceCurrency !== undefined && !hasSubscription && !hasInvoice;
  if (hasSubscription === hasInvoice && !neitherAllowed) {
    throw DomainError.of("invalid_argument", "required", "give exactly one of subscription_id or invoice", hasSubscription ? "invoice" : "subscription_id");
  }
}

/** The customer whose facts the pipeline needs: the subscription's, else the one named. */
export function customerOfTarget(target: PricingTarget, subscription: SubscriptionFacts | null): string {
  return subscription?.customerId ?? target.customerId;
}

/** The billing context of a target, from what was read for it. */
export function billingContextOf(
  target: PricingTarget,
  loaded: { subscription: SubscriptionFacts | null; customer: CustomerFacts | null },
  rules: PricingRules,
): BillingContext {
  const { subscription, customer } = loaded;
  if (subscription && target.customerId !== "" && target.customerId !== subscription.customerId) {
    throw DomainError.of("invalid_argument", "mismatch", `subscription ${subscription.id} belongs to customer ${subscription.customerId}, not ${target.customerId}`, "customer_id");
  }
  if (customer === null && target.customerId !== "" && rules.requireKnownCustomer) {
    throw notFound("customer", target.customerId, "customer_id");
  }
  const periodStart = target.periodStart ?? subscription?.currentPeriodStart ?? target.at;
  const periodEnd = target.periodEnd ?? addInterval(periodStart, subscription?.interval ?? "MONTH");
  if (periodEnd <= periodStart) {
    throw DomainError.of("invalid_argument", "invalid_order", "billing_period_end must be after billing_period_start", "billing_period_end");
  }
  const invoice: InvoiceDraft = subscription
    ? invoiceOf(subscription)
    : (target.invoice ?? { currency: rules.emptyInvoiceCurrency ?? "", lines: [] });
  return { customer, subscription, invoice, periodStart, periodEnd, at: target.at };
}
