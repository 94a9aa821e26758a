import { randomBytes, randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { rateLimitKey } from "../../src/counters/keys.js";
import { LocalBuckets, RateLimiter, TokenBuckets, type Admitted, type Bucket, type Refused } from "../../src/counters/rate-limiter.js";

// rate_limit.lua through its typed face (TokenBuckets, RateLimiter) against the real Redis at
// 127.0.0.1:6379, under a key prefix of its own; only that prefix's keys are deleted afterwards.

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

let redis: Redis;
let prefix: string;
let buckets: TokenBuckets;

beforeAll(() => {
  redis = new Redis({ host: "127.0.0.1", port: 6379, enableAutoPipelining: false, maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  await redis.quit();
});

beforeEach(() => {
  prefix = `test:ratelimit:${randomBytes(8).toString("hex")}:`;
  buckets = new TokenBuckets(redis);
});

afterEach(async () => {
  const keys = await keysUnder(prefix);
  if (keys.length > 0) await redis.del(...keys);
});

/** Every key under `p`, by SCAN (never KEYS, never FLUSH*: the Redis is shared). */
async function keysUnder(p: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", `${p}*`, "COUNT", 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== "0");
  return found;
}

const bucket = (fields: Partial<Bucket> = {}): Bucket => ({
  key: rateLimitKey(prefix, "key-1", "calls"),
  perSecond: 10,
  burst: 10,
  take: 1,
  ...fields,
});

/** How many of `n` sequential takes at `now` are admitted. */
async function admitted(b: Bucket, n: number, now: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await buckets.take([b], now)).admitted) ok++;
  return ok;
}

describe("rate_limit.lua", () => {
  it("starts full: admits exactly `burst` calls at one instant, then refuses with the time until the next token", async () => {
    expect(await admitted(bucket(), 15, NOW)).toBe(10);
    // 10 tokens per second: one token every 100 ms.
    expect(await buckets.take([bucket()], NOW)).toEqual({ admitted: false, retryAfterMs: 100, bucket: 0, levels: [0] });
    expect(await buckets.take([bucket()], NOW + 40)).toEqual({ admitted: false, retryAfterMs: 60, bucket: 0, levels: [0.4] });
  });

  it("refills at `rate` per second: one token per 1/rate, fractions carried over", async () => {
    await admitted(bucket(), 10, NOW);
    expect(await admitted(bucket(), 5, NOW + 99)).toBe(0);
    expect(await admitted(bucket(), 5, NOW + 100)).toBe(1);
    // 250 ms later: 2.5 tokens; two are taken, half a token stays for the next 50 ms.
    expect(await admitted(bucket(), 5, NOW + 350)).toBe(2);
    expect(await buckets.take([bucket()], NOW + 350)).toMatchObject({ admitted: false, retryAfterMs: 50 });
    expect(await admitted(bucket(), 5, NOW + 400)).toBe(1);
  });

  it("never holds more than `burst`, however long it idled", async () => {
    await admitted(bucket(), 10, NOW);
    expect(await admitted(bucket(), 50, NOW + 3_600_000)).toBe(10);
  });

  it("handles fractional rates (30 per minute = one token every 2 s)", async () => {
    const slow = bucket({ perSecond: 0.5, burst: 3 });
    expect(await admitted(slow, 5, NOW)).toBe(3);
    expect(await buckets.take([slow], NOW)).toMatchObject({ admitted: false, retryAfterMs: 2000 });
    expect(await admitted(slow, 5, NOW + 1999)).toBe(0);
    expect(await admitted(slow, 5, NOW + 2000)).toBe(1);
  });

  it("refills nothing when the clock steps back", async () => {
    await admitted(bucket(), 10, NOW);
    expect(await admitted(bucket(), 5, NOW - 60_000)).toBe(0);
  });

  it("admits exactly 50 of 200 concurrent takes on a bucket of 50", async () => {
    const b = bucket({ perSecond: 0.001, burst: 50 });
    const many = new Redis({ host: "127.0.0.1", port: 6379, enableAutoPipelining: false, maxRetriesPerRequest: 1 });
    const clients = [redis, many];
    try {
      // Two connections, 200 calls in flight at once, on the server clock.
      const faces = clients.map((c) => new TokenBuckets(c));
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => faces[i % 2]?.take([b])));
      expect(results.filter((r) => r?.admitted).length).toBe(50);
    } finally {
      await many.quit();
    }
  });

  it("judges several buckets at once: refused by any means nothing is taken from the others", async () => {
    const calls = bucket();
    const guesses = bucket({ key: rateLimitKey(prefix, "key-1", "guesses"), perSecond: 1, burst: 2 });
    await buckets.charge([{ ...guesses, take: 2 }], NOW);
    const refused = await buckets.take([calls, { ...guesses, take: 0 }], NOW);
    expect(refused).toEqual({ admitted: false, retryAfterMs: 1000, bucket: 1, levels: [10, 0] });
    // The calls bucket is untouched: still 10 tokens.
    expect(await admitted(calls, 20, NOW)).toBe(10);
  });

  it("reports the bucket that needs the longest wait", async () => {
    const calls = bucket();
    const guesses = bucket({ key: rateLimitKey(prefix, "key-1", "guesses"), perSecond: 0.5, burst: 1 });
    await buckets.charge([{ ...calls, take: 10 }, guesses], NOW);
    expect(await buckets.take([calls, { ...guesses, take: 0 }], NOW)).toMatchObject({ admitted: false, retryAfterMs: 2000, bucket: 1 });
  });

  it("a look (take 0) needs a token but takes none", async () => {
    const b = bucket({ burst: 1 });
    for (let i = 0; i < 5; i++) expect((await buckets.take([{ ...b, take: 0 }], NOW)).admitted).toBe(true);
    expect(await admitted(b, 2, NOW)).toBe(1);
  });

  it("charge never goes below zero, so debt does not outlast one refill", async () => {
    const b = bucket({ burst: 2 });
    await buckets.charge([{ ...b, take: 100 }], NOW);
    expect(await admitted(b, 5, NOW + 100)).toBe(1);
  });

  it("give puts tokens back, never above the burst", async () => {
    const b = bucket({ burst: 3, perSecond: 0.001 });
    await buckets.charge([{ ...b, take: 3 }], NOW);
    expect(await buckets.give([{ ...b, take: 2 }], NOW)).toMatchObject({ admitted: true, levels: [2] });
    expect(await buckets.give([{ ...b, take: 5 }], NOW)).toMatchObject({ admitted: true, levels: [3] });
    expect(await admitted(b, 5, NOW)).toBe(3);
  });

  it("reports each bucket's level after the call, fractions included", async () => {
    const b = bucket({ perSecond: 10, burst: 10 });
    expect(await buckets.take([{ ...b, take: 3 }], NOW)).toMatchObject({ admitted: true, granted: 3, levels: [7] });
    expect((await buckets.take([{ ...b, take: 0 }], NOW + 25)).levels[0]).toBeCloseTo(7.25, 10);
  });

  it("lets idle buckets expire once they would be full again", async () => {
    await buckets.take([bucket({ perSecond: 10, burst: 10 })]);
    const ttl = await redis.pttl(rateLimitKey(prefix, "key-1", "calls"));
    // 1 token short of 10 at 10/s: full again in 100 ms, plus a second of slack.
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1_100);
  });

  it("keeps every key of one API key in one hash-tag slot", () => {
    const id = randomUUID();
    const tag = (k: string) => /\{([^}]*)\}/.exec(k)?.[1];
    expect(tag(rateLimitKey(prefix, id, "calls"))).toBe(`k:${id}`);
    expect(tag(rateLimitKey(prefix, id, "guesses"))).toBe(`k:${id}`);
  });
});

describe("RateLimiter", () => {
  const limits = { perSecond: 5, burst: 5, codeGuessesPerMinute: 60, codeGuessBurst: 3 };
  const refusalOf = (a: Admitted | Refused) => a.refused;

  it("limits calls per key, and one key's calls do not touch another's", async () => {
    const limiter = new RateLimiter(redis, prefix, limits);
    const answers = await Promise.all(Array.from({ length: 8 }, () => limiter.admit("a", "")));
    expect(answers.filter((a) => a.refused === null).length).toBe(5);
    expect(answers.find((a) => a.refused !== null)?.refused).toMatchObject({ reason: "rate_limited" });
    expect((await limiter.admit("b", "")).refused).toBeNull();
  });

  it("pauses code lookups once unknown codes empty the guesses bucket, not lookups by id", async () => {
    const limiter = new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000 });
    for (let i = 0; i < 3; i++) {
      const a = await limiter.admit("a", `GUESS-${i}`);
      if (a.refused) throw new Error("refused too early");
      expect(await a.settle("unknown")).toBeNull();
    }
    const paused = refusalOf(await limiter.admit("a", "REAL"));
    expect(paused?.reason).toBe("too_many_invalid_codes");
    // 60 per minute: one per second.
    expect(paused?.retryAfterMs).toBeGreaterThan(500);
    expect(paused?.retryAfterMs).toBeLessThanOrEqual(1000);
    expect((await limiter.admit("a", "")).refused).toBeNull();
    expect((await limiter.admit("b", "REAL")).refused).toBeNull();
  });

  it("reserves a token per lookup in flight: with 3 tokens, 3 of 10 unknown lookups run, the others wait and are refused once those are spent", async () => {
    const limiter = new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000 });
    const pending = Array.from({ length: 10 }, (_, i) => limiter.admit("a", `GUESS-${i}`));
    const settled: (Admitted | Refused)[] = [];
    pending.forEach((p) => void p.then((a) => settled.push(a)));
    await expect.poll(() => settled.length).toBe(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(settled.length).toBe(3); // the other seven wait for one of the three
    for (const a of settled.splice(0)) if (!a.refused) await a.settle("unknown");
    const rest = await Promise.all(pending.slice(3));
    expect(rest.every((a) => a.refused?.reason === "too_many_invalid_codes")).toBe(true);
  });

  it("gives a found code's token back, so a waiting lookup runs, and looks that code up again without a reservation", async () => {
    const limiter = new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000, codeGuessBurst: 1 });
    const first = await limiter.admit("a", "REAL");
    if (first.refused) throw new Error("refused");
    const waiting = limiter.admit("a", "OTHER");
    await first.settle("found");
    const second = await waiting;
    expect(second.refused).toBeNull();
    // "OTHER" holds the only token; the found code needs none.
    const again = await Promise.all(Array.from({ length: 10 }, () => limiter.admit("a", "REAL")));
    expect(again.every((a) => a.refused === null)).toBe(true);
  });

  it("holds one reservation per code in flight: 40 lookups of one code on two replicas, with a bucket of 3, all run", async () => {
    const replicas = [new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000 }), new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000 })];
    const admitted = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const a = await replicas[i % 2]?.admit("a", "HOT");
        if (!a || a.refused) return false;
        await new Promise((r) => setTimeout(r, 5)); // the call runs, then finds the code
        await a.settle("found");
        return true;
      }),
    );
    expect(admitted.every(Boolean)).toBe(true);
  });

  it("does not line lookups of one code up behind each other when the first says nothing about the code (an outage)", async () => {
    const limiter = new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000, codeGuessBurst: 10 });
    const first = await limiter.admit("a", "SAME");
    if (first.refused) throw new Error("refused");
    const admitted: (Admitted | Refused)[] = [];
    const rest = Array.from({ length: 4 }, () => limiter.admit("a", "SAME").then((a) => admitted.push(a)));
    await new Promise((r) => setTimeout(r, 20));
    expect(admitted).toHaveLength(0); // waiting for the first one's answer
    await first.settle("undecided");
    // Each reserves on its own now, all at once: none waits for another's answer.
    await expect.poll(() => admitted.length, { timeout: 500 }).toBe(4);
    expect(admitted.every((a) => a.refused === null)).toBe(true);
    await Promise.all(rest);
  });

  it("lets a lookup refused while another replica holds the tokens look once more a moment later", async () => {
    const a = new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000 });
    const b = new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000 });
    const held = await Promise.all(["ONE", "TWO", "THREE"].map((code) => a.admit("k", code)));
    setTimeout(() => void (held[0] && !held[0].refused && held[0].settle("found")), 20);
    expect((await b.admit("k", "FOUR")).refused).toBeNull();
  });

  it("refuses an unknown answer for a code that was found earlier once the bucket is empty", async () => {
    const limiter = new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000, codeGuessBurst: 1 });
    const found = await limiter.admit("a", "GONE-SOON");
    if (found.refused) throw new Error("refused");
    await found.settle("found");
    const guess = await limiter.admit("a", "GUESS");
    if (guess.refused) throw new Error("refused");
    await guess.settle("unknown"); // the one token is spent
    const gone = await limiter.admit("a", "GONE-SOON");
    if (gone.refused) throw new Error("a found code needs no reservation");
    expect((await gone.settle("unknown"))?.reason).toBe("too_many_invalid_codes");
  });

  it("leases tokens of a large budget locally, never running ahead of the bucket by more than a lease per process", async () => {
    // 1,000/s with a 2,000 burst: leases of 20, so a hot key costs one Redis call per 20 calls.
    const big = { perSecond: 1000, burst: 2000, codeGuessesPerMinute: 0, codeGuessBurst: 0 };
    const replicas = [new RateLimiter(redis, prefix, big), new RateLimiter(redis, prefix, big)];
    let admitted = 0;
    const started = Date.now();
    for (let i = 0; i < 3000; i++) if ((await replicas[i % 2]?.admit("hot", ""))?.refused === null) admitted++;
    const refilled = Math.ceil(((Date.now() - started) / 1000) * big.perSecond);
    expect(admitted).toBeGreaterThanOrEqual(2000);
    expect(admitted).toBeLessThanOrEqual(2000 + refilled + 2 * 20);
  });

  it("does not fail open when Redis is unreachable: the process's own buckets judge", async () => {
    const dead = new Redis({ host: "127.0.0.1", port: 1, enableAutoPipelining: false, maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    dead.on("error", () => undefined);
    try {
      const limiter = new RateLimiter(dead, prefix, limits);
      const downs: unknown[] = [];
      limiter.events = { redisDown: (e) => downs.push(e), redisBack: () => undefined };
      let unknown = 0;
      for (let i = 0; i < 10; i++) {
        const a = await limiter.admit("a", `GUESS-${i}`);
        if (a.refused === null && (await a.settle("unknown")) === null) unknown++;
      }
      expect(unknown).toBe(3);
      expect(downs).toHaveLength(1);
      const calls = await Promise.all(Array.from({ length: 10 }, () => limiter.admit("b", "")));
      expect(calls.filter((a) => a.refused === null).length).toBe(5);
    } finally {
      dead.disconnect();
    }
  });

  it("does nothing in Redis when every limit is 0", async () => {
    const limiter = new RateLimiter(redis, prefix, { perSecond: 0, burst: 0, codeGuessesPerMinute: 0, codeGuessBurst: 0 });
    expect(limiter.disabled).toBe(true);
    for (let i = 0; i < 20; i++) {
      const a = await limiter.admit("a", `GUESS-${i}`);
      expect(a.refused).toBeNull();
      if (a.refused === null) await a.settle("unknown");
    }
    expect(await keysUnder(prefix)).toEqual([]);
  });
});

describe("LocalBuckets", () => {
  it("judges like rate_limit.lua: a burst at once, then one token per 1/rate, never above the burst", () => {
    let now = NOW;
    const local = new LocalBuckets(10, () => now);
    const b = bucket({ perSecond: 0.5, burst: 3 });
    const admitted = (n: number) => Array.from({ length: n }, () => local.run("take", [b])).filter((d) => d.admitted).length;
    expect(admitted(5)).toBe(3);
    expect(local.run("take", [b])).toMatchObject({ admitted: false, retryAfterMs: 2000 });
    now += 2_000;
    expect(admitted(5)).toBe(1);
    local.run("give", [{ ...b, take: 10 }]);
    expect(admitted(5)).toBe(3);
  });

  it("goes on from a level Redis reported", () => {
    const local = new LocalBuckets(10, () => NOW);
    const b = bucket({ perSecond: 0.001, burst: 30 });
    local.mirror(b.key, 2.5);
    expect(Array.from({ length: 5 }, () => local.run("take", [b])).filter((d) => d.admitted).length).toBe(2);
  });
});
