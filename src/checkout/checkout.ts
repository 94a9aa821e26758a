import type { EntityManager, MikroORM } from "@mikro-orm/postgresql";
import type { Counters } from "../counters/counters.js";
import type { PromotionChangeHook } from "../promotions/change-hook.js";
import { LedgerBatcher } from "../store/ledger-batch.js";
import { Invoicer } from "./invoicer.js";
import type { CheckoutStores } from "./ports.js";
import { Redeemer } from "./redeemer.js";
import { checkoutStores } from "./stores.js";
import { TermsCache } from "./terms-cache.js";

// The checkout use cases of one process, built once: they share the counters, the terms cache and
// the ledger's group commit; each call brings the stores of its own EntityManager.

export interface Checkout {
  redeemer: Redeemer;
  invoicer: Invoicer;
  /** Terms and codes cached for the hot path; a committed change drops its promotion's entries. */
  cache: TermsCache;
  /**
   * After a promotion or code change commits: drops this process's cache entries and raises the
   * seq in Redis so every other replica's cached terms are refused as stale.
   */
  onChanged: PromotionChangeHook;
  /** The stores of one call (its EntityManager, forked when a store first needs it, and its x-request-id for the events it writes). */
  stores(forkEm: () => EntityManager, requestId?: string | null): CheckoutStores;
}

export function createCheckout(deps: {
  orm: MikroORM;
  counters: Counters;
  reservationTtlMs: number;
  /** Told how each redeem was decided (metrics). */
  onRedemption?: (reason: string) => void;
}): Checkout {
  const cache = new TermsCache();
  const batcher = new LedgerBatcher(deps.orm);
  const onChanged: PromotionChangeHook = async (organizationId, promotionId, seq) => {
    cache.forget(organizationId, promotionId);
    await deps.counters.publishSeq(promotionId, seq);
  };
  const redeemer = new Redeemer({ counters: deps.counters, cache, reservationTtlMs: deps.reservationTtlMs, onOutcome: deps.onRedemption });
  return {
    redeemer,
    invoicer: new Invoicer({ counters: deps.counters, redeemer, reservationTtlMs: deps.reservationTtlMs, onChanged }),
    cache,
    onChanged,
    stores: (forkEm, requestId = null) => checkoutStores(forkEm, batcher, requestId),
  };
}
