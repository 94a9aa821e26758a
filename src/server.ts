// One listener for Connect, gRPC and gRPC-Web. Plaintext serves HTTP/1.1 and h2c (prior knowledge)
// on the same port, as connect-go's h2c handler does; with TLS, ALPN picks h2 or http/1.1.
// This file only wires: the services come from `routes`, health and reflection from src/api/.
import { randomUUID } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  cors,
  createContextValues,
  type ConnectRouter,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { requestIdKey } from "./api/context.js";
import { HEALTH_SERVICE, HealthRegistry, ServingStatus, registerHealth } from "./api/health.js";
import { REFLECTION_SERVICES, registerReflection } from "./api/reflection.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { reclassifyParseErrors } from "./api/parse-errors.js";

export type HttpRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type HttpResponse = http.ServerResponse | http2.Http2ServerResponse;

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
  extraHttpRoutes?: (req: HttpRequest, res: HttpResponse) => boolean;
  logger: Logger;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Services any caller may use without an API key. */
export const PUBLIC_SERVICES: ReadonlySet<string> = new Set([HEALTH_SERVICE, ...REFLECTION_SERVICES.map((s) => s.typeName)]);

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const SNIFF_TIMEOUT_MS = 10_000;
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

  const rpc = connectNodeAdapter({
    routes: (router) => {
      opts.routes(router);
      registerBuiltins(router, health, draining.signal);
      // Undecodable request bodies are the client's fault: INVALID_ARGUMENT, not INTERNAL.
      router.handlers.forEach((handler, i) => (router.handlers[i] = reclassifyParseErrors(handler)));
    },
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

/** Plaintext: peek at the first bytes of each connection and hand it to the h2c or HTTP/1.1 server. */
function plaintextListener(onRequest: (req: HttpRequest, res: HttpResponse) => void, connections: Connections, log: Logger) {
  const h1 = http.createServer(onRequest);
  // http.Server starts its headers/request timeout checks on "listening"; it never listens itself
  // (sockets are handed to it), so start them here or slow-header clients are never cut off.
  h1.emit("listening");
  const h2 = http2.createServer(onRequest);
  h1.on("clientError", refuseMalformedHttp1(log));
  h2.on("sessionError", (err) => log.debug({ err }, "h2 session error"));
  h2.on("session", (session) => connections.addSession(session));
  const server = net.createServer((socket) => {
    connections.addSocket(socket);
    sniff(socket, log, (isH2) => {
      if (isH2) {
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        // http.Server reads through the socket's 'data' events only while it flows.
        socket.resume();
      }
    });
  });
  server.on("close", () => h1.close());
  return { server, secure: false };
}

function sniff(socket: net.Socket, log: Logger, handOff: (isH2: boolean) => void): void {
  let head = Buffer.alloc(0);
  const stop = (): void => {
    socket.off("data", onData).off("error", onError).off("end", onEnd).off("timeout", onTimeout);
    socket.setTimeout(0);
  };
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    const n = Math.min(head.length, H2_PREFACE.length);
    const maybeH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (maybeH2 && head.length < H2_PREFACE.length) return; // a prefix of the preface: wait for more
    stop();
    socket.pause();
    socket.unshift(head); // the chosen server must see the bytes we peeked at
    handOff(maybeH2);
  };
  const onError = (err: Error): void => {
    log.debug({ err }, "connection error before the first request");
    stop();
    socket.destroy();
  };
  const onEnd = (): void => {
    stop();
    socket.destroy();
  };
  const onTimeout = (): void => {
    stop();
    socket.destroy();
  };
  socket.on("data", onData).on("error", onError).on("end", onEnd).on("timeout", onTimeout);
  socket.setTimeout(SNIFF_TIMEOUT_MS);
}

/** TLS: ALPN chooses h2 or http/1.1, and http2's allowHTTP1 serves both from one server. */
function secureListener(
  tls: { cert: Buffer; key: Buffer },
  onRequest: (req: HttpRequest, res: HttpResponse) => void,
  connections: Connections,
  log: Logger,
) {
  const server = http2.createSecureServer(
    { cert: tls.cert, key: tls.key, allowHTTP1: true, ALPNProtocols: ["h2", "http/1.1"] },
    onRequest,
  );
  server.on("connection", (socket: net.Socket) => connections.addSocket(socket));
  server.on("session", (session) => connections.addSession(session));
  server.on("sessionError", (err) => log.debug({ err }, "h2 session error"));
  server.on("tlsClientError", (err) => log.debug({ err }, "tls client error"));
  server.on("clientError", refuseMalformedHttp1(log)); // HTTP/1.1 over TLS
  return { server, secure: true };
}

/** Replaces Node's default 'clientError' handling so a bad request is logged, answered and closed. */
function refuseMalformedHttp1(log: Logger): (err: NodeJS.ErrnoException, socket: Duplex) => void {
  return (err, socket) => {
    log.debug({ err }, "malformed http/1.1 request");
    if (socket.writable) {
      const status = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  };
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/**
 * Knows every socket, h2 session and in-flight request, so close() can stop new work, wait for the
 * calls already running, and then cut off whatever is left.
 */
class Connections {
  draining = false;
  /** Every accepted TCP socket (under TLS: the raw one), for the final cut. */
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** HTTP/1.1 connections that have carried a request, with how many calls are open on each. */
  private readonly h1 = new Map<net.Socket, number>();
  private inFlight = 0;
  private onIdle: (() => void) | undefined;

  addSocket(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
  }

  addSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    if (this.draining) session.close();
  }

  requestStarted(req: HttpRequest, res: HttpResponse): void {
    this.inFlight++;
    const socket = isHttp1(req) ? req.socket : undefined;
    if (socket) {
      if (!this.h1.has(socket)) socket.once("close", () => this.h1.delete(socket));
      this.h1.set(socket, (this.h1.get(socket) ?? 0) + 1);
    }
    res.once("close", () => {
      this.inFlight--;
      if (socket && this.h1.has(socket)) {
        const open = (this.h1.get(socket) ?? 1) - 1;
        this.h1.set(socket, open);
        // A response that started before close() began went out without "Connection: close".
        if (this.draining && open === 0) socket.destroySoon();
      }
      if (this.inFlight === 0) this.onIdle?.();
    });
  }

  /** Graceful first (GOAWAY, idle keep-alives closed), then, after graceMs, force. */
  async drain(graceMs: number, onCutoff: (calls: number) => void): Promise<void> {
    this.draining = true;
    for (const session of this.sessions) session.close(); // sends GOAWAY; open streams may finish
    for (const [socket, open] of this.h1) if (open === 0) socket.destroy();
    if (this.inFlight > 0 && !(await this.idleWithin(graceMs))) {
      // Handlers see ctx.signal abort and get a moment to answer before their sockets go.
      onCutoff(this.inFlight);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }

  private idleWithin(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }
}

/**
 * An HTTP/1.1 answer sent before the request body was read to its end (a body without a declared
 * length refused as too large, say) must close the connection: the rest of that body would
 * otherwise be read as the next request on it.
 */
function closeIfBodyUnread(req: http.IncomingMessage, res: http.ServerResponse): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: http.ServerResponse, ...args: Parameters<typeof writeHead>) {
    if (!req.complete && !this.headersSent) this.setHeader("connection", "close");
    return writeHead.apply(this, args);
  } as typeof writeHead;
}

function isHttp1(req: HttpRequest): req is http.IncomingMessage {
  return !("stream" in req);
}

function declaredLength(req: HttpRequest): number {
  const value = req.headers["content-length"];
  const length = typeof value === "string" ? Number(value) : NaN;
  return Number.isFinite(length) ? length : 0;
}

/** Refused before the body is read, in whichever protocol the caller speaks. */
function refuseDeclaredOversize(ctx: HandlerContext, maxBodyBytes: number): void {
  const length = Number(ctx.requestHeader.get("content-length") ?? "0");
  if (Number.isFinite(length) && length > maxBodyBytes) {
    throw new ConnectError(`request body of ${length} bytes exceeds the limit of ${maxBodyBytes}`, Code.ResourceExhausted);
  }
}

function pickRequestId(header: string | string[] | undefined): string {
  return typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
}

/** Returns the Access-Control-Allow-Origin value for an origin, or undefined when not allowed. */
function corsPolicy(origins: readonly string[]): (origin: string) => string | undefined {
  const exact = new Set(origins);
  const any = exact.has("*");
  return (origin) => (exact.has(origin) ? origin : any ? "*" : undefined);
}

const ALLOW_METHODS = [...cors.allowedMethods].join(", ");
const ALLOW_HEADERS = [...cors.allowedHeaders, "authorization", "x-api-key", "x-request-id"].join(", ");
const EXPOSE_HEADERS = [...cors.exposedHeaders, "x-request-id", "retry-after-ms"].join(", ");

/** Sets CORS headers; returns true when it answered the request itself (a preflight). */
function applyCors(req: HttpRequest, res: HttpResponse, allowOrigin: (origin: string) => string | undefined): boolean {
  const origin = req.headers.origin;
  if (typeof origin !== "string") return false; // not a browser's cross-origin request
  const allowed = allowOrigin(origin);
  const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
  res.setHeader("vary", "Origin");
  if (preflight) {
    if (allowed === undefined) {
      res.statusCode = 403;
      res.setHeader("content-type", "text/plain");
      res.end("origin not allowed\n");
      return true;
    }
    res.statusCode = 204;
    res.setHeader("access-control-allow-origin", allowed);
    res.setHeader("access-control-allow-methods", ALLOW_METHODS);
    res.setHeader("access-control-allow-headers", ALLOW_HEADERS);
    res.setHeader("access-control-max-age", "7200");
    res.end();
    return true;
  }
  if (allowed !== undefined) {
    res.setHeader("access-control-allow-origin", allowed);
    res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
  }
  return false;
}

/** A dialable host for the URL: wildcard binds become loopback, IPv6 gets brackets. */
function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}
