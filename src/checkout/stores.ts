import type { EntityManager } from "@mikro-orm/postgresql";
import { BillingContextStore } from "../store/billing-context-store.js";
import { automaticPromotions } from "../store/candidate-promotions.js";
import { CodeStore } from "../store/code-store.js";
import { InvoiceLedger } from "../store/invoice-ledger.js";
import { Ledger } from "../store/ledger.js";
import type { LedgerBatcher } from "../store/ledger-batch.js";
import { findCheckoutTerms } from "../store/promotion-views.js";
import type { CheckoutStores } from "./ports.js";

/** The real stores of one checkout call, on its EntityManager; redemptions are written by the process's group commit. */
export function checkoutStores(em: EntityManager, batcher: LedgerBatcher, requestId: string | null): CheckoutStores {
  const ledger = new Ledger(em);
  const billing = new BillingContextStore(em);
  return {
    ledger: {
      write: (row, events) => batcher.write(row, events),
      findByIdempotencyKey: (organizationId, key) => ledger.findByIdempotencyKey(organizationId, key),
      findReservation: (organizationId, id) => ledger.findReservation(organizationId, id),
      releaseRedemption: (organizationId, id, now) => ledger.releaseRedemption(organizationId, id, now, requestId),
      rebuild: (promotionId) => ledger.rebuild(promotionId),
      counterEpoch: (promotionId) => ledger.counterEpoch(promotionId),
      markReturnsApplied: (ids, now) => ledger.markReturnsApplied(ids, now),
    },
    invoices: new InvoiceLedger(em),
    requestId,
    catalog: {
      checkoutTerms: (organizationId, promotionId, now) => findCheckoutTerms(em, organizationId, promotionId, now),
      resolveCode: (organizationId, code) => new CodeStore(em).resolve(organizationId, code),
    },
    pricing: {
      billingContext: (organizationId, target, rules) => billing.billingContext(organizationId, target, rules),
      automaticPromotions: (organizationId, now) => automaticPromotions(em, organizationId, now),
    },
  };
}
