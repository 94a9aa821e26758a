import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import type { Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { PromotionVersionService } from "../../gen/promotions/v1/promotion_version_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";
import { decodeRetryInfo, RETRY_INFO_TYPE } from "../../src/api/retry-info.js";
import type { GrpcLane } from "../../src/config.js";
import { client, LANES, startTestApp, type Protocol, type Replica, type TestApp } from "../support/app.js";
import { startPrivateRedis, type PrivateRedis } from "../support/redis-server.js";

// Abuse limits through the real server: the per-key call rate of ValidateCode and
// RedeemPromotion, the code-guessing brake, and the size limits of every batch, list and body.
// The server runs with small limits (20 calls/s, burst 20; 30 unknown codes, refilling 30/min).

type Tenant = { organizationId: string; key: string; keyId: string };

let t: TestApp;
let owner: Tenant;
let promotion: Promotion;
const CODE = "RL-SAVE10";
const MAX_BODY_BYTES = 64 * 1024;
const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];

interface Refusal {
  code: Code;
  detail: { code: string; param: string; message: string } | undefined;
  message: string;
  /** google.rpc.RetryInfo retry_delay, ms; undefined when absent. */
  retryInfoMs: number | undefined;
  /** The retry-after-ms header (Connect) or trailer (gRPC). */
  retryAfterHeader: string | null;
}

function refusalOf(error: unknown): Refusal {
  const e = ConnectError.from(error);
  const retryInfo = e.details.find((d) => "type" in d && d.type === RETRY_INFO_TYPE);
  return {
    code: e.code,
    detail: e.findDetails(ErrorDetailSchema)[0],
    message: e.rawMessage,
    retryInfoMs: retryInfo && "value" in retryInfo && retryInfo.value instanceof Uint8Array ? decodeRetryInfo(retryInfo.value) : undefined,
    retryAfterHeader: e.metadata.get("retry-after-ms"),
  };
}

async function refusal(work: Promise<unknown>): Promise<Refusal> {
  try {
    await work;
  } catch (error) {
    return refusalOf(error);
  }
  throw new Error("expected a refusal");
}

/** Runs every call at once; splits the outcomes into successes and refusals. */
async function burst(calls: (() => Promise<unknown>)[]): Promise<{ ok: number; refused: Refusal[] }> {
  const settled = await Promise.allSettled(calls.map((call) => call()));
  const refused = settled.flatMap((s) => (s.status === "rejected" ? [refusalOf(s.reason)] : []));
  return { ok: settled.length - refused.length, refused };
}

/** Calls until not rate_limited, waiting the hint each time (what a well-behaved client does). */
async function paced<T>(call: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const r = refusalOf(error);
      if (r.detail?.code !== "rate_limited") throw error;
      await sleep(r.retryInfoMs ?? 50);
    }
  }
}

const redemptions = (key: string, protocol: Protocol = "connect-json", url = t.url) => client(RedemptionService, url, key, protocol);
/** gRPC runs on both lanes: t's is grpc-js, a replica on the same data and Redis serves the connect-node lane. */
let connectLane: Replica;
const laneUrl = (lane: GrpcLane) => (lane === "connect" ? connectLane.url : t.url);
const unknownCode = () => `NOPE-${randomBytes(6).toString("hex").toUpperCase()}`;
/** Another key of the owner's organization: limits are per key, not per organization. */
const freshKey = async (): Promise<Tenant> => t.tenant("rl-co");

beforeAll(async () => {
  t = await startTestApp("rate_limit", { GRPC_LANE: "grpc-js", RATE_LIMIT_PER_SECOND: "20", RATE_LIMIT_BURST: "20", MAX_BODY_BYTES: String(MAX_BODY_BYTES) });
  connectLane = await t.replica({ GRPC_LANE: "connect" });
  owner = await t.tenant("rl-co");
  const promotions = client(PromotionService, t.url, owner.key);
  const created = (await promotions.createPromotion({ name: "Rate limited", code: CODE, effects: TEN_PERCENT })).promotion;
  if (!created) throw new Error("no promotion");
  const active = (await promotions.activatePromotion({ id: created.id })).promotion;
  if (!active) throw new Error("no promotion");
  promotion = active;
});

afterAll(async () => {
  await t?.stop();
});

describe("per-key rate limit (ValidateCode, RedeemPromotion)", () => {
  it("refuses a burst beyond the limit with rate_limited and a retry hint; the key works again after the hint", async () => {
    const a = await freshKey();
    const { ok, refused } = await burst(Array.from({ length: 80 }, (_, i) => () => redemptions(a.key).validateCode({ code: CODE, customerId: `b-${i}` })));
    // 20 at once, plus what refills (20/s) while the burst is in flight.
    expect(ok).toBeGreaterThanOrEqual(20);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.length).toBe(80 - ok);
    for (const r of refused) {
      expect(r.code).toBe(Code.ResourceExhausted);
      expect(r.detail?.code).toBe("rate_limited");
      expect(r.retryInfoMs).toBeGreaterThan(0);
      // One token every 50 ms.
      expect(r.retryInfoMs).toBeLessThanOrEqual(50);
      expect(r.retryAfterHeader).toBe(String(r.retryInfoMs));
      expect(r.message).toContain(`retry in ${r.retryInfoMs} ms`);
      expect(r.detail?.message).toContain(`retry in ${r.retryInfoMs} ms`);
    }

    // Another key of the same organization, and another organization's key, are unaffected.
    const sibling = await freshKey();
    expect((await redemptions(sibling.key).validateCode({ code: CODE, customerId: "s" })).valid).toBe(true);
    const stranger = await t.tenant("rl-other");
    expect((await redemptions(stranger.key).validateCode({ code: CODE, customerId: "s" })).reason).toBe("code_not_found");

    // Drain what refilled meanwhile, then wait the hint: the next call is admitted.
    let hint = 0;
    for (;;) {
      try {
        await redemptions(a.key).validateCode({ code: CODE, customerId: "drain" });
      } catch (error) {
        hint = refusalOf(error).retryInfoMs ?? 0;
        break;
      }
    }
    expect(hint).toBeGreaterThan(0);
    await sleep(hint);
    expect((await redemptions(a.key).validateCode({ code: CODE, customerId: "after" })).valid).toBe(true);
  });

  it.each(LANES)("limits RedeemPromotion too, and a refused redeem redeems nothing (gRPC, %s lane)", async (lane) => {
    const a = await freshKey();
    const before = (await client(PromotionService, t.url, owner.key).getPromotion({ id: promotion.id })).promotion?.currentRedemptions ?? 0n;
    const { ok, refused } = await burst(Array.from({ length: 40 }, (_, i) => () => redemptions(a.key, "grpc", laneUrl(lane)).redeemPromotion({ code: CODE, customerId: `r-${i}` })));
    expect(ok).toBeGreaterThanOrEqual(20);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((r) => r.code === Code.ResourceExhausted && r.detail?.code === "rate_limited")).toBe(true);
    const after = (await client(PromotionService, t.url, owner.key).getPromotion({ id: promotion.id })).promotion?.currentRedemptions ?? 0n;
    expect(after - before).toBe(BigInt(ok));
  });

  it.each(LANES)("over gRPC the hint is a google.rpc.RetryInfo detail and a retry-after-ms trailer (%s lane)", async (lane) => {
    const a = await freshKey();
    const { refused } = await burst(Array.from({ length: 80 }, (_, i) => () => redemptions(a.key, "grpc", laneUrl(lane)).validateCode({ code: CODE, customerId: `g-${i}` })));
    expect(refused.length).toBeGreaterThan(0);
    const r = refused[0];
    expect(r?.detail?.code).toBe("rate_limited");
    expect(r?.retryInfoMs).toBeGreaterThan(0);
    expect(r?.retryAfterHeader).toBe(String(r?.retryInfoMs));
  });

  it("does not limit the other methods", async () => {
    const a = await freshKey();
    await burst(Array.from({ length: 30 }, () => () => redemptions(a.key).validateCode({ code: CODE, customerId: "x" })));
    const promotions = client(PromotionService, t.url, a.key);
    const { ok } = await burst(Array.from({ length: 40 }, () => () => promotions.getPromotion({ id: promotion.id })));
    expect(ok).toBe(40);
  });
});

describe("code guessing", () => {
  it("pauses every code lookup of a key once it has looked up ~30 unknown codes, until the bucket refills", async () => {
    const g = await freshKey();
    let guesses = 0;
    let paused: Refusal | undefined;
    // Half through ValidateCode (answers code_not_found), half through RedeemPromotion (NOT_FOUND).
    while (guesses < 40 && !paused) {
      const guess = guesses % 2 === 0
        ? paced(() => redemptions(g.key).validateCode({ code: unknownCode(), customerId: "guesser" }))
        : paced(() => redemptions(g.key).redeemPromotion({ code: unknownCode(), customerId: "guesser" })).catch((error: unknown) => {
            if (refusalOf(error).detail?.code !== "code_not_found") throw error;
          });
      try {
        await guess;
        guesses++;
      } catch (error) {
        paused = refusalOf(error);
      }
    }
    // The bucket holds 30 and refills one every 2 s (the loop takes a second or two).
    expect(guesses).toBeGreaterThanOrEqual(30);
    expect(guesses).toBeLessThan(40);
    expect(paused?.code).toBe(Code.ResourceExhausted);
    expect(paused?.detail?.code).toBe("too_many_invalid_codes");
    expect(paused?.retryInfoMs).toBeGreaterThan(0);
    expect(paused?.retryInfoMs).toBeLessThanOrEqual(2_000);

    // A valid code from that key is refused too: the answer must not tell a guess that hit.
    const valid = await refusal(redemptions(g.key).validateCode({ code: CODE, customerId: "guesser" }));
    expect(valid.detail?.code).toBe("too_many_invalid_codes");
    const redeem = await refusal(redemptions(g.key).redeemPromotion({ code: CODE, customerId: "guesser" }));
    expect(redeem.detail?.code).toBe("too_many_invalid_codes");
    // By promotion id there is nothing to guess; other keys are unaffected.
    // (paced: the guessing above ran at the call rate limit, so that bucket may be empty too)
    expect((await paced(() => redemptions(g.key).validateCode({ promotionId: promotion.id, customerId: "guesser" }))).valid).toBe(true);
    const other = await freshKey();
    expect((await redemptions(other.key).validateCode({ code: CODE, customerId: "guesser" })).valid).toBe(true);

    await sleep(valid.retryInfoMs ?? 2_000);
    expect((await redemptions(g.key).validateCode({ code: CODE, customerId: "guesser" })).valid).toBe(true);
  });

  it("valid codes never drain the guess bucket", async () => {
    const v = await freshKey();
    for (let i = 0; i < 40; i++) {
      expect((await paced(() => redemptions(v.key).validateCode({ code: CODE, customerId: `v-${i}` }))).valid).toBe(true);
    }
  });
});

describe("size limits", () => {
  const invoice = (lines: number) => ({
    currency: "USD",
    lines: Array.from({ length: lines }, (_, i) => ({ id: `l${i}`, planId: "plan", unitAmountMinor: 100n, quantity: 1 })),
  });
  const many = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));
  const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;

  const cases: { name: string; call: () => Promise<unknown>; param: string; code: string }[] = [
    { name: "ListPromotions limit 101", call: () => client(PromotionService, t.url, owner.key).listPromotions({ limit: 101 }), param: "limit", code: "out_of_range" },
    {
      name: "ListPromotionCodes limit 1001",
      call: () => client(PromotionService, t.url, owner.key).listPromotionCodes({ promotionId: promotion.id, limit: 1001 }),
      param: "limit",
      code: "out_of_range",
    },
    {
      name: "ListPromotionVersions limit 101",
      call: () => client(PromotionVersionService, t.url, owner.key).listPromotionVersions({ id: promotion.id, limit: 101 }),
      param: "limit",
      code: "out_of_range",
    },
    {
      name: "ListRedemptions limit 101",
      call: () => client(RedemptionService, t.url, owner.key).listRedemptions({ promotionId: promotion.id, limit: 101 }),
      param: "limit",
      code: "out_of_range",
    },
    {
      name: "CreatePromotionCodes with 1,001 explicit codes",
      call: () => client(PromotionService, t.url, owner.key).createPromotionCodes({ promotionId: promotion.id, codes: many(1001, (i) => `BULK-${i}`) }),
      param: "codes",
      code: "too_many",
    },
    {
      name: "CreatePromotionCodes count 100,001",
      call: () => client(PromotionService, t.url, owner.key).createPromotionCodes({ promotionId: promotion.id, count: 100_001, prefix: "GEN" }),
      param: "count",
      code: "out_of_range",
    },
    {
      name: "SimulatePromotion with 51 promotion_ids",
      call: () => client(SimulationService, t.url, owner.key).simulatePromotion({ invoice: invoice(1), promotionIds: many(51, uuid) }),
      param: "promotion_ids",
      code: "too_many",
    },
    {
      name: "SimulatePromotion with a 101-line invoice",
      call: () => client(SimulationService, t.url, owner.key).simulatePromotion({ invoice: invoice(101) }),
      param: "invoice.lines",
      code: "too_many",
    },
    {
      name: "ApplyPromotions with a 101-line invoice",
      call: () => client(InvoiceService, t.url, owner.key).applyPromotions({ invoiceId: "inv-big", customerId: "c", invoice: invoice(101) }),
      param: "invoice.lines",
      code: "too_many",
    },
    {
      name: "ValidateCode with a 101-line invoice",
      call: () => paced(() => client(RedemptionService, t.url, owner.key).validateCode({ code: CODE, customerId: "c", invoice: invoice(101) })),
      param: "invoice.lines",
      code: "too_many",
    },
  ];

  it.each(cases)("refuses $name with INVALID_ARGUMENT naming $param", async ({ call, param, code }) => {
    const r = await refusal(call());
    expect(r.code).toBe(Code.InvalidArgument);
    const detail = r.detail;
    expect(detail?.param).toBe(param);
    expect(detail?.code).toBe(code);
    expect(r.message).toContain(param);
  });

  it("accepts each at its maximum", async () => {
    const promotions = client(PromotionService, t.url, owner.key);
    await promotions.listPromotions({ limit: 100 });
    await promotions.listPromotionCodes({ promotionId: promotion.id, limit: 1000 });
    const created = await promotions.createPromotionCodes({ promotionId: promotion.id, codes: many(1000, (i) => `MAXED-${i}`) });
    expect(created.createdCount).toBe(1000);
    const simulated = await client(SimulationService, t.url, owner.key).simulatePromotion({ invoice: invoice(100), promotionIds: [promotion.id] });
    expect(simulated).toBeDefined();
  });

  it.each<[Protocol, GrpcLane]>([
    ["connect-json", "grpc-js"],
    ["grpc", "grpc-js"],
    ["grpc", "connect"],
  ])("refuses a body over MAX_BODY_BYTES with RESOURCE_EXHAUSTED (%s, %s lane)", async (protocol, lane) => {
    const promotions = client(PromotionService, laneUrl(lane), owner.key, protocol);
    const r = await refusal(promotions.createPromotion({ name: "Huge", effects: TEN_PERCENT, description: "x".repeat(MAX_BODY_BYTES + 1) }));
    expect(r.code).toBe(Code.ResourceExhausted);
    expect(r.message).toContain(String(MAX_BODY_BYTES));
  });
});

describe("with the limits off (RATE_LIMIT_PER_SECOND=0, CODE_GUESS_PER_MINUTE=0)", () => {
  let off: TestApp;
  let key: string;

  beforeAll(async () => {
    off = await startTestApp("rate_limit_off", { RATE_LIMIT_PER_SECOND: "0", CODE_GUESS_PER_MINUTE: "0" });
    key = (await off.tenant("off-co")).key;
  });

  afterAll(async () => {
    await off?.stop();
  });

  it("never refuses, never touches Redis for it", async () => {
    const r = client(RedemptionService, off.url, key);
    const { ok } = await burst(Array.from({ length: 100 }, (_, i) => () => r.validateCode({ code: unknownCode(), customerId: `o-${i}` })));
    expect(ok).toBe(100);
    for (let i = 0; i < 40; i++) {
      const guess = await refusal(r.redeemPromotion({ code: unknownCode(), customerId: "o" }));
      expect(guess.detail?.code).toBe("code_not_found");
    }
    const redis = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      const found: string[] = [];
      let cursor = "0";
      do {
        const [next, batch] = await redis.scan(cursor, "MATCH", `test:${off.db.name}:{k:*`, "COUNT", 1000);
        cursor = next;
        found.push(...batch);
      } while (cursor !== "0");
      expect(found).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});

describe("when Redis is unreachable", () => {
  let redis: PrivateRedis;
  let down: TestApp;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    down = await startTestApp("rate_limit_down", { REDIS_URL: redis.url, RATE_LIMIT_PER_SECOND: "20", RATE_LIMIT_BURST: "20" });
  });

  afterAll(async () => {
    await down?.stop();
    await redis?.dispose();
  });

  it("judges on the process's own buckets with one warning: the counters refuse (UNAVAILABLE), the limits still hold", async () => {
    const tenant = await down.tenant("down-co");
    const promotions = client(PromotionService, down.url, tenant.key);
    const created = (await promotions.createPromotion({ name: "Down", code: "DOWN-1", effects: TEN_PERCENT })).promotion;
    await promotions.activatePromotion({ id: created?.id ?? "" });
    const r = client(RedemptionService, down.url, tenant.key);
    expect((await r.validateCode({ code: "DOWN-1", customerId: "d" })).valid).toBe(true);

    await redis.stop();
    for (let i = 0; i < 3; i++) {
      const refused = await refusal(r.validateCode({ code: "DOWN-1", customerId: "d" }));
      expect(refused.code).toBe(Code.Unavailable);
      expect(refused.detail?.code).toBe("counters_unavailable");
    }
    const warnings = down.logs().filter((l) => typeof l.msg === "string" && l.msg.startsWith("rate limiter cannot reach Redis"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.level).toBe(40);
    // The call limit (20, burst 20) still holds without Redis.
    const { refused } = await burst(Array.from({ length: 60 }, () => () => r.validateCode({ promotionId: created?.id ?? "", customerId: "d" })));
    expect(refused.some((x) => x.detail?.code === "rate_limited")).toBe(true);

    await redis.start();
    await expect.poll(async () => (await r.validateCode({ code: "DOWN-1", customerId: "d" }).catch(() => ({ valid: false }))).valid, { timeout: 10_000 }).toBe(true);
    // Leased tokens run out within a second; the next lease finds Redis and says so once.
    await expect
      .poll(async () => {
        await r.validateCode({ code: "DOWN-1", customerId: "d" }).catch(() => undefined);
        return down.logs().filter((l) => l.msg === "rate limiter reaches Redis again").length;
      }, { timeout: 5_000 })
      .toBe(1);
  });
});
