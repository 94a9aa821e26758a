import type { EntityManager } from "@mikro-orm/postgresql";
import type { PricingRules, PricingTarget } from "../domain/billing-context.js";
import type { NewEvent } from "../events/outbox.js";
import { BillingContextStore } from "../store/billing-context-store.js";
import { automaticPromotions } from "../store/candidate-promotions.js";
import { CodeStore } from "../store/code-store.js";
import { InvoiceLedger } from "../store/invoice-ledger.js";
import { Ledger, type RedemptionRow } from "../store/ledger.js";
import type { LedgerBatcher } from "../store/ledger-batch.js";
import { findCheckoutTerms } from "../store/promotion-views.js";
import type { CatalogReads, CheckoutStores, PricingReads, RedemptionLedger } from "./ports.js";

// The real stores of one checkout call. Built on every call, so they are classes whose methods
// live on the prototype: an object literal of arrow functions cost a closure each per call (and,
// under tsx, a defineProperty each for its name), and most calls use two or three of them. The
// call's EntityManager is forked only when a store first needs it: a redeem with its terms cached
// reads nothing from Postgres itself (its row goes through the group commit's own EntityManager).

/** The real stores of one checkout call, on its EntityManager; redemptions are written by the process's group commit. */
export function checkoutStores(forkEm: () => EntityManager, batcher: LedgerBatcher, requestId: string | null): CheckoutStores {
  return new CallStores(forkEm, batcher, requestId);
}

class CallStores implements CheckoutStores {
  readonly ledger: RedemptionLedger;
  readonly catalog: CatalogReads;
  readonly pricing: PricingReads;
  private invoiceLedger: InvoiceLedger | undefined;

  constructor(
    private readonly forkEm: () => EntityManager,
    batcher: LedgerBatcher,
    readonly requestId: string | null,
  ) {
    this.ledger = new CallLedger(forkEm, batcher, requestId);
    this.catalog = new CallCatalog(forkEm);
    this.pricing = new CallPricing(forkEm);
  }

  get invoices(): InvoiceLedger {
    return (this.invoiceLedger ??= new InvoiceLedger(this.forkEm()));
  }
}

class CallLedger implements RedemptionLedger {
  private store: Ledger | undefined;

  constructor(
    private readonly forkEm: () => EntityManager,
    private readonly batcher: LedgerBatcher,
    private readonly requestId: string | null,
  ) {}

  private get ledger(): Ledger {
    return (this.store ??= new Ledger(this.forkEm()));
  }

  write(row: RedemptionRow, events: readonly NewEvent[]): ReturnType<RedemptionLedger["write"]> {
    return this.batcher.write(row, events);
  }
  findByIdempotencyKey(organizationId: string, key: string): ReturnType<Ledger["findByIdempotencyKey"]> {
    return this.ledger.findByIdempotencyKey(organizationId, key);
  }
  findReservation(organizationId: string, id: string): ReturnType<Ledger["findReservation"]> {
    return this.ledger.findReservation(organizationId, id);
  }
  releaseRedemption(organizationId: string, id: string, now: Date): ReturnType<Ledger["releaseRedemption"]> {
    return this.ledger.releaseRedemption(organizationId, id, now, this.requestId);
  }
  rebuild(promotionId: string): ReturnType<Ledger["rebuild"]> {
    return this.ledger.rebuild(promotionId);
  }
  counterEpoch(promotionId: string): ReturnType<Ledger["counterEpoch"]> {
    return this.ledger.counterEpoch(promotionId);
  }
  markReturnsApplied(...args: Parameters<Ledger["markReturnsApplied"]>): ReturnType<Ledger["markReturnsApplied"]> {
    return this.ledger.markReturnsApplied(...args);
  }
}

class CallCatalog implements CatalogReads {
  constructor(private readonly forkEm: () => EntityManager) {}
  checkoutTerms(organizationId: string, promotionId: string, now: Date): ReturnType<CatalogReads["checkoutTerms"]> {
    return findCheckoutTerms(this.forkEm(), organizationId, promotionId, now);
  }
  resolveCode(organizationId: string, code: string): ReturnType<CatalogReads["resolveCode"]> {
    return new CodeStore(this.forkEm()).resolve(organizationId, code);
  }
}

class CallPricing implements PricingReads {
  constructor(private readonly forkEm: () => EntityManager) {}
  billingContext(organizationId: string, target: PricingTarget, rules: PricingRules): ReturnType<PricingReads["billingContext"]> {
    return new BillingContextStore(this.forkEm()).billingContext(organizationId, target, rules);
  }
  automaticPromotions(organizationId: string, now: Date): ReturnType<PricingReads["automaticPromotions"]> {
    return automaticPromotions(this.forkEm(), organizationId, now);
  }
}
