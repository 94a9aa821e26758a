import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { client, startTestApp, type TestApp } from "../support/app.js";
import { startPrivateRedis, type PrivateRedis } from "../support/redis-server.js";
import { promo } from "../support/rpc.js";

// The code-guess brake under concurrency and outage: however many lookups of unknown codes one
// key has in flight, and whether Redis answers or hangs, the key gets at most
// CODE_GUESS_BURST + CODE_GUESS_PER_MINUTE/60 × elapsed seconds (+ SLACK) answers that say "no such
// code". Everything runs on one HTTP/2 connection, 64 calls in flight, as in the finding.

const PER_MINUTE = 30;
const BURST = 30;
const IN_FLIGHT = 64;
/** The documented slack: one token of rounding between refill and the clock the bound is read on. */
const SLACK = 1;
const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];

const unknownCode = () => `NOPE-${randomBytes(6).toString("hex").toUpperCase()}`;

interface Tally {
  /** Answers that said the code does not exist (ValidateCode reason, or RedeemPromotion NOT_FOUND). */
  unknown: number;
  /** too_many_invalid_codes refusals. */
  paused: number;
  valid: number;
  other: string[];
}

/** What one answer of a code lookup was. */
function tallyOf(t: Tally, outcome: { reason?: string; valid?: boolean } | { error: unknown }): void {
  if ("error" in outcome) {
    const e = ConnectError.from(outcome.error);
    const detail = e.findDetails(ErrorDetailSchema)[0]?.code;
    if (e.code === Code.NotFound && detail === "code_not_found") t.unknown++;
    else if (e.code === Code.ResourceExhausted && detail === "too_many_invalid_codes") t.paused++;
    else t.other.push(`${Code[e.code]}/${detail ?? ""}: ${e.rawMessage}`);
    return;
  }
  if (outcome.valid) t.valid++;
  else if (outcome.reason === "code_not_found") t.unknown++;
  else t.other.push(`valid=false reason=${outcome.reason ?? ""}`);
}

/**
 * `IN_FLIGHT` workers on one connection, each looking codes up (`pick(i)`) until `ms` have passed;
 * half through ValidateCode, half through RedeemPromotion.
 */
async function guessFor(url: string, key: string, ms: number, pick: (i: number) => string = unknownCode): Promise<Tally & { elapsedMs: number }> {
  const r = client(RedemptionService, url, key, "connect-binary"); // one h2 session
  const t: Tally = { unknown: 0, paused: 0, valid: 0, other: [] };
  const started = performance.now();
  let i = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() - started < ms) {
      const n = i++;
      const code = pick(n);
      if (n % 2 === 0) {
        await r.validateCode({ code, customerId: `g-${n}` }).then((res) => tallyOf(t, res), (error: unknown) => tallyOf(t, { error }));
      } else {
        await r.redeemPromotion({ code, customerId: `g-${n}`, idempotencyKey: `g-${n}` }).then(() => tallyOf(t, { valid: true }), (error: unknown) => tallyOf(t, { error }));
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return { ...t, elapsedMs: performance.now() - started };
}

/** The most "no such code" answers a key may get over `elapsedMs` from a full bucket. */
const budget = (elapsedMs: number) => BURST + (PER_MINUTE / 60) * (elapsedMs / 1000) + SLACK;

describe("code guesses with 64 lookups in flight on one connection", () => {
  let t: TestApp;
  let code: string;

  beforeAll(async () => {
    t = await startTestApp("guess_race", { CODE_GUESS_PER_MINUTE: String(PER_MINUTE), CODE_GUESS_BURST: String(BURST) });
    const owner = await t.tenant("race-co");
    const promotions = client(PromotionService, t.url, owner.key);
    code = "RACE-OK";
    const created = promo(await promotions.createPromotion({ name: "Race", code, effects: TEN_PERCENT }));
    await promotions.activatePromotion({ id: created.id });
  });

  afterAll(async () => {
    await t?.stop();
  });

  it("answers at most burst + rate × elapsed + slack unknown-code answers, the rest too_many_invalid_codes", async () => {
    const g = await t.tenant("race-co");
    const tally = await guessFor(t.url, g.key, 3_000);
    expect(tally.other).toEqual([]);
    // The bucket was full: the burst is answered, so the brake is judged against real work.
    expect(tally.unknown).toBeGreaterThanOrEqual(BURST);
    expect(tally.unknown).toBeLessThanOrEqual(budget(tally.elapsedMs));
    expect(tally.paused).toBeGreaterThan(0);
  });

  it("never pauses a key that only looks up codes that exist, however many are in flight", async () => {
    const v = await t.tenant("race-co");
    const tally = await guessFor(t.url, v.key, 1_500, () => code);
    expect(tally.other.filter((o) => !o.includes("customer_limit") && !o.includes("resource_exhausted"))).toEqual([]);
    expect(tally.paused).toBe(0);
    expect(tally.unknown).toBe(0);
    expect(tally.valid).toBeGreaterThan(IN_FLIGHT);
  });

  it("lets codes a key has found keep working while unknown ones are refused", async () => {
    const m = await t.tenant("race-co");
    // The key finds the real code once, then mixes it with guesses at 64 in flight.
    expect((await client(RedemptionService, t.url, m.key).validateCode({ code, customerId: "m" })).valid).toBe(true);
    const tally = await guessFor(t.url, m.key, 2_000, (i) => (i % 4 === 0 ? code : unknownCode()));
    expect(tally.other).toEqual([]);
    expect(tally.unknown).toBeLessThanOrEqual(budget(tally.elapsedMs));
    expect(tally.valid).toBeGreaterThan(0);
  });
});

describe("code guesses while Redis hangs (SIGSTOP)", () => {
  let redis: PrivateRedis;
  let t: TestApp;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    t = await startTestApp("guess_race_hung", { REDIS_URL: redis.url, CODE_GUESS_PER_MINUTE: String(PER_MINUTE), CODE_GUESS_BURST: String(BURST) });
  });

  afterAll(async () => {
    redis?.resume();
    await t?.stop();
    await redis?.dispose();
  });

  it("does not fail open: across the outage the key stays within one budget", async () => {
    const g = await t.tenant("hung-co");
    const started = performance.now();
    const before = await guessFor(t.url, g.key, 1_000);
    redis.pause();
    let during: Awaited<ReturnType<typeof guessFor>>;
    try {
      during = await guessFor(t.url, g.key, 5_000);
    } finally {
      redis.resume();
    }
    const elapsedMs = performance.now() - started;
    expect([...before.other, ...during.other]).toEqual([]);
    expect(before.unknown).toBeGreaterThanOrEqual(BURST);
    expect(before.unknown + during.unknown).toBeLessThanOrEqual(budget(elapsedMs));
    expect(during.paused).toBeGreaterThan(0);
    // One warning for the outage, not one per call.
    const warnings = t.logs().filter((l) => typeof l.msg === "string" && l.msg.startsWith("rate limiter"));
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings.length).toBeLessThanOrEqual(2);
  });

  it("judges a fresh key from a full bucket of its own while Redis hangs, and Redis again once it is back", async () => {
    const g = await t.tenant("hung-co");
    const started = performance.now();
    redis.pause();
    let during: Awaited<ReturnType<typeof guessFor>>;
    try {
      during = await guessFor(t.url, g.key, 4_000);
    } finally {
      redis.resume();
    }
    expect(during.other).toEqual([]);
    expect(during.unknown).toBeGreaterThanOrEqual(BURST);
    expect(during.unknown).toBeLessThanOrEqual(budget(during.elapsedMs));
    expect(during.paused).toBeGreaterThan(0);
    // Back on Redis: what the key spent while Redis hung was charged there, so it is still paused.
    await new Promise((r) => setTimeout(r, 500));
    const after = await guessFor(t.url, g.key, 1_000);
    expect(after.other).toEqual([]);
    expect(during.unknown + after.unknown).toBeLessThanOrEqual(budget(performance.now() - started));
    expect(after.paused).toBeGreaterThan(0);
  });
});
