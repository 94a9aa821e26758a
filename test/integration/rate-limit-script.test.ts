import { randomBytes, randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { rateLimitKey } from "../../src/counters/keys.js";
import { RateLimiter, TokenBuckets, type Bucket } from "../../src/counters/rate-limiter.js";

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
    expect(await buckets.take([bucket()], NOW)).toEqual({ admitted: false, retryAfterMs: 100, bucket: 0 });
    expect(await buckets.take([bucket()], NOW + 40)).toEqual({ admitted: false, retryAfterMs: 60, bucket: 0 });
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
    expect(refused).toEqual({ admitted: false, retryAfterMs: 1000, bucket: 1 });
    // The calls bucket is untouched: still 10 tokens.
    expect(await admitted(calls, 20, NOW)).toBe(10);
  });

  it("reports the bucket that needs the longest wait", async () => {
    const calls = bucket();
    const guesses = bucket({ key: rateLimitKey(prefix, "key-1", "guesses"), perSecond: 0.5, burst: 1 });
    await buckets.charge([{ ...calls, take: 10 }, guesses], NOW);
    expect(await buckets.take([calls, { ...guesses, take: 0 }], NOW)).toEqual({ admitted: false, retryAfterMs: 2000, bucket: 1 });
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

  it("limits calls per key, and one key's calls do not touch another's", async () => {
    const limiter = new RateLimiter(redis, prefix, limits);
    const refusals = await Promise.all(Array.from({ length: 8 }, () => limiter.admit("a", false)));
    expect(refusals.filter((r) => r === null).length).toBe(5);
    expect(refusals.find((r) => r !== null)).toMatchObject({ reason: "rate_limited" });
    expect(await limiter.admit("b", false)).toBeNull();
  });

  it("pauses code lookups once unknown codes empty the guesses bucket, not lookups by id", async () => {
    const limiter = new RateLimiter(redis, prefix, { ...limits, perSecond: 1000, burst: 1000 });
    for (let i = 0; i < 3; i++) {
      expect(await limiter.admit("a", true)).toBeNull();
      await limiter.countUnknownCode("a");
    }
    const paused = await limiter.admit("a", true);
    expect(paused?.reason).toBe("too_many_invalid_codes");
    // 60 per minute: one per second.
    expect(paused?.retryAfterMs).toBeGreaterThan(500);
    expect(paused?.retryAfterMs).toBeLessThanOrEqual(1000);
    expect(await limiter.admit("a", false)).toBeNull();
    expect(await limiter.admit("b", true)).toBeNull();
  });

  it("leases tokens of a large budget locally, never running ahead of the bucket by more than a lease per process", async () => {
    // 1,000/s with a 2,000 burst: leases of 20, so a hot key costs one Redis call per 20 calls.
    const big = { perSecond: 1000, burst: 2000, codeGuessesPerMinute: 0, codeGuessBurst: 0 };
    const replicas = [new RateLimiter(redis, prefix, big), new RateLimiter(redis, prefix, big)];
    let admitted = 0;
    const started = Date.now();
    for (let i = 0; i < 3000; i++) if ((await replicas[i % 2]?.admit("hot", false)) === null) admitted++;
    const refilled = Math.ceil(((Date.now() - started) / 1000) * big.perSecond);
    expect(admitted).toBeGreaterThanOrEqual(2000);
    expect(admitted).toBeLessThanOrEqual(2000 + refilled + 2 * 20);
  });

  it("does nothing in Redis when every limit is 0", async () => {
    const limiter = new RateLimiter(redis, prefix, { perSecond: 0, burst: 0, codeGuessesPerMinute: 0, codeGuessBurst: 0 });
    expect(limiter.disabled).toBe(true);
    for (let i = 0; i < 20; i++) {
      expect(await limiter.admit("a", true)).toBeNull();
      await limiter.countUnknownCode("a");
    }
    expect(await keysUnder(prefix)).toEqual([]);
  });
});
