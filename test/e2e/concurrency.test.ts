import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { BudgetBehavior, type Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { client, startTestApp, type Replica, type TestApp } from "../support/app.js";
import { runLoad, truth } from "../support/load.js";
import { promo } from "../support/rpc.js";
import { sqlOf } from "../../src/events/sql.js";

// Limits are exact under concurrency: 5,000 attempts, 64 in flight, 1,000 customers, against one
// hot promotion — for the global limit, a code's limit and the budget — and release racing redeem.
// Every load runs on both gRPC lanes at once: call i goes to the grpc-js lane (the test app) when
// i is even and to the connect-node lane (a replica on the same data) when odd, so one run proves
// both lanes exact, and exact against each other, in the time of one.

const ATTEMPTS = 5_000;
const IN_FLIGHT = 64;
const CUSTOMERS = 1_000;
const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];

let t: TestApp;
let connectLane: Replica;
let tenant: { organizationId: string; key: string; keyId: string };
const prefix = () => t.app.counters.prefix;


async function active(fields: Record<string, unknown>): Promise<Promotion> {
  const promotions = client(PromotionService, t.url, tenant.key, "grpc");
  const created = promo(await promotions.createPromotion({ name: "Hot", effects: TEN_PERCENT, ...fields }));
  return promo(await promotions.activatePromotion({ id: created.id }));
}

async function currentRedemptions(id: string): Promise<bigint> {
  return promo(await client(PromotionService, t.url, tenant.key).getPromotion({ id })).currentRedemptions;
}

beforeAll(async () => {
  t = await startTestApp("concurrency", { GRPC_LANE: "grpc-js" });
  connectLane = await t.replica({ GRPC_LANE: "connect" });
  tenant = await t.tenant("hot-co");
});

/** gRPC clients of both lanes; call i goes to lane i % 2. */
function bothLanes<S extends DescService>(service: S): (i: number) => Client<S> {
  const lanes = [client(service, t.url, tenant.key, "grpc"), client(service, connectLane.url, tenant.key, "grpc")];
  return (i) => lanes[i % 2] as Client<S>;
}

/** Confirms still queued on either server are written before the ledger is counted. */
async function flushConfirms(): Promise<void> {
  await Promise.all([t.app.counters.flushConfirms(), connectLane.app.counters.flushConfirms()]);
}

afterAll(async () => {
  await t?.stop();
});

// Each proof is thousands of calls on a machine shared with other work: minutes, not a timer.
const LONG = { timeout: 240_000 };

describe("exact limits under concurrency", LONG, () => {
  it("max_redemptions 300 and 1 per customer: exactly 300 in the ledger, in Redis and in current_redemptions, with 300 redemption.created and one promotion.exhausted", async () => {
    const p = await active({ code: "LAUNCH", maxRedemptions: 300n, maxRedemptionsPerCustomer: 1n });
    const redemptions = bothLanes(RedemptionService);
    const load = await runLoad(0, ATTEMPTS, IN_FLIGHT, (i) =>
      redemptions(i).redeemPromotion({ code: "LAUNCH", customerId: `c${i % CUSTOMERS}`, idempotencyKey: `launch-${i}` }),
    );
    expect(load.unexpected).toEqual([]);
    expect(load.ok).toBe(300);
    expect((load.refused.max_redemptions_reached ?? 0) + (load.refused.customer_limit_reached ?? 0)).toBe(ATTEMPTS - 300);
    await flushConfirms();
    const facts = await truth(t.app.orm.em.fork(), "redis://127.0.0.1:6379", prefix(), p.id);
    expect(facts).toMatchObject({ ledger: 300, redis: 300, pending: 0, overLimitCustomers: 0, customerMismatches: 0 });
    expect(await currentRedemptions(p.id)).toBe(300n);
    // One redemption.created per ledger row (written by the row's own statement), the last slot announced once.
    const [counts] = await sqlOf(t.app.orm.em.fork()).rows<{ created: string; exhausted: string; rows: string }>(
      `select count(*) filter (where type = 'redemption.created')::text as created,
              count(*) filter (where type = 'promotion.exhausted' and resource_id = $2)::text as exhausted,
              (select count(*) from redemptions r where r.promotion_id = $2::uuid and r.status <> 'ABANDONED')::text as rows
         from events e
        where e.organization_id = $1 and (e.type = 'promotion.exhausted' or e.resource_id in (select id::text from redemptions where promotion_id = $2::uuid))`,
      [tenant.organizationId, p.id],
    );
    expect(counts).toEqual({ created: "300", exhausted: "1", rows: "300" });
  });

  it("a code limited to 300: exactly 300 through that code", async () => {
    const p = await active({ code: "BASE-CODE" });
    await client(PromotionService, t.url, tenant.key).createPromotionCodes({ promotionId: p.id, codes: ["FLASH300"], maxRedemptions: 300n });
    const redemptions = bothLanes(RedemptionService);
    const load = await runLoad(0, ATTEMPTS, IN_FLIGHT, (i) =>
      redemptions(i).redeemPromotion({ code: "FLASH300", customerId: `c${i}`, idempotencyKey: `flash-${i}` }),
    );
    expect(load.unexpected).toEqual([]);
    expect(load.ok).toBe(300);
    expect(load.refused.code_limit_reached).toBe(ATTEMPTS - 300);
    await flushConfirms();
    const facts = await truth(t.app.orm.em.fork(), "redis://127.0.0.1:6379", prefix(), p.id);
    expect(facts).toMatchObject({ ledger: 300, redis: 300, pending: 0 });
    const codes = await client(PromotionService, t.url, tenant.key).listPromotionCodes({ promotionId: p.id });
    expect(codes.codes.find((c) => c.code === "FLASH300")?.redemptionCount).toBe(300n);
  });

  it("a budget of 300,500 spent by 2,000 concurrent invoices: exactly the budget, never more", async () => {
    const p = await active({ currency: "USD", maxBudget: 300_500n, budgetBehavior: BudgetBehavior.CAP });
    const conn = t.app.orm.em.fork().getConnection();
    await conn.execute(
      `insert into customers (organization_id, id, segments, has_paid_before, created_at, metadata, updated_at, stored_at)
       select ?, 'b' || g, array[]::text[], true, now(), '{}', now(), now() from generate_series(0, ?) g on conflict do nothing`,
      [tenant.organizationId, CUSTOMERS - 1],
    );
    const invoices = bothLanes(InvoiceService);
    const discounts: bigint[] = [];
    const load = await runLoad(0, 2_000, IN_FLIGHT, async (i) => {
      const res = await invoices(i).applyPromotions({
        invoiceId: `budget-${i}`,
        customerId: `b${i % CUSTOMERS}`,
        invoice: { currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] },
      });
      discounts.push(res.invoice?.discountMinor ?? 0n);
    });
    expect(load.unexpected).toEqual([]);
    expect(load.ok).toBe(2_000);
    expect(discounts.reduce((a, b) => a + b, 0n)).toBe(300_500n);
    expect(discounts.filter((d) => d === 1_000n)).toHaveLength(300);
    expect(discounts.filter((d) => d === 500n)).toHaveLength(1);
    await flushConfirms();
    const facts = await truth(t.app.orm.em.fork(), "redis://127.0.0.1:6379", prefix(), p.id);
    expect(facts).toMatchObject({ ledgerBudget: 300_500n, redisBudget: 300_500n, pending: 0 });
    expect(promo(await client(PromotionService, t.url, tenant.key).getPromotion({ id: p.id })).currentBudgetUsed).toBe(300_500n);
  });

  it("release racing redeem keeps the ledger, Redis and each customer's limit in step", async () => {
    const p = await active({ code: "CHURN", maxRedemptions: 150n, maxRedemptionsPerCustomer: 1n });
    const redemptions = bothLanes(RedemptionService);
    const load = await runLoad(0, 3_000, IN_FLIGHT, async (i) => {
      const customerId = `r${i % 200}`;
      const made = await redemptions(i).redeemPromotion({ code: "CHURN", customerId, idempotencyKey: `churn-${i}` });
      if (i % 3 !== 0 && made.redemption) await redemptions(i).releaseRedemption({ id: made.redemption.id });
    });
    expect(load.unexpected).toEqual([]);
    await flushConfirms();
    const facts = await truth(t.app.orm.em.fork(), "redis://127.0.0.1:6379", prefix(), p.id);
    expect(facts.overLimitCustomers).toBe(0);
    expect(facts.ledger).toBeLessThanOrEqual(150);
    expect(facts.redis).toBe(facts.ledger);
    expect(facts.customerMismatches).toBe(0);
    expect(facts.pending).toBe(0);
    expect(await currentRedemptions(p.id)).toBe(BigInt(facts.ledger));
  });
});

describe("automatic promotions under concurrency", LONG, () => {
  const INVOICES = 2_000;
  const invoice = { currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] };

  /** 2,000 concurrent ApplyPromotions for 1,000 customers (each customer's two invoices race each other too). */
  async function applyAll(tag: string) {
    const invoices = bothLanes(InvoiceService);
    const discounts = new Map<string, bigint[]>();
    const load = await runLoad(0, INVOICES, IN_FLIGHT, async (i) => {
      const customerId = `${tag}-c${i % CUSTOMERS}`;
      const res = await invoices(i).applyPromotions({ invoiceId: `${tag}-${i}`, customerId, invoice });
      discounts.set(customerId, [...(discounts.get(customerId) ?? []), res.invoice?.discountMinor ?? 0n]);
    });
    expect(load.unexpected).toEqual([]);
    expect(load.ok).toBe(INVOICES);
    await flushConfirms();
    const discounted = [...discounts].filter(([, d]) => d.some((x) => x > 0n)).map(([c]) => c);
    const total = [...discounts.values()].flat().reduce((a, b) => a + b, 0n);
    return { discounted, total, discounts };
  }

  async function reachedCustomers(promotionId: string): Promise<string[]> {
    const rows = await t.app.orm.em.fork().getConnection().execute<{ customer_id: string }[]>(
      `select customer_id from redemptions where promotion_id = ? and status in ('ACTIVE', 'COMPLETED', 'ENDED') and kind = 'AUTOMATIC'`,
      [promotionId],
    );
    return rows.map((r) => r.customer_id).sort();
  }

  it("max_redemptions 300 and 1 per customer: exactly 300 customers discounted, in the ledger, in Redis and in current_redemptions", async () => {
    const p = await active({ maxRedemptions: 300n, maxRedemptionsPerCustomer: 1n });
    const { discounted, discounts } = await applyAll("auto300");
    expect(discounted).toHaveLength(300);
    // A customer reached keeps its redemption: both its invoices are discounted; nobody else's is.
    for (const c of discounted) expect(discounts.get(c)).toEqual([1_000n, 1_000n]);
    expect(await reachedCustomers(p.id)).toEqual([...discounted].sort());
    const facts = await truth(t.app.orm.em.fork(), "redis://127.0.0.1:6379", prefix(), p.id);
    expect(facts).toMatchObject({ ledger: 300, redis: 300, pending: 0, overLimitCustomers: 0, customerMismatches: 0 });
    expect(await currentRedemptions(p.id)).toBe(300n);
  });

  it.each([
    { behavior: BudgetBehavior.CAP, name: "CAP", spent: 100_500n },
    { behavior: BudgetBehavior.STRICT, name: "STRICT", spent: 100_000n },
  ])("with a $name budget of 100,500 as well: exactly the budget spent, and every customer reached was discounted", async ({ behavior, name, spent }) => {
    const p = await active({ currency: "USD", maxRedemptions: 300n, maxRedemptionsPerCustomer: 1n, maxBudget: 100_500n, budgetBehavior: behavior });
    const { discounted, total } = await applyAll(`auto-${name}`);
    expect(total).toBe(spent);
    const reached = await reachedCustomers(p.id);
    expect(reached).toEqual([...discounted].sort());
    const facts = await truth(t.app.orm.em.fork(), "redis://127.0.0.1:6379", prefix(), p.id);
    expect(facts).toMatchObject({ ledger: reached.length, redis: reached.length, ledgerBudget: spent, redisBudget: spent, pending: 0, overLimitCustomers: 0 });
    const view = promo(await client(PromotionService, t.url, tenant.key).getPromotion({ id: p.id }));
    expect(view).toMatchObject({ currentBudgetUsed: spent, currentRedemptions: BigInt(reached.length) });
    expect(reached.length).toBeLessThanOrEqual(300);
  });
});

describe("both lanes", () => {
  it("answered the loads above, each its half", () => {
    expect(t.lanesServed()).toContain("grpc-js");
    expect(connectLane.lanesServed()).toEqual(["connect"]);
  });
});
