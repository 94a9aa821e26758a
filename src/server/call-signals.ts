// A signal of its own for every call. connect-node links each handler's ctx.signal to the
// adapter's `shutdownSignal`: one listener per call on one AbortSignal shared by all of them, and
// Node's EventTarget walks the whole listener list on every add and every remove, so the cost of
// a stream grew with the number of streams open (10 × 9,000 idle streams kept a core busy for
// minutes). No shutdown signal is passed; instead each call's request signal is replaced by the
// call's own `cutoff` (connections.ts), which follows the client's signal and is aborted through
// the registry of calls in flight when draining ends them.
import { createContextKey } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { inPlaceOf } from "../api/wrap-handler.js";
import type { Call } from "./connections.js";

/** The call a request belongs to; set by the server's contextValues. */
export const callKey = createContextKey<Call | undefined>(undefined, { description: "call in flight" });

/** Hands the handler the call's own signal instead of the request's. */
export function withCallSignal(handler: UniversalHandler): UniversalHandler {
  const wrapped = (request: Parameters<UniversalHandler>[0]): ReturnType<UniversalHandler> => {
    const call = request.contextValues?.get(callKey);
    if (!call) return handler(request);
    const { cutoff } = call;
    const client = request.signal;
    // Listeners on this call's signals only: O(1) however many calls are open.
    if (client.aborted) cutoff.abort(client.reason);
    else client.addEventListener("abort", () => cutoff.abort(client.reason), { once: true });
    return handler({ ...request, signal: cutoff.signal });
  };
  return inPlaceOf(handler, wrapped);
}
