// The one listening socket. Plaintext serves HTTP/1.1 and h2c (prior knowledge) on the same port,
// as connect-go's h2c handler does: the first bytes of each connection say which server gets it.
// With TLS, ALPN picks h2 or http/1.1 and one http2 server with allowHTTP1 serves both. Every
// connection is entered in the registry (connections.ts), which may refuse it at the limit.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { TransportLimits } from "../config.js";
import type { Connections } from "./connections.js";
import { EMPTY_SETTINGS, H2_PREFACE, Opening, SETTINGS_AFTER_MS, type ChooseLane } from "./first-request.js";
import type { HttpRequest, HttpResponse } from "./http.js";

type OnRequest = (req: HttpRequest, res: HttpResponse) => void;
/** The gRPC lane: which connections it takes (by their first request), and how it takes one (its opening bytes unshifted). */
export interface GrpcHandOff {
  choose: ChooseLane;
  take: (socket: net.Socket) => void;
}
const FRAME_HEADER_BYTES = 9;

/** What both HTTP/2 servers advertise and enforce. */
function http2Options(limits: TransportLimits): http2.ServerOptions {
  // Streams beyond maxConcurrentStreams are refused by nghttp2 before any JavaScript runs, and a
  // client that keeps opening them anyway loses its session (maxSessionRejectedStreams).
  return { settings: { maxConcurrentStreams: limits.http2MaxConcurrentStreams } };
}

/**
 * HTTP/1.1 timeouts: slow headers are Node's to cut (headersTimeout, checked every second); slow
 * bodies and idle connections are the registry's, the same for both HTTP versions.
 */
function http1Options(limits: TransportLimits): http.ServerOptions {
  return {
    headersTimeout: limits.requestHeadersTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: limits.idleConnectionTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, limits.requestHeadersTimeoutMs),
  };
}

/**
 * Plaintext: peek at the first bytes of each connection and hand it to the h2c or HTTP/1.1 server;
 * with a gRPC lane, an h2c connection whose first request is gRPC goes to `grpc` instead
 * (first-request.ts).
 */
export function plaintextListener(
  onRequest: OnRequest,
  connections: Connections,
  limits: TransportLimits,
  log: Logger,
  grpc?: GrpcHandOff,
): { server: net.Server; secure: false } {
  const h1 = http.createServer(http1Options(limits), onRequest);
  // http.Server starts its headers/request timeout checks on "listening"; it never listens itself
  // (sockets are handed to it), so start them here or slow-header clients are never cut off.
  h1.emit("listening");
  const h2 = http2.createServer(http2Options(limits), onRequest);
  h1.on("clientError", refuseMalformedHttp1(log));
  h2.on("sessionError", (err) => log.debug({ err }, "h2 session error"));
  h2.on("session", (session) => connections.addSession(session));
  const server = net.createServer((socket) => {
    if (!connections.accept(socket)) {
      socket.destroy();
      return;
    }
    sniff(socket, log, (isH2) => {
      if (isH2 && grpc) {
        firstRequest(socket, grpc.choose, connections, log, (lane) => {
          if (lane === "grpc") {
            connections.handOver(socket);
            grpc.take(socket);
          } else {
            h2.emit("connection", socket);
          }
        });
      } else if (isH2) {
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

/**
 * Waits for the first bytes. HTTP/2 is handed over only with the frame header that must follow
 * the preface (a client sends its SETTINGS with it): a connection that sends the preface and then
 * nothing costs no HTTP/2 session, only this listener. A connection that says nothing is the
 * registry's to close (REQUEST_HEADERS_TIMEOUT_MS).
 */
function sniff(socket: net.Socket, log: Logger, handOff: (isH2: boolean) => void): void {
  let head = Buffer.alloc(0);
  readOpening(socket, log, (chunk) => {
    head = Buffer.concat([head, chunk]);
    const n = Math.min(head.length, H2_PREFACE.length);
    const maybeH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (maybeH2 && head.length < H2_PREFACE.length + FRAME_HEADER_BYTES) return undefined; // wait for more
    // The chosen server must see the bytes we peeked at.
    return { replay: head, then: () => handOff(maybeH2) };
  });
}

/**
 * Holds an h2c connection (already paused, its first bytes unshifted) until its first request
 * says which lane it belongs to, then unshifts what it read (less the ACK of the listener's own
 * SETTINGS) and hands it over.
 */
function firstRequest(socket: net.Socket, choose: ChooseLane, connections: Connections, log: Logger, handOff: (lane: "grpc" | "connect") => void): void {
  const opening = new Opening(choose);
  let settingsTimer: NodeJS.Timeout | undefined;
  readOpening(
    socket,
    log,
    (chunk) => {
      const decided = opening.push(chunk);
      if (opening.spoke) connections.spoke(socket);
      if (decided) return { replay: decided.replay, then: () => handOff(decided.lane) };
      // No request right behind the preface: the client may be waiting for SETTINGS.
      settingsTimer ??= setTimeout(() => {
        if (opening.sendSettings() && socket.writable) socket.write(EMPTY_SETTINGS);
      }, SETTINGS_AFTER_MS);
      return undefined;
    },
    () => clearTimeout(settingsTimer),
  );
  socket.resume();
}

/**
 * Reads a connection's opening bytes, a chunk at a time, until `read` decides: then the socket is
 * paused, what `read` returns to replay is unshifted (the next reader sees it first) and `then`
 * hands the socket on. An error or end before that destroys it. `done` runs once reading stops.
 */
function readOpening(socket: net.Socket, log: Logger, read: (chunk: Buffer) => { replay: Buffer; then: () => void } | undefined, done: () => void = () => undefined): void {
  const stop = (): void => {
    done();
    socket.off("data", onData).off("error", onError).off("end", onEnd);
  };
  const onData = (chunk: Buffer): void => {
    const decided = read(chunk);
    if (!decided) return;
    stop();
    socket.pause();
    socket.unshift(decided.replay);
    decided.then();
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
  socket.on("data", onData).on("error", onError).on("end", onEnd);
}

/** TLS: ALPN chooses h2 or http/1.1, and http2's allowHTTP1 serves both from one server. */
export function secureListener(
  tls: { cert: Buffer; key: Buffer },
  onRequest: OnRequest,
  connections: Connections,
  limits: TransportLimits,
  log: Logger,
): { server: net.Server; secure: true } {
  const server = http2.createSecureServer(
    {
      ...http2Options(limits),
      cert: tls.cert,
      key: tls.key,
      allowHTTP1: true,
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: limits.requestHeadersTimeoutMs,
    },
    onRequest,
  );
  server.on("connection", (socket: net.Socket) => {
    if (!connections.accept(socket)) socket.destroy();
  });
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
      const status =
        err.code === "HPE_HEADER_OVERFLOW"
          ? "431 Request Header Fields Too Large"
          : err.code === "ERR_HTTP_REQUEST_TIMEOUT" // headers slower than REQUEST_HEADERS_TIMEOUT_MS
            ? "408 Request Timeout"
            : "400 Bad Request";
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  };
}

/**
 * Connections the kernel may queue before they are accepted. Node's 511 is small next to a burst
 * of thousands of connections: once the queue is full the kernel drops new SYNs, and a health
 * check caught among them waits a whole SYN retransmission (1 s) before it even connects. The
 * kernel caps this at net.core.somaxconn.
 */
const ACCEPT_BACKLOG = 65_535;

export function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host, backlog: ACCEPT_BACKLOG }, () => {
      server.off("error", reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** A dialable host for the URL: wildcard binds become loopback, IPv6 gets brackets. */
export function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}
