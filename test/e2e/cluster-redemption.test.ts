import { ConnectError } from "@connectrpc/connect";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { BudgetBehavior, type Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService, RedemptionStatus } from "../../gen/promotions/v1/redemption_service_pb.js";
import { client, startTestApp, type TestApp } from "../support/app.js";
import { runLoad, truth, type LoadResult } from "../support/load.js";
import { startRedisCluster, type PrivateCluster } from "../support/redis-cluster.js";

// The hot path with its counters on a private three-master Redis Cluster (REDIS_CLUSTER_NODES):
// redeem, validate and release; the concurrency proof of test/e2e/concurrency.test.ts; an
// idempotency stampede; a code limit; a budget spent through ApplyPromotions. After each, the
// ledger, Redis and current_redemptions agree. A command naming keys of two slots would be refused
// CROSSSLOT: the service turns that into UNAVAILABLE (retried by runLoad), so every load also
// proves that no call was retried for an unreachable counter store, and the last test reads the
// masters' own error counts and the server's logs.

const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];

let cluster: PrivateCluster;
let redis: Cluster;
let t: TestApp;
let tenant: { organizationId: string; key: string; keyId: string };

function promo(res: { promotion?: Promotion }): Promotion {
  if (!res.promotion) throw new Error("response carries no promotion");
  return res.promotion;
}

const promotions = () => client(PromotionService, t.url, tenant.key, "grpc");
const redemptions = () => client(RedemptionService, t.url, tenant.key, "grpc");

async function active(fields: Record<string, unknown>): Promise<Promotion> {
  const created = promo(await promotions().createPromotion({ name: "Clustered", effects: TEN_PERCENT, ...fields }));
  return promo(await promotions().activatePromotion({ id: created.id }));
}

async function refusal(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (error) {
    return ConnectError.from(error).findDetails(ErrorDetailSchema)[0]?.code ?? "";
  }
  throw new Error("expected a refusal");
}

/** No call failed in a way a healthy cluster explains: nothing unexpected, no Redis call failed. */
function clean(load: LoadResult): void {
  expect(load.unexpected).toEqual([]);
  expect(load.retriedBy.counters_unavailable ?? 0).toBe(0);
}

/** Ledger, Redis (read through a cluster client) and the API agree on `redemptions`. */
async function agree(promotionId: string, redemptions: number): Promise<void> {
  await t.app.counters.flushConfirms();
  const facts = await truth(t.app.orm.em.fork(), redis, t.app.counters.prefix, promotionId);
  expect(facts).toMatchObject({ ledger: redemptions, redis: redemptions, pending: 0, overLimitCustomers: 0, customerMismatches: 0 });
  expect(promo(await promotions().getPromotion({ id: promotionId })).currentRedemptions).toBe(BigInt(redemptions));
}

beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = cluster.connect();
  t = await startTestApp("cluster-redemption", { REDIS_CLUSTER_NODES: cluster.nodes });
  tenant = await t.tenant("cluster-co");
});

afterAll(async () => {
  await t?.stop();
  redis?.disconnect();
  await cluster?.stop();
});

describe("the hot path on a Redis Cluster", () => {
  it("the service talks to the cluster through a cluster client", async () => {
    expect(t.app.redis).toBeInstanceOf(Cluster);
    expect((await redis.cluster("INFO")).includes("cluster_known_nodes:3")).toBe(true);
  });

  it("redeems within the limits, ValidateCode answers as RedeemPromotion would, and a release frees the slot", async () => {
    const p = await active({ code: "CLUSTER2", maxRedemptions: 2n, maxRedemptionsPerCustomer: 1n });
    expect(await redemptions().validateCode({ code: "cluster2", customerId: "c1" })).toMatchObject({ valid: true, promotionId: p.id, remainingRedemptions: 2n });
    const first = (await redemptions().redeemPromotion({ code: "CLUSTER2", customerId: "c1" })).redemption;
    expect(first).toMatchObject({ promotionId: p.id, status: RedemptionStatus.ACTIVE });
    expect(await refusal(redemptions().redeemPromotion({ code: "CLUSTER2", customerId: "c1" }))).toBe("customer_limit_reached");
    await redemptions().redeemPromotion({ code: "CLUSTER2", customerId: "c2" });
    expect(await refusal(redemptions().redeemPromotion({ code: "CLUSTER2", customerId: "c3" }))).toBe("max_redemptions_reached");
    expect(await redemptions().validateCode({ code: "CLUSTER2", customerId: "c3" })).toMatchObject({ valid: false, reason: "max_redemptions_reached" });
    await agree(p.id, 2);

    const released = (await redemptions().releaseRedemption({ id: first?.id ?? "" })).redemption;
    expect(released?.status).toBe(RedemptionStatus.RELEASED);
    expect(await redemptions().validateCode({ code: "CLUSTER2", customerId: "c3" })).toMatchObject({ valid: true, remainingRedemptions: 1n });
    await redemptions().redeemPromotion({ code: "CLUSTER2", customerId: "c3" });
    await agree(p.id, 2);
  });

  it("5,000 redeems at 64 in flight, max_redemptions 300 and 1 per customer: exactly 300 in the ledger, in Redis and in current_redemptions", async () => {
    const attempts = 5_000;
    const p = await active({ code: "CLUSTER-LAUNCH", maxRedemptions: 300n, maxRedemptionsPerCustomer: 1n });
    const api = redemptions();
    const load = await runLoad(0, attempts, 64, (i) => api.redeemPromotion({ code: "CLUSTER-LAUNCH", customerId: `c${i % 1_000}`, idempotencyKey: `launch-${i}` }));
    clean(load);
    expect(load.ok).toBe(300);
    expect((load.refused.max_redemptions_reached ?? 0) + (load.refused.customer_limit_reached ?? 0)).toBe(attempts - 300);
    await agree(p.id, 300);
  });

  it("50 concurrent calls with one idempotency key make one redemption", async () => {
    const p = await active({ code: "CLUSTER-STAMPEDE" });
    const api = redemptions();
    const ids: string[] = [];
    const load = await runLoad(0, 50, 50, async () => {
      const made = await api.redeemPromotion({ code: "CLUSTER-STAMPEDE", customerId: "same", idempotencyKey: "one-key" });
      ids.push(made.redemption?.id ?? "");
    });
    clean(load);
    expect(load.ok).toBe(50);
    expect(new Set(ids).size).toBe(1);
    await agree(p.id, 1);
  });

  it("a code limited to 100, 1,000 attempts at 64 in flight: exactly 100 through that code", async () => {
    const p = await active({ code: "CLUSTER-BASE" });
    await promotions().createPromotionCodes({ promotionId: p.id, codes: ["CLUSTER100"], maxRedemptions: 100n });
    const api = redemptions();
    const load = await runLoad(0, 1_000, 64, (i) => api.redeemPromotion({ code: "CLUSTER100", customerId: `k${i}`, idempotencyKey: `code-${i}` }));
    clean(load);
    expect(load.ok).toBe(100);
    expect(load.refused.code_limit_reached).toBe(900);
    await agree(p.id, 100);
    const codes = await promotions().listPromotionCodes({ promotionId: p.id });
    expect(codes.codes.find((c) => c.code === "CLUSTER100")?.redemptionCount).toBe(100n);
  });

  it("a budget of 100,500 spent by 400 concurrent invoices through ApplyPromotions: exactly the budget, never more", async () => {
    const p = await active({ currency: "USD", maxBudget: 100_500n, budgetBehavior: BudgetBehavior.CAP });
    await t.app.orm.em.fork().getConnection().execute(
      `insert into customers (organization_id, id, segments, has_paid_before, created_at, metadata, updated_at, stored_at)
       select ?, 'b' || g, array[]::text[], true, now(), '{}', now(), now() from generate_series(0, 399) g on conflict do nothing`,
      [tenant.organizationId],
    );
    const invoices = client(InvoiceService, t.url, tenant.key, "grpc");
    const discounts: bigint[] = [];
    const load = await runLoad(0, 400, 64, async (i) => {
      const res = await invoices.applyPromotions({
        invoiceId: `cluster-budget-${i}`,
        customerId: `b${i}`,
        invoice: { currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] },
      });
      discounts.push(res.invoice?.discountMinor ?? 0n);
    });
    clean(load);
    expect(load.ok).toBe(400);
    expect(discounts.reduce((a, b) => a + b, 0n)).toBe(100_500n);
    expect(discounts.filter((d) => d === 1_000n)).toHaveLength(100);
    expect(discounts.filter((d) => d === 500n)).toHaveLength(1);
    await t.app.counters.flushConfirms();
    const facts = await truth(t.app.orm.em.fork(), redis, t.app.counters.prefix, p.id);
    expect(facts).toMatchObject({ ledgerBudget: 100_500n, redisBudget: 100_500n, pending: 0 });
    expect(promo(await promotions().getPromotion({ id: p.id })).currentBudgetUsed).toBe(100_500n);
  });

  // Last: every call above has been made.
  it("no command was refused CROSSSLOT by any master, and the server logged no CROSSSLOT and no error", async () => {
    const errors = await cluster.errorStats();
    expect(errors.CROSSSLOT ?? 0).toBe(0);
    expect(t.rawLogs()).not.toMatch(/CROSSSLOT/);
    expect(t.logs().filter((l) => typeof l.level === "number" && l.level >= 50)).toEqual([]);
    const unavailable = t.logs().filter((l) => l.code === "unavailable" && l.error !== "the promotion's counters are being rebuilt; retry");
    expect(unavailable).toEqual([]);
  });
});
