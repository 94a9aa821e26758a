import { randomBytes, randomUUID } from "node:crypto";
import { Cluster, Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Counters, type ReserveRequest, type ReserveResult } from "../../src/counters/counters.js";
import type { CounterReturn, Rebuilt } from "../../src/store/ledger.js";
import { assertValidPrefix, promotionKeys } from "../../src/counters/keys.js";
import { ReserveOutcome } from "../../src/counters/outcomes.js";
import { createRedis, waitForRedis, type RedisClient } from "../../src/counters/redis.js";
import { startRedisCluster, type PrivateCluster } from "../support/redis-cluster.js";
import { freePort } from "../support/redis-server.js";

// The Lua scripts of src/counters/scripts, run through their typed face (Counters), twice: against
// the real Redis at 127.0.0.1:6379 and against a private three-master Redis Cluster. Every test
// works under a key prefix of its own and deletes only that prefix's keys afterwards: the Redis is
// shared, so nothing here flushes it. On the cluster, every command this file sends itself names
// keys of one slot, and the cluster's own error counts show that no command was refused CROSSSLOT.

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const DEADLINE = NOW + 30_000;
const DAY_MS = 24 * 60 * 60 * 1000;

interface Backend {
  name: "single" | "cluster";
  /** Starts what the backend needs; `connect` makes one more client of it. */
  open(): Promise<{ connect: () => RedisClient; cluster: PrivateCluster | null; close(): Promise<void> }>;
}

const BACKENDS: Backend[] = [
  {
    name: "single",
    open: async () => ({
      connect: () => new Redis({ host: "127.0.0.1", port: 6379, enableAutoPipelining: false, maxRetriesPerRequest: 1 }),
      cluster: null,
      close: async () => undefined,
    }),
  },
  {
    name: "cluster",
    open: async () => {
      const cluster = await startRedisCluster();
      return { connect: () => cluster.connect(), cluster, close: () => cluster.stop() };
    },
  },
];

// Set by the backend's describe block below; the helpers use whichever backend is running.
let redis: RedisClient;
let connect: () => RedisClient;
let prefix: string;
let counters: Counters;

// ---------------------------------------------------------------------------------------------
// helpers

/** Every key under `p`, by SCAN of every master (never KEYS, never FLUSH*). */
async function keysUnder(p: string): Promise<string[]> {
  const pattern = `${p.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
  const found = new Set<string>();
  for (const node of redis instanceof Cluster ? redis.nodes("master") : [redis]) {
    let cursor = "0";
    do {
      const [next, batch] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      for (const key of batch) found.add(key);
    } while (cursor !== "0");
  }
  return [...found].sort();
}

/** Deletes `keys`, one DEL per slot (a DEL naming keys of two slots is refused by a cluster). */
async function deleteKeys(keys: readonly string[]): Promise<void> {
  const bySlot = new Map<number, string[]>();
  for (const key of keys) bySlot.set(keySlot(key), [...(bySlot.get(keySlot(key)) ?? []), key]);
  for (const group of bySlot.values()) {
    for (let i = 0; i < group.length; i += 500) await redis.del(...group.slice(i, i + 500));
  }
}

interface DumpedKey {
  type: string;
  value: unknown;
  expires: boolean;
}

/** Everything stored under this test's prefix, to compare before and after a call. */
async function dump(): Promise<Record<string, DumpedKey>> {
  const out: Record<string, DumpedKey> = {};
  for (const key of await keysUnder(prefix)) {
    const type = await redis.type(key);
    let value: unknown;
    if (type === "hash") value = await redis.hgetall(key);
    else if (type === "zset") value = await redis.zrange(key, 0, "-1", "WITHSCORES");
    else if (type === "string") value = await redis.get(key);
    else value = `<${type}>`;
    out[key] = { type, value, expires: (await redis.pttl(key)) >= 0 };
  }
  return out;
}

function rebuilt(overrides: Partial<Rebuilt> = {}): Rebuilt {
  return { epoch: 1n, seq: 1n, redemptions: 0n, budgetUsed: 0n, perCustomer: new Map(), perCode: new Map(), ...overrides };
}

/** A fresh promotion id whose counters were installed from `overrides`. */
async function hydrated(overrides: Partial<Rebuilt> = {}): Promise<string> {
  const id = randomUUID();
  expect(await counters.install(id, rebuilt(overrides))).toBe("installed");
  return id;
}

function request(promotionId: string, overrides: Partial<ReserveRequest> = {}): ReserveRequest {
  return {
    mode: "redeem",
    promotionId,
    reservationId: randomUUID(),
    now: NOW,
    deadline: DEADLINE,
    termsSeq: 1n,
    customerId: "cus_1",
    codeId: null,
    status: "ACTIVE",
    validFrom: null,
    validTo: null,
    codeActive: true,
    codeExpiresAt: null,
    maxRedemptions: null,
    maxPerCustomer: null,
    codeMaxRedemptions: null,
    maxBudget: null,
    budgetExhausted: false,
    idempotencyKey: null,
    ...overrides,
  };
}

async function state(promotionId: string): Promise<Record<string, string>> {
  return redis.hgetall(counters.keys(promotionId).state);
}

async function customers(promotionId: string): Promise<Record<string, string>> {
  return redis.hgetall(counters.keys(promotionId).customers);
}

async function codes(promotionId: string): Promise<Record<string, string>> {
  return redis.hgetall(counters.keys(promotionId).codes);
}

async function details(promotionId: string, reservationId: string): Promise<unknown> {
  const raw = await redis.hget(counters.keys(promotionId).details, reservationId);
  return raw === null ? null : (JSON.parse(raw) as unknown);
}

/** Redis Cluster's slot of a key: CRC16/XMODEM of the hash tag (or the whole key) mod 16384. */
function keySlot(key: string): number {
  let hashed = key;
  const open = key.indexOf("{");
  if (open !== -1) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) hashed = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(hashed, "utf8")) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

// ---------------------------------------------------------------------------------------------

describe.each(BACKENDS)("on $name Redis", ({ name, open }) => {
  let backend: Awaited<ReturnType<Backend["open"]>>;

  beforeAll(async () => {
    backend = await open();
    connect = backend.connect;
    redis = connect();
  });

  afterAll(async () => {
    await redis?.quit();
    await backend?.close();
  });

  beforeEach(() => {
    prefix = `test:counters:${randomBytes(8).toString("hex")}:`;
    counters = new Counters(redis, prefix);
  });

  afterEach(async () => {
    await deleteKeys(await keysUnder(prefix));
  });

  describe("reserve.lua", () => {
    // The refusals in the order reserve.lua checks them. A row of level L turns on its own condition
    // and every condition after it, so the outcome it gets shows that nothing later wins over it.
    // The counters are the same in every row (10 redemptions, cus_1 at 2, code_1 at 3, budget 1000
    // used); only the request's limits decide whether they bind.
    const LEVELS: { outcome: ReserveOutcome; name: string }[] = [
      { outcome: ReserveOutcome.NotHydrated, name: "not hydrated" },
      { outcome: ReserveOutcome.StaleTerms, name: "stale terms (Redis seq newer than the caller's)" },
      { outcome: ReserveOutcome.Duplicate, name: "duplicate idempotency key" },
      { outcome: ReserveOutcome.PromotionNotActive, name: "promotion not active" },
      { outcome: ReserveOutcome.PromotionNotStarted, name: "promotion not started" },
      { outcome: ReserveOutcome.PromotionExpired, name: "promotion expired (valid_to exclusive)" },
      { outcome: ReserveOutcome.CodeInactive, name: "code inactive" },
      { outcome: ReserveOutcome.CodeExpired, name: "code expired" },
      { outcome: ReserveOutcome.MaxRedemptionsReached, name: "max redemptions reached" },
      { outcome: ReserveOutcome.CustomerLimitReached, name: "customer limit reached" },
      { outcome: ReserveOutcome.CodeLimitReached, name: "code limit reached" },
      { outcome: ReserveOutcome.BudgetExhausted, name: "budget exhausted" },
      { outcome: ReserveOutcome.Admitted, name: "admitted" },
    ];
    const levelOf = (o: ReserveOutcome): number => LEVELS.findIndex((l) => l.outcome === o);

    const COUNTED = { epoch: 4n, seq: 7n, redemptions: 10n, budgetUsed: 1000n, perCustomer: new Map([["cus_1", 2n]]), perCode: new Map([["code_1", 3n]]) };

    /**
     * Sets up a promotion where the conditions `on(outcome)` says are true hold, and returns the
     * request to judge plus the reservation id an earlier call holds the idempotency key with.
     */
    async function scenario(on: (o: ReserveOutcome) => boolean): Promise<{ req: ReserveRequest; earlier: string }> {
      const promotionId = await hydrated(COUNTED);
      let earlier = "";
      if (on(ReserveOutcome.Duplicate)) {
        earlier = randomUUID();
        const first = await counters.reserve(request(promotionId, { reservationId: earlier, termsSeq: 7n, codeId: "code_1", idempotencyKey: "idem-1" }));
        expect(first.outcome).toBe(ReserveOutcome.Admitted);
      }
      if (on(ReserveOutcome.NotHydrated)) await redis.del(counters.keys(promotionId).state); // Redis lost the state
      const req = request(promotionId, {
        termsSeq: on(ReserveOutcome.StaleTerms) ? 6n : 7n,
        idempotencyKey: "idem-1",
        status: on(ReserveOutcome.PromotionNotActive) ? "PAUSED" : "ACTIVE",
        validFrom: on(ReserveOutcome.PromotionNotStarted) ? new Date(NOW + 1) : new Date(NOW),
        validTo: on(ReserveOutcome.PromotionExpired) ? new Date(NOW) : new Date(NOW + 1),
        codeId: "code_1",
        codeActive: !on(ReserveOutcome.CodeInactive),
        codeExpiresAt: on(ReserveOutcome.CodeExpired) ? new Date(NOW) : new Date(NOW + 1),
        maxRedemptions: on(ReserveOutcome.MaxRedemptionsReached) ? 10n : 11_000n,
        maxPerCustomer: on(ReserveOutcome.CustomerLimitReached) ? 2n : 2_000n,
        codeMaxRedemptions: on(ReserveOutcome.CodeLimitReached) ? 3n : 3_000n,
        maxBudget: on(ReserveOutcome.BudgetExhausted) ? 1000n : 1001n,
      });
      return { req, earlier };
    }

    function expectOutcome(result: ReserveResult, outcome: ReserveOutcome, earlier: string): void {
      expect(result.outcome).toBe(outcome);
      expect(result.epoch).toBe(outcome === ReserveOutcome.NotHydrated ? 0n : 4n);
      expect(result.earlier).toBe(outcome === ReserveOutcome.Duplicate ? earlier : "");
    }

    it.each(LEVELS.map((l, i) => ({ ...l, level: i })))(
      "precedence: $name wins over every check after it; check mode moves nothing and answers as redeem does",
      async ({ outcome, level }) => {
        const { req, earlier } = await scenario((o) => levelOf(o) >= level);
        const before = await dump();
        const checked = await counters.reserve({ ...req, mode: "check" });
        expect(await dump()).toEqual(before);
        expectOutcome(checked, outcome, earlier);

        const redeemed = await counters.reserve(req);
        expectOutcome(redeemed, outcome, earlier);
        if (outcome === ReserveOutcome.Admitted) {
          expect(redeemed.redemptions).toBe(checked.redemptions + 1n);
        } else {
          expect(redeemed.redemptions).toBe(checked.redemptions);
          expect(await dump()).toEqual(before); // a refusal moves nothing either
        }
      },
    );

    it.each(LEVELS.filter((l) => l.outcome !== ReserveOutcome.Admitted))("refuses with $name when that is the only problem", async ({ outcome }) => {
      const { req, earlier } = await scenario((o) => o === outcome);
      const before = await dump();
      const checked = await counters.reserve({ ...req, mode: "check" });
      const redeemed = await counters.reserve(req);
      expectOutcome(checked, outcome, earlier);
      expectOutcome(redeemed, outcome, earlier);
      expect(await dump()).toEqual(before);
    });

    it.each([
      { name: "one ms before valid_from", at: { now: NOW - 1, validFrom: new Date(NOW) }, outcome: ReserveOutcome.PromotionNotStarted },
      { name: "at valid_from", at: { now: NOW, validFrom: new Date(NOW) }, outcome: ReserveOutcome.Admitted },
      { name: "one ms before valid_to", at: { now: NOW - 1, validTo: new Date(NOW) }, outcome: ReserveOutcome.Admitted },
      { name: "at valid_to (exclusive)", at: { now: NOW, validTo: new Date(NOW) }, outcome: ReserveOutcome.PromotionExpired },
      { name: "one ms before the code expires", at: { now: NOW - 1, codeId: "code_1", codeExpiresAt: new Date(NOW) }, outcome: ReserveOutcome.Admitted },
      { name: "when the code expires", at: { now: NOW, codeId: "code_1", codeExpiresAt: new Date(NOW) }, outcome: ReserveOutcome.CodeExpired },
      { name: "an inactive code without a code id (no code checks)", at: { codeActive: false }, outcome: ReserveOutcome.Admitted },
      { name: "one redemption left", at: { maxRedemptions: 11n }, outcome: ReserveOutcome.Admitted },
      { name: "no redemption left", at: { maxRedemptions: 10n }, outcome: ReserveOutcome.MaxRedemptionsReached },
      { name: "one use left for the customer", at: { maxPerCustomer: 3n }, outcome: ReserveOutcome.Admitted },
      { name: "a customer never seen with limit 1", at: { customerId: "cus_new", maxPerCustomer: 1n }, outcome: ReserveOutcome.Admitted },
      { name: "a per-customer limit of 0", at: { customerId: "cus_new", maxPerCustomer: 0n }, outcome: ReserveOutcome.CustomerLimitReached },
      { name: "one use left on the code", at: { codeId: "code_1", codeMaxRedemptions: 4n }, outcome: ReserveOutcome.Admitted },
      { name: "a code limit with another code id", at: { codeId: "code_2", codeMaxRedemptions: 3n }, outcome: ReserveOutcome.Admitted },
      { name: "a code limit without a code", at: { codeMaxRedemptions: 0n }, outcome: ReserveOutcome.Admitted },
      { name: "budget left", at: { maxBudget: 1001n }, outcome: ReserveOutcome.Admitted },
      { name: "budget used up exactly", at: { maxBudget: 1000n }, outcome: ReserveOutcome.BudgetExhausted },
      { name: "the caller's seq equal to Redis'", at: { termsSeq: 7n }, outcome: ReserveOutcome.Admitted },
    ].map((row) => ({ ...row, expected: ReserveOutcome[row.outcome] })))("at the boundary: $name → $expected", async ({ at, outcome }) => {
      const promotionId = await hydrated(COUNTED);
      const result = await counters.reserve(request(promotionId, { termsSeq: 7n, ...at }));
      expect(result.outcome).toBe(outcome);
    });

    it("raises the stored seq when an admitted caller evaluated newer terms, and then refuses older ones as stale", async () => {
      const promotionId = await hydrated({ seq: 3n });
      expect((await counters.reserve(request(promotionId, { mode: "check", termsSeq: 5n }))).outcome).toBe(ReserveOutcome.Admitted);
      expect((await state(promotionId)).seq).toBe("3"); // check mode moves nothing, not even the seq
      expect((await counters.reserve(request(promotionId, { termsSeq: 5n }))).outcome).toBe(ReserveOutcome.Admitted);
      expect((await state(promotionId)).seq).toBe("5");
      const stale = await counters.reserve(request(promotionId, { termsSeq: 4n }));
      expect(stale.outcome).toBe(ReserveOutcome.StaleTerms);
      expect(stale.redemptions).toBe(1n);
    });

    it("an admitted reservation counts the redemption, the customer and the code, is pending with its deadline and details, and holds the idempotency key for a day", async () => {
      const promotionId = await hydrated({ epoch: 2n, redemptions: 4n, perCustomer: new Map([["cus_1", 1n]]), perCode: new Map([["code_1", 4n]]) });
      const k = counters.keys(promotionId);
      const id = randomUUID();
      const result = await counters.reserve(request(promotionId, { reservationId: id, codeId: "code_1", idempotencyKey: "idem-A", deadline: NOW + 12_345 }));
      expect(result).toEqual({ outcome: ReserveOutcome.Admitted, epoch: 2n, earlier: "", redemptions: 5n, budgetUsed: 0n });

      expect(await state(promotionId)).toEqual({ epoch: "2", seq: "1", n: "5", b: "0" });
      expect(await customers(promotionId)).toEqual({ cus_1: "2" });
      expect(await codes(promotionId)).toEqual({ code_1: "5" });
      expect(await redis.zrange(k.pending, 0, "-1", "WITHSCORES")).toEqual([id, String(NOW + 12_345)]);
      expect(await details(promotionId, id)).toEqual({ k: "r", c: "cus_1", code: "code_1", a: 0, i: k.idempotency("idem-A") });
      expect((await counters.details(promotionId, id))?.kind ?? null).toBe("r");
      expect(await redis.get(k.idempotency("idem-A"))).toBe(`2:${id}`);
      const ttl = await redis.pttl(k.idempotency("idem-A"));
      expect(ttl).toBeGreaterThan(DAY_MS - 60_000);
      expect(ttl).toBeLessThanOrEqual(DAY_MS);

      const again = await counters.reserve(request(promotionId, { codeId: "code_1", idempotencyKey: "idem-A" }));
      expect(again).toEqual({ outcome: ReserveOutcome.Duplicate, epoch: 2n, earlier: id, redemptions: 5n, budgetUsed: 0n });
    });

    it("an admitted reservation without an idempotency key writes no marker and no code count", async () => {
      const promotionId = await hydrated();
      const id = randomUUID();
      expect((await counters.reserve(request(promotionId, { reservationId: id }))).outcome).toBe(ReserveOutcome.Admitted);
      expect(await details(promotionId, id)).toEqual({ k: "r", c: "cus_1", code: "", a: 0, i: "" });
      expect(await redis.exists(counters.keys(promotionId).idempotency(""))).toBe(0);
      expect(await redis.exists(counters.keys(promotionId).codes)).toBe(0);
      expect(await customers(promotionId)).toEqual({ cus_1: "1" });
    });
  });

  describe("confirm.lua", () => {
    it("removes the pending entry and answers true once, then false", async () => {
      const promotionId = await hydrated();
      const k = counters.keys(promotionId);
      const id = randomUUID();
      await counters.reserve(request(promotionId, { reservationId: id, codeId: "code_1", idempotencyKey: "idem" }));
      expect(await counters.confirm(promotionId, id)).toBe(true);
      expect(await redis.zscore(k.pending, id)).toBeNull();
      expect(await redis.hexists(k.details, id)).toBe(0);
      expect(await state(promotionId)).toMatchObject({ n: "1" }); // the redemption still counts
      expect(await customers(promotionId)).toEqual({ cus_1: "1" });
      expect(await redis.get(k.idempotency("idem"))).toBe(`1:${id}`); // and still holds its key
      expect(await counters.confirm(promotionId, id)).toBe(false);
    });

    it("answers false after the reservation was given back", async () => {
      const promotionId = await hydrated();
      const id = randomUUID();
      await counters.reserve(request(promotionId, { reservationId: id }));
      expect(await counters.giveBack(promotionId, id)).toBe(true);
      expect(await counters.confirm(promotionId, id)).toBe(false);
    });
  });

  describe("give_back.lua", () => {
    it("returns every counter exactly once and clears the reservation's idempotency marker", async () => {
      const promotionId = await hydrated({ redemptions: 3n, perCustomer: new Map([["cus_old", 3n]]) });
      const k = counters.keys(promotionId);
      const before = await dump();
      const id = randomUUID();
      await counters.reserve(request(promotionId, { reservationId: id, codeId: "code_1", idempotencyKey: "idem" }));
      expect(await redis.get(k.idempotency("idem"))).toBe(`1:${id}`);

      expect(await counters.giveBack(promotionId, id)).toBe(true);
      expect(await dump()).toEqual(before); // n back to 3, cus_1 and code_1 fields gone, marker gone, nothing pending
      expect(await counters.giveBack(promotionId, id)).toBe(false);
      expect(await dump()).toEqual(before);
      expect((await counters.reserve(request(promotionId, { idempotencyKey: "idem" }))).outcome).toBe(ReserveOutcome.Admitted);
    });

    it("decrements a customer and a code that had earlier redemptions without deleting them", async () => {
      const promotionId = await hydrated({ redemptions: 5n, perCustomer: new Map([["cus_1", 2n]]), perCode: new Map([["code_1", 5n]]) });
      const id = randomUUID();
      await counters.reserve(request(promotionId, { reservationId: id, codeId: "code_1" }));
      expect(await customers(promotionId)).toEqual({ cus_1: "3" });
      expect(await counters.giveBack(promotionId, id)).toBe(true);
      expect(await state(promotionId)).toMatchObject({ n: "5" });
      expect(await customers(promotionId)).toEqual({ cus_1: "2" });
      expect(await codes(promotionId)).toEqual({ code_1: "5" });
    });

    it("leaves the idempotency marker alone once it names another reservation", async () => {
      const promotionId = await hydrated();
      const k = counters.keys(promotionId);
      const first = randomUUID();
      const second = randomUUID();
      await counters.reserve(request(promotionId, { reservationId: first, idempotencyKey: "idem" }));
      await redis.del(k.idempotency("idem")); // the marker expired while `first` was still pending
      expect((await counters.reserve(request(promotionId, { reservationId: second, customerId: "cus_2", idempotencyKey: "idem" }))).outcome).toBe(ReserveOutcome.Admitted);

      expect(await counters.giveBack(promotionId, first)).toBe(true);
      expect(await redis.get(k.idempotency("idem"))).toBe(`1:${second}`);
      expect(await state(promotionId)).toMatchObject({ n: "1" });
      expect(await customers(promotionId)).toEqual({ cus_2: "1" });
    });

    it("never gives back a confirmed reservation", async () => {
      const promotionId = await hydrated();
      const id = randomUUID();
      await counters.reserve(request(promotionId, { reservationId: id, codeId: "code_1", idempotencyKey: "idem" }));
      await counters.confirm(promotionId, id);
      const before = await dump();
      expect(await counters.giveBack(promotionId, id)).toBe(false);
      expect(await dump()).toEqual(before);
    });

    it("answers false for a reservation it never saw", async () => {
      const promotionId = await hydrated({ redemptions: 1n, perCustomer: new Map([["cus_1", 1n]]) });
      const before = await dump();
      expect(await counters.giveBack(promotionId, randomUUID())).toBe(false);
      expect(await dump()).toEqual(before);
    });
  });

  describe("apply_return.lua", () => {
    const LIVE = { epoch: 3n, redemptions: 2n, budgetUsed: 500n, perCustomer: new Map([["cus_1", 1n], ["cus_2", 1n]]), perCode: new Map([["code_1", 2n]]) };
    const release = (promotionId: string, epoch: bigint, customerId: string, codeId: string | null, id = randomUUID()): CounterReturn => ({
      id, organizationId: "org", promotionId, epoch, kind: "RELEASE", customerId, codeId, amountMinor: 0n,
    });

    it.each([
      { name: "the same epoch with a code", epoch: 3n, codeId: "code_1", moved: "applied", n: "1", customers: { cus_2: "1" }, codes: { code_1: "1" } },
      { name: "the same epoch without a code", epoch: 3n, codeId: null, moved: "applied", n: "1", customers: { cus_2: "1" }, codes: { code_1: "2" } },
      { name: "an older epoch", epoch: 2n, codeId: "code_1", moved: "other_epoch", n: "2", customers: { cus_1: "1", cus_2: "1" }, codes: { code_1: "2" } },
      // Committed under an epoch whose counters are still to be installed: they will count it as held.
      { name: "a newer epoch", epoch: 4n, codeId: "code_1", moved: "not_yet", n: "2", customers: { cus_1: "1", cus_2: "1" }, codes: { code_1: "2" } },
    ])("a released slot under $name: $moved", async ({ epoch, codeId, moved, n, customers: c, codes: k }) => {
      const promotionId = await hydrated(LIVE);
      expect(await counters.applyReturn(release(promotionId, epoch, "cus_1", codeId))).toBe(moved);
      expect(await state(promotionId)).toMatchObject({ epoch: "3", n });
      expect(await customers(promotionId)).toEqual(c);
      expect(await codes(promotionId)).toEqual(k);
    });

    it("applies a return once, however often it is sent (the caller and the sweeper may both try)", async () => {
      const promotionId = await hydrated(LIVE);
      const r = release(promotionId, 3n, "cus_1", "code_1");
      expect(await counters.applyReturn(r)).toBe("applied");
      const after = await dump();
      expect(await counters.applyReturn(r)).toBe("already");
      expect(await dump()).toEqual(after);
      expect(await state(promotionId)).toMatchObject({ n: "1" });
    });

    it("gives a reversed invoice's budget back under the same epoch, never below zero", async () => {
      const promotionId = await hydrated(LIVE);
      const reversal = (amountMinor: bigint, epoch = 3n): CounterReturn => ({ id: randomUUID(), organizationId: "org", promotionId, epoch, kind: "REVERSAL", customerId: null, codeId: null, amountMinor });
      expect(await counters.applyReturn(reversal(200n))).toBe("applied");
      expect(await state(promotionId)).toMatchObject({ b: "300", n: "2" });
      expect(await counters.applyReturn(reversal(200n, 2n))).toBe("other_epoch");
      expect(await counters.applyReturn(reversal(1_000n))).toBe("applied");
      expect(await state(promotionId)).toMatchObject({ b: "0" });
    });

    it("does nothing while the state is missing, and says so (the return stays pending until counters of its epoch are there)", async () => {
      const promotionId = await hydrated(LIVE);
      await redis.del(counters.keys(promotionId).state);
      const before = await dump();
      expect(await counters.applyReturn(release(promotionId, 3n, "cus_1", "code_1"))).toBe("not_yet");
      expect(await dump()).toEqual(before);
      expect(await redis.exists(counters.keys(promotionId).state)).toBe(0);
    });

    it("never takes a count below zero: fields are deleted at zero and n stays at 0", async () => {
      const promotionId = await hydrated({ epoch: 3n });
      await counters.applyReturn(release(promotionId, 3n, "cus_x", "code_x"));
      expect(await customers(promotionId)).toEqual({});
      expect(await codes(promotionId)).toEqual({});
      // n must not go negative: a negative n lets reserve.lua admit past max_redemptions.
      expect(Number((await state(promotionId)).n)).toBeGreaterThanOrEqual(0);
    });
  });

  describe("consume_budget.lua", () => {
    it.each([
      { name: "CAP grants what is left", used: 700n, max: 1000n as bigint | null, amount: 500n, behavior: "CAP" as const, granted: 300n },
      { name: "CAP grants all when enough is left", used: 700n, max: 1000n, amount: 300n, behavior: "CAP" as const, granted: 300n },
      { name: "CAP grants nothing when the budget is used up", used: 1000n, max: 1000n, amount: 1n, behavior: "CAP" as const, granted: 0n },
      { name: "CAP grants nothing when more than the budget was used", used: 1200n, max: 1000n, amount: 5n, behavior: "CAP" as const, granted: 0n },
      { name: "STRICT grants nothing when not all is left", used: 700n, max: 1000n, amount: 301n, behavior: "STRICT" as const, granted: 0n },
      { name: "STRICT grants all when exactly that is left", used: 700n, max: 1000n, amount: 300n, behavior: "STRICT" as const, granted: 300n },
      { name: "an unlimited budget grants all", used: 700n, max: null, amount: 1_000_000_000_000n, behavior: "STRICT" as const, granted: 1_000_000_000_000n },
    ])("$name", async ({ used, max, amount, behavior, granted }) => {
      const promotionId = await hydrated({ epoch: 6n, budgetUsed: used });
      const k = counters.keys(promotionId);
      const id = randomUUID();
      const result = await counters.consumeBudget({ promotionId, reservationId: id, deadline: DEADLINE, maxBudget: max, amount, behavior });
      expect(result).toEqual({ hydrated: true, epoch: 6n, granted, budgetUsed: used + granted });
      expect(await state(promotionId)).toMatchObject({ b: String(used + granted) });
      if (granted > 0n) {
        expect(await redis.zscore(k.pending, id)).toBe(String(DEADLINE));
        expect(await details(promotionId, id)).toEqual({ k: "a", c: "", code: "", a: granted.toString(), i: "" });
        expect((await counters.details(promotionId, id))?.kind ?? null).toBe("a");
      } else {
        expect(await redis.exists(k.pending, k.details)).toBe(0);
      }
    });

    it("answers not hydrated and moves nothing without a state", async () => {
      const promotionId = randomUUID();
      const result = await counters.consumeBudget({ promotionId, reservationId: randomUUID(), deadline: DEADLINE, maxBudget: 100n, amount: 10n, behavior: "CAP" });
      expect(result).toEqual({ hydrated: false, epoch: 0n, granted: 0n, budgetUsed: 0n });
      expect(await keysUnder(prefix)).toEqual([]);
    });

    it("a budget reservation given back returns its budget once", async () => {
      const promotionId = await hydrated({ budgetUsed: 700n, redemptions: 2n });
      const id = randomUUID();
      await counters.consumeBudget({ promotionId, reservationId: id, deadline: DEADLINE, maxBudget: 1000n, amount: 500n, behavior: "CAP" });
      expect((await counters.reserve(request(promotionId, { maxBudget: 1000n }))).outcome).toBe(ReserveOutcome.BudgetExhausted);
      expect(await counters.giveBack(promotionId, id)).toBe(true);
      expect(await state(promotionId)).toMatchObject({ b: "700", n: "2" });
      expect(await counters.giveBack(promotionId, id)).toBe(false);
      expect(await state(promotionId)).toMatchObject({ b: "700", n: "2" });
      expect((await counters.details(promotionId, id))?.kind ?? null).toBeNull();
    });
  });

  describe("install (stage.lua + switch.lua)", () => {
    it("installs state, per-customer and per-code counts, skipping zero counts, and leaves no stage behind", async () => {
      const promotionId = randomUUID();
      const result = await counters.install(promotionId, rebuilt({
        epoch: 9n, seq: 12n, redemptions: 5n, budgetUsed: 250n,
        perCustomer: new Map([["cus_1", 3n], ["cus_2", 2n], ["cus_zero", 0n]]),
        perCode: new Map([["code_1", 4n], ["code_zero", 0n]]),
      }));
      expect(result).toBe("installed");
      expect(await state(promotionId)).toEqual({ epoch: "9", seq: "12", n: "5", b: "250" });
      expect(await customers(promotionId)).toEqual({ cus_1: "3", cus_2: "2" });
      expect(await codes(promotionId)).toEqual({ code_1: "4" });
      expect(await counters.isHydrated(promotionId)).toBe(true);
      expect((await counters.snapshot([promotionId, randomUUID()])).get(promotionId)).toEqual({ epoch: 9n, seq: 12n, redemptions: 5n, budgetUsed: 250n });
      const k = counters.keys(promotionId);
      // Live hashes never expire; the stage is gone (renamed into place).
      expect(await redis.pttl(k.customers)).toBe(-1);
      expect(await redis.pttl(k.codes)).toBe(-1);
      expect(await keysUnder(prefix)).toEqual([k.codes, k.customers, k.state].sort());
    });

    it.each([
      { name: "the same epoch", epoch: 5n },
      { name: "an older epoch", epoch: 4n },
    ])("refuses to overwrite live counters with counts of $name, drops its stage and leaves every other key as it was", async ({ epoch }) => {
      const promotionId = await hydrated({ epoch: 5n, redemptions: 2n, perCustomer: new Map([["cus_1", 2n]]), perCode: new Map([["code_1", 1n]]) });
      await counters.reserve(request(promotionId, { idempotencyKey: "idem", codeId: "code_1" })); // pending + marker
      const before = await dump();
      const result = await counters.install(promotionId, rebuilt({ epoch, redemptions: 7n, perCustomer: new Map([["cus_9", 7n]]), perCode: new Map([["code_9", 7n]]) }));
      expect(result).toBe("outrun");
      expect(await dump()).toEqual(before);
    });

    it("replaces live counters of an older epoch (a rebuild whose epoch Postgres moved past), with their pending reservations and idempotency markers", async () => {
      const promotionId = await hydrated({ epoch: 5n, redemptions: 2n, perCustomer: new Map([["cus_1", 2n]]), perCode: new Map([["code_1", 1n]]) });
      const k = counters.keys(promotionId);
      const pendingId = randomUUID();
      await counters.reserve(request(promotionId, { reservationId: pendingId, idempotencyKey: "idem", codeId: "code_1" }));

      const result = await counters.install(promotionId, rebuilt({ epoch: 6n, redemptions: 3n, perCustomer: new Map([["cus_9", 3n]]), perCode: new Map([["code_9", 3n]]) }));
      expect(result).toBe("installed");
      expect(await state(promotionId)).toEqual({ epoch: "6", seq: "1", n: "3", b: "0" });
      expect(await customers(promotionId)).toEqual({ cus_9: "3" });
      expect(await codes(promotionId)).toEqual({ code_9: "3" });
      expect(await redis.exists(k.pending, k.details)).toBe(0);
      expect(await counters.giveBack(promotionId, pendingId)).toBe(false); // its write is fenced; nothing to give back here
      // The epoch-5 marker no longer answers DUPLICATE: its reservation's write was fenced or is in
      // the ledger, whose unique idempotency key answers the retry.
      const retry = await counters.reserve(request(promotionId, { idempotencyKey: "idem", codeId: "code_1" }));
      expect(retry.outcome).toBe(ReserveOutcome.Admitted);
      expect(retry.epoch).toBe(6n);
    });

    it("resets leftovers (customers, codes, pending, details) when the state is missing", async () => {
      const promotionId = await hydrated({ epoch: 1n, redemptions: 1n, perCustomer: new Map([["cus_old", 1n]]), perCode: new Map([["code_old", 1n]]) });
      const k = counters.keys(promotionId);
      const pendingId = randomUUID();
      await counters.reserve(request(promotionId, { reservationId: pendingId, codeId: "code_old" }));
      await redis.del(k.state); // Redis lost the state hash only

      expect(await counters.install(promotionId, rebuilt({ epoch: 2n, redemptions: 1n, perCustomer: new Map([["cus_new", 1n]]), perCode: new Map([["code_new", 1n]]) }))).toBe("installed");
      expect(await state(promotionId)).toEqual({ epoch: "2", seq: "1", n: "1", b: "0" });
      expect(await customers(promotionId)).toEqual({ cus_new: "1" });
      expect(await codes(promotionId)).toEqual({ code_new: "1" });
      expect(await redis.exists(k.pending, k.details)).toBe(0);
      expect(await counters.giveBack(promotionId, pendingId)).toBe(false); // the old reservation is gone for good
      expect(await state(promotionId)).toMatchObject({ n: "1" });
    });

    it("fills more than 2,000 customers and codes across several batches", async () => {
      const perCustomer = new Map<string, bigint>();
      for (let i = 0; i < 4_501; i++) perCustomer.set(`cus_${i}`, BigInt((i % 3) + 1));
      const perCode = new Map<string, bigint>();
      for (let i = 0; i < 2_001; i++) perCode.set(`code_${i}`, BigInt((i % 5) + 1));
      const promotionId = await hydrated({ redemptions: 9_001n, perCustomer, perCode });
      expect(await customers(promotionId)).toEqual(Object.fromEntries([...perCustomer].map(([c, n]) => [c, n.toString()])));
      expect(await codes(promotionId)).toEqual(Object.fromEntries([...perCode].map(([c, n]) => [c, n.toString()])));
      // The limits read the filled counts: the last customer of the last batch is at its limit.
      const last = request(promotionId, { customerId: "cus_4500", maxPerCustomer: 1n });
      expect((await counters.reserve(last)).outcome).toBe(ReserveOutcome.CustomerLimitReached);
    });

    it.each([
      { name: "after the first batch", after: 1, what: "every key of the promotion" },
      { name: "after the last customer batch", after: 5, what: "every key of the promotion" },
      { name: "after the first code batch", after: 6, what: "every key of the promotion" },
    ])("a flush of $what $name: nothing is installed (INCOMPLETE), and no state exists without all its entries", async ({ after }) => {
      // 4,500 customers and 1,500 codes: five customer batches, two code batches.
      const perCustomer = new Map<string, bigint>();
      for (let i = 0; i < 4_500; i++) perCustomer.set(`cus_${i}`, 1n);
      const perCode = new Map<string, bigint>();
      for (let i = 0; i < 1_500; i++) perCode.set(`code_${i}`, 1n);
      const promotionId = randomUUID();
      let batches = 0;
      // The shared Redis is never flushed: "flush" here deletes every key of this test's prefix.
      const flushAfter = async (): Promise<void> => {
        if (++batches === after) await deleteKeys(await keysUnder(prefix));
      };
      const result = await counters.install(promotionId, rebuilt({ epoch: 3n, redemptions: 4_500n, perCustomer, perCode }), flushAfter);
      expect(batches).toBe(7);
      expect(result).toBe("incomplete");
      expect(await counters.isHydrated(promotionId)).toBe(false);
      expect(await keysUnder(prefix)).toEqual([]);
      // The next rebuild (a new epoch) installs everything.
      expect(await counters.install(promotionId, rebuilt({ epoch: 4n, redemptions: 4_500n, perCustomer, perCode }))).toBe("installed");
      expect(Object.keys(await customers(promotionId))).toHaveLength(4_500);
      expect(Object.keys(await codes(promotionId))).toHaveLength(1_500);
    });

    it("a stage whose rebuild died before switching expires on its own", async () => {
      const promotionId = randomUUID();
      const died = counters.install(promotionId, rebuilt({ epoch: 2n, perCustomer: new Map([["cus_1", 1n]]) }), async () => {
        throw new Error("the process died here");
      });
      await expect(died).rejects.toThrow(/died/);
      const stage = counters.keys(promotionId).staged(2n).customers;
      expect(await redis.exists(stage)).toBe(1);
      expect(await redis.pttl(stage)).toBeGreaterThan(0);
      expect(await counters.isHydrated(promotionId)).toBe(false);
    });

    it.each([
      { name: "the newer first", first: 6n, second: 5n },
      { name: "the older first", first: 5n, second: 6n },
    ])("two rebuilds racing ($name): the newer epoch's counts end up live, never a mix", async ({ first, second }) => {
      const promotionId = randomUUID();
      const counts = (epoch: bigint) => rebuilt({ epoch, redemptions: epoch, perCustomer: new Map([[`cus_${epoch}`, epoch]]), perCode: new Map([[`code_${epoch}`, epoch]]) });
      await Promise.all([counters.install(promotionId, counts(first)), counters.install(promotionId, counts(second))]);
      expect(await state(promotionId)).toMatchObject({ epoch: "6", n: "6" });
      expect(await customers(promotionId)).toEqual({ cus_6: "6" });
      expect(await codes(promotionId)).toEqual({ code_6: "6" });
      expect((await keysUnder(prefix)).filter((key) => key.includes(":st:"))).toEqual([]);
    });
  });

  describe("epoch floor (counters older than Postgres' epoch)", () => {
    it("counters older than the floor answer NOT_HYDRATED to reserve and consume_budget, read as missing, and move nothing", async () => {
      const promotionId = await hydrated({ epoch: 5n, redemptions: 1n, perCustomer: new Map([["cus_1", 1n]]) });
      expect(await counters.isHydrated(promotionId)).toBe(true);
      counters.raiseFloor(promotionId, 6n);
      const before = await dump();
      expect((await counters.reserve(request(promotionId))).outcome).toBe(ReserveOutcome.NotHydrated);
      expect((await counters.reserve(request(promotionId, { mode: "check" }))).outcome).toBe(ReserveOutcome.NotHydrated);
      expect(await counters.consumeBudget({ promotionId, reservationId: randomUUID(), deadline: DEADLINE, maxBudget: 100n, amount: 5n, behavior: "CAP" })).toEqual({ hydrated: false, epoch: 0n, granted: 0n, budgetUsed: 0n });
      expect((await counters.snapshot([promotionId])).get(promotionId)).toBeNull();
      expect(await counters.isHydrated(promotionId)).toBe(false);
      expect(await dump()).toEqual(before);
      // Counters of the floor's epoch admit.
      expect(await counters.install(promotionId, rebuilt({ epoch: 6n, redemptions: 1n, perCustomer: new Map([["cus_1", 1n]]) }))).toBe("installed");
      expect((await counters.reserve(request(promotionId))).outcome).toBe(ReserveOutcome.Admitted);
    });

    it("a floor is only ever raised, and is kept per promotion", async () => {
      const a = await hydrated({ epoch: 5n });
      const b = await hydrated({ epoch: 5n });
      counters.raiseFloor(a, 5n);
      counters.raiseFloor(a, 3n);
      expect((await counters.reserve(request(a))).outcome).toBe(ReserveOutcome.Admitted);
      counters.raiseFloor(a, 7n);
      counters.raiseFloor(a, 6n);
      expect((await counters.reserve(request(a))).outcome).toBe(ReserveOutcome.NotHydrated);
      expect(await counters.install(a, rebuilt({ epoch: 6n }))).toBe("installed");
      expect((await counters.reserve(request(a))).outcome).toBe(ReserveOutcome.NotHydrated); // the floor stayed at 7
      expect((await counters.reserve(request(b))).outcome).toBe(ReserveOutcome.Admitted);
    });
  });

  describe("rebuild lock (extend_lock.lua, unlock.lua)", () => {
    it("only its token extends or releases it", async () => {
      const promotionId = randomUUID();
      const k = counters.keys(promotionId);
      expect(await counters.lockRebuild(promotionId, "mine", 1_000)).toBe(true);
      expect(await counters.lockRebuild(promotionId, "theirs", 1_000)).toBe(false);
      expect(await counters.extendRebuildLock(promotionId, "theirs", 60_000)).toBe(false);
      expect(await redis.pttl(k.rebuildLock)).toBeLessThanOrEqual(1_000);
      expect(await counters.extendRebuildLock(promotionId, "mine", 60_000)).toBe(true);
      expect(await redis.pttl(k.rebuildLock)).toBeGreaterThan(1_000);
      await counters.unlockRebuild(promotionId, "theirs");
      expect(await redis.get(k.rebuildLock)).toBe("mine");
      await counters.unlockRebuild(promotionId, "mine");
      expect(await redis.exists(k.rebuildLock)).toBe(0);
      // A lost lock is not taken back by extending it.
      expect(await counters.extendRebuildLock(promotionId, "mine", 60_000)).toBe(false);
      expect(await redis.exists(k.rebuildLock)).toBe(0);
    });
  });

  describe("publish_seq.lua", () => {
    it("only ever raises the seq", async () => {
      const promotionId = await hydrated({ seq: 5n });
      await counters.publishSeq(promotionId, 7n);
      expect((await state(promotionId)).seq).toBe("7");
      await counters.publishSeq(promotionId, 6n);
      expect((await state(promotionId)).seq).toBe("7");
      await counters.publishSeq(promotionId, 7n);
      expect((await state(promotionId)).seq).toBe("7");
      expect((await counters.reserve(request(promotionId, { termsSeq: 6n }))).outcome).toBe(ReserveOutcome.StaleTerms);
    });

    it("does not create a state for a promotion that is not hydrated", async () => {
      const promotionId = randomUUID();
      await counters.publishSeq(promotionId, 3n);
      expect(await counters.isHydrated(promotionId)).toBe(false);
      expect(await keysUnder(prefix)).toEqual([]);
    });
  });

  describe("overdue() and details()", () => {
    it("lists only pending reservations whose deadline has passed, oldest first", async () => {
      const promotionId = await hydrated();
      const [a, b, c, budget, confirmed] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      await counters.reserve(request(promotionId, { reservationId: a, deadline: NOW + 10 }));
      await counters.reserve(request(promotionId, { reservationId: b, deadline: NOW + 20 }));
      await counters.reserve(request(promotionId, { reservationId: c, deadline: NOW + 30 }));
      await counters.reserve(request(promotionId, { reservationId: confirmed, deadline: NOW + 5 }));
      await counters.confirm(promotionId, confirmed);
      await counters.consumeBudget({ promotionId, reservationId: budget, deadline: NOW + 15, maxBudget: null, amount: 10n, behavior: "CAP" });

      expect(await counters.overdue(promotionId, NOW + 9)).toEqual([]);
      expect(await counters.overdue(promotionId, NOW + 25)).toEqual([
        { id: a, deadline: NOW + 10 },
        { id: budget, deadline: NOW + 15 },
        { id: b, deadline: NOW + 20 },
      ]);
      expect(await counters.overdue(promotionId, NOW + 25, 1)).toEqual([{ id: a, deadline: NOW + 10 }]);
      expect(await counters.overdue(randomUUID(), NOW + 25)).toEqual([]);

      expect((await counters.details(promotionId, a))?.kind ?? null).toBe("r");
      expect((await counters.details(promotionId, budget))?.kind ?? null).toBe("a");
      expect((await counters.details(promotionId, confirmed))?.kind ?? null).toBeNull();
      expect((await counters.details(promotionId, randomUUID()))?.kind ?? null).toBeNull();
    });
  });

  describe("keys", () => {
    it("computes Redis Cluster slots the way Redis does", () => {
      expect(keySlot("123456789")).toBe(0x31c3); // the CRC16/XMODEM check value
      expect(keySlot("foo")).toBe(12182);
      expect(keySlot("{foo}:anything")).toBe(12182);
      expect(keySlot("a{}b")).toBe(keySlot("a{}b")); // an empty tag hashes the whole key
    });

    it("puts every key of one promotion in the slot of its hash tag {p:<id>}", () => {
      const promotionId = randomUUID();
      const k = promotionKeys(prefix, promotionId);
      const all = [
        k.state, k.customers, k.codes, k.pending, k.details, k.rebuildLock, k.idempotency(""), k.idempotency("key-1"), k.idempotency("{evil}"),
        k.staged(7n).customers, k.staged(7n).codes, k.applied("r-1"),
      ];
      const tag = `{p:${promotionId}}`;
      for (const key of all) {
        expect(key.startsWith(`${prefix}${tag}:`)).toBe(true);
        expect(keySlot(key)).toBe(keySlot(tag));
      }
      expect(new Set(all).size).toBe(all.length);
      expect(counters.keys(promotionId)).toMatchObject({ state: k.state, customers: k.customers, codes: k.codes, pending: k.pending, details: k.details });
    });

    it("every key a script writes carries the promotion's hash tag", async () => {
      const staged: string[] = [];
      const promotionId = await hydrated({ perCustomer: new Map([["cus_1", 1n]]), perCode: new Map([["code_1", 1n]]) });
      await counters.reserve(request(promotionId, { codeId: "code_1", idempotencyKey: "idem" }));
      await counters.consumeBudget({ promotionId, reservationId: randomUUID(), deadline: DEADLINE, maxBudget: null, amount: 5n, behavior: "CAP" });
      await counters.lockRebuild(promotionId, "token", 10_000);
      // A rebuild outrun by the live epoch stages its counts (and then drops them).
      const outrun = await counters.install(promotionId, rebuilt({ epoch: 1n, perCustomer: new Map([["cus_2", 1n]]) }), async () => {
        staged.push(...(await keysUnder(prefix)).filter((key) => key.includes(":st:")));
      });
      expect(outrun).toBe("outrun");
      expect(staged).toEqual([counters.keys(promotionId).staged(1n).customers]);
      const written = [...new Set([...(await keysUnder(prefix)), ...staged])];
      expect(written.length).toBe(8);
      for (const key of written) expect(keySlot(key)).toBe(keySlot(`{p:${promotionId}}`));
    });

    it.each(["prm{", "prm}", "{x}:", "a{b}c:"])("rejects the prefix %j", (bad) => {
      expect(() => assertValidPrefix(bad)).toThrow(/braces/);
    });

    it.each(["", "prm:", "test:counters:abc:"])("accepts the prefix %j", (good) => {
      expect(() => assertValidPrefix(good)).not.toThrow();
    });
  });

  describe("concurrency", () => {
    it.each([
      { max: 300, admitted: 300 },
      { max: 1_000, admitted: 500 },
    ])("2,000 concurrent redeems, max_redemptions $max, 500 customers with a limit of 1 each: exactly $admitted admitted", async ({ max, admitted }) => {
      const maxRedemptions = BigInt(max);
      const promotionId = await hydrated();
      const clients = Array.from({ length: 8 }, connect);
      try {
        const faces = clients.map((c) => new Counters(c, prefix));
        const results = await Promise.all(
          Array.from({ length: 2_000 }, (_, i) =>
            (faces[i % faces.length] ?? counters).reserve(request(promotionId, { customerId: `cus_${i % 500}`, maxRedemptions, maxPerCustomer: 1n })),
          ),
        );
        const ok = results.filter((r) => r.outcome === ReserveOutcome.Admitted).length;
        expect(ok).toBe(Math.min(max, 500));
        expect(ok).toBe(admitted);
        for (const r of results) {
          expect([ReserveOutcome.Admitted, ReserveOutcome.MaxRedemptionsReached, ReserveOutcome.CustomerLimitReached]).toContain(r.outcome);
          expect(r.redemptions).toBeLessThanOrEqual(maxRedemptions);
        }
        expect((await state(promotionId)).n).toBe(String(ok));
        const perCustomer = Object.values(await customers(promotionId));
        expect(perCustomer.length).toBe(ok);
        expect(perCustomer.every((v) => v === "1")).toBe(true);
        expect(await redis.zcard(counters.keys(promotionId).pending)).toBe(ok);
      } finally {
        await Promise.all(clients.map((c) => c.quit()));
      }
    });
  });

  describe.runIf(name === "cluster")("Redis Cluster", () => {
    const cluster = (): Cluster => {
      if (!(redis instanceof Cluster)) throw new Error("not a cluster client");
      return redis;
    };
    const address = (node: Redis): string => `${node.options.host ?? ""}:${node.options.port ?? 0}`;

    /** Promotion ids whose slots are served by different masters, one per master. */
    async function onEveryMaster(): Promise<Map<string, string>> {
      const ranges = await cluster().cluster("SLOTS");
      const owner = (slot: number): string => {
        const range = ranges.find(([from, to]) => slot >= from && slot <= to);
        const [host, port] = range?.[2] ?? [];
        return `${host}:${port}`;
      };
      const byMaster = new Map<string, string>();
      while (byMaster.size < ranges.length && byMaster.size < 3) {
        const id = randomUUID();
        const master = owner(keySlot(`{p:${id}}`));
        if (!byMaster.has(master)) byMaster.set(master, id);
      }
      return byMaster;
    }

    it("the cluster computes the slot keys.ts means: every key of a promotion in its hash tag's slot", async () => {
      const promotionId = randomUUID();
      const k = counters.keys(promotionId);
      for (const key of [k.state, k.customers, k.codes, k.pending, k.details, k.rebuildLock, k.idempotency(""), k.idempotency("order-1")]) {
        expect(await cluster().cluster("KEYSLOT", key)).toBe(keySlot(`{p:${promotionId}}`));
      }
    });

    it("promotions on three masters: each one's scripts run on its own node, and one snapshot reads them all", async () => {
      const byMaster = await onEveryMaster();
      expect(byMaster.size).toBe(3);
      for (const id of byMaster.values()) {
        await counters.install(id, rebuilt({ epoch: 2n, budgetUsed: 10n }));
        expect((await counters.reserve(request(id, { codeId: "code_1", idempotencyKey: "idem", maxRedemptions: 1n }))).outcome).toBe(ReserveOutcome.Admitted);
        expect((await counters.reserve(request(id, { customerId: "cus_2", maxRedemptions: 1n }))).outcome).toBe(ReserveOutcome.MaxRedemptionsReached);
        await counters.consumeBudget({ promotionId: id, reservationId: randomUUID(), deadline: DEADLINE, maxBudget: null, amount: 5n, behavior: "CAP" });
      }
      const snapshot = await counters.snapshot([...byMaster.values()]);
      for (const id of byMaster.values()) expect(snapshot.get(id)).toEqual({ epoch: 2n, seq: 1n, redemptions: 1n, budgetUsed: 15n });

      // Each master holds exactly the keys of the promotion whose slot it serves.
      for (const node of cluster().nodes("master")) {
        const id = byMaster.get(address(node));
        const held: string[] = [];
        let cursor = "0";
        do {
          const [next, batch] = await node.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
          cursor = next;
          held.push(...batch);
        } while (cursor !== "0");
        expect(held.length).toBe(6); // s, c, k, q, d and the idempotency marker
        for (const key of held) expect(key.startsWith(`${prefix}{p:${id}}:`)).toBe(true);
      }
    });

    it("an unreachable cluster is reported by waitForRedis within its timeout, not waited for for ever", async () => {
      const client = createRedis({ url: "", clusterNodes: [`127.0.0.1:${await freePort()}`] });
      client.on("error", () => undefined);
      const started = performance.now();
      try {
        await expect(waitForRedis(client, 500)).rejects.toThrow();
      } finally {
        client.disconnect();
      }
      expect(performance.now() - started).toBeLessThan(3_000);
    }, 10_000);

    // Last: every command above ran on the cluster.
    it("no command of this suite was refused CROSSSLOT, and one that names two slots would be counted", async () => {
      const stats = backend.cluster;
      if (!stats) throw new Error("no cluster");
      expect((await stats.errorStats()).CROSSSLOT ?? 0).toBe(0);
      const [a, b] = [...(await onEveryMaster()).values()];
      await expect(redis.exists(counters.keys(a ?? "").state, counters.keys(b ?? "").state)).rejects.toThrow(/CROSSSLOT/);
      expect((await stats.errorStats()).CROSSSLOT).toBe(1);
    });
  });
});
