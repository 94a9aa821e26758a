// A server with the real PromotionService descriptor and a stand-in GetPromotion: enough to prove
// the transport without a database. Special ids make the handler slow, or wait for its deadline.
import { setTimeout as sleep } from "node:timers/promises";
import { ConnectError, createContextKey, createContextValues, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { pino } from "pino";
import { PromotionService, type GetPromotionRequest } from "../../../gen/promotions/v1/promotion_service_pb.js";
import { requestIdKey } from "../../../src/api/context-keys.js";
import { startServer, type RunningServer, type ServerOptions } from "../../../src/server/server.js";

/** A context value the test sets through `contextValues`, to prove the server keeps it. */
export const tenantKey = createContextKey<string>("", { description: "test tenant" });

/** What the handler saw; tests read it to check the server side of a call. */
export interface Observed {
  /** ctx.signal.reason of calls that waited for their deadline or for shutdown. */
  aborts: ConnectError[];
  /** Request ids interceptors saw. */
  interceptedRequestIds: string[];
}

export const SLOW_MS = 400;

async function getPromotion(req: GetPromotionRequest, ctx: HandlerContext, observed: Observed) {
  if (req.id === "slow") await sleep(SLOW_MS);
  if (req.id === "wait") {
    // Stands in for a handler doing I/O that honours cancellation.
    await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
    observed.aborts.push(ConnectError.from(ctx.signal.reason));
    throw ConnectError.from(ctx.signal.reason);
  }
  return {
    promotion: {
      id: req.id,
      name: "Ten percent off",
      code: ctx.values.get(tenantKey),
      description: ctx.values.get(requestIdKey),
    },
  };
}

export function promotionRoutes(observed: Observed): (router: ConnectRouter) => void {
  return (router) => {
    router.service(PromotionService, { getPromotion: (req, ctx) => getPromotion(req, ctx, observed) });
  };
}

export async function startTestServer(
  overrides: Partial<ServerOptions> = {},
): Promise<{ server: RunningServer; observed: Observed }> {
  const observed: Observed = { aborts: [], interceptedRequestIds: [] };
  const server = await startServer({
    host: "127.0.0.1",
    port: 0,
    corsOrigins: ["https://app.example.com"],
    maxBodyBytes: 16 * 1024,
    shutdownGraceMs: 5_000,
    routes: promotionRoutes(observed),
    interceptors: [
      (next) => async (req) => {
        observed.interceptedRequestIds.push(req.contextValues.get(requestIdKey));
        return next(req);
      },
    ],
    contextValues: () => createContextValues().set(tenantKey, "acme"),
    extraHttpRoutes: (req, res) => {
      if (req.method !== "GET" || req.url !== "/metrics") return false;
      res.setHeader("content-type", "text/plain");
      res.end("rpc_requests_total 0\n");
      return true;
    },
    logger: pino({ level: "silent" }),
    ...overrides,
  });
  return { server, observed };
}
