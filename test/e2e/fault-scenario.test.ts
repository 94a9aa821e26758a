import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { BudgetBehavior } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { migrate, openOrm, type MikroORM } from "../../src/store/orm.js";
import { client } from "../support/app.js";
import { promo } from "../support/rpc.js";
import { runLoad, truth } from "../support/load.js";
import { startPrivatePostgres, type PrivatePostgres } from "../support/postgres-server.js";
import { startPrivateRedis, type PrivateRedis } from "../support/redis-server.js";
import { provisionKey, startServerProcess, type ServerProcess } from "../support/server-process.js";
import { awaitRecovery, startSteadyLoad, type Operation, type Recovery } from "../support/steady-load.js";

// Every fault in one scenario, under continuous load across two replica processes that share a
// private Postgres and a private Redis: Redis loses every key, Redis restarts, a replica is killed
// with SIGKILL and started again, Postgres restarts. Nobody restarts the service: it recovers by
// itself, clients see only retryable errors meanwhile (and retry with the same idempotency key or
// invoice id on the next replica), and afterwards every limit holds and ledger = counters = what
// clients were told.

const REPLICAS = 2;
const IN_FLIGHT = 32;
const HOT_MAX = 1_500;
const BUDGET = 200_500n;
const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];
const INVOICE = { currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] };

let pg: PrivatePostgres;
let redis: PrivateRedis;
let orm: MikroORM;
let databaseUrl: string;
let replicas: ServerProcess[] = [];
let key: string;
const prefix = "faults:";

beforeAll(async () => {
  [pg, redis] = await Promise.all([startPrivatePostgres(), startPrivateRedis()]);
  databaseUrl = pg.url("promotions_faults");
  await migrate({ databaseUrl }); // once, before the replicas start (each would migrate on startup)
  const env = { DATABASE_URL: databaseUrl, REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, RESERVATION_TTL_MS: "1000", SWEEP_INTERVAL_MS: "200" };
  replicas = await Promise.all(Array.from({ length: REPLICAS }, () => startServerProcess(env)));
  orm = await openOrm({ databaseUrl, poolMax: 2 });
  ({ key } = await provisionKey(databaseUrl, "fault-co"));
}, 90_000);

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.kill()));
  await orm?.close();
  await redis?.dispose();
  await pg?.dispose();
});

describe("faults, all together, under load across replicas", () => {
  it("Redis flushed, Redis restarted, a replica SIGKILLed, Postgres restarted: the service recovers by itself and every limit holds", async () => {
    const promotions = client(PromotionService, replicas[0]!.url, key, "grpc");
    const activate = async (fields: Record<string, unknown>) =>
      promo(await promotions.activatePromotion({ id: promo(await promotions.createPromotion({ name: "Faulty", effects: TEN_PERCENT, ...fields })).id }));
    const hot = await activate({ code: "HOT", maxRedemptions: BigInt(HOT_MAX), maxRedemptionsPerCustomer: 1n });
    const open = await activate({ code: "OPEN", maxRedemptionsPerCustomer: 1n });
    const budget = await activate({ currency: "USD", maxBudget: BUDGET, budgetBehavior: BudgetBehavior.CAP });

    const redeemers = replicas.map((r) => client(RedemptionService, r.url, key, "grpc"));
    const invoicers = replicas.map((r) => client(InvoiceService, r.url, key, "grpc"));
    // A retry goes to the next replica, as a load balancer would send it.
    const pick = <T>(all: T[], i: number, attempt: number): T => all[(i + attempt) % all.length]!;
    const admitted = { HOT: 0, OPEN: 0 };
    let discounted = 0n;
    const redeem = (code: "HOT" | "OPEN", i: number, customerId: string): Operation => ({
      name: `redeem ${code}`,
      async run(attempt) {
        await pick(redeemers, i, attempt).redeemPromotion({ code, customerId, idempotencyKey: `${code}-${i}` });
        admitted[code]++;
      },
    });
    const apply = (i: number, invoiceId: string): Operation => ({
      name: "apply",
      async run(attempt) {
        const res = await pick(invoicers, i, attempt).applyPromotions({ invoiceId, customerId: `inv${i}`, invoice: INVOICE });
        discounted += res.invoice?.discountMinor ?? 0n;
      },
    });
    const load = startSteadyLoad({
      inFlight: IN_FLIGHT,
      record: true,
      // HOT: a hard limit with customers coming back; OPEN: every call writes the ledger; apply: budget.
      next: (i) => (i % 4 === 0 ? apply(i, `inv-${i}`) : i % 4 === 1 ? redeem("HOT", i, `c${i % 4_000}`) : redeem("OPEN", i, `o${i}`)),
    });

    const faults: { name: string; outageMs: number; recovery: Recovery }[] = [];
    const inject = async (name: string, fault: () => Promise<void>) => {
      const at = performance.now();
      await fault();
      const outageMs = Math.round(performance.now() - at);
      faults.push({ name, outageMs, recovery: await awaitRecovery(load, at) });
    };
    try {
      await awaitRecovery(load, performance.now()); // steady first
      await inject("Redis FLUSHALL", () => redis.flushAll());
      await inject("Redis restart (down 1 s, empty after)", async () => {
        await redis.stop();
        await new Promise((r) => setTimeout(r, 1_000));
        await redis.start();
      });
      await inject("replica SIGKILL + restart", async () => {
        await replicas[1]!.kill();
        await new Promise((r) => setTimeout(r, 500));
        await replicas[1]!.start();
      });
      await inject("Postgres restart (down 1 s)", async () => {
        await pg.stop();
        await new Promise((r) => setTimeout(r, 1_000));
        await pg.start();
      });
    } finally {
      await load.stop();
    }
    const stats = load.stats();
    console.log(
      "recovery after each fault:\n" +
        faults.map((f) => `  ${f.name.padEnd(40)} fault lasted ${String(f.outageMs).padStart(5)} ms; no call fails from ${String(Math.round(f.recovery.recoveryMs)).padStart(5)} ms after it began; ${String(f.recovery.failedAttempts).padStart(4)} attempts failed (retried); longest time with no call answered ${f.recovery.longestGapMs} ms`).join("\n"),
    );
    console.log("calls:", JSON.stringify(Object.fromEntries(Object.entries(stats).map(([k, s]) => [k, { ok: s.ok, refused: s.refused, retried: s.retried }]))));
    if (Object.values(stats).some((s) => s.unexpected.length > 0)) {
      console.log("server errors:\n" + replicas.flatMap((r) => r.output().split("\n").filter((l) => /"level":"(error|fatal)"/.test(l))).slice(0, 20).join("\n"));
    }
    for (const s of Object.values(stats)) expect(s.unexpected).toEqual([]);
    expect(faults.every((f) => Number.isFinite(f.recovery.recoveryMs))).toBe(true);
    for (const r of replicas) expect(r.crashes()).toEqual([]);

    // Drive HOT to its limit and the budget to its end, so both are checked at the edge.
    const topUp = await runLoad(0, HOT_MAX + 50, IN_FLIGHT, async (i) => {
      await redeemers[i % REPLICAS]!.redeemPromotion({ code: "HOT", customerId: `top${i}`, idempotencyKey: `top-${i}` });
      admitted.HOT++;
    });
    const spend = await runLoad(0, Number(BUDGET / 1_000n) + 20, IN_FLIGHT, async (i) => {
      const res = await invoicers[i % REPLICAS]!.applyPromotions({ invoiceId: `spend-${i}`, customerId: `spend${i}`, invoice: INVOICE });
      discounted += res.invoice?.discountMinor ?? 0n;
    });
    expect(topUp.unexpected).toEqual([]);
    expect(spend.unexpected).toEqual([]);
    expect(topUp.refused.max_redemptions_reached).toBeGreaterThan(0);

    const settled = async (id: string) => {
      for (let i = 0; ; i++) {
        const facts = await truth(orm.em.fork(), redis.url, prefix, id);
        if (facts.pending === 0 || i === 100) return facts;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const reader = client(PromotionService, replicas[1]!.url, key, "grpc");
    const hotFacts = await settled(hot.id);
    expect(hotFacts).toMatchObject({ ledger: HOT_MAX, redis: HOT_MAX, pending: 0, overLimitCustomers: 0, customerMismatches: 0 });
    expect(admitted.HOT).toBe(HOT_MAX);
    expect(promo(await reader.getPromotion({ id: hot.id })).currentRedemptions).toBe(BigInt(HOT_MAX));

    const openFacts = await settled(open.id);
    expect(openFacts).toMatchObject({ ledger: admitted.OPEN, redis: admitted.OPEN, pending: 0, overLimitCustomers: 0, customerMismatches: 0 });

    const budgetFacts = await settled(budget.id);
    expect(budgetFacts).toMatchObject({ ledgerBudget: BUDGET, redisBudget: BUDGET, pending: 0 });
    expect(discounted).toBe(BUDGET);
    expect(promo(await reader.getPromotion({ id: budget.id })).currentBudgetUsed).toBe(BUDGET);
  });
});

