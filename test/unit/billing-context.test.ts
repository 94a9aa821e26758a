import { describe, expect, it } from "vitest";
import { billingContextOf, checkPricingTarget, type PricingTarget } from "../../src/domain/billing-context.js";
import { DomainError } from "../../src/domain/errors.js";
import { AT, customer, subscription } from "./support/pricing.js";

// Naming what to price (src/domain/billing-context.ts), the rules behind the one billing-context
// loader of redeem, apply, simulate and preview.

const target = (over: Partial<PricingTarget> = {}): PricingTarget => ({ customerId: "", subscriptionId: "", invoice: null, periodStart: null, periodEnd: null, at: AT, ...over });
const invoice = { currency: "USD", lines: [] };
const strict = { requireKnownCustomer: true };

function refusal(work: () => unknown): DomainError {
  try {
    work();
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected a DomainError");
}

describe("checkPricingTarget", () => {
  it("needs exactly one of subscription_id or invoice", () => {
    expect(refusal(() => checkPricingTarget(target(), strict)).details[0]).toMatchObject({ code: "required", param: "subscription_id" });
    expect(refusal(() => checkPricingTarget(target({ subscriptionId: "s", invoice }), strict)).details[0]).toMatchObject({ code: "required", param: "invoice" });
    expect(() => checkPricingTarget(target({ subscriptionId: "s" }), strict)).not.toThrow();
    expect(() => checkPricingTarget(target({ invoice }), strict)).not.toThrow();
  });

  it("lets a redemption name neither (its conditions are judged on an empty invoice)", () => {
    expect(() => checkPricingTarget(target(), { requireKnownCustomer: false, emptyInvoiceCurrency: "USD" })).not.toThrow();
  });
});

describe("billingContextOf", () => {
  it("prices a subscription's own invoice over its current period", () => {
    const items = [{ planId: "pro", productId: "app", unitAmountMinor: 4_900n, quantity: 2 }];
    const ctx = billingContextOf(target({ subscriptionId: "sub_1" }), { subscription: subscription({ items }), customer: customer() }, strict);
    expect(ctx.invoice).toEqual({ currency: "USD", lines: [{ id: "item-1", planId: "pro", productId: "app", unitAmountMinor: 4_900n, quantity: 2, description: "" }] });
    expect([ctx.periodStart.toISOString(), ctx.periodEnd.toISOString()]).toEqual(["2026-06-01T00:00:00.000Z", "2026-07-01T00:00:00.000Z"]);
  });

  it("refuses a subscription of another customer than the one named", () => {
    const error = refusal(() => billingContextOf(target({ customerId: "cus_9", subscriptionId: "sub_1" }), { subscription: subscription(), customer: customer() }, strict));
    expect(error.details[0]).toMatchObject({ code: "mismatch", param: "customer_id" });
  });

  it("refuses an unknown customer only where the use case requires a known one", () => {
    expect(refusal(() => billingContextOf(target({ customerId: "ghost", invoice }), { subscription: null, customer: null }, strict)).details[0]).toMatchObject({ code: "customer_not_found", param: "customer_id" });
    expect(billingContextOf(target({ customerId: "ghost", invoice }), { subscription: null, customer: null }, { requireKnownCustomer: false }).customer).toBeNull();
  });

  it("refuses a period that ends before it starts", () => {
    const error = refusal(() => billingContextOf(target({ invoice, periodStart: AT, periodEnd: AT }), { subscription: null, customer: null }, strict));
    expect(error.details[0]).toMatchObject({ code: "invalid_order", param: "billing_period_end" });
  });

  it("judges a redemption without an invoice on an empty one in the promotion's currency", () => {
    const ctx = billingContextOf(target({ customerId: "cus_1" }), { subscription: null, customer: customer() }, { requireKnownCustomer: false, emptyInvoiceCurrency: "EUR" });
    expect(ctx.invoice).toEqual({ currency: "EUR", lines: [] });
  });
});
