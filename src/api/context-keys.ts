// Request-scoped values that interceptors and handlers read from `ctx.values`.
import { createContextKey } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Principal } from "../store/api-keys.js";

/** The caller's `x-request-id` when sane, else one generated per request; echoed in the response. */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/** Who is calling, as the network sees it: the peer address (IPv6 cut to its /64); limits on unknown keys are kept per address. */
export const clientAddressKey = createContextKey<string>("", { description: "client address" });

/** The verified API key behind this call; set by the auth interceptor for every non-public RPC. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "caller" });

/** Forks a MikroORM EntityManager for a request (never the global one); called once per handler call. */
export const entityManagerKey = createContextKey<(() => EntityManager) | undefined>(undefined, { description: "entity manager" });

/** Which server lane answers the call: "connect" (connect-node) or "grpc-js" (src/server/grpc-lane.ts); in every log line. */
export const laneKey = createContextKey<"connect" | "grpc-js">("connect", { description: "server lane" });
