import { Code } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { DerivedStatus, type Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService, RedemptionStatus } from "../../gen/promotions/v1/redemption_service_pb.js";
import { client, startTestApp, type Protocol, type TestApp } from "../support/app.js";
import { promo, refusal } from "../support/rpc.js";
import { PromotionVersionService } from "../../gen/promotions/v1/promotion_version_service_pb.js";

// RedemptionService through the real server: every refusal code, idempotency, release, paging,
// version pinning, scopes and tenancy.

let t: TestApp;
let tenant: { organizationId: string; key: string; keyId: string };
let other: { organizationId: string; key: string; keyId: string };
let readOnly: { organizationId: string; key: string; keyId: string };
const at = (d: Date) => timestampFromDate(d);
const HOUR = 3_600_000;
const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];



const promotions = () => client(PromotionService, t.url, tenant.key);
const redemptions = (protocol: Protocol = "connect-json") => client(RedemptionService, t.url, tenant.key, protocol);

async function activePromotion(fields: Record<string, unknown>): Promise<Promotion> {
  const created = promo(await promotions().createPromotion({ name: "Promo", effects: TEN_PERCENT, ...fields }));
  return promo(await promotions().activatePromotion({ id: created.id }));
}

beforeAll(async () => {
  t = await startTestApp("redemption");
  tenant = await t.tenant("redeem-co");
  other = await t.tenant("other-co");
  readOnly = await t.tenant("readonly-co", ["read"]);
});

afterAll(async () => {
  await t?.stop();
});

describe("RedeemPromotion", () => {
  it("redeems by code within every limit, refuses past each one, and counts exactly", async () => {
    const p = await activePromotion({ code: "SAVE10", maxRedemptions: 3n, maxRedemptionsPerCustomer: 1n });
    const r1 = (await redemptions().redeemPromotion({ code: "save10", customerId: "c1" })).redemption;
    expect(r1).toMatchObject({ promotionId: p.id, code: "SAVE10", customerId: "c1", status: RedemptionStatus.ACTIVE, version: 1 });

    const again = await refusal(redemptions().redeemPromotion({ code: "SAVE10", customerId: "c1" }));
    expect(again.code).toBe(Code.ResourceExhausted);
    expect(again.detail?.code).toBe("customer_limit_reached");

    await redemptions("grpc").redeemPromotion({ code: "SAVE10", customerId: "c2" });
    await redemptions("connect-binary").redeemPromotion({ code: "SAVE10", customerId: "c3" });
    const full = await refusal(redemptions().redeemPromotion({ code: "SAVE10", customerId: "c4" }));
    expect(full.code).toBe(Code.ResourceExhausted);
    expect(full.detail?.code).toBe("max_redemptions_reached");

    const read = promo(await promotions().getPromotion({ id: p.id }));
    expect(read.currentRedemptions).toBe(3n);
    expect(read.remainingRedemptions).toBe(0n);
    expect(read.derivedStatus).toBe(DerivedStatus.EXHAUSTED);
  });

  it("ValidateCode gives the answer RedeemPromotion would, and moves nothing", async () => {
    const p = await activePromotion({ code: "CHECKME", maxRedemptions: 2n, maxRedemptionsPerCustomer: 1n, publicDescription: "Ten off" });
    const ok = await redemptions().validateCode({ code: "checkme", customerId: "v1" });
    expect(ok).toMatchObject({ valid: true, reason: "", promotionId: p.id, publicDescription: "Ten off", remainingRedemptions: 2n });
    await redemptions().validateCode({ code: "CHECKME", customerId: "v1" });
    expect(promo(await promotions().getPromotion({ id: p.id })).currentRedemptions).toBe(0n);

    await redemptions().redeemPromotion({ code: "CHECKME", customerId: "v1" });
    const limited = await redemptions().validateCode({ code: "CHECKME", customerId: "v1" });
    expect(limited).toMatchObject({ valid: false, reason: "customer_limit_reached" });
    const unknown = await redemptions().validateCode({ code: "NOPE-NOPE", customerId: "v1" });
    expect(unknown).toMatchObject({ valid: false, reason: "code_not_found", promotionId: "" });
    const redeemUnknown = await refusal(redemptions().redeemPromotion({ code: "NOPE-NOPE", customerId: "v1" }));
    expect(redeemUnknown.code).toBe(Code.NotFound);
    expect(redeemUnknown.detail?.code).toBe("code_not_found");
  });

  it("refuses drafts, archived, not-started and expired promotions with their own codes", async () => {
    const draft = promo(await promotions().createPromotion({ name: "Draft", code: "DRAFTY", effects: TEN_PERCENT }));
    expect((await refusal(redemptions().redeemPromotion({ code: "DRAFTY", customerId: "s1" }))).detail?.code).toBe("promotion_not_active");

    const later = await activePromotion({ code: "LATER", validFrom: at(new Date(Date.now() + 24 * HOUR)) });
    const notStarted = await refusal(redemptions().redeemPromotion({ code: "LATER", customerId: "s1" }));
    expect(notStarted.code).toBe(Code.FailedPrecondition);
    expect(notStarted.detail?.code).toBe("promotion_not_started");

    const past = promo(await promotions().createPromotion({ name: "Past", code: "PAST", effects: TEN_PERCENT, validTo: at(new Date(Date.now() + 1500)) }));
    await promotions().activatePromotion({ id: past.id });
    await new Promise((r) => setTimeout(r, 1600));
    expect((await refusal(redemptions().redeemPromotion({ code: "PAST", customerId: "s1" }))).detail?.code).toBe("promotion_expired");

    const gone = await activePromotion({ code: "GONE" });
    await redemptions().redeemPromotion({ code: "GONE", customerId: "s1" });
    await promotions().deactivatePromotion({ id: gone.id });
    // An archived promotion's code is free, so it is unknown now; by id it is not active.
    expect((await refusal(redemptions().redeemPromotion({ code: "GONE", customerId: "s2" }))).detail?.code).toBe("code_not_found");
    expect((await refusal(redemptions().redeemPromotion({ promotionId: gone.id, customerId: "s2" }))).detail?.code).toBe("promotion_not_active");
    expect(draft.id).not.toBe(later.id);
  });

  it("enforces per-code limits, inactive and expired codes", async () => {
    const p = await activePromotion({ code: "PRIMARY", maxRedemptions: 100n });
    const created = await promotions().createPromotionCodes({ promotionId: p.id, codes: ["ONE-USE", "OFF-SOON", "EXPIRING"], maxRedemptions: 1n });
    const byCode = new Map(created.codes.map((c) => [c.code, c]));
    await redemptions().redeemPromotion({ code: "one-use", customerId: "k1" });
    expect((await refusal(redemptions().redeemPromotion({ code: "ONE-USE", customerId: "k2" }))).detail?.code).toBe("code_limit_reached");

    await promotions().updatePromotionCode({ id: byCode.get("OFF-SOON")?.id ?? "", active: false });
    expect((await refusal(redemptions().redeemPromotion({ code: "OFF-SOON", customerId: "k3" }))).detail?.code).toBe("code_inactive");

    await promotions().updatePromotionCode({ id: byCode.get("EXPIRING")?.id ?? "", expiresAt: at(new Date(Date.now() + 1200)) });
    await new Promise((r) => setTimeout(r, 1300));
    expect((await refusal(redemptions().redeemPromotion({ code: "EXPIRING", customerId: "k3" }))).detail?.code).toBe("code_expired");

    const listed = await promotions().listPromotionCodes({ promotionId: p.id });
    expect(listed.codes.find((c) => c.code === "ONE-USE")?.redemptionCount).toBe(1n);
  });

  it("checks conditions and code restrictions against the customer and invoice", async () => {
    await client(CustomerService, t.url, tenant.key).upsertCustomer({
      customer: { id: "paid", segments: [], hasPaidBefore: true, updatedAt: at(new Date("2026-01-01T00:00:00Z")) },
    });
    const p = await activePromotion({ code: "BIGSPEND", currency: "USD", conditions: [{ kind: { case: "minSpend", value: { amountMinor: 5000n } } }] });
    const invoice = (amount: bigint) => ({ currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: amount, quantity: 1 }] });
    const small = await refusal(redemptions().redeemPromotion({ code: "BIGSPEND", customerId: "m1", invoice: invoice(4000n) }));
    expect(small.code).toBe(Code.FailedPrecondition);
    expect(small.detail?.code).toBe("not_eligible");
    expect(small.message).toMatch(/below/);
    const v = await redemptions().validateCode({ code: "BIGSPEND", customerId: "m1", invoice: invoice(4000n) });
    expect(v).toMatchObject({ valid: false, reason: "not_eligible" });
    expect(v.checks.some((c) => c.check === "condition.min_spend" && !c.passed)).toBe(true);
    await redemptions().redeemPromotion({ code: "BIGSPEND", customerId: "m1", invoice: invoice(6000n) });
    expect(promo(await promotions().getPromotion({ id: p.id })).currentRedemptions).toBe(1n);

    const newOnly = await activePromotion({ code: "NEWBIE-BASE" });
    await promotions().createPromotionCodes({ promotionId: newOnly.id, codes: ["NEWBIE"], firstTimeCustomersOnly: true });
    expect((await refusal(redemptions().redeemPromotion({ code: "NEWBIE", customerId: "paid" }))).detail?.code).toBe("not_eligible");
    expect(promo(await promotions().getPromotion({ id: newOnly.id })).currentRedemptions).toBe(0n);
  });
});

describe("idempotency", () => {
  it("returns the first redemption for a retry and refuses the key for another request", async () => {
    const p = await activePromotion({ code: "IDEM", maxRedemptionsPerCustomer: 1n });
    const first = (await redemptions().redeemPromotion({ code: "IDEM", customerId: "i1", idempotencyKey: "order-1" })).redemption;
    const retry = (await redemptions("grpc").redeemPromotion({ code: "IDEM", customerId: "i1", idempotencyKey: "order-1" })).redemption;
    expect(retry?.id).toBe(first?.id);
    const reused = await refusal(redemptions().redeemPromotion({ code: "IDEM", customerId: "i2", idempotencyKey: "order-1" }));
    expect(reused.code).toBe(Code.AlreadyExists);
    expect(reused.detail).toMatchObject({ code: "idempotency_key_reused", param: "idempotency_key" });
    expect(promo(await promotions().getPromotion({ id: p.id })).currentRedemptions).toBe(1n);
  });

  it("50 concurrent calls with one key make one redemption", async () => {
    const p = await activePromotion({ code: "STAMPEDE" });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => redemptions(i % 2 ? "grpc" : "connect-json").redeemPromotion({ code: "STAMPEDE", customerId: "same", idempotencyKey: "one-key" })),
    );
    expect(new Set(results.map((r) => r.redemption?.id)).size).toBe(1);
    expect(promo(await promotions().getPromotion({ id: p.id })).currentRedemptions).toBe(1n);
    const listed = await redemptions().listRedemptions({ promotionId: p.id });
    expect(listed.redemptions).toHaveLength(1);
  });
});

describe("release, get, list", () => {
  it("release frees the slot, is idempotent, and a released redemption stays readable", async () => {
    const p = await activePromotion({ code: "RELEASE", maxRedemptions: 1n });
    const r = (await redemptions().redeemPromotion({ code: "RELEASE", customerId: "r1" })).redemption;
    expect((await refusal(redemptions().redeemPromotion({ code: "RELEASE", customerId: "r2" }))).detail?.code).toBe("max_redemptions_reached");
    const released = (await redemptions().releaseRedemption({ id: r?.id ?? "" })).redemption;
    expect(released?.status).toBe(RedemptionStatus.RELEASED);
    expect(released?.releasedAt).toBeDefined();
    const twice = (await redemptions().releaseRedemption({ id: r?.id ?? "" })).redemption;
    expect(twice?.releasedAt).toEqual(released?.releasedAt);
    await redemptions().redeemPromotion({ code: "RELEASE", customerId: "r2" });
    expect(promo(await promotions().getPromotion({ id: p.id })).currentRedemptions).toBe(1n);
    const got = (await redemptions().getRedemption({ id: r?.id ?? "" })).redemption;
    expect(got?.status).toBe(RedemptionStatus.RELEASED);
  });

  it("lists by promotion and by customer, newest first, with cursor paging", async () => {
    const p = await activePromotion({ code: "PAGES" });
    for (let i = 0; i < 5; i++) await redemptions().redeemPromotion({ code: "PAGES", customerId: `pg${i % 2}` });
    const seen: string[] = [];
    let cursor = "";
    do {
      const page = await redemptions().listRedemptions({ promotionId: p.id, limit: 2, cursor });
      seen.push(...page.redemptions.map((r) => r.id));
      cursor = page.nextCursor;
    } while (cursor !== "");
    expect(seen).toHaveLength(5);
    expect(new Set(seen).size).toBe(5);
    const byCustomer = await redemptions().listRedemptions({ customerId: "pg0", limit: 100 });
    expect(byCustomer.redemptions.filter((r) => r.promotionId === p.id)).toHaveLength(3);
    const bad = await refusal(redemptions().listRedemptions({}));
    expect(bad.code).toBe(Code.InvalidArgument);
  });

  it("keeps each redemption on the version it was made under", async () => {
    const p = await activePromotion({ code: "PINNED", priority: 1 });
    const v1 = (await redemptions().redeemPromotion({ code: "PINNED", customerId: "pin1" })).redemption;
    await promotions().updatePromotion({ id: p.id, priority: 2 });
    const v2 = (await redemptions().redeemPromotion({ code: "PINNED", customerId: "pin2" })).redemption;
    expect(v1?.version).toBe(1);
    expect(v2?.version).toBe(2);
    expect((await redemptions().getRedemption({ id: v1?.id ?? "" })).redemption?.version).toBe(1);
    const versions = await client(PromotionVersionService, t.url, tenant.key).listPromotionVersions({ id: p.id });
    expect(versions.versions.map((v) => [Number(v.version), v.usageCount]).sort()).toEqual([[1, 1n], [2, 1n]]);
  });
});

describe("bad input, scopes and tenancy", () => {
  it("names the field of every problem", async () => {
    const bad = await refusal(redemptions().redeemPromotion({ customerId: "", idempotencyKey: "x".repeat(201) }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toMatch(/code/);
    expect(bad.message).toMatch(/customer_id/);
    expect(bad.message).toMatch(/idempotency_key/);
  });

  it("needs the redeem scope, and another tenant's codes and redemptions do not exist", async () => {
    const p = await activePromotion({ code: "MINE" });
    const r = (await redemptions().redeemPromotion({ code: "MINE", customerId: "t1" })).redemption;
    const denied = await refusal(client(RedemptionService, t.url, readOnly.key).redeemPromotion({ code: "MINE", customerId: "t1" }));
    expect(denied.code).toBe(Code.PermissionDenied);
    const theirs = client(RedemptionService, t.url, other.key);
    expect((await refusal(theirs.redeemPromotion({ code: "MINE", customerId: "t2" }))).code).toBe(Code.NotFound);
    expect((await refusal(theirs.redeemPromotion({ promotionId: p.id, customerId: "t2" }))).code).toBe(Code.NotFound);
    expect((await refusal(theirs.getRedemption({ id: r?.id ?? "" }))).code).toBe(Code.NotFound);
    expect((await refusal(theirs.releaseRedemption({ id: r?.id ?? "" }))).code).toBe(Code.NotFound);
    expect(promo(await promotions().getPromotion({ id: p.id })).currentRedemptions).toBe(1n);
  });
});
