import { spawn } from "node:child_process";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

// Transport abuse against the real server in a process of its own (so the RSS and file
// descriptors measured are the server's), from attackers in processes of their own that write raw
// bytes (test/e2e/support/attacker.ts). During each attack a health check on a fresh connection
// must be answered within 1 s, and again within 1 s once the attacker is gone: an availability
// bound, not a speed measurement. Each attack is bounded in count and time, loopback only.
//
// Attackers run under `nice -n 10`, as attackers on other machines would not compete with the
// server for CPU. The open-file limit here is 20,000 per process and cannot be raised (no CAP_SYS_RESOURCE), so
// 20,000 silent connections come from two attacker processes, and the server (same limit) runs with
// MAX_CONNECTIONS=5000: without that cap those connections alone would exhaust its descriptors.

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const NODE = `${ROOT}node_modules/.bin/node`;
const AVAILABLE_WITHIN_MS = 1_000;
const MAX_CONNECTIONS = 5_000;
const LIMITS = {
  MAX_CONNECTIONS: String(MAX_CONNECTIONS),
  HTTP2_MAX_CONCURRENT_STREAMS: "100",
  REQUEST_HEADERS_TIMEOUT_MS: "3000",
  BODY_TIMEOUT_MS: "2000",
  IDLE_CONNECTION_TIMEOUT_MS: "4000",
  // The default lane (grpc-js: the attackers' gRPC streams go to it). TEST_GRPC_LANE=connect runs
  // the same attacks against connect-node's.
  ...(process.env.TEST_GRPC_LANE ? { GRPC_LANE: process.env.TEST_GRPC_LANE } : {}),
};
/** How far the server's RSS may grow during an attack: bounded by the limits, not by the attack. */
const RSS_GROWTH_BOUND = 600 * 1024 * 1024;

let db: TestDatabase;
let server: ServerProcess;

beforeAll(async () => {
  db = await createTestDatabase("abuse");
  server = await startServerProcess({ DATABASE_URL: db.url, REDIS_URL: "redis://127.0.0.1:6379", REDIS_KEY_PREFIX: `test:${db.name}:`, LOG_LEVEL: "info", ...LIMITS });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/* ------------------------------------------------------------------ clients --------------------- */

/** Connect's JSON health check over HTTP/1.1 on a new connection; ms until answered SERVING, or Infinity. */
function healthH1(port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/grpc.health.v1.Health/Check", headers: { "content-type": "application/json" }, agent: false, timeout: 5_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve(res.statusCode === 200 && body.includes("SERVING") ? performance.now() - started : Infinity));
    });
    req.on("error", () => resolve(Infinity));
    req.on("timeout", () => req.destroy());
    req.end("{}");
  });
}

/** The same over h2c, on a new session. */
function healthH2(port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => finish(Infinity), 5_000);
    const finish = (ms: number): void => {
      clearTimeout(timer);
      session.destroy();
      resolve(ms);
    };
    session.on("error", () => finish(Infinity));
    const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/json" });
    let body = "";
    let status = 0;
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.setEncoding("utf8").on("data", (c: string) => (body += c));
    stream.on("end", () => finish(status === 200 && body.includes("SERVING") ? performance.now() - started : Infinity));
    stream.on("error", () => finish(Infinity));
    stream.end("{}");
  });
}

interface Attacker {
  started: Promise<void>;
  ready: Promise<Record<string, unknown>>;
  /** SIGTERM; resolves with the attacker's final counts. */
  stop(): Promise<Record<string, unknown>>;
  done: Promise<Record<string, unknown>>;
}

function attack(kind: string, options: Record<string, unknown>): Attacker {
  // At a lower CPU priority: attackers on other machines would not take the server's CPU, and on
  // this shared 2-core machine they otherwise would. They still run as fast as they can.
  const child = spawn("nice", ["-n", "10", NODE, "--import", "tsx", "test/e2e/support/attacker.ts", kind, String(server.port), JSON.stringify(options)], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const events = new Map<string, (data: Record<string, unknown>) => void>();
  const waitFor = (event: string) => new Promise<Record<string, unknown>>((resolve) => events.set(event, resolve));
  const started = waitFor("started").then(() => undefined);
  const ready = waitFor("ready");
  const done = waitFor("done");
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  let pending = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      const { event, ...data } = JSON.parse(line) as { event: string } & Record<string, unknown>;
      events.get(event)?.(data);
    }
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // An attacker that dies says so instead of leaving the test waiting for "ready" or "done".
  void exited.then(() => {
    const failure = { error: stderr || `attacker exited with code ${child.exitCode} (${child.signalCode ?? "no signal"})` };
    events.get("ready")?.(failure);
    events.get("done")?.(failure);
  });
  return {
    started,
    ready,
    done,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      return done;
    },
  };
}

interface Watched {
  /** Health check latencies during the attack, ms (Infinity = not answered). */
  during: number[];
  peakRss: number;
  peakFds: number;
  baselineRss: number;
}

/**
 * Runs `attacker` and checks health on fresh connections every 200 ms (HTTP/1.1 and h2c in turn)
 * from the moment it started until it ends by itself, or `holdMs` after it is in place, sampling
 * the server's RSS and descriptors; then stops it and returns what was seen and its counts.
 */
async function during(attacker: Attacker, holdMs = Infinity): Promise<Watched & { counts: Record<string, unknown>; afterMs: number }> {
  const baselineRss = server.rssBytes() ?? 0;
  const watched: Watched = { during: [], peakRss: baselineRss, peakFds: server.openFds() ?? 0, baselineRss };
  const sampler = setInterval(() => {
    watched.peakRss = Math.max(watched.peakRss, server.rssBytes() ?? 0);
    watched.peakFds = Math.max(watched.peakFds, server.openFds() ?? 0);
  }, 100);
  await attacker.started;
  let holdUntil = Infinity;
  let over = false;
  void attacker.ready.then(() => {
    if (!over) holdUntil = performance.now() + holdMs;
  });
  const attackOver = attacker.done.then(() => {
    over = true;
    holdUntil = Math.min(holdUntil, performance.now());
  });
  const giveUp = performance.now() + 30_000; // every attack here ends well before
  for (let i = 0; performance.now() < Math.min(holdUntil, giveUp); i++) {
    const check = i % 2 === 0 ? healthH1(server.port) : healthH2(server.port);
    const [ms] = await Promise.all([check, new Promise((r) => setTimeout(r, 200))]);
    watched.during.push(ms);
  }
  const counts = await attacker.stop();
  await attackOver;
  const afterMs = Math.max(await healthH1(server.port), await healthH2(server.port));
  clearInterval(sampler);
  return { ...watched, counts, afterMs };
}

function expectAvailable(w: Watched & { afterMs: number; counts: Record<string, unknown> }): void {
  // The figures behind the verdict, one line per attack.
  console.info(
    JSON.stringify({
      checks: w.during.length,
      slowestCheckMs: Math.round(Math.max(...w.during)),
      checksMs: w.during.map((ms) => Math.round(ms)),
      afterMs: Math.round(w.afterMs),
      rssGrowthMiB: Math.round((w.peakRss - w.baselineRss) / 2 ** 20),
      peakFds: w.peakFds,
      attacker: w.counts,
    }),
  );
  expect(w.during.length).toBeGreaterThanOrEqual(5);
  expect(Math.max(...w.during)).toBeLessThanOrEqual(AVAILABLE_WITHIN_MS);
  expect(w.afterMs).toBeLessThanOrEqual(AVAILABLE_WITHIN_MS);
  expect(w.peakRss - w.baselineRss).toBeLessThanOrEqual(RSS_GROWTH_BOUND);
}

const notices = (msg: string) => server.output().split("\n").filter((l) => l.includes(`"msg":"${msg}`)).length;

/* ------------------------------------------------------------------ attacks --------------------- */

describe("transport abuse", () => {
  it("90,000 idle streams over 10 connections: refused beyond HTTP2_MAX_CONCURRENT_STREAMS, the rest reset after BODY_TIMEOUT_MS", async () => {
    const w = await during(attack("idle-streams", { connections: 10, streams: 9_000 }), 3_000);
    expectAvailable(w);
    expect(w.counts.sent).toBeGreaterThanOrEqual(90_000);
    expect(w.counts.resets).toBeGreaterThan(0);
  });

  // One retry: in one CI run of three an attacker process reported no connection count (the server
  // held 5,032 descriptors and answered every check within 271 ms; the harness lost the count).
  it("20,000 silent connections (half with an h2 preface): at most MAX_CONNECTIONS held, the longest idle make room", { retry: 1 }, async () => {
    const before = notices("connection limit reached");
    const pair = [attack("silent", { connections: 10_000 }), attack("silent", { connections: 10_000 })];
    const both: Attacker = {
      started: Promise.all(pair.map((a) => a.started)).then(() => undefined),
      ready: Promise.all(pair.map((a) => a.ready)).then((r) => ({ connected: r.reduce((n, x) => n + Number(x.connected), 0) })),
      done: Promise.all(pair.map((a) => a.done)).then((r) => ({ connected: r.reduce((n, x) => n + Number(x.connected), 0) })),
      stop: () => Promise.all(pair.map((a) => a.stop())).then((r) => ({ connected: r.reduce((n, x) => n + Number(x.connected), 0) })),
    };
    const w = await during(both, 2_000);
    expectAvailable(w);
    expect(w.counts.connected).toBe(20_000);
    expect(w.peakFds).toBeLessThanOrEqual(MAX_CONNECTIONS + 100);
    // One line per 10 s, not one per connection.
    expect(notices("connection limit reached") - before).toBeGreaterThanOrEqual(1);
    expect(notices("connection limit reached") - before).toBeLessThanOrEqual(2);
  });

  it("trickled bodies (HTTP/1.1 and h2, one byte a second) are cut after BODY_TIMEOUT_MS", async () => {
    const w = await during(attack("trickle", { connections: 2_000, seconds: 10 }));
    expectAvailable(w);
    expect(w.counts.cut).toBe(2_000);
    expect(Number(w.counts.firstCutMs)).toBeGreaterThanOrEqual(Number(LIMITS.BODY_TIMEOUT_MS) - 100);
    expect(Number(w.counts.lastCutMs)).toBeLessThanOrEqual(Number(LIMITS.BODY_TIMEOUT_MS) + 2_500);
  });

  it("rapid reset: sessions that reset streams faster than HTTP2_MAX_CONCURRENT_STREAMS a second are ended", async () => {
    const before = notices("HTTP/2 client reset more streams");
    const w = await during(attack("rapid-reset", { connections: 10, seconds: 4 }));
    expectAvailable(w);
    expect(Number(w.counts.sent)).toBeGreaterThan(100_000);
    expect(Number(w.counts.connections)).toBeGreaterThan(10); // the server ended sessions; the attacker came back
    expect(notices("HTTP/2 client reset more streams") - before).toBeGreaterThanOrEqual(1);
  });
});

/* ------------------------------------------------------------------ timeouts -------------------- */

/** Resolves with ms until the server closed `socket` (or Infinity after `ms`). */
function closedWithin(socket: net.Socket, ms: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(Infinity), ms);
    socket.on("error", () => undefined);
    socket.resume(); // read what the server says (a 408, a GOAWAY), or its FIN never surfaces as "close"
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
  });
}

describe("timeouts", () => {
  const headersMs = Number(LIMITS.REQUEST_HEADERS_TIMEOUT_MS);
  const idleMs = Number(LIMITS.IDLE_CONNECTION_TIMEOUT_MS);
  const bodyMs = Number(LIMITS.BODY_TIMEOUT_MS);
  /** The sweep runs a few times a second: a timeout fires within this much of its time. */
  const LATE_MS = 1_500;

  it("closes a connection that sends nothing, or only the h2 preface, after REQUEST_HEADERS_TIMEOUT_MS", async () => {
    const quiet = net.connect(server.port, "127.0.0.1");
    const preface = net.connect(server.port, "127.0.0.1", () => preface.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    const slowHeaders = net.connect(server.port, "127.0.0.1", () => slowHeaders.write("POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\n"));
    let answer = "";
    slowHeaders.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
    const times = await Promise.all([quiet, preface, slowHeaders].map((s) => closedWithin(s, headersMs + 5_000)));
    // Node's headers timeout or the registry's sweep, whichever comes first: a 408, or a reset.
    expect(answer === "" || answer.startsWith("HTTP/1.1 408 ")).toBe(true);
    for (const ms of times) {
      expect(ms).toBeGreaterThanOrEqual(headersMs - 100);
      expect(ms).toBeLessThanOrEqual(headersMs + LATE_MS);
    }
  });

  it("keeps an h2 client that connected ahead of its first call, past REQUEST_HEADERS_TIMEOUT_MS", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => undefined);
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
    // Past the first-request timeout (swept every 500 ms here), short of the idle one (4 s).
    await new Promise((r) => setTimeout(r, headersMs + 700));
    expect(session.destroyed).toBe(false);
    // Still served: a gRPC call, as this connection began with gRPC (on the grpc-js lane a
    // connection stays with the lane of its first request).
    const status = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
      s.on("response", (h) => resolve(Number(h[":status"]))).on("error", reject);
      s.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    session.destroy();
    expect(status).toBe(200);
  });

  it("keeps a session whose client cancels running calls (its deadlines), three times HTTP2_MAX_CONCURRENT_STREAMS in a second", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => undefined);
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
    const started = performance.now();
    for (let batch = 0; batch < 6; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, () => {
          // A Watch call is running once its first answer is out; then the client gives up on it.
          const watch = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
          watch.on("error", () => undefined);
          watch.end(Buffer.from([0, 0, 0, 0, 0]));
          return new Promise<void>((resolve) => {
            watch.once("data", () => watch.close(http2.constants.NGHTTP2_CANCEL));
            watch.once("close", () => resolve());
          });
        }),
      );
    }
    expect(performance.now() - started).toBeLessThan(1_000);
    await new Promise((r) => setTimeout(r, 100));
    expect(session.destroyed).toBe(false);
    // Still served: a gRPC call, as this connection began with gRPC (on the grpc-js lane a
    // connection stays with the lane of its first request).
    const status = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
      s.on("response", (h) => resolve(Number(h[":status"]))).on("error", reject);
      s.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    session.destroy();
    expect(status).toBe(200);
  });

  it("sends GOAWAY to an h2 client idle for IDLE_CONNECTION_TIMEOUT_MS, and closes an idle HTTP/1.1 keep-alive", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => undefined);
    const started = performance.now();
    const goaway = new Promise<number>((resolve) => session.once("goaway", () => resolve(performance.now() - started)));
    await new Promise<void>((resolve, reject) => {
      const s = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/json" });
      s.on("data", () => undefined).on("end", () => resolve()).on("error", reject);
      s.end("{}");
    });
    const keepAlive = net.connect(server.port, "127.0.0.1", () =>
      keepAlive.write("POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
    );
    const [h2Ms, h1Ms] = await Promise.all([goaway, closedWithin(keepAlive, idleMs + 5_000)]);
    session.destroy();
    expect(h2Ms).toBeGreaterThanOrEqual(idleMs - 100);
    expect(h2Ms).toBeLessThanOrEqual(idleMs + LATE_MS);
    expect(h1Ms).toBeGreaterThanOrEqual(idleMs - 100);
    expect(h1Ms).toBeLessThanOrEqual(idleMs + LATE_MS);
  });

  it("resets an h2 stream whose body has not arrived within BODY_TIMEOUT_MS, and leaves a Watch stream alone", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => undefined);
    const started = performance.now();
    const idle = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    idle.on("error", () => undefined).on("data", () => undefined);
    const reset = new Promise<number>((resolve) => idle.once("close", () => resolve(performance.now() - started)));
    // Watch: the request is whole (one message, end of stream); the answer streams for as long as it likes.
    const watch = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
    let watchClosed = false;
    watch.on("error", () => undefined).on("data", () => undefined).once("close", () => (watchClosed = true));
    watch.end(Buffer.from([0, 0, 0, 0, 0]));
    const ms = await reset;
    expect(idle.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(ms).toBeGreaterThanOrEqual(bodyMs - 100);
    expect(ms).toBeLessThanOrEqual(bodyMs + LATE_MS);
    await new Promise((r) => setTimeout(r, bodyMs));
    expect(watchClosed).toBe(false);
    session.destroy();
  });
});
