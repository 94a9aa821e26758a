// Wires the one listener: connect-node's adapter for the application's routes plus health and
// reflection, request ids, CORS, body limits and graceful draining. Each idea lives in a file of
// its own beside this one; this file only puts them together.
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ConnectRouter, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { requestIdKey } from "../api/context-keys.js";
import { wireAnswers } from "../api/wire-answers.js";
import { HEALTH_SERVICE, HealthRegistry, ServingStatus, registerHealth } from "../api/services/health.js";
import { REFLECTION_SERVICES, registerReflection } from "../api/services/reflection.js";
import { closeIfBodyUnread, declaredLength, refuseDeclaredOversize } from "./body-limits.js";
import { applyCors, corsPolicy } from "./cors.js";
import { fallback, type KnownRpc } from "./fallback.js";
import { Connections } from "./draining.js";
import { isHttp1, type HttpRequest, type HttpResponse, type HttpRoute } from "./http.js";
import { listen, plaintextListener, secureListener, urlHost } from "./listener.js";

export interface ServerOptions {
  host: string;
  /** 0 picks a free port; RunningServer.port tells which. */
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  /** Exact origins allowed to call from a browser, or "*". */
  corsOrigins: readonly string[];
  /** Largest request message accepted; a larger declared Content-Length is refused before reading. */
  maxBodyBytes: number;
  /** How long close() lets in-flight calls run before cutting them off. */
  shutdownGraceMs: number;
  /** The application's services. */
  routes: (router: ConnectRouter) => void;
  interceptors?: Interceptor[];
  /** Request-scoped values; the server adds `requestIdKey` to whatever this returns. */
  contextValues?: (req: HttpRequest) => ContextValues;
  /** Plain HTTP routes (e.g. GET /metrics); return true when the request was handled. */
  extraHttpRoutes?: HttpRoute;
  logger: Logger;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Services any caller may use without an API key. */
export const PUBLIC_SERVICES: ReadonlySet<string> = new Set([HEALTH_SERVICE, ...REFLECTION_SERVICES.map((s) => s.typeName)]);

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const log = opts.logger;
  const health = new HealthRegistry();
  // `draining` ends idle streams (health Watch, reflection) as soon as close() begins;
  // `cutoff` aborts every handler's ctx.signal once the grace period has run out.
  const draining = new AbortController();
  const cutoff = new AbortController();
  const requestIds = new WeakMap<HttpRequest, string>();
  const connections = new Connections();
  let known: KnownRpc[] = [];

  const rpc = connectNodeAdapter({
    routes: (router) => {
      opts.routes(router);
      registerBuiltins(router, health, draining.signal);
      // Answers connect-es writes before any interceptor (undecodable bodies, …) get their ErrorDetail.
      router.handlers.forEach((handler, i) => (router.handlers[i] = wireAnswers(handler)));
      known = router.handlers.map((h) => ({ service: h.service.typeName, method: h.method.name }));
    },
    // Unknown RPCs answer in the caller's protocol; other paths get a line of help.
    fallback: fallback(() => known),
    // Strict input: an unknown JSON key or enum name is INVALID_ARGUMENT, never silently dropped.
    jsonOptions: { ignoreUnknownFields: false },
    interceptors: opts.interceptors ?? [],
    readMaxBytes: opts.maxBodyBytes,
    shutdownSignal: cutoff.signal,
    // Runs once headers are in, before the body is read.
    requestGate: (ctx) => refuseDeclaredOversize(ctx, opts.maxBodyBytes),
    contextValues: (req) => {
      const values = opts.contextValues?.(req) ?? createContextValues();
      return values.set(requestIdKey, requestIds.get(req) ?? randomUUID());
    },
  });
  const allowOrigin = corsPolicy(opts.corsOrigins);

  const onRequest = (req: HttpRequest, res: HttpResponse): void => {
    connections.requestStarted(req, res);
    try {
      const requestId = pickRequestId(req.headers["x-request-id"]);
      requestIds.set(req, requestId);
      res.setHeader("x-request-id", requestId);
      if (isHttp1(req) && (connections.draining || declaredLength(req) > opts.maxBodyBytes)) {
        // The body will not be read (or the server is leaving): do not reuse this connection.
        res.setHeader("connection", "close");
      }
      if (isHttp1(req) && res instanceof http.ServerResponse) closeIfBodyUnread(req, res);
      if (applyCors(req, res, allowOrigin)) return;
      if (opts.extraHttpRoutes?.(req, res) === true) return;
      rpc(req, res);
    } catch (err) {
      // The adapter throws synchronously on requests it cannot parse (e.g. no authority).
      log.debug({ err, url: req.url }, "request rejected");
      if (!res.headersSent) res.statusCode = 400;
      res.end();
    }
  };

  const { server, secure } = opts.tls
    ? secureListener(opts.tls, onRequest, connections, log)
    : plaintextListener(onRequest, connections, log);
  const port = await listen(server, opts.host, opts.port).catch((err: unknown) => {
    server.close(); // also stops the HTTP/1.1 server's timeout checks
    throw err;
  });
  log.debug({ host: opts.host, port, tls: secure }, "listening");

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    health.shutdown();
    draining.abort();
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    await connections.drain(opts.shutdownGraceMs, (calls) => {
      log.warn({ calls, graceMs: opts.shutdownGraceMs }, "shutdown grace period over; cutting off calls in flight");
      cutoff.abort(new ConnectError("server is shutting down", Code.Unavailable));
    });
    await stopped;
  };
  return {
    url: `${secure ? "https" : "http"}://${urlHost(opts.host)}:${port}`,
    port,
    close: () => (closing ??= close()),
  };
}

/** Health and reflection over every service the app registered, plus themselves. */
function registerBuiltins(router: ConnectRouter, health: HealthRegistry, draining: AbortSignal): void {
  const app = new Map<string, DescService>(router.handlers.map((h) => [h.service.typeName, h.service]));
  registerHealth(router, health);
  const all = [...app.values(), Health, ...REFLECTION_SERVICES];
  registerReflection(router, all, draining);
  for (const name of ["", ...all.map((s) => s.typeName)]) health.setStatus(name, ServingStatus.SERVING);
}

function pickRequestId(header: string | string[] | undefined): string {
  return typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
}
