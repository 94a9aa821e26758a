import { describe, expect, it } from "vitest";
import {
  impactPeriods,
  SIMULATION_LIMITS,
  validateApplyRequest,
  validateCustomer,
  validateInvoice,
  validatePreviewRequest,
  validateSimulateRequest,
  validateSubscription,
} from "../../src/domain/billing-validation.js";
import type { Violation } from "../../src/domain/errors.js";
import { customer, line, subscription } from "./support/pricing.js";

// The rules of the billing context other services push in and of the inline invoices and dry runs
// they send (src/domain/billing-validation.ts): every problem at once, each naming its field.

const params = (violations: readonly Violation[]) => violations.map((v) => `${v.param}:${v.code}`).sort();
const UUID = "00000000-0000-4000-8000-000000000001";

describe("validateCustomer", () => {
  it("accepts a customer with an id and an updated_at", () => {
    expect(validateCustomer({ ...customer(), metadata: { tier: "gold" } }, new Date())).toEqual([]);
  });

  it("names every problem: a missing id, too many segments, a bad metadata key and no updated_at", () => {
    const segments = Array.from({ length: 51 }, (_, i) => `s${i}`);
    const out = validateCustomer({ ...customer({ id: "", segments }), metadata: { "": "x" } }, null);
    expect(params(out)).toEqual(expect.arrayContaining(["customer.id:required", "customer.segments:too_many", "customer.updated_at:required"]));
    expect(out.some((v) => v.param.startsWith("customer.metadata"))).toBe(true);
  });
});

describe("validateSubscription", () => {
  const items = [{ planId: "pro", productId: "app", unitAmountMinor: 4_900n, quantity: 1 }];

  it("accepts a subscription with items, a currency and an ordered period", () => {
    expect(validateSubscription(subscription({ items }), new Date())).toEqual([]);
  });

  it("refuses no items, no currency, a period that ends before it starts and no updated_at", () => {
    const out = validateSubscription(subscription({ items: [], currency: "", currentPeriodEnd: new Date("2026-05-01T00:00:00Z") }), null);
    expect(params(out)).toEqual(expect.arrayContaining([
      "subscription.currency:required",
      "subscription.current_period_end:invalid_order",
      "subscription.items:required",
      "subscription.updated_at:required",
    ]));
  });

  it.each([
    ["a negative amount", { unitAmountMinor: -1n }, "subscription.items[0].unit_amount_minor:out_of_range"],
    ["a zero quantity", { quantity: 0 }, "subscription.items[0].quantity:out_of_range"],
  ])("refuses an item with %s", (_name, over, expected) => {
    expect(params(validateSubscription(subscription({ items: [{ ...items[0]!, ...over }] }), new Date()))).toContain(expected);
  });
});

describe("validateInvoice", () => {
  it("accepts lines in a currency", () => {
    expect(validateInvoice({ currency: "USD", lines: [line("a", 100n), line("b", 200n)] })).toEqual([]);
  });

  it("refuses repeated line ids, naming the repeat", () => {
    expect(params(validateInvoice({ currency: "USD", lines: [line("a", 100n), line("a", 200n)] }))).toEqual(["invoice.lines[1].id:duplicate"]);
  });

  it("refuses more than 100 lines and a missing currency", () => {
    const lines = Array.from({ length: 101 }, (_, i) => line(`l${i}`, 1n));
    expect(params(validateInvoice({ currency: "", lines }))).toEqual(expect.arrayContaining(["invoice.currency:required", "invoice.lines:too_many"]));
  });
});

describe("validateApplyRequest", () => {
  it("needs an invoice id, and a customer id with an inline invoice", () => {
    const out = validateApplyRequest({ invoiceId: "", customerId: "", subscriptionId: "", invoice: { currency: "USD", lines: [line("a", 100n)] } });
    expect(params(out)).toEqual(["customer_id:required", "invoice_id:required"].sort());
  });

  it("accepts a subscription's invoice without a customer id", () => {
    expect(validateApplyRequest({ invoiceId: "in_1", customerId: "", subscriptionId: "sub_1", invoice: null })).toEqual([]);
  });
});

describe("dry-run requests", () => {
  it("SimulatePromotion refuses too many ids, a malformed id and cycles out of range at once", () => {
    const ids = [...Array.from({ length: SIMULATION_LIMITS.promotionIds }, () => UUID), "nope"];
    const out = validateSimulateRequest({ promotionIds: ids, cyclesUsed: -1, invoice: null });
    expect(params(out)).toEqual(["cycles_used:out_of_range", `promotion_ids:too_many`, `promotion_ids[${ids.length - 1}]:invalid_format`].sort());
  });

  it("PreviewPromotionEligibility checks the inline invoice and the cycles used", () => {
    expect(params(validatePreviewRequest({ cyclesUsed: 10_001, invoice: { currency: "", lines: [line("a", 1n)] } }))).toEqual(["cycles_used:out_of_range", "invoice.currency:required"]);
  });

  it.each([
    [0, SIMULATION_LIMITS.defaultPeriods, []],
    [6, 6, []],
    [121, 121, ["periods:out_of_range"]],
  ])("SimulatePromotionImpact periods %i → %i", (periods, used, problems) => {
    const out: Violation[] = [];
    expect(impactPeriods(out, periods)).toBe(used);
    expect(params(out)).toEqual(problems);
  });
});
