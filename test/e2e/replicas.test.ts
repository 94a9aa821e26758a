import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectError, type Client } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { BudgetBehavior, type Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import { client } from "../support/app.js";
import { promo } from "../support/rpc.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { runLoad, truth } from "../support/load.js";
import { provisionKey, startServerProcess, type ServerProcess } from "../support/server-process.js";

// Three replicas — three server processes of `src/main.ts serve` on three ports — share one
// Postgres database and one Redis key prefix, as a deployment behind a load balancer does. Calls go
// round-robin across them. The limits stay exact, an idempotency key counts once whichever replica
// it reaches, and a change made through one replica is honoured by the next call on the others.

const REDIS_URL = "redis://127.0.0.1:6379";
const ATTEMPTS = 5_000;
const IN_FLIGHT = 64;
const CUSTOMERS = 1_000;
const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];

let db: TestDatabase;
let orm: MikroORM;
let prefix: string;
let replicas: ServerProcess[] = [];
let key: string;

const promotionsOn = (r: number) => client(PromotionService, replicas[r]!.url, key, "grpc");
const redemptionsOn = (r: number) => client(RedemptionService, replicas[r]!.url, key, "grpc");
/** One client per replica; call i goes to replica i mod 3. */
const roundRobin = <T>(make: (r: number) => T): ((i: number) => T) => {
  const clients = replicas.map((_, r) => make(r));
  return (i) => clients[i % clients.length]!;
};

async function active(fields: Record<string, unknown>): Promise<Promotion> {
  const created = promo(await promotionsOn(0).createPromotion({ name: "Replicated", effects: TEN_PERCENT, ...fields }));
  return promo(await promotionsOn(0).activatePromotion({ id: created.id }));
}

/** The ledger, Redis and the API, once every replica's batched confirms have landed. */
async function settledTruth(promotionId: string, perCustomer = 1) {
  for (let i = 0; ; i++) {
    const facts = await truth(orm.em.fork(), REDIS_URL, prefix, promotionId, perCustomer);
    if (facts.pending === 0 || i === 100) return facts;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The refusal's ErrorDetail code, or "admitted" when the call succeeds. */
async function refusalCode(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (error) {
    return ConnectError.from(error).findDetails(ErrorDetailSchema)[0]?.code ?? `no detail: ${String(error)}`;
  }
  return "admitted";
}

beforeAll(async () => {
  db = await createTestDatabase("replicas");
  prefix = `test:${db.name}:`; // one prefix for all three: they share the counters
  const env = { DATABASE_URL: db.url, REDIS_URL, REDIS_KEY_PREFIX: prefix, RESERVATION_TTL_MS: "2000", SWEEP_INTERVAL_MS: "500" };
  replicas = await Promise.all([0, 1, 2].map(() => startServerProcess(env)));
  orm = await openOrm({ databaseUrl: db.url, poolMax: 2 });
  ({ key } = await provisionKey(db.url, "replica-co"));
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await orm?.close();
  await db?.drop();
});

describe("three replicas sharing one database and one Redis", () => {
  it("5,000 redeems round-robin, max 300 and 1 per customer: exactly 300 in the ledger, in Redis and in current_redemptions", async () => {
    const p = await active({ code: "REPLICA300", maxRedemptions: 300n, maxRedemptionsPerCustomer: 1n });
    const on = roundRobin(redemptionsOn);
    const load = await runLoad(0, ATTEMPTS, IN_FLIGHT, (i) => on(i).redeemPromotion({ code: "REPLICA300", customerId: `c${i % CUSTOMERS}`, idempotencyKey: `r300-${i}` }));
    expect(load.unexpected).toEqual([]);
    expect(load.ok).toBe(300);
    expect((load.refused.max_redemptions_reached ?? 0) + (load.refused.customer_limit_reached ?? 0)).toBe(ATTEMPTS - 300);
    expect(await settledTruth(p.id)).toMatchObject({ ledger: 300, redis: 300, pending: 0, overLimitCustomers: 0, customerMismatches: 0 });
    for (const r of [0, 1, 2]) expect(promo(await promotionsOn(r).getPromotion({ id: p.id })).currentRedemptions).toBe(300n);
    for (const r of replicas) expect(r.crashes()).toEqual([]);
  });

  it("one idempotency key sent 50 times at once across the three replicas: one redemption, the same answer everywhere", async () => {
    const p = await active({ code: "ONCE", maxRedemptions: 100n, maxRedemptionsPerCustomer: 10n });
    const on = roundRobin(redemptionsOn);
    const ids: string[] = [];
    const load = await runLoad(0, 50, 50, async (i) => {
      const res = await on(i).redeemPromotion({ code: "ONCE", customerId: "same-customer", idempotencyKey: "checkout-42" });
      ids.push(res.redemption?.id ?? "none");
    });
    expect(load.unexpected).toEqual([]);
    expect(load.ok).toBe(50);
    expect(new Set(ids).size).toBe(1);
    expect(await settledTruth(p.id, 10)).toMatchObject({ ledger: 1, redis: 1, pending: 0, customerMismatches: 0 });
    expect(promo(await promotionsOn(2).getPromotion({ id: p.id })).currentRedemptions).toBe(1n);
  });

  it("a code deactivated through replica A is refused by the next redemption on B and C (their cached terms are stale)", async () => {
    const p = await active({ code: "MAINCODE", maxRedemptions: 1_000n });
    const created = await promotionsOn(0).createPromotionCodes({ promotionId: p.id, codes: ["SIDECODE"] });
    const side = created.codes[0];
    if (!side) throw new Error("no code created");
    // B and C cache the promotion's terms and codes by redeeming through them.
    for (const r of [1, 2]) await redemptionsOn(r).redeemPromotion({ code: "SIDECODE", customerId: `warm-${r}` });
    expect((await redemptionsOn(1).validateCode({ code: "SIDECODE", customerId: "next" })).valid).toBe(true);

    await promotionsOn(0).updatePromotionCode({ id: side.id, active: false });
    for (const r of [1, 2]) {
      expect(await refusalCode(redemptionsOn(r).redeemPromotion({ code: "SIDECODE", customerId: `after-${r}` }))).toBe("code_inactive");
      expect(await redemptionsOn(r).validateCode({ code: "SIDECODE", customerId: `after-${r}` })).toMatchObject({ valid: false, reason: "code_inactive" });
    }
    // The promotion's other code is untouched.
    expect(await refusalCode(redemptionsOn(2).redeemPromotion({ code: "MAINCODE", customerId: "main-1" }))).toBe("admitted");
    expect(await settledTruth(p.id)).toMatchObject({ ledger: 3, redis: 3, pending: 0 });
  });

  it("max_redemptions lowered, then raised, through replica A is honoured by the next redemption on B and C", async () => {
    const p = await active({ code: "RESIZED", maxRedemptions: 1_000n, maxRedemptionsPerCustomer: 1n });
    for (const r of [0, 1, 2]) await redemptionsOn(r).redeemPromotion({ code: "RESIZED", customerId: `first-${r}` });

    await promotionsOn(0).updatePromotion({ id: p.id, maxRedemptions: 3n });
    for (const r of [1, 2]) expect(await refusalCode(redemptionsOn(r).redeemPromotion({ code: "RESIZED", customerId: `over-${r}` }))).toBe("max_redemptions_reached");

    await promotionsOn(0).updatePromotion({ id: p.id, maxRedemptions: 5n });
    for (const r of [1, 2]) expect(await refusalCode(redemptionsOn(r).redeemPromotion({ code: "RESIZED", customerId: `more-${r}` }))).toBe("admitted");
    expect(await refusalCode(redemptionsOn(1).redeemPromotion({ code: "RESIZED", customerId: "one-too-many" }))).toBe("max_redemptions_reached");
    expect(await settledTruth(p.id)).toMatchObject({ ledger: 5, redis: 5, pending: 0, overLimitCustomers: 0, customerMismatches: 0 });
    expect(promo(await promotionsOn(1).getPromotion({ id: p.id })).currentRedemptions).toBe(5n);
  });

  it("a budget of 300,500 spent by 1,000 invoices round-robin across the replicas: exactly the budget", async () => {
    const p = await active({ currency: "USD", maxBudget: 300_500n, budgetBehavior: BudgetBehavior.CAP });
    const on: (i: number) => Client<typeof InvoiceService> = roundRobin((r) => client(InvoiceService, replicas[r]!.url, key, "grpc"));
    const discounts: bigint[] = [];
    const load = await runLoad(0, 1_000, IN_FLIGHT, async (i) => {
      const res = await on(i).applyPromotions({
        invoiceId: `budget-${i}`,
        customerId: `b${i % CUSTOMERS}`,
        invoice: { currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] },
      });
      discounts.push(res.invoice?.discountMinor ?? 0n);
    });
    expect(load.unexpected).toEqual([]);
    expect(load.ok).toBe(1_000);
    expect(discounts.reduce((a, b) => a + b, 0n)).toBe(300_500n);
    expect(discounts.filter((d) => d === 1_000n)).toHaveLength(300);
    expect(discounts.filter((d) => d === 500n)).toHaveLength(1);
    expect(await settledTruth(p.id)).toMatchObject({ ledgerBudget: 300_500n, redisBudget: 300_500n, pending: 0 });
    for (const r of [0, 1, 2]) expect(promo(await promotionsOn(r).getPromotion({ id: p.id })).currentBudgetUsed).toBe(300_500n);
    for (const r of replicas) expect(r.crashes()).toEqual([]);
  });
});
