import { EventEmitter } from "node:events";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server/server.js";
import { startTestServer } from "./support/test-server.js";

// What one more open stream costs must not depend on how many are open. The defect: connect-node
// linked every call's ctx.signal to one shared shutdown AbortSignal, so each stream added (and
// later removed) a listener on that one EventTarget; Node walks an EventTarget's whole listener
// list on every add and remove, which made 90,000 idle streams quadratic. Proven here without a
// clock: with 1,000 idle streams open, no event target or emitter the server shares between
// streams holds more than a handful of listeners.

const STREAMS = 1_000;
/** Per-object listeners a shared object may hold whatever the number of streams. */
const FEW = 20;

let server: RunningServer;
const targets = new Map<object, number>();
const patched: { restore: () => void }[] = [];

/** Counts listeners per object while installed (adds minus removes; listeners that fired once are counted as still there, erring high). */
function countListeners(): void {
  const count = (proto: object, add: string, removes: string[]): void => {
    const methods = proto as Record<string, (this: object, ...args: unknown[]) => unknown>;
    const original = methods[add];
    if (!original) return;
    methods[add] = function (this: object, ...args: unknown[]) {
      targets.set(this, (targets.get(this) ?? 0) + 1);
      return original.apply(this, args);
    };
    const originals = removes.map((name) => [name, methods[name]] as const);
    for (const [name, fn] of originals) {
      if (!fn) continue;
      methods[name] = function (this: object, ...args: unknown[]) {
        targets.set(this, Math.max(0, (targets.get(this) ?? 0) - 1));
        return fn.apply(this, args);
      };
    }
    patched.push({
      restore: () => {
        methods[add] = original;
        for (const [name, fn] of originals) if (fn) methods[name] = fn;
      },
    });
  };
  count(EventTarget.prototype, "addEventListener", ["removeEventListener"]);
  count(EventEmitter.prototype, "on", ["removeListener"]);
}

beforeAll(async () => {
  const limits = { maxConnections: 100, http2MaxConcurrentStreams: STREAMS + 100, requestHeadersTimeoutMs: 60_000, bodyTimeoutMs: 60_000, idleConnectionTimeoutMs: 60_000 };
  ({ server } = await startTestServer({ limits }));
});

afterAll(async () => {
  for (const p of patched.splice(0)) p.restore();
  await server?.close();
});

describe("the cost of one more stream", () => {
  it(`adds no listener per stream to anything the streams share (${STREAMS} idle streams open)`, async () => {
    const session = http2.connect(server.url);
    session.on("error", () => undefined);
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
    countListeners();
    const streams: http2.ClientHttp2Stream[] = [];
    try {
      for (let i = 0; i < STREAMS; i++) {
        // Headers only: each call waits for a body that never comes.
        const stream = session.request({ ":method": "POST", ":path": "/promotions.v1.PromotionService/GetPromotion", "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => undefined);
        streams.push(stream);
      }
      // Every stream has reached its handler once the server has registered listeners for all of them.
      await expect.poll(() => [...targets.values()].reduce((a, b) => a + b, 0), { timeout: 10_000 }).toBeGreaterThan(STREAMS * 3);
      await new Promise((r) => setTimeout(r, 200));
      const crowded = [...targets.entries()].filter(([target]) => target !== session).map(([, n]) => n);
      expect(Math.max(...crowded)).toBeLessThanOrEqual(FEW);
    } finally {
      for (const p of patched.splice(0)) p.restore();
      for (const s of streams) s.close(http2.constants.NGHTTP2_CANCEL);
      session.destroy();
    }
  });
});
