// Request-scoped values that interceptors and handlers read from `ctx.values`.
import { createContextKey } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Principal } from "../store/api-keys.js";
import type { PromotionChangeHook } from "../store/change-hook.js";
import type { Redeemer } from "../counters/redeemer.js";
import type { Invoicer } from "../counters/invoicer.js";

/** The caller's `x-request-id` when sane, else one generated per request; echoed in the response. */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/** The verified API key behind this call; set by the auth interceptor for every non-public RPC. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "caller" });

/** Forks a MikroORM EntityManager for a request (never the global one); called once per handler call. */
export const entityManagerKey = createContextKey<(() => EntityManager) | undefined>(undefined, { description: "entity manager" });

/**
 * Called after a transaction that changed a promotion or its codes commits (cache invalidation);
 * set by whoever wires the caches, read by the handlers that build stores.
 */
export const changeHookKey = createContextKey<PromotionChangeHook | undefined>(undefined, { description: "promotion change hook" });

/** The checkout hot path (Redis counters, caches, ledger flow); set for every request by the app. */
export const redeemerKey = createContextKey<Redeemer | undefined>(undefined, { description: "redeemer" });

/** ApplyPromotions' engine (pipeline + budget counters + invoice ledger); set for every request by the app. */
export const invoicerKey = createContextKey<Invoicer | undefined>(undefined, { description: "invoicer" });
