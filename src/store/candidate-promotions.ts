import type { EntityManager } from "@mikro-orm/postgresql";
import { invoiceOf, type BillingContext, type CandidatePromotion, type InvoiceDraft } from "../domain/billing.js";
import { DomainError } from "../domain/errors.js";
import { addInterval } from "../domain/periods.js";
import { BillingContextStore } from "./billing-context-store.js";
import { findPromotionView, queryPromotionViews, type PromotionView } from "./promotion-views.js";

// Loads what the pricing pipeline needs from storage: the billing context of one customer and
// invoice, and candidate promotions with their terms in force and counters. Reads only.

export interface PricingTarget {
  customerId: string;
  subscriptionId: string;
  /** Inline invoice; exclusive with subscriptionId. */
  invoice: InvoiceDraft | null;
  periodStart: Date | null;
  periodEnd: Date | null;
  at: Date;
  /** Refuse an unknown customer_id (simulation, preview); ApplyPromotions prices for any external id. */
  requireKnownCustomer?: boolean;
}

export async function loadBillingContext(em: EntityManager, organizationId: string, target: PricingTarget): Promise<BillingContext> {
  const hasSubscription = target.subscriptionId !== "";
  if (hasSubscription === (target.invoice !== null)) {
    throw DomainError.of("invalid_argument", "required", "give exactly one of subscription_id or invoice", hasSubscription ? "invoice" : "subscription_id");
  }
  const store = new BillingContextStore(em);
  const subscription = hasSubscription ? await store.getSubscription(organizationId, target.subscriptionId) : null;
  if (subscription && target.customerId !== "" && target.customerId !== subscription.customerId) {
    throw DomainError.of("invalid_argument", "mismatch", `subscription ${subscription.id} belongs to customer ${subscription.customerId}, not ${target.customerId}`, "customer_id");
  }
  const customerId = subscription?.customerId ?? target.customerId;
  const customer = customerId === "" ? null : await store.findCustomer(organizationId, customerId);
  if (customer === null && target.customerId !== "" && target.requireKnownCustomer !== false) {
    throw DomainError.of("not_found", "customer_not_found", `customer ${target.customerId} does not exist`, "customer_id");
  }
  const periodStart = target.periodStart ?? subscription?.currentPeriodStart ?? target.at;
  const periodEnd = target.periodEnd ?? addInterval(periodStart, subscription?.interval ?? "MONTH");
  if (periodEnd <= periodStart) {
    throw DomainError.of("invalid_argument", "invalid_order", "billing_period_end must be after billing_period_start", "billing_period_end");
  }
  return {
    customer,
    subscription,
    invoice: subscription ? invoiceOf(subscription) : (target.invoice as InvoiceDraft),
    periodStart,
    periodEnd,
    at: target.at,
  };
}

export function candidateFrom(view: PromotionView): CandidatePromotion {
  return {
    id: view.id,
    createdAt: view.createdAt,
    status: view.status,
    version: view.liveVersion,
    terms: view.terms,
    currentRedemptions: view.currentRedemptions,
    currentBudgetUsed: view.currentBudgetUsed,
  };
}

/** The named promotions (any status, drafts included), each refused as NOT_FOUND when it is not the tenant's. */
export async function loadPromotions(em: EntityManager, organizationId: string, ids: readonly string[], now: Date): Promise<CandidatePromotion[]> {
  const promotions: CandidatePromotion[] = [];
  for (const [i, id] of [...new Set(ids)].entries()) {
    const view = await findPromotionView(em, organizationId, id, now);
    if (!view) throw DomainError.of("not_found", "promotion_not_found", `promotion ${id} does not exist`, `promotion_ids[${i}]`);
    promotions.push(candidateFrom(view));
  }
  return promotions;
}

/** Active promotions without a code: the ones that apply to every invoice they are eligible for. */
export async function automaticPromotions(em: EntityManager, organizationId: string, now: Date): Promise<CandidatePromotion[]> {
  const views = await queryPromotionViews(em, {
    organizationId,
    now,
    filters: [
      { field: "status", op: "eq", values: ["ACTIVE"] },
      { field: "code", op: "eq", values: [null] },
    ],
  });
  return views.map(candidateFrom);
}
