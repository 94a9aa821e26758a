// Wires the one listener: connect-node's adapter for the application's routes plus health and
// reflection, request ids, CORS, body limits, connection and stream limits, and graceful
// draining. Each idea lives in a file of its own beside this one; this file only puts them together.
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues, type ConnectRouter, type ContextValues, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { clientAddressKey, requestIdKey } from "../api/context-keys.js";
import { wireAnswers } from "../api/wire-answers.js";
import { HEALTH_SERVICE, HealthRegistry, ServingStatus, registerHealth } from "../api/services/health.js";
import { REFLECTION_SERVICES, registerReflection } from "../api/services/reflection.js";
import { defaultTransportLimits, type GrpcLane, type TransportLimits } from "../config.js";
import { throttledNotice } from "../observability/throttled-log.js";
import { closeIfBodyUnread, declaredLength, refuseDeclaredOversize } from "./body-limits.js";
import { callKey, withCallSignal } from "./call-signals.js";
import { Connections, type Call } from "./connections.js";
import { applyCors, corsPolicy } from "./cors.js";
import { drain } from "./draining.js";
import { fallback, type KnownRpc } from "./fallback.js";
import { grpcTo } from "./first-request.js";
import { serviceSpecs, startGrpcLane } from "./grpc-lane.js";
import { isHttp1, type HttpRequest, type HttpResponse, type HttpRoute } from "./http.js";
import { listen, plaintextListener, secureListener, urlHost } from "./listener.js";
import { rpcAdapter } from "./rpc-adapter.js";

export interface ServerOptions {
  host: string;
  /** 0 picks a free port; RunningServer.port tells which. */
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  /** Who answers gRPC on plaintext HTTP/2 (config.ts GRPC_LANE); "connect" when absent. */
  grpcLane?: GrpcLane;
  /** Exact origins allowed to call from a browser, or "*". */
  corsOrigins: readonly string[];
  /** Largest request message accepted; a larger declared Content-Length is refused before reading. */
  maxBodyBytes: number;
  /** How long close() lets in-flight calls run before cutting them off. */
  shutdownGraceMs: number;
  /** Connections, streams and how long each may wait (config.ts: TransportLimits); production defaults when absent. */
  limits?: TransportLimits;
  /** The application's services. */
  routes: (router: ConnectRouter) => void;
  interceptors?: Interceptor[];
  /** Request-scoped values; the server adds `requestIdKey` to whatever this returns. */
  contextValues?: (req: HttpRequest | undefined) => ContextValues;
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
  const limits = opts.limits ?? defaultTransportLimits();
  const health = new HealthRegistry();
  const connections = new Connections(limits, {
    connectionLimit: throttledNotice(log, "connection limit reached (MAX_CONNECTIONS); closing the longest-idle connection for each new one"),
    bodyTimeout: throttledNotice(log, "request body not complete within BODY_TIMEOUT_MS; stream reset"),
    firstRequestTimeout: throttledNotice(log, "connection sent no request within REQUEST_HEADERS_TIMEOUT_MS; closed", { level: "info" }),
    rapidReset: throttledNotice(log, "HTTP/2 client reset more streams before their answer than HTTP2_MAX_CONCURRENT_STREAMS per second (rapid reset); session ended"),
  });
  const perRequest = new WeakMap<HttpRequest, { requestId: string; call: Call }>();
  // Streams that idle by design (reflection) end as soon as close() begins.
  const idlesByDesign = REFLECTION_SERVICES.map((s) => `/${s.typeName}/`);
  let known: KnownRpc[] = [];

  const rpc = rpcAdapter({
    routes: (router) => {
      opts.routes(router);
      registerBuiltins(router, health);
      // Answers connect-es writes before any interceptor (undecodable bodies, …) get their
      // ErrorDetail (wire-answers.ts); every handler gets its call's own abort signal
      // (call-signals.ts), never a shared one.
      router.handlers.forEach((handler, i) => (router.handlers[i] = withCallSignal(wireAnswers(handler))));
      known = router.handlers.map((h) => ({ service: h.service.typeName, method: h.method.name }));
    },
    // Unknown RPCs answer in the caller's protocol; other paths get a line of help.
    fallback: fallback(() => known),
    // Strict input: an unknown JSON key or enum name is INVALID_ARGUMENT, never silently dropped.
    jsonOptions: { ignoreUnknownFields: false },
    interceptors: opts.interceptors ?? [],
    readMaxBytes: opts.maxBodyBytes,
    maxBodyBytes: opts.maxBodyBytes,
    // Runs once headers are in, before the body is read.
    requestGate: (ctx) => refuseDeclaredOversize(ctx, opts.maxBodyBytes),
    contextValues: (req) => {
      const values = opts.contextValues?.(req) ?? createContextValues();
      const known = perRequest.get(req);
      return values
        .set(requestIdKey, known?.requestId ?? randomUUID())
        .set(clientAddressKey, clientAddress(req.socket.remoteAddress))
        .set(callKey, known?.call);
    },
    onFailure: (err, handler) => log.error({ err, method: `${handler.service.typeName}/${handler.method.name}` }, "rpc handler failed"),
  });
  const allowOrigin = corsPolicy(opts.corsOrigins);

  const onRequest = (req: HttpRequest, res: HttpResponse): void => {
    if (isHttp1(req)) return serve(req, res);
    // A stream can be reset in the very read that opened it (rapid reset). Dispatch once that
    // read has been handled, and not at all when the stream is gone by then: such a stream costs
    // the server no call, and counts against its connection's reset budget.
    const conn = connections.connOf(req);
    setImmediate(() => {
      if (!req.stream.destroyed) serve(req, res);
      else if (conn) connections.streamReset(conn);
    });
  };

  const serve = (req: HttpRequest, res: HttpResponse): void => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    const call = connections.requestStarted(req, res, idlesByDesign.some((prefix) => path.startsWith(prefix)));
    try {
      const requestId = pickRequestId(req.headers["x-request-id"]);
      perRequest.set(req, { requestId, call });
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

  // The gRPC lane (grpc-lane.ts) serves the same service implementations and interceptors on
  // plaintext HTTP/2 connections whose first request is gRPC. Under TLS every connection is the
  // Connect lane's (README: Transport lanes).
  const grpc =
    opts.grpcLane === "grpc-js" && !opts.tls
      ? startGrpcLane({
          services: serviceSpecs((router) => {
            opts.routes(router);
            registerBuiltins(router, health);
          }, createConnectRouter()),
          interceptors: opts.interceptors ?? [],
          contextValues: () => opts.contextValues?.(undefined) ?? createContextValues(),
          connections,
          limits,
          maxBodyBytes: opts.maxBodyBytes,
          endsOnDrain: (path) => idlesByDesign.some((prefix) => path.startsWith(prefix)),
          pickRequestId: (header) => pickRequestId(header ?? undefined),
          clientAddress,
          logger: log,
        })
      : undefined;

  const { server, secure } = opts.tls
    ? secureListener(opts.tls, onRequest, connections, limits, log)
    : plaintextListener(onRequest, connections, limits, log, grpc && { choose: grpcTo(grpc.paths), take: grpc.inject });
  const port = await listen(server, opts.host, opts.port).catch((err: unknown) => {
    server.close(); // also stops the HTTP/1.1 server's timeout checks
    connections.stopSweeping();
    grpc?.destroy();
    throw err;
  });
  log.debug({ host: opts.host, port, tls: secure }, "listening");

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    health.shutdown();
    connections.abortCalls(undefined, (call) => call.endsOnDrain);
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    grpc?.drain(opts.shutdownGraceMs + 50);
    await drain(connections, opts.shutdownGraceMs, (calls) => {
      log.warn({ calls, graceMs: opts.shutdownGraceMs }, "shutdown grace period over; cutting off calls in flight");
      connections.abortCalls(new ConnectError("server is shutting down", Code.Unavailable));
    });
    grpc?.destroy();
    await stopped;
  };
  return {
    url: `${secure ? "https" : "http"}://${urlHost(opts.host)}:${port}`,
    port,
    close: () => (closing ??= close()),
  };
}

/** Health and reflection over every service the app registered, plus themselves. */
function registerBuiltins(router: ConnectRouter, health: HealthRegistry): void {
  const app = new Map<string, DescService>(router.handlers.map((h) => [h.service.typeName, h.service]));
  registerHealth(router, health);
  const all = [...app.values(), Health, ...REFLECTION_SERVICES];
  registerReflection(router, all);
  for (const name of ["", ...all.map((s) => s.typeName)]) health.setStatus(name, ServingStatus.SERVING);
}

function pickRequestId(header: string | string[] | undefined): string {
  return typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
}

/** The peer address limits are kept by: IPv4 as is (also when mapped into IPv6), IPv6 cut to its /64 (one host's usual share). */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return "";
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote)?.[1];
  if (v4 !== undefined) return v4;
  if (!remote.includes(":")) return remote;
  const address = remote.split("%")[0] ?? ""; // no zone id
  const [head = "", tail] = address.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups.slice(0, 4).join(":").toLowerCase()}::/64`;
}
