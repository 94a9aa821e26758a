import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { BudgetBehavior } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import { client } from "../support/app.js";
import { createTestDatabase } from "../support/database.js";
import { runLoad, truth } from "../support/load.js";
import { startPrivateRedis, type PrivateRedis } from "../support/redis-server.js";
import { provisionKey, startServerProcess, type ServerProcess } from "../support/server-process.js";
import { promo } from "../support/rpc.js";

// ReverseInvoice racing ApplyPromotions against one budget: 2,000 invoices priced 64 at a time
// while 500 of them are reversed at random moments (some before their apply has finished, which
// answers NOT_FOUND until it has). Afterwards the budget used is exactly the sum of the
// unreversed applications — in the ledger, in Redis and in GetPromotion — every reversed
// invoice's redemption has its cycle back, and retries of both calls are idempotent. Then the same
// with a Redis FLUSHALL and a server SIGKILL in the middle. A private Redis and server process
// each, so the shared services are never touched.

const INVOICES = 2_000;
const REVERSALS = 500;
const CUSTOMERS = 400;
const IN_FLIGHT = 64;
const FAST_SWEEP = { RESERVATION_TTL_MS: "1000", SWEEP_INTERVAL_MS: "200" };
const BUDGET = 1_200_000n; // 10% of 10,000 per invoice: room for 1,200 of the 2,000, reversals free more
const invoice = { currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] };

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Stack {
  redis: PrivateRedis;
  server: ServerProcess;
  orm: MikroORM;
  prefix: string;
  key: string;
}

async function stack(label: string): Promise<Stack> {
  const redis = await startPrivateRedis();
  cleanups.push(() => redis.dispose());
  const db = await createTestDatabase(label);
  cleanups.push(() => db.drop());
  const prefix = `test:${db.name}:`;
  const server = await startServerProcess({ DATABASE_URL: db.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, ...FAST_SWEEP });
  cleanups.push(() => server.kill());
  const orm = await openOrm({ databaseUrl: db.url, poolMax: 2 });
  cleanups.push(() => orm.close());
  const { key } = await provisionKey(db.url, `${label.replace(/_/g, "-")}-co`);
  return { redis, server, orm, prefix, key };
}

const detailCode = (error: unknown): string | undefined => ConnectError.from(error).findDetails(ErrorDetailSchema)[0]?.code;

/** Reverses an invoice once its apply has landed: NOT_FOUND means "not priced yet", so wait and ask again. */
async function reverseWhenPriced(s: Stack, invoiceId: string): Promise<void> {
  const invoices = client(InvoiceService, s.server.url, s.key, "grpc");
  for (let attempt = 0; attempt < 2_000; attempt++) {
    try {
      await invoices.reverseInvoice({ invoiceId, reason: "voided" });
      return;
    } catch (error) {
      const e = ConnectError.from(error);
      // NOT_FOUND: not priced yet; the others: the server is restarting (the SIGKILL case).
      if (![Code.NotFound, Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Aborted, Code.Canceled].includes(e.code)) throw error;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
    }
  }
  throw new Error(`invoice ${invoiceId} was never priced`);
}

async function storm(s: Stack, fault?: () => Promise<void>) {
  const promotions = client(PromotionService, s.server.url, s.key, "grpc");
  const created = promo(await promotions.createPromotion({ name: "Budgeted", code: "VOIDABLE", currency: "USD", effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }], maxBudget: BUDGET, budgetBehavior: BudgetBehavior.CAP }));
  const p = promo(await promotions.activatePromotion({ id: created.id }));
  const redemptions = client(RedemptionService, s.server.url, s.key, "grpc");
  const redeemed = await runLoad(0, CUSTOMERS, 16, (i) => redemptions.redeemPromotion({ code: "VOIDABLE", customerId: `c${i}`, idempotencyKey: `r${i}` }));
  expect(redeemed.ok).toBe(CUSTOMERS);

  const invoices = client(InvoiceService, s.server.url, s.key, "grpc");
  const apply = (i: number) => invoices.applyPromotions({ invoiceId: `inv-${i}`, customerId: `c${i % CUSTOMERS}`, invoice });
  const reversed = new Set<number>();
  while (reversed.size < REVERSALS) reversed.add(Math.floor(Math.random() * INVOICES));
  const applies = runLoad(0, INVOICES, IN_FLIGHT, apply);
  // Each reversal at a random moment of the run, 16 at a time: some find their invoice priced,
  // some are early and wait for it.
  const schedule = [...reversed].map((i) => ({ i, at: Date.now() + Math.random() * 4_000 })).sort((a, b) => a.at - b.at);
  const reversals = Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let next = schedule.shift(); next; next = schedule.shift()) {
        await new Promise((r) => setTimeout(r, Math.max(0, next.at - Date.now())));
        await reverseWhenPriced(s, `inv-${next.i}`);
      }
    }),
  );
  if (fault) {
    await new Promise((r) => setTimeout(r, 1_500));
    await fault();
  }
  const [load] = await Promise.all([applies, reversals]);
  expect(load.unexpected).toEqual([]);
  expect(load.ok).toBe(INVOICES);
  return { p, reversed, apply };
}

async function expectExact(s: Stack, promotionId: string, reversed: ReadonlySet<number>, apply: (i: number) => Promise<unknown>) {
  const conn = s.orm.em.fork().getConnection();
  // Counter returns and reservations left pending by the fault are settled by the sweeper.
  for (let i = 0; i < 100; i++) {
    const [pending] = await conn.execute<{ n: string }[]>(`select count(*) as n from counter_returns where applied_at is null`);
    const facts = await truth(s.orm.em.fork(), s.redis.url, s.prefix, promotionId);
    if (Number(pending?.n ?? 0) === 0 && facts.pending === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const [applied] = await conn.execute<{ b: string }[]>(
    `select coalesce(sum(a.budget_consumed_minor), 0) as b from invoice_applications a join invoices i on i.organization_id = a.organization_id and i.id = a.invoice_id
      where a.promotion_id = ? and a.status = 'APPLIED' and i.status = 'APPLIED'`,
    [promotionId],
  );
  const unreversed = BigInt(applied?.b ?? "0");
  const [notReversed] = await conn.execute<{ n: string }[]>(`select count(*) as n from invoices where status = 'REVERSED' and id in (?)`, [[...reversed].map((i) => `inv-${i}`)]);
  expect(Number(notReversed?.n)).toBe(reversed.size);
  const facts = await truth(s.orm.em.fork(), s.redis.url, s.prefix, promotionId);
  expect(facts).toMatchObject({ ledgerBudget: unreversed, redisBudget: unreversed, pending: 0 });
  expect(unreversed).toBeLessThanOrEqual(BUDGET);
  expect(promo(await client(PromotionService, s.server.url, s.key).getPromotion({ id: promotionId })).currentBudgetUsed).toBe(unreversed);
  // Every redemption has used exactly as many periods as it has unreversed applications.
  const drift = await conn.execute<{ id: string }[]>(
    `select r.id from redemptions r
      where r.promotion_id = ? and r.cycles_used <> (select count(*) from invoice_applications a where a.redemption_id = r.id and a.status = 'APPLIED')`,
    [promotionId],
  );
  expect(drift).toEqual([]);
  // Retries are idempotent: a reversed invoice stays reversed and cannot be applied again; an
  // unreversed one answers its first result.
  const invoices = client(InvoiceService, s.server.url, s.key, "grpc");
  for (const i of [...reversed].slice(0, 20)) {
    expect((await invoices.reverseInvoice({ invoiceId: `inv-${i}` })).replayed).toBe(true);
    expect(await apply(i).then(() => "applied", detailCode)).toBe("invoice_reversed");
  }
  const kept = Array.from({ length: INVOICES }, (_, i) => i).filter((i) => !reversed.has(i)).slice(0, 20);
  for (const i of kept) expect((await invoices.applyPromotions({ invoiceId: `inv-${i}`, customerId: `c${i % CUSTOMERS}`, invoice })).replayed).toBe(true);
  const after = await truth(s.orm.em.fork(), s.redis.url, s.prefix, promotionId);
  expect(after).toMatchObject({ ledgerBudget: unreversed, redisBudget: unreversed });
}

describe("ReverseInvoice racing ApplyPromotions", () => {
  it("2,000 applies and 500 reversals at random moments: the budget used is exactly the unreversed applications'", async () => {
    const s = await stack("reversal_race");
    const { p, reversed, apply } = await storm(s);
    await expectExact(s, p.id, reversed, apply);
    expect(s.server.crashes()).toEqual([]);
  }, 300_000);

  it("the same with a Redis FLUSHALL and a server SIGKILL in the middle", async () => {
    const s = await stack("reversal_faults");
    const { p, reversed, apply } = await storm(s, async () => {
      await s.redis.flushAll();
      await new Promise((r) => setTimeout(r, 700));
      await s.server.kill();
      await s.server.start();
    });
    await expectExact(s, p.id, reversed, apply);
  }, 300_000);
});
