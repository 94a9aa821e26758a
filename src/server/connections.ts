// Every open connection and the calls on it, and the limits on what a connection or stream may
// hold: at most MAX_CONNECTIONS (at the limit the longest-idle connection makes room for a new
// one); a first request (HTTP/2: a session) within REQUEST_HEADERS_TIMEOUT_MS of connecting; no
// more than IDLE_CONNECTION_TIMEOUT_MS without a call in flight; a request body complete within
// BODY_TIMEOUT_MS of its headers; and no more HTTP/2 streams reset by the client before the server
// started on them than HTTP2_MAX_CONCURRENT_STREAMS a second ("rapid reset": each such stream
// costs a request the server never gets to answer; a call cancelled at its deadline costs a
// tenth). Connections and calls are entered in insertion-ordered sets when they start waiting, so
// a sweep a few times a second looks only at the oldest entries: the cost per connection and per
// stream is the same however many are open.
import http2 from "node:http2";
import type net from "node:net";
import type { TransportLimits } from "../config.js";
import type { Notice } from "../observability/throttled-log.js";
import { bodyPending, isHttp1, type HttpRequest, type HttpResponse } from "./http.js";

/** One accepted TCP connection (under TLS: the raw socket beneath it). */
export interface Conn {
  readonly socket: net.Socket;
  session: http2.ServerHttp2Session | undefined;
  /** Requests in flight on it. */
  calls: number;
  /** When it entered the set it is in now (fresh or idle), performance.now() ms. */
  since: number;
  closed: boolean;
  /** Told to go away (GOAWAY sent); closes once its calls are done. */
  goingAway: boolean;
  /** Budget of streams the client may reset before they are answered: tokens, and when last refilled. */
  resets: { tokens: number; at: number };
  /**
   * Served by the gRPC lane (grpc-js owns its HTTP/2 session and its idle timeout): still counted
   * against MAX_CONNECTIONS until it closes, never swept as fresh or idle here.
   */
  handedOver: boolean;
}

/** A call in flight: aborting `cutoff` aborts its handler's ctx.signal. */
export interface Call {
  readonly cutoff: AbortController;
  /** True for streams that idle by design (reflection) and end as soon as draining begins. */
  readonly endsOnDrain: boolean;
}

/** Things worth one (rate-limited) log line. */
export interface LimitNotices {
  connectionLimit: Notice;
  bodyTimeout: Notice;
  firstRequestTimeout: Notice;
  rapidReset: Notice;
}

/** What a stream reset after its call began costs of the reset budget (one reset before dispatch costs 1). */
const LATE_RESET_WEIGHT = 0.1;
/** Expired connections and streams ended per turn of the event loop. */
const SWEEP_BATCH = 100;
/** How long an HTTP/2 client told to go away (idle) has to finish before its connection is closed. */
const GOAWAY_GRACE_MS = 1_000;

interface Waiting {
  req: HttpRequest;
  since: number;
}

export class Connections {
  draining = false;
  private readonly byPeer = new Map<string, Conn>();
  /** Accepted, no request yet: oldest first. */
  private readonly fresh = new Set<Conn>();
  /** No call in flight: longest idle first. */
  private readonly idle = new Set<Conn>();
  /** Requests whose body has not arrived whole yet: oldest first. */
  private readonly bodies = new Set<Waiting>();
  private readonly calls = new Set<Call>();
  /** Streams this server reset itself (body timeouts): not the client's doing. */
  private readonly resetHere = new WeakSet<http2.Http2Stream>();
  private open = 0;
  private onIdle: (() => void) | undefined;
  private readonly ticker: NodeJS.Timeout;
  /** A sweep continues in the next turn (it stopped at SWEEP_BATCH). */
  private continuing = false;

  constructor(
    private readonly limits: TransportLimits,
    private readonly notices: LimitNotices,
  ) {
    const every = Math.max(50, Math.min(1_000, Math.floor(Math.min(limits.requestHeadersTimeoutMs, limits.bodyTimeoutMs, limits.idleConnectionTimeoutMs) / 4)));
    this.ticker = setInterval(() => this.sweep(), every).unref();
  }

  /** A new connection; false when it must be refused (every connection has a call in flight). */
  accept(socket: net.Socket): boolean {
    if (this.draining) return false;
    if (this.open >= this.limits.maxConnections) {
      // Room for the new one: the connection idle longest, one that never sent a request first.
      const victim = first(this.fresh) ?? first(this.idle);
      this.notices.connectionLimit({ limit: this.limits.maxConnections, open: this.open, made_room: victim !== undefined });
      if (!victim) return false;
      this.close(victim, true);
    }
    const now = performance.now();
    const conn: Conn = { socket, session: undefined, calls: 0, since: now, closed: false, goingAway: false, resets: { tokens: this.limits.http2MaxConcurrentStreams, at: now }, handedOver: false };
    const key = peerOf(socket);
    this.byPeer.set(key, conn);
    this.fresh.add(conn);
    this.open++;
    socket.once("close", () => {
      if (this.byPeer.get(key) === conn) this.byPeer.delete(key);
      this.forget(conn);
    });
    return true;
  }

  /**
   * An HTTP/2 session began (the client sent the preface and its first frame): a client that
   * connects ahead of its first call is idle from now on, not a connection that never spoke.
   */
  addSession(session: http2.ServerHttp2Session): void {
    const conn = this.byPeer.get(peerOf(session.socket));
    if (conn) {
      conn.session = session;
      if (this.fresh.delete(conn)) {
        conn.since = performance.now();
        this.idle.add(conn);
      }
    }
    if (this.draining) session.close();
  }

  /**
   * The client spoke HTTP/2 (its preface and SETTINGS) and the listener is still waiting for its
   * first request to pick a lane: a client that connects ahead of its first call is idle, as
   * with addSession.
   */
  spoke(socket: net.Socket): void {
    const conn = this.byPeer.get(peerOf(socket));
    if (conn && this.fresh.delete(conn)) {
      conn.since = performance.now();
      this.idle.add(conn);
    }
  }

  /** The connection is the gRPC lane's from now on (see Conn.handedOver). */
  handOver(socket: net.Socket): void {
    const conn = this.byPeer.get(peerOf(socket));
    if (!conn) return;
    conn.handedOver = true;
    this.fresh.delete(conn);
    this.idle.delete(conn);
  }

  /**
   * A call of the gRPC lane, which has no HttpRequest: counted while it runs (draining waits for
   * it) and aborted with the others; `done` when it has answered.
   */
  callStarted(endsOnDrain: boolean): { call: Call; done: () => void } {
    const call: Call = { cutoff: new AbortController(), endsOnDrain };
    this.calls.add(call);
    return {
      call,
      done: () => {
        if (this.calls.delete(call) && this.calls.size === 0) this.onIdle?.();
      },
    };
  }

  /**
   * A stream of the gRPC lane, seen as grpc-js starts on it: the same limits as a request of the
   * Connect lane — its body complete within BODY_TIMEOUT_MS or the stream is reset, and streams
   * the client resets before they are answered drawn from its connection's reset budget (a
   * stream reset in the read that opened it costs a whole token, one reset while its call ran a
   * tenth). The session is remembered on the connection, so the budget can end it.
   */
  laneStream(stream: http2.ServerHttp2Stream): void {
    const session = stream.session;
    if (!session) return;
    let conn: Conn | undefined;
    try {
      conn = this.byPeer.get(peerOf(session.socket));
    } catch {
      return; // the session is already gone
    }
    if (conn && conn.session !== session) conn.session = session as http2.ServerHttp2Session;
    const waiting = !stream.endAfterHeaders && !stream.readableEnded ? { req: { stream } as unknown as HttpRequest, since: performance.now() } : undefined;
    if (waiting) {
      this.bodies.add(waiting);
      stream.once("end", () => this.bodies.delete(waiting));
    }
    let dispatched = false;
    setImmediate(() => (dispatched = true));
    stream.once("close", () => {
      if (waiting) this.bodies.delete(waiting);
      // grpc-js ends its side of a stream the client reset, so writableEnded says nothing here;
      // a stream closed with an error code the server did not send is the client's reset.
      if (conn && !conn.closed && this.resetByClient(stream)) this.streamReset(conn, dispatched ? LATE_RESET_WEIGHT : 1);
    });
  }

  /** Called for every request as it arrives; the Call's cutoff aborts its handler. */
  requestStarted(req: HttpRequest, res: HttpResponse, endsOnDrain: boolean): Call {
    const call: Call = { cutoff: new AbortController(), endsOnDrain };
    this.calls.add(call);
    const conn = this.connOf(req);
    if (conn && !conn.closed) {
      this.fresh.delete(conn);
      this.idle.delete(conn);
      conn.calls++;
    }
    const waiting = bodyPending(req) ? { req, since: performance.now() } : undefined;
    if (waiting) {
      this.bodies.add(waiting);
      req.once("end", () => this.bodies.delete(waiting));
    }
    res.once("close", () => {
      this.calls.delete(call);
      if (waiting) this.bodies.delete(waiting);
      if (conn && !isHttp1(req) && !res.writableEnded && this.resetByClient(req.stream)) this.streamReset(conn, LATE_RESET_WEIGHT);
      if (conn && !conn.closed && --conn.calls === 0) {
        if (conn.goingAway) {
          conn.socket.destroySoon();
        } else if (this.draining) {
          // A response that started before draining began went out without "Connection: close".
          if (!conn.session) conn.socket.destroySoon();
        } else {
          conn.since = performance.now();
          this.idle.add(conn);
        }
      }
      if (this.calls.size === 0) this.onIdle?.();
    });
    return call;
  }

  /**
   * An HTTP/2 stream the client reset before it was answered: within budget that is a client
   * cancelling, past it the session is ended (GOAWAY ENHANCE_YOUR_CALM) before it costs more. A
   * stream reset before it was even dispatched (in the read that opened it: the "rapid reset"
   * signature) costs a whole token; one reset while its call ran (a client's deadline) a tenth.
   */
  streamReset(conn: Conn, weight = 1): void {
    if (!conn.session || conn.closed) return;
    const now = performance.now();
    const rate = this.limits.http2MaxConcurrentStreams; // per second; also the burst
    conn.resets.tokens = Math.min(rate, conn.resets.tokens + ((now - conn.resets.at) / 1000) * rate) - weight;
    conn.resets.at = now;
    if (conn.resets.tokens >= 0) return;
    this.notices.rapidReset({ limit_per_second: rate });
    const session = conn.session;
    this.forget(conn);
    if (!session.destroyed) session.destroy(undefined, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }

  /** The connection a request came on (while the request's stream is open). */
  connOf(req: HttpRequest): Conn | undefined {
    try {
      return this.byPeer.get(peerOf(req.socket));
    } catch {
      return undefined; // an HTTP/2 session already gone has no socket to ask
    }
  }

  private resetByClient(stream: http2.Http2Stream): boolean {
    return stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !this.resetHere.has(stream);
  }

  get inFlight(): number {
    return this.calls.size;
  }

  /** Aborts the handlers of the calls that `which` picks. */
  abortCalls(reason: unknown, which: (call: Call) => boolean = () => true): void {
    for (const call of this.calls) if (which(call)) call.cutoff.abort(reason);
  }

  /** Every open connection. */
  all(): Iterable<Conn> {
    return this.byPeer.values();
  }

  /** Resolves true once no call is in flight, or false after `ms`. */
  untilNoCalls(ms: number): Promise<boolean> {
    if (this.calls.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  stopSweeping(): void {
    clearInterval(this.ticker);
  }

  /**
   * Ends what has waited too long, oldest first, SWEEP_BATCH at a time: after each batch the
   * event loop serves other I/O (a health check) before the next, so thousands of connections
   * expiring together (an attack ending) never block the loop in one go.
   */
  private sweep(): void {
    this.continuing = false;
    const now = performance.now();
    let budget = SWEEP_BATCH;
    for (const conn of this.fresh) {
      if (budget-- <= 0 || now - conn.since < this.limits.requestHeadersTimeoutMs) break;
      this.notices.firstRequestTimeout({ timeout_ms: this.limits.requestHeadersTimeoutMs });
      this.close(conn, true);
    }
    for (const conn of this.idle) {
      if (budget-- <= 0 || now - conn.since < this.limits.idleConnectionTimeoutMs) break;
      this.close(conn, false);
    }
    for (const waiting of this.bodies) {
      if (budget-- <= 0 || now - waiting.since < this.limits.bodyTimeoutMs) break;
      this.bodies.delete(waiting);
      this.notices.bodyTimeout({ timeout_ms: this.limits.bodyTimeoutMs });
      if (isHttp1(waiting.req)) {
        waiting.req.socket.destroy();
      } else {
        this.resetHere.add(waiting.req.stream);
        waiting.req.stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    }
    if (budget < 0 && !this.continuing) {
      this.continuing = true;
      setImmediate(() => this.sweep());
    }
  }

  /**
   * Closes a connection after telling an HTTP/2 client (GOAWAY), or at once: a connection that
   * never sent a request is reset (no FIN handshake, no TIME_WAIT left behind for an attacker's
   * connection), anything else is closed.
   */
  private close(conn: Conn, force: boolean): void {
    const neverSpoke = this.fresh.delete(conn);
    this.idle.delete(conn);
    const session = conn.session;
    if (!force && session) {
      // Still counted, with its calls, until the socket closes: a call that crossed the GOAWAY
      // may finish. Without one in flight the client has GOAWAY_GRACE_MS to let go.
      conn.goingAway = true;
      session.close();
      setTimeout(() => conn.calls === 0 && conn.socket.destroy(), GOAWAY_GRACE_MS).unref();
      return;
    }
    this.forget(conn);
    if (neverSpoke && !conn.socket.destroyed) conn.socket.resetAndDestroy();
    else conn.socket.destroy();
  }

  private forget(conn: Conn): void {
    if (conn.closed) return;
    conn.closed = true;
    this.fresh.delete(conn);
    this.idle.delete(conn);
    this.open--;
  }
}

/** Identifies a connection from any of its faces: the raw socket, a TLS socket, an h2 session's socket proxy. */
function peerOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined; localAddress?: string | undefined; localPort?: number | undefined }): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;
}

function first<T>(set: Set<T>): T | undefined {
  for (const item of set) return item;
  return undefined;
}
