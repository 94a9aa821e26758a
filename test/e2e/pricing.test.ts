import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BillingInterval, SubscriptionStatus } from "../../gen/promotions/v1/customer_pb.js";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { Archetype } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { PhaseDuration } from "../../gen/promotions/v1/types_pb.js";
import { client, startTestApp, type Protocol, type TestApp } from "../support/app.js";
import { at, pushCustomerAndSubscription } from "./support/billing.js";
import { promo, refusal } from "../support/rpc.js";

// Billing context in, priced invoices out: CustomerService, PreviewPromotionEligibility and
// SimulationService through the real server, over Connect and gRPC.

let t: TestApp;
let tenant: { organizationId: string; key: string; keyId: string };



/** Every table's rows and every Redis key of this app, to prove a dry run left them alone. */
async function snapshot(): Promise<string> {
  const conn = t.app.orm.em.fork().getConnection();
  const tables = [
    "organizations", "api_keys", "promotions", "promotion_versions", "customers", "subscriptions",
    "promotion_codes", "redemptions", "invoices", "invoice_applications", "invoice_discount_lines",
  ];
  const parts: unknown[] = [];
  for (const table of tables) parts.push(await conn.execute(`select * from ${table} order by 1, 2`));
  const redis = t.app.redis;
  // Rate-limit buckets (":rl:") are the caller's budget of calls, not promotion state: leave them out.
  const keys = (await redis.keys(`${t.app.counters.prefix}*`)).filter((k) => !k.includes(":rl:")).sort();
  for (const key of keys) {
    const type = await redis.type(key);
    parts.push([key, type, type === "hash" ? await redis.hgetall(key) : type === "zset" ? await redis.zrange(key, "0", "-1", "WITHSCORES") : await redis.get(key)]);
  }
  return JSON.stringify(parts);
}

beforeAll(async () => {
  t = await startTestApp("pricing");
  tenant = await t.tenant("pricing-co");
  await pushCustomerAndSubscription(
    t.url,
    tenant.key,
    {
      customerId: "cus_1",
      subscriptionId: "sub_1",
      items: [
        { planId: "pro-monthly", productId: "pro", unitAmountMinor: 4000n, quantity: 1 },
        { planId: "seats", productId: "seats", unitAmountMinor: 1000n, quantity: 3 },
      ],
    },
    { customer: { segments: ["enterprise"], hasPaidBefore: false } },
  );
});
afterAll(async () => t?.stop());

describe("CustomerService", () => {
  it("ignores an upsert older than what is stored, and applies a newer one", async () => {
    const customers = client(CustomerService, t.url, tenant.key);
    const stale = await customers.upsertCustomer({ customer: { id: "cus_1", segments: ["smb"], updatedAt: at("2025-01-01T00:00:00Z") } });
    expect(stale.applied).toBe(false);
    expect(stale.customer?.segments).toEqual(["enterprise"]);
    const replay = await customers.upsertCustomer({ customer: { id: "cus_2", segments: ["smb"], updatedAt: at("2026-01-01T00:00:00Z") } });
    expect(replay.applied).toBe(true);
    const again = await customers.upsertCustomer({ customer: { id: "cus_2", segments: ["smb"], updatedAt: at("2026-01-01T00:00:00Z") } });
    expect(again.applied).toBe(false);
    const newer = await customers.upsertCustomer({ customer: { id: "cus_2", segments: ["enterprise"], updatedAt: at("2026-02-01T00:00:00Z") } });
    expect(newer.applied).toBe(true);
    expect((await customers.getCustomer({ id: "cus_2" })).customer?.segments).toEqual(["enterprise"]);
  });

  it("settles concurrent out-of-order subscription upserts on the newest", async () => {
    const customers = client(CustomerService, t.url, tenant.key);
    const base = { id: "sub_race", customerId: "cus_2", currency: "USD", interval: BillingInterval.MONTH, status: SubscriptionStatus.ACTIVE };
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        customers.upsertSubscription({
          subscription: { ...base, items: [{ planId: `plan-${i}`, productId: "p", unitAmountMinor: 100n, quantity: 1 }], updatedAt: at(`2026-03-01T00:00:${String(i).padStart(2, "0")}Z`) },
        }),
      ),
    );
    expect((await customers.getSubscription({ id: "sub_race" })).subscription?.items[0]?.planId).toBe("plan-19");
  });

  it("refuses a subscription without updated_at or items, naming the fields", async () => {
    const r = await refusal(client(CustomerService, t.url, tenant.key).upsertSubscription({ subscription: { id: "s", customerId: "c", currency: "USD" } }));
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.details.map((d) => d.param).sort()).toEqual(["subscription.items", "subscription.updated_at"]);
  });

  it("keeps one tenant's customers from another", async () => {
    const other = await t.tenant("pricing-other");
    expect((await refusal(client(CustomerService, t.url, other.key).getCustomer({ id: "cus_1" }))).code).toBe(Code.NotFound);
  });
});

describe.each<Protocol>(["connect-json", "grpc"])("pricing over %s", (protocol) => {
  it("previews eligibility with every check and an effect summary in words", async () => {
    const promotions = client(PromotionService, t.url, tenant.key, protocol);
    const p = promo(
      await promotions.createPromotion({
        name: `Enterprise ladder ${protocol}`,
        archetype: Archetype.GROWTH_LADDER,
        isPhased: true,
        currency: "USD",
        conditions: [
          { kind: { case: "minSpend", value: { amountMinor: 5000n } } },
          { kind: { case: "customerSegments", value: { anyOf: ["enterprise"] } } },
        ],
        phases: [
          { name: "Intro", duration: PhaseDuration.REPEATING, cycles: 3, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 2000 } } }] },
          { name: "After", duration: PhaseDuration.FOREVER, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }] },
        ],
      }),
    );
    await promotions.activatePromotion({ id: p.id });
    const ok = await promotions.previewPromotionEligibility({ promotionId: p.id, subscriptionId: "sub_1" });
    expect(ok).toMatchObject({ eligible: true, reason: "", promotionName: `Enterprise ladder ${protocol}` });
    expect(ok.effectSummary).toBe("20% off for 3 billing periods, then 10% off forever");
    expect(ok.checks.every((c) => c.passed)).toBe(true);

    const small = await promotions.previewPromotionEligibility({
      promotionId: p.id,
      customerId: "cus_1",
      invoice: { currency: "USD", lines: [{ planId: "basic", productId: "basic", unitAmountMinor: 4000n, quantity: 1 }] },
    });
    expect(small).toMatchObject({ eligible: false, reason: "condition.min_spend" });
    const failing = small.checks.find((c) => c.check === small.reason);
    expect(failing?.detail).toMatch(/40\.00 USD.*50\.00 USD/);
  });

  it("simulates an invoice with line discounts that add up, and writes nothing", async () => {
    const promotions = client(PromotionService, t.url, tenant.key, protocol);
    const draft = promo(
      await promotions.createPromotion({
        name: `Ten percent ${protocol}`,
        effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }],
        maxRedemptions: 10n,
        currency: "USD",
        maxBudget: 100_000n,
      }),
    );
    const before = await snapshot();
    const { invoice } = await client(SimulationService, t.url, tenant.key, protocol).simulatePromotion({
      subscriptionId: "sub_1",
      promotionIds: [draft.id],
    });
    expect(await snapshot()).toBe(before);
    expect(invoice).toMatchObject({ currency: "USD", subtotalMinor: 7000n, discountMinor: 700n, totalMinor: 6300n });
    expect(invoice?.lines.map((l) => l.discountMinor)).toEqual([400n, 300n]);
    expect(invoice?.lines.reduce((sum, l) => sum + l.discountMinor, 0n)).toBe(invoice?.discountMinor);
    expect(invoice?.promotions[0]).toMatchObject({ promotionId: draft.id, applied: true, budgetConsumedMinor: 700n });
  });
});

describe("dry runs against live counters", () => {
  it("simulation, preview and ValidateCode leave every table and Redis counter of a redeemed promotion unchanged", async () => {
    const promotions = client(PromotionService, t.url, tenant.key, "grpc");
    const created = promo(
      await promotions.createPromotion({ name: "Live", code: "LIVE-DRY", effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }], maxRedemptions: 10n, currency: "USD", maxBudget: 50_000n }),
    );
    await promotions.activatePromotion({ id: created.id });
    await client(RedemptionService, t.url, tenant.key).redeemPromotion({ code: "LIVE-DRY", customerId: "cus_1" });
    expect((await t.app.counters.snapshot([created.id])).get(created.id)?.redemptions).toBe(1n);
    const before = await snapshot();
    await client(SimulationService, t.url, tenant.key, "grpc").simulatePromotion({ subscriptionId: "sub_1", promotionIds: [created.id] });
    await client(SimulationService, t.url, tenant.key).simulatePromotionImpact({ promotionId: created.id, periods: 3 });
    await promotions.previewPromotionEligibility({ promotionId: created.id, subscriptionId: "sub_1" });
    await client(RedemptionService, t.url, tenant.key).validateCode({ code: "LIVE-DRY", customerId: "cus_2" });
    expect(await snapshot()).toBe(before);
  });
});

describe("SimulatePromotionImpact", () => {
  it("forecasts cost per period over the tenant's subscriptions and when the budget runs out", async () => {
    const org = await t.tenant("impact-co");
    const customers = client(CustomerService, t.url, org.key);
    for (let i = 0; i < 30; i++) {
      await customers.upsertSubscription({
        subscription: {
          id: `sub_${i}`,
          customerId: `cus_${i}`,
          status: i < 25 ? SubscriptionStatus.ACTIVE : SubscriptionStatus.CANCELED,
          currency: "USD",
          interval: BillingInterval.MONTH,
          currentPeriodStart: at("2026-11-01T00:00:00Z"),
          items: [{ planId: "pro", productId: "pro", unitAmountMinor: 10_000n, quantity: 1 }],
          updatedAt: at("2026-01-01T00:00:00Z"),
        },
      });
    }
    const p = promo(
      await client(PromotionService, t.url, org.key).createPromotion({
        name: "Launch",
        currency: "USD",
        maxBudget: 60_000n,
        effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }],
      }),
    );
    const before = await snapshot();
    const r = await client(SimulationService, t.url, org.key).simulatePromotionImpact({ promotionId: p.id, periods: 4 });
    expect(await snapshot()).toBe(before);
    expect(r).toMatchObject({ evaluatedSubscriptions: 25n, eligibleSubscriptions: 25n, currency: "USD", totalCostMinor: 60_000n, budgetExhaustedPeriod: 3 });
    expect(r.periods.map((x) => [x.discountMinor, x.budgetRemainingMinor])).toEqual([
      [25_000n, 35_000n],
      [25_000n, 10_000n],
      [10_000n, 0n],
      [0n, 0n],
    ]);
  });
});
