import { describe, expect, it } from "vitest";
import { checkRedemptionListScope, failedChecksText, needsContext, redemptionEligibility, validateRedeemRequest, type RedeemRequest } from "../../src/domain/redemption.js";
import type { Violation } from "../../src/domain/errors.js";
import { context, customer, line, pct, terms } from "./support/pricing.js";

// What a redemption is judged on besides the counters (src/domain/redemption.ts): the promotion's
// conditions and the code's own restrictions, and the shape of a redeem request.

const noRestrictions = { minAmountMinor: null, firstTimeCustomersOnly: false };
const request = (over: Partial<RedeemRequest> = {}): RedeemRequest => ({
  code: "SAVE10",
  promotionId: "",
  customerId: "cus_1",
  subscriptionId: "",
  invoice: null,
  idempotencyKey: "",
  metadata: {},
  ...over,
});
const params = (out: readonly Violation[]) => out.map((v) => `${v.param}:${v.code}`);

describe("needsContext", () => {
  it("loads nothing for a code without conditions or restrictions (most checkouts)", () => {
    expect(needsContext(terms([pct(1000)]), noRestrictions)).toBe(false);
    expect(needsContext(terms([pct(1000)]), null)).toBe(false);
  });

  it.each([
    ["a condition", terms([pct(1000)], { conditions: [{ kind: "first_time_customer" }] }), noRestrictions],
    ["a code minimum", terms([pct(1000)]), { ...noRestrictions, minAmountMinor: 100n }],
    ["a first-time-only code", terms([pct(1000)]), { ...noRestrictions, firstTimeCustomersOnly: true }],
  ])("loads the customer and invoice for %s", (_name, t, code) => {
    expect(needsContext(t, code)).toBe(true);
  });
});

describe("redemptionEligibility", () => {
  it("refuses a subtotal below the code's minimum, with both amounts in words", () => {
    const r = redemptionEligibility(terms([pct(1000)]), { ...noRestrictions, minAmountMinor: 5_000n }, context([line("l1", 4_000n)]));
    expect(r.eligible).toBe(false);
    expect(r.checks).toEqual([{ check: "code.min_amount", passed: false, detail: expect.stringMatching(/40\.00.*50\.00/) }]);
  });

  it("refuses a first-time-only code to a customer who paid before, and to an unknown customer", () => {
    const firstTime = { ...noRestrictions, firstTimeCustomersOnly: true };
    expect(redemptionEligibility(terms([pct(1000)]), firstTime, context(undefined, { customer: customer({ hasPaidBefore: true }) })).eligible).toBe(false);
    const unknown = redemptionEligibility(terms([pct(1000)]), firstTime, context(undefined, { customer: null }));
    expect(unknown).toMatchObject({ eligible: false, checks: [{ check: "code.first_time_customer", detail: "the customer is unknown, so not known to be new" }] });
    expect(redemptionEligibility(terms([pct(1000)]), firstTime, context(undefined, { customer: customer({ hasPaidBefore: false }) })).eligible).toBe(true);
  });

  it("judges the promotion's conditions and reports every check", () => {
    const t = terms([pct(1000)], { conditions: [{ kind: "customer_segments", anyOf: ["vip"] }] });
    const r = redemptionEligibility(t, null, context(undefined, { customer: customer({ segments: ["smb"] }) }));
    expect(r.eligible).toBe(false);
    expect(failedChecksText(r.checks)).toMatch(/^condition\.customer_segments: /);
  });
});

describe("validateRedeemRequest", () => {
  it("needs a code or a promotion id, and a customer", () => {
    expect(params(validateRedeemRequest(request({ code: "", customerId: "" })))).toEqual(["code:required", "customer_id:required"]);
  });

  it("refuses a malformed promotion id and a subscription together with an inline invoice", () => {
    const out = validateRedeemRequest(request({ promotionId: "nope", subscriptionId: "sub_1", invoice: { currency: "USD", lines: [line("a", 1n)] } }));
    expect(params(out)).toEqual(["promotion_id:invalid_format", "invoice:exclusive"]);
  });

  it("checks the inline invoice it is given", () => {
    expect(params(validateRedeemRequest(request({ invoice: { currency: "USD", lines: [] } })))).toEqual(["invoice.lines:required"]);
  });
});

describe("checkRedemptionListScope", () => {
  it("lists one promotion's or one customer's redemptions, never every redemption of the tenant", () => {
    const out: Violation[] = [];
    checkRedemptionListScope(out, { promotionId: "", customerId: "" });
    expect(params(out)).toEqual(["promotion_id:required"]);
    const ok: Violation[] = [];
    checkRedemptionListScope(ok, { promotionId: "", customerId: "cus_1" });
    expect(ok).toEqual([]);
  });
});
