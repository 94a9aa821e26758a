import type { RateLimits } from "../config.js";
import { rateLimitKey } from "./keys.js";
import type { RedisClient } from "./redis.js";
import { defineScript, type ScriptFn } from "./scripts.js";

// The typed face of rate_limit.lua (token buckets in Redis) and the per-API-key policy built on
// it: a bucket of calls, and a much smaller bucket of unknown codes that stops code enumeration.

/** One bucket of one script call. */
export interface Bucket {
  key: string;
  /** Refill, tokens per second (> 0). */
  perSecond: number;
  /** Capacity (>= 1). */
  burst: number;
  /** Tokens the call removes; 0 only requires one to be there. */
  take: number;
}

export type Decision = { admitted: true; granted: number } | { admitted: false; retryAfterMs: number; bucket: number };

/** rate_limit.lua: atomic refill + check + take over buckets that share one hash tag. */
export class TokenBuckets {
  private readonly script: ScriptFn;

  constructor(readonly redis: RedisClient) {
    this.script = defineScript(redis, "rate_limit");
  }

  /** Admits only if every bucket holds a token, then takes from each; a refusal moves nothing. */
  take(buckets: readonly Bucket[], now?: number): Promise<Decision> {
    return this.run("take", buckets, now);
  }

  /** Takes from every bucket without judging (never below zero): counts what already happened. */
  async charge(buckets: readonly Bucket[], now?: number): Promise<void> {
    await this.run("charge", buckets, now);
  }

  /** `now` (ms) is for tests; by default the Redis server's clock, shared by every replica. */
  private async run(mode: "take" | "charge", buckets: readonly Bucket[], now: number | undefined): Promise<Decision> {
    if (buckets.length === 0) return { admitted: true, granted: 0 };
    const args = buckets.flatMap((b) => [String(b.perSecond), String(b.burst), String(b.take)]);
    const reply = await this.script(buckets.length, ...buckets.map((b) => b.key), mode, now === undefined ? "" : String(now), ...args);
    if (!Array.isArray(reply) || reply.length < 3) throw new Error(`unexpected rate_limit reply: ${JSON.stringify(reply)}`);
    const [admitted, retryAfterMs, bucket, granted] = reply.map(Number);
    return admitted === 1 ? { admitted: true, granted: granted ?? 0 } : { admitted: false, retryAfterMs: retryAfterMs ?? 1, bucket: (bucket ?? 1) - 1 };
  }
}

export type Refusal = { reason: "rate_limited" | "too_many_invalid_codes"; retryAfterMs: number };

/** How long leased call tokens stay usable. */
const LEASE_MS = 1_000;
/** How long a passed check of the code-guess bucket is trusted before Redis is asked again. */
const GUESS_CHECK_MS = 100;

/**
 * Per API key: every limited call takes a token from the key's `calls` bucket; a call that looks a
 * code up also needs a token in its `guesses` bucket, which only unknown codes drain (after the
 * fact, see countUnknownCode). Either limit is off when its rate or burst is 0.
 */
export class RateLimiter {
  private readonly buckets: TokenBuckets;
  private readonly leases = new Map<string, { tokens: number; until: number; guessesOkUntil: number }>();
  private readonly refills = new Map<string, Promise<Refusal | null>>();

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly limits: RateLimits,
  ) {
    this.buckets = new TokenBuckets(redis);
  }

  /** True when no limit is on: the interceptor then never calls Redis. */
  get disabled(): boolean {
    return !this.callsOn && !this.guessesOn;
  }

  /** Null when admitted (a token is taken from `calls`); else which limit refused and for how long. */
  async admit(apiKeyId: string, looksUpCode: boolean): Promise<Refusal | null> {
    if (!this.callsOn) return this.judge(apiKeyId, looksUpCode, 0);
    // One lease refill per key at a time: concurrent calls wait for it and then spend its tokens,
    // instead of each taking a lease from Redis and leaving most of them unused.
    for (;;) {
      if (this.spendLocally(apiKeyId, looksUpCode)) return null;
      const pending = this.refills.get(apiKeyId);
      if (pending) {
        const refusal = await pending;
        if (refusal) return refusal;
        continue;
      }
      const refill = this.judge(apiKeyId, looksUpCode, this.leaseSize);
      this.refills.set(apiKeyId, refill);
      try {
        return await refill;
      } finally {
        if (this.refills.get(apiKeyId) === refill) this.refills.delete(apiKeyId);
      }
    }
  }

  /** Spends a leased token when the lease is live and, for a code lookup, the guess bucket was seen non-empty lately. */
  private spendLocally(apiKeyId: string, looksUpCode: boolean): boolean {
    const lease = this.leases.get(apiKeyId);
    const now = Date.now();
    if (!lease || lease.tokens <= 0 || now >= lease.until) return false;
    if (looksUpCode && this.guessesOn && now >= lease.guessesOkUntil) return false;
    lease.tokens--;
    return true;
  }

  /** One Redis call: takes up to `lease` call tokens (one for this call, the rest leased) and checks the guess bucket. */
  private async judge(apiKeyId: string, looksUpCode: boolean, lease: number): Promise<Refusal | null> {
    const judged: { bucket: Bucket; reason: Refusal["reason"] }[] = [];
    if (this.callsOn) judged.push({ bucket: this.calls(apiKeyId, lease), reason: "rate_limited" });
    if (looksUpCode && this.guessesOn) judged.push({ bucket: this.guesses(apiKeyId, 0), reason: "too_many_invalid_codes" });
    const decision = await this.buckets.take(judged.map((j) => j.bucket));
    if (!decision.admitted) return { reason: judged[decision.bucket]?.reason ?? "rate_limited", retryAfterMs: decision.retryAfterMs };
    if (this.callsOn) {
      const now = Date.now();
      const current = this.leases.get(apiKeyId);
      const live = current !== undefined && now < current.until;
      if (this.leases.size >= 10_000 && !current) this.leases.clear();
      this.leases.set(apiKeyId, {
        tokens: (live ? current.tokens : 0) + Math.max(0, decision.granted - 1),
        until: now + LEASE_MS,
        guessesOkUntil: looksUpCode ? now + GUESS_CHECK_MS : live ? current.guessesOkUntil : 0,
      });
    }
    return null;
  }

  /** An unknown code was looked up with this key: one token less in its guesses bucket. */
  async countUnknownCode(apiKeyId: string): Promise<void> {
    const lease = this.leases.get(apiKeyId);
    if (lease) lease.guessesOkUntil = 0; // judge the next code lookup in Redis again
    if (this.guessesOn) await this.buckets.charge([this.guesses(apiKeyId, 1)]);
  }

  /**
   * Tokens taken from Redis at once and spent locally: a hot key then costs one Redis call per
   * lease instead of one per call. A lease is a few tokens of a large budget (1/50 of a second's
   * refill, at most a tenth of the burst; 1 for small limits, which stay exact) and lapses after
   * LEASE_MS, so a replica can run ahead of the shared bucket by at most one lease.
   */
  private get leaseSize(): number {
    return Math.max(1, Math.min(Math.floor(this.limits.burst / 10), Math.floor(this.limits.perSecond / 50)));
  }

  private get callsOn(): boolean {
    return this.limits.perSecond > 0 && this.limits.burst > 0;
  }

  private get guessesOn(): boolean {
    return this.limits.codeGuessesPerMinute > 0 && this.limits.codeGuessBurst > 0;
  }

  private calls(apiKeyId: string, take: number): Bucket {
    return { key: rateLimitKey(this.prefix, apiKeyId, "calls"), perSecond: this.limits.perSecond, burst: this.limits.burst, take };
  }

  private guesses(apiKeyId: string, take: number): Bucket {
    return { key: rateLimitKey(this.prefix, apiKeyId, "guesses"), perSecond: this.limits.codeGuessesPerMinute / 60, burst: this.limits.codeGuessBurst, take };
  }
}
