import type { EntityManager, MikroORM } from "@mikro-orm/postgresql";
import type { Counters } from "../counters/counters.js";
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
  /** The stores of one call. */
  stores(em: EntityManager): CheckoutStores;
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
  return {
    redeemer: new Redeemer({ counters: deps.counters, cache, reservationTtlMs: deps.reservationTtlMs, onOutcome: deps.onRedemption }),
    invoicer: new Invoicer({ counters: deps.counters, reservationTtlMs: deps.reservationTtlMs }),
    cache,
    stores: (em) => checkoutStores(em, batcher),
  };
}
