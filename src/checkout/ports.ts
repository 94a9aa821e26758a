import type { BillingContext } from "../domain/billing.js";
import type { PricingRules, PricingTarget } from "../domain/billing-context.js";
import type { Counters } from "../counters/counters.js";
import type { ResolvedCode } from "../store/code-store.js";
import type { InvoiceLedger } from "../store/invoice-ledger.js";
import type { Ledger, RedemptionRow, RedemptionWrite } from "../store/ledger.js";
import type { CandidatePromotion } from "../domain/billing.js";
import type { CheckoutTerms } from "../store/promotion-views.js";
import type { NewEvent } from "../events/outbox.js";

// What the checkout use cases need from the rest of the service, as narrow interfaces: the app
// passes the real counters and stores (stores.ts), the unit tests a scripted counters face and an
// in-memory ledger (test/unit/checkout/).

/** The counter operations checkout moves (src/counters/counters.ts). */
export type CheckoutCounters = Pick<
  Counters,
  | "reserve" | "consumeBudget" | "giveBack" | "confirmLater" | "applyReturn" | "snapshot" | "keys"
  | "lockRebuild" | "extendRebuildLock" | "unlockRebuild" | "isHydrated" | "install" | "raiseFloor"
>;

/** The redemption ledger as checkout uses it; `write` is the group commit (store/ledger-batch.ts). */
export interface RedemptionLedger extends Pick<Ledger, "findByIdempotencyKey" | "findReservation" | "releaseRedemption" | "rebuild" | "counterEpoch" | "markReturnsApplied"> {
  /** Writes the row and, in the same statement, its events (none if the row is not written). */
  write(row: RedemptionRow, events: readonly NewEvent[]): Promise<RedemptionWrite>;
}

/** What the terms cache reads on a miss (store/promotion-views.ts, store/code-store.ts). */
export interface CatalogReads {
  checkoutTerms(organizationId: string, promotionId: string, now: Date): Promise<CheckoutTerms | undefined>;
  resolveCode(organizationId: string, code: string): Promise<ResolvedCode | null>;
}

/** The one billing-context loader (store/billing-context-store.ts) and the automatic promotions. */
export interface PricingReads {
  billingContext(organizationId: string, target: PricingTarget, rules: PricingRules): Promise<BillingContext>;
  automaticPromotions(organizationId: string, now: Date): Promise<CandidatePromotion[]>;
}

/** Everything one checkout call reads and writes, bound to that call's EntityManager. */
export interface CheckoutStores {
  ledger: RedemptionLedger;
  invoices: Pick<InvoiceLedger, "find" | "redemptionCandidates" | "redeemedPromotions" | "write" | "reverse">;
  catalog: CatalogReads;
  pricing: PricingReads;
  /** The x-request-id of the call these stores serve: its events carry it. */
  requestId: string | null;
}
