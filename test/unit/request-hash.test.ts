import { describe, expect, it } from "vitest";
import { invoiceRequestHash, redeemRequestHash } from "../../src/checkout/idempotency.js";
import { requestHash } from "../../src/domain/request-hash.js";
import type { RedeemRequest } from "../../src/domain/redemption.js";

// What makes two requests "the same" for idempotency: src/domain/request-hash.ts (canonical JSON,
// SHA-256) and the checkout's use of it (src/checkout/idempotency.ts).

const redeem = (over: Partial<RedeemRequest> = {}): RedeemRequest => ({
  code: "SAVE10",
  promotionId: "",
  customerId: "cus_1",
  subscriptionId: "",
  invoice: null,
  idempotencyKey: "order-1",
  metadata: { channel: "web" },
  ...over,
});

describe("requestHash", () => {
  it("does not depend on the order of object keys, at any depth", () => {
    expect(requestHash({ a: 1, b: { c: [1, 2], d: "x" } })).toBe(requestHash({ b: { d: "x", c: [1, 2] }, a: 1 }));
  });

  it("tells values apart that JSON would make alike: bigints hash as their digits, array order counts", () => {
    expect(requestHash({ n: 10n })).toBe(requestHash({ n: "10" }));
    expect(requestHash({ n: 10n })).not.toBe(requestHash({ n: 11n }));
    expect(requestHash({ l: [1, 2] })).not.toBe(requestHash({ l: [2, 1] }));
  });

  it("is a 64-digit hex SHA-256", () => {
    expect(requestHash({})).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("redeemRequestHash", () => {
  it("treats a code in any case and padding as the same code", () => {
    expect(redeemRequestHash(redeem({ code: " save10 " }))).toBe(redeemRequestHash(redeem()));
  });

  it("leaves the idempotency key itself out, so a retry under the same key compares what was asked", () => {
    expect(redeemRequestHash(redeem({ idempotencyKey: "other" }))).toBe(redeemRequestHash(redeem()));
  });

  it.each<[string, Partial<RedeemRequest>]>([
    ["another customer", { customerId: "cus_2" }],
    ["another code", { code: "OTHER" }],
    ["other metadata", { metadata: { channel: "app" } }],
    ["another subscription", { subscriptionId: "sub_9" }],
  ])("differs for %s", (_name, over) => {
    expect(redeemRequestHash(redeem(over))).not.toBe(redeemRequestHash(redeem()));
  });

  it("an ApplyPromotions request hashes whole, invoice id included", () => {
    const apply = { invoiceId: "in_1", customerId: "c", subscriptionId: "s", invoice: null, periodStart: null, periodEnd: null };
    expect(invoiceRequestHash(apply)).toBe(invoiceRequestHash({ ...apply }));
    expect(invoiceRequestHash(apply)).not.toBe(invoiceRequestHash({ ...apply, invoiceId: "in_2" }));
  });
});
