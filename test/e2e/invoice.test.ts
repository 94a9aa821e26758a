import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { BudgetBehavior, DerivedStatus } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { PhaseDuration } from "../../gen/promotions/v1/types_pb.js";
import { client, startTestApp, type Protocol, type TestApp } from "../support/app.js";
import { at, pushCustomerAndSubscription } from "./support/billing.js";
import { promo, refusal } from "../support/rpc.js";

// InvoiceService.ApplyPromotions through the real server: redemptions with their pinned version
// and phase, automatic promotions, budget CAP and STRICT, cycles, idempotency per invoice_id, and
// the ledger per invoice line.

let t: TestApp;
const pct = (bps: number) => ({ kind: { case: "percentageDiscount" as const, value: { percentBps: bps } } });



/** A tenant with one customer on a 100.00 USD monthly subscription. */
async function billingTenant(slug: string) {
  const tenant = await t.tenant(slug);
  await pushCustomerAndSubscription(t.url, tenant.key, {
    customerId: "cus_1",
    subscriptionId: "sub_1",
    items: [
      { planId: "pro", productId: "app", unitAmountMinor: 7_000n, quantity: 1 },
      { planId: "seats", productId: "seats", unitAmountMinor: 1_000n, quantity: 3 },
    ],
  });
  const promotions = client(PromotionService, t.url, tenant.key);
  const invoices = (protocol: Protocol = "connect-json") => client(InvoiceService, t.url, tenant.key, protocol);
  const redemptions = client(RedemptionService, t.url, tenant.key);
  const active = async (fields: Record<string, unknown>) => {
    const created = promo(await promotions.createPromotion({ name: "P", ...fields }));
    return promo(await promotions.activatePromotion({ id: created.id }));
  };
  return { tenant, promotions, invoices, redemptions, active };
}

beforeAll(async () => {
  t = await startTestApp("invoice");
});

afterAll(async () => {
  if (process.env.SHOW_LOGS) console.log(t.logs().filter((l) => l.level !== 30 || l.code === "internal"));
  await t?.stop();
});

describe("ApplyPromotions", () => {
  it("applies a redemption phase by phase, advancing its cycles, on the version it pinned", async () => {
    const b = await billingTenant("ladder-co");
    const p = await b.active({
      code: "LOYAL",
      isPhased: true,
      archetype: 3,
      phases: [
        { name: "Intro", duration: PhaseDuration.REPEATING, cycles: 2, effects: [pct(2000)] },
        { name: "After", duration: PhaseDuration.FOREVER, effects: [pct(1000)] },
      ],
    });
    const r = (await b.redemptions.redeemPromotion({ code: "LOYAL", customerId: "cus_1" })).redemption;
    // A later version does not change the terms this redemption keeps.
    await b.promotions.updatePromotion({ id: p.id, name: "Renamed" });

    const discounts: bigint[] = [];
    for (const [i, protocol] of (["connect-json", "grpc", "connect-binary"] as const).entries()) {
      const res = await b.invoices(protocol).applyPromotions({ invoiceId: `inv-${i}`, subscriptionId: "sub_1" });
      expect(res.replayed).toBe(false);
      discounts.push(res.invoice?.discountMinor ?? -1n);
      const outcome = res.invoice?.promotions.find((o) => o.promotionId === p.id);
      expect(Number(outcome?.version)).toBe(1);
    }
    expect(discounts).toEqual([2_000n, 2_000n, 1_000n]);
    expect((await b.redemptions.getRedemption({ id: r?.id ?? "" })).redemption?.cyclesUsed).toBe(3);

    const conn = t.app.orm.em.fork().getConnection();
    const lines = await conn.execute<{ invoice_id: string; line_id: string; amount_minor: string }[]>(
      `select a.invoice_id, l.line_id, l.amount_minor from invoice_discount_lines l join invoice_applications a on a.id = l.application_id
        where a.promotion_id = ? order by a.invoice_id, l.line_id`,
      [p.id],
    );
    expect(lines.map((l) => [l.invoice_id, l.line_id, String(l.amount_minor)])).toEqual([
      ["inv-0", "item-1", "1400"],
      ["inv-0", "item-2", "600"],
      ["inv-1", "item-1", "1400"],
      ["inv-1", "item-2", "600"],
      ["inv-2", "item-1", "700"],
      ["inv-2", "item-2", "300"],
    ]);
  });

  it("is idempotent per invoice_id and refuses the id for a different request", async () => {
    const b = await billingTenant("idem-co");
    await b.active({ effects: [pct(1000)] });
    const first = await b.invoices().applyPromotions({ invoiceId: "inv-x", subscriptionId: "sub_1" });
    const again = await b.invoices("grpc").applyPromotions({ invoiceId: "inv-x", subscriptionId: "sub_1" });
    expect(again.replayed).toBe(true);
    expect(again.invoice).toEqual(first.invoice);
    const reused = await refusal(
      b.invoices().applyPromotions({ invoiceId: "inv-x", customerId: "cus_1", invoice: { currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: 1n, quantity: 1 }] } }),
    );
    expect(reused.code).toBe(Code.AlreadyExists);
    expect(reused.detail?.code).toBe("invoice_id_reused");
    const concurrent = await Promise.all(Array.from({ length: 20 }, () => b.invoices().applyPromotions({ invoiceId: "inv-y", subscriptionId: "sub_1" })));
    expect(concurrent.filter((c) => !c.replayed)).toHaveLength(1);
    const count = await t.app.orm.em.fork().getConnection().execute<{ n: string }[]>(
      `select count(*) as n from invoice_applications where invoice_id = 'inv-y' and status = 'APPLIED'`,
    );
    expect(Number(count[0]?.n)).toBe(1);
  });

  it("CAP grants what is left of the budget, then the promotion reads EXHAUSTED", async () => {
    const b = await billingTenant("cap-co");
    const p = await b.active({ effects: [pct(1000)], currency: "USD", maxBudget: 2_500n, budgetBehavior: BudgetBehavior.CAP });
    const discounts: bigint[] = [];
    for (let i = 0; i < 4; i++) discounts.push((await b.invoices().applyPromotions({ invoiceId: `cap-${i}`, subscriptionId: "sub_1" })).invoice?.discountMinor ?? -1n);
    expect(discounts).toEqual([1_000n, 1_000n, 500n, 0n]);
    const read = promo(await b.promotions.getPromotion({ id: p.id }));
    expect(read.currentBudgetUsed).toBe(2_500n);
    expect(read.remainingBudget).toBe(0n);
    expect(read.derivedStatus).toBe(DerivedStatus.EXHAUSTED);
  });

  it("STRICT grants all or nothing", async () => {
    const b = await billingTenant("strict-co");
    const p = await b.active({ effects: [pct(1000)], currency: "USD", maxBudget: 1_500n, budgetBehavior: BudgetBehavior.STRICT });
    const first = await b.invoices().applyPromotions({ invoiceId: "s-1", subscriptionId: "sub_1" });
    const second = await b.invoices().applyPromotions({ invoiceId: "s-2", subscriptionId: "sub_1" });
    expect(first.invoice?.discountMinor).toBe(1_000n);
    expect(second.invoice?.discountMinor).toBe(0n);
    expect(second.invoice?.promotions.find((o) => o.promotionId === p.id)?.reason).toBe("budget_insufficient");
    expect(promo(await b.promotions.getPromotion({ id: p.id })).currentBudgetUsed).toBe(1_000n);
  });

  it("a released redemption stops applying", async () => {
    const b = await billingTenant("release-co");
    await b.active({ code: "GONE-SOON", effects: [pct(5000)] });
    const r = (await b.redemptions.redeemPromotion({ code: "GONE-SOON", customerId: "cus_1" })).redemption;
    expect((await b.invoices().applyPromotions({ invoiceId: "g-1", subscriptionId: "sub_1" })).invoice?.discountMinor).toBe(5_000n);
    await b.redemptions.releaseRedemption({ id: r?.id ?? "" });
    expect((await b.invoices().applyPromotions({ invoiceId: "g-2", subscriptionId: "sub_1" })).invoice?.discountMinor).toBe(0n);
  });

  it("prices an inline invoice for a customer the billing system never pushed", async () => {
    const b = await billingTenant("unknown-co");
    await b.active({ code: "ANYONE", effects: [pct(2000)] });
    await b.redemptions.redeemPromotion({ code: "ANYONE", customerId: "never-pushed" });
    const res = await b.invoices().applyPromotions({
      invoiceId: "u-1",
      customerId: "never-pushed",
      invoice: { currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: 4_900n, quantity: 1 }] },
    });
    expect(res.invoice).toMatchObject({ subtotalMinor: 4_900n, discountMinor: 980n, totalMinor: 3_920n });
  });

  it("names bad fields", async () => {
    const b = await billingTenant("bad-co");
    const bad = await refusal(b.invoices().applyPromotions({ invoiceId: "", invoice: { currency: "usd", lines: [] } }));
    expect(bad.code).toBe(Code.InvalidArgument);
    const missing = await refusal(b.invoices().applyPromotions({ invoiceId: "x", subscriptionId: "nope" }));
    expect(missing.code).toBe(Code.NotFound);
  });
});
