import type { RateLimits } from "../config.js";
import { rateLimitKey } from "./keys.js";
import type { RedisClient } from "./redis.js";
import { defineScript, type ScriptFn } from "./scripts.js";

// The typed face of rate_limit.lua (token buckets in Redis), the same buckets in process memory
// for when Redis cannot be reached, and the per-API-key policy built on them: a bucket of calls,
// and a much smaller bucket of unknown codes that stops code enumeration.

/** One bucket of one script call. */
export interface Bucket {
  key: string;
  /** Refill, tokens per second (> 0). */
  perSecond: number;
  /** Capacity (>= 1). */
  burst: number;
  /** Tokens the call removes (or, to give, puts back); 0 only requires one to be there. */
  take: number;
}

/** `levels`: each bucket's tokens after the call, in the order given. */
export type Decision = ({ admitted: true; granted: number } | { admitted: false; retryAfterMs: number; bucket: number }) & { levels: number[] };

type Mode = "take" | "charge" | "give";

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
  charge(buckets: readonly Bucket[], now?: number): Promise<Decision> {
    return this.run("charge", buckets, now);
  }

  /** Puts tokens back (never above the burst): a reservation that was not needed. */
  give(buckets: readonly Bucket[], now?: number): Promise<Decision> {
    return this.run("give", buckets, now);
  }

  /** `now` (ms) is for tests; by default the Redis server's clock, shared by every replica. */
  async run(mode: Mode, buckets: readonly Bucket[], now?: number): Promise<Decision> {
    if (buckets.length === 0) return { admitted: true, granted: 0, levels: [] };
    const args = buckets.flatMap((b) => [String(b.perSecond), String(b.burst), String(b.take)]);
    const reply = await this.script(buckets.length, ...buckets.map((b) => b.key), mode, now === undefined ? "" : String(now), ...args);
    if (!Array.isArray(reply) || reply.length < 4 + buckets.length) throw new Error(`unexpected rate_limit reply: ${JSON.stringify(reply)}`);
    const [admitted, retryAfterMs, bucket, granted, ...levels] = reply.map(Number);
    return admitted === 1
      ? { admitted: true, granted: granted ?? 0, levels }
      : { admitted: false, retryAfterMs: retryAfterMs ?? 1, bucket: (bucket ?? 1) - 1, levels };
  }
}

/**
 * The same buckets, judged the same way, in this process's memory: what the limiter falls back to
 * while Redis is unreachable (and what per-address limits use on their own). It holds at most
 * `maxKeys` buckets, dropping the least recently used (a dropped bucket is full again).
 */
export class LocalBuckets {
  private readonly state = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly maxKeys = 10_000,
    private readonly clock: () => number = Date.now,
  ) {}

  run(mode: Mode, buckets: readonly Bucket[]): Decision {
    const now = this.clock();
    const levels = buckets.map((b) => this.level(b, now));
    if (mode === "take") {
      let wait = 0;
      let worst = 0;
      buckets.forEach((b, i) => {
        const tokens = levels[i] ?? 0;
        const ms = tokens < 1 ? Math.max(1, Math.ceil(((1 - tokens) / b.perSecond) * 1000)) : 0;
        if (ms > wait) [wait, worst] = [ms, i];
      });
      if (wait > 0) return { admitted: false, retryAfterMs: wait, bucket: worst, levels };
    }
    let granted = 0;
    const after = buckets.map((b, i) => {
      const tokens = levels[i] ?? 0;
      const cost = mode === "take" ? Math.min(b.take, Math.floor(tokens)) : b.take;
      if (i === 0) granted = cost;
      const left = mode === "give" ? Math.min(b.burst, tokens + cost) : Math.max(0, tokens - cost);
      if (cost > 0) this.set(b.key, left, now);
      return left;
    });
    return { admitted: true, granted, levels: after };
  }

  /** Redis said `key` held `tokens` just now: judging locally later goes on from there. */
  mirror(key: string, tokens: number): void {
    this.set(key, tokens, this.clock());
  }

  private level(b: Bucket, now: number): number {
    const s = this.state.get(b.key);
    return s === undefined ? b.burst : Math.min(b.burst, s.tokens + (Math.max(0, now - s.at) / 1000) * b.perSecond);
  }

  private set(key: string, tokens: number, at: number): void {
    this.state.delete(key); // re-inserted last: the map's order is least recently used first
    this.state.set(key, { tokens, at });
    if (this.state.size > this.maxKeys) this.state.delete(this.state.keys().next().value ?? "");
  }
}

export type Refusal = { reason: "rate_limited" | "too_many_invalid_codes"; retryAfterMs: number };

/** What a code lookup's answer said: no such code, the code exists, or neither (an error before the lookup). */
export type LookupOutcome = "unknown" | "found" | "undecided";

/** An admitted call. `settle` is told what its code lookup answered; a refusal replaces that answer. */
export type Admitted = { refused: null; settle(outcome: LookupOutcome): Promise<Refusal | null> };
export type Refused = { refused: Refusal };

/** Raised by the limiter about Redis, for the log. */
export interface LimiterEvents {
  redisDown(error: unknown): void;
  redisBack(): void;
}

/** How long leased call tokens stay usable. */
const LEASE_MS = 1_000;
/** After Redis failed, how long every decision is made locally before Redis is tried again (by one call). */
const RETRY_REDIS_MS = 1_000;
/** How long a code a key found is remembered (per process), so looking it up again reserves nothing. */
const FOUND_MS = 60_000;
const MAX_KEYS = 10_000;
/** How long a lookup refused for want of a token waits to look again, when no lookup here holds one. */
const RETRY_ELSEWHERE_MS = 50;
const NOT_A_LOOKUP: Admitted = { refused: null, settle: () => Promise.resolve(null) };

/** Resolves true when `settled` does, false if `signal` aborts first. */
function untilSettled(settled: Promise<void>, signal: AbortSignal | undefined): Promise<boolean> {
  if (!signal) return settled.then(() => true);
  return new Promise((resolve) => {
    const onAbort = (): void => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    void settled.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    });
  });
}

/**
 * Per API key: every limited call takes a token from the key's `calls` bucket. A call that looks
 * up a code the key has not found lately first reserves a token of its `guesses` bucket; the token
 * is spent if the code does not exist and given back if it does. So a key's "no such code"
 * answers never outnumber the tokens its bucket gave, however many lookups are in flight. Lookups
 * of the same code in flight here share the first one's reservation and its answer; lookups beyond
 * the tokens left wait here for one in flight to settle, or, when none here holds a token (another
 * replica may), look once more RETRY_ELSEWHERE_MS later before they are refused. A code the key
 * found in the last minute is looked up without a reservation (an enumerator
 * learns nothing from it); should it have gone meanwhile, its "no such code" answer must still take
 * a token, or it is replaced by a refusal. Either limit is off when its rate or burst is 0.
 *
 * While Redis is unreachable every decision is made on this process's own buckets, which go on
 * from the levels Redis last reported for them; what they spent is charged to Redis once it
 * answers again. The slack this leaves is what other processes spent that this one never saw.
 */
export class RateLimiter {
  private readonly buckets: TokenBuckets;
  private readonly local = new LocalBuckets(MAX_KEYS);
  private readonly leases = new Map<string, { tokens: number; until: number }>();
  private readonly refills = new Map<string, Promise<Refusal | null>>();
  /** `${apiKeyId} ${code}` → until when looking that code up needs no reservation. */
  private readonly found = new Map<string, number>();
  /** `${apiKeyId} ${code}` → settles when the lookup of that code in flight here does. */
  private readonly lookingUp = new Map<string, Promise<void>>();
  /** Reservations of each key not yet settled here, and the lookups waiting for one to settle. */
  private readonly held = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();
  /** Tokens spent locally while Redis was unreachable, by bucket key, to charge once it is back. */
  private readonly debt = new Map<string, Bucket>();
  private redisDownUntil = 0;
  private probing = false;
  events: LimiterEvents = { redisDown: () => undefined, redisBack: () => undefined };

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

  /** Judges a call that looks up `code` ("" for none); a code lookup must then be settled. */
  async admit(apiKeyId: string, code: string, signal?: AbortSignal): Promise<Admitted | Refused> {
    const refusal = await this.admitCall(apiKeyId);
    if (refusal) return { refused: refusal };
    if (code === "" || !this.guessesOn) return NOT_A_LOOKUP;
    const lookup = `${apiKeyId} ${code}`;
    let retried = false;
    let waitedForEarlier = false;
    for (let woken = false; ; woken = true) {
      if (this.wasFound(lookup)) {
        if (woken) this.wakeOne(apiKeyId); // it holds nothing, so it will wake nobody later: pass the turn on
        return { refused: null, settle: (outcome) => this.settleUnreserved(apiKeyId, code, outcome) };
      }
      // The same code looked up by this key already in flight here: if its answer finds the code,
      // this lookup needs no token. Otherwise (no such code, or no answer about it: an outage)
      // this one reserves on its own, not in line behind yet another.
      const earlier = waitedForEarlier ? undefined : this.lookingUp.get(lookup);
      if (earlier) {
        waitedForEarlier = true;
        if (signal?.aborted === true || !(await untilSettled(earlier, signal))) return this.refuse(apiKeyId, 1_000);
        continue;
      }
      let done: () => void = () => undefined;
      const mine = new Promise<void>((resolve) => (done = resolve));
      this.lookingUp.set(lookup, mine);
      const settledLookup = (): void => {
        if (this.lookingUp.get(lookup) === mine) this.lookingUp.delete(lookup);
        done();
      };
      const decision = await this.run("take", [this.guesses(apiKeyId, 1)]);
      if (decision.admitted) {
        this.held.set(apiKeyId, (this.held.get(apiKeyId) ?? 0) + 1);
        let settled = false;
        return {
          refused: null,
          settle: (outcome) => {
            if (!settled) this.settleReserved(apiKeyId, code, decision.local, outcome, settledLookup);
            settled = true;
            return Promise.resolve(null);
          },
        };
      }
      settledLookup();
      // No token now, but some are held by lookups in flight here: one may come back.
      if ((this.held.get(apiKeyId) ?? 0) > 0 && signal?.aborted !== true && (await this.nextSettle(apiKeyId, signal))) continue;
      // Held elsewhere, perhaps (another replica's lookups in flight): look once more, a moment later.
      if (!retried && signal?.aborted !== true) {
        retried = true;
        await new Promise((r) => setTimeout(r, RETRY_ELSEWHERE_MS));
        continue;
      }
      this.wakeOne(apiKeyId); // let the next waiter find out too
      return this.refuse(apiKeyId, decision.retryAfterMs);
    }
  }

  private refuse(apiKeyId: string, retryAfterMs: number): Refused {
    this.giveBackCall(apiKeyId);
    return { refused: { reason: "too_many_invalid_codes", retryAfterMs } };
  }

  private settleReserved(apiKeyId: string, code: string, local: boolean, outcome: LookupOutcome, settledLookup: () => void): void {
    settledLookup(); // lookups of the same code waiting here go on: found, they need no token
    const release = (): void => {
      const held = (this.held.get(apiKeyId) ?? 1) - 1;
      if (held > 0) {
        this.held.set(apiKeyId, held);
        this.wakeOne(apiKeyId);
      } else {
        // Nothing is held any more, so nothing will come back: every waiter decides now.
        this.held.delete(apiKeyId);
        const queue = this.waiting.get(apiKeyId) ?? [];
        this.waiting.delete(apiKeyId);
        for (const wake of queue) wake();
      }
    };
    if (outcome === "unknown") return release(); // the token is spent: that is what it was for
    if (outcome === "found") this.remember(apiKeyId, code);
    // Back to where it was taken from, before a waiter asks for it.
    const bucket = [this.guesses(apiKeyId, 1)];
    if (local) {
      this.local.run("give", bucket);
      this.forgive(bucket);
      return release();
    }
    this.buckets.give(bucket).then(
      (d) => this.mirror(bucket, d.levels),
      () => undefined, // lost: the key has one token less until it refills, never one more
    ).finally(release);
  }

  private async settleUnreserved(apiKeyId: string, code: string, outcome: LookupOutcome): Promise<Refusal | null> {
    if (outcome === "found") this.remember(apiKeyId, code);
    if (outcome !== "unknown") return null;
    this.found.delete(`${apiKeyId} ${code}`);
    const decision = await this.run("take", [this.guesses(apiKeyId, 1)]);
    return decision.admitted ? null : { reason: "too_many_invalid_codes", retryAfterMs: decision.retryAfterMs };
  }

  private nextSettle(apiKeyId: string, signal: AbortSignal | undefined): Promise<boolean> {
    return new Promise((resolve) => {
      const queue = this.waiting.get(apiKeyId) ?? [];
      this.waiting.set(apiKeyId, queue);
      const onAbort = (): void => {
        const at = queue.indexOf(wake);
        if (at >= 0) queue.splice(at, 1);
        resolve(false);
      };
      const wake = (): void => {
        signal?.removeEventListener("abort", onAbort);
        resolve(true);
      };
      queue.push(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  private wakeOne(apiKeyId: string): void {
    const queue = this.waiting.get(apiKeyId);
    queue?.shift()?.();
    if (queue?.length === 0) this.waiting.delete(apiKeyId);
  }

  private wasFound(lookup: string): boolean {
    const until = this.found.get(lookup);
    return until !== undefined && until > Date.now();
  }

  private remember(apiKeyId: string, code: string): void {
    const key = `${apiKeyId} ${code}`;
    this.found.delete(key);
    this.found.set(key, Date.now() + FOUND_MS);
    if (this.found.size > MAX_KEYS) this.found.delete(this.found.keys().next().value ?? "");
  }

  /** Null when admitted (a token is taken from `calls`); else for how long the key is limited. */
  private async admitCall(apiKeyId: string): Promise<Refusal | null> {
    if (!this.callsOn) return null;
    // One lease refill per key at a time: concurrent calls wait for it and then spend its tokens,
    // instead of each taking a lease and leaving most of them unused.
    for (;;) {
      if (this.spendLocally(apiKeyId)) return null;
      const pending = this.refills.get(apiKeyId);
      if (pending) {
        const refusal = await pending;
        if (refusal) return refusal;
        continue;
      }
      const refill = this.lease(apiKeyId);
      this.refills.set(apiKeyId, refill);
      try {
        return await refill;
      } finally {
        if (this.refills.get(apiKeyId) === refill) this.refills.delete(apiKeyId);
      }
    }
  }

  private spendLocally(apiKeyId: string): boolean {
    const lease = this.leases.get(apiKeyId);
    if (!lease || lease.tokens <= 0 || Date.now() >= lease.until) return false;
    lease.tokens--;
    return true;
  }

  /** A code lookup refused after its call token was taken: the token goes back to the lease. */
  private giveBackCall(apiKeyId: string): void {
    const lease = this.leases.get(apiKeyId);
    if (lease && Date.now() < lease.until) lease.tokens++;
  }

  /** Takes up to a lease of call tokens: one for this call, the rest for the next ones here. */
  private async lease(apiKeyId: string): Promise<Refusal | null> {
    const decision = await this.run("take", [this.calls(apiKeyId, this.leaseSize)]);
    if (!decision.admitted) return { reason: "rate_limited", retryAfterMs: decision.retryAfterMs };
    const now = Date.now();
    const current = this.leases.get(apiKeyId);
    const live = current !== undefined && now < current.until ? current.tokens : 0;
    if (this.leases.size >= MAX_KEYS && !current) this.leases.clear();
    this.leases.set(apiKeyId, { tokens: live + Math.max(0, decision.granted - 1), until: now + LEASE_MS });
    return null;
  }

  /** One decision, in Redis when it answers, else on this process's buckets. */
  private async run(mode: Mode, buckets: readonly Bucket[]): Promise<Decision & { local: boolean }> {
    if (this.redisUsable()) {
      try {
        const decision = await this.buckets.run(mode, buckets);
        this.mirror(buckets, decision.levels);
        this.redisAnswered();
        return { ...decision, local: false };
      } catch (error) {
        this.redisFailed(error);
      }
    }
    const decision = this.local.run(mode, buckets);
    if (decision.admitted) {
      if (mode === "give") this.forgive(buckets);
      else buckets.forEach((b, i) => this.owe(b, i === 0 ? decision.granted : b.take));
    }
    return { ...decision, local: true };
  }

  private redisUsable(): boolean {
    if (this.redisDownUntil === 0) return true;
    if (Date.now() < this.redisDownUntil || this.probing) return false;
    this.probing = true; // this call finds out whether Redis is back; the others stay local meanwhile
    return true;
  }

  private redisFailed(error: unknown): void {
    const wasUp = this.redisDownUntil === 0;
    this.redisDownUntil = Date.now() + RETRY_REDIS_MS;
    this.probing = false;
    if (wasUp) this.events.redisDown(error);
  }

  private redisAnswered(): void {
    if (this.redisDownUntil === 0) return;
    this.redisDownUntil = 0;
    this.probing = false;
    this.events.redisBack();
    // What was spent here meanwhile is spent in the shared buckets too.
    const owed = [...this.debt.values()];
    this.debt.clear();
    for (const bucket of owed) this.buckets.charge([bucket]).catch(() => undefined);
  }

  private mirror(buckets: readonly Bucket[], levels: readonly number[]): void {
    buckets.forEach((b, i) => {
      const level = levels[i];
      if (level !== undefined && Number.isFinite(level)) this.local.mirror(b.key, level);
    });
  }

  private owe(b: Bucket, tokens: number): void {
    if (tokens <= 0) return;
    const owed = this.debt.get(b.key);
    this.debt.set(b.key, { ...b, take: (owed?.take ?? 0) + tokens });
    if (this.debt.size > MAX_KEYS) this.debt.delete(this.debt.keys().next().value ?? "");
  }

  private forgive(buckets: readonly Bucket[]): void {
    for (const b of buckets) {
      const owed = this.debt.get(b.key);
      if (!owed) continue;
      if (owed.take <= b.take) this.debt.delete(b.key);
      else this.debt.set(b.key, { ...owed, take: owed.take - b.take });
    }
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
