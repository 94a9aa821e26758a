import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PromotionCode } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { client, startTestApp, type Protocol, type TestApp } from "../support/app.js";
import { promo, refusal } from "../support/rpc.js";

// CreatePromotionCodes, ListPromotionCodes and UpdatePromotionCode through the real server with
// the Connect client (JSON over HTTP/1.1 and binary over HTTP/2): bulk creation, paging, updates,
// bad input, tenancy and scopes.

let t: TestApp;
let acme: { organizationId: string; key: string; keyId: string };
let globex: { organizationId: string; key: string; keyId: string };

beforeAll(async () => {
  t = await startTestApp("codes");
  acme = await t.tenant("acme");
  globex = await t.tenant("globex");
});
afterAll(async () => t?.stop());

interface Refusal {
  code: Code;
  details: { param: string; code: string; message: string; type: string }[];
}



function one(res: { code?: PromotionCode }): PromotionCode {
  if (!res.code) throw new Error("response carries no code");
  return res.code;
}

describe.each<Protocol>(["connect-json", "connect-binary"])("promotion codes over %s", (protocol) => {
  const api = (key = acme.key) => client(PromotionService, t.url, key, protocol);
  const newPromotion = async (code = ""): Promise<string> =>
    promo(await api().createPromotion({ name: "Codes", code, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1500 } } }] })).id;

  it("creates explicit codes, upper-cased, with their limits, and lists them", async () => {
    const id = await newPromotion();
    const expiresAt = new Date("2031-06-01T00:00:00.000Z");
    const res = await api().createPromotionCodes({
      promotionId: id,
      codes: [`vip-${protocol}`, `friends-${protocol}`],
      maxRedemptions: 50n,
      minAmountMinor: 2_000n,
      firstTimeCustomersOnly: true,
      expiresAt: timestampFromDate(expiresAt),
      metadata: { channel: "newsletter" },
    });
    const upper = protocol.toUpperCase();
    expect(res.createdCount).toBe(2);
    expect(res.codeValues).toEqual([`VIP-${upper}`, `FRIENDS-${upper}`]);
    expect(res.codes[0]).toMatchObject({
      promotionId: id,
      code: `VIP-${upper}`,
      active: true,
      maxRedemptions: 50n,
      minAmountMinor: 2_000n,
      firstTimeCustomersOnly: true,
      redemptionCount: 0n,
      metadata: { channel: "newsletter" },
    });
    expect(res.codes[0]?.expiresAt && timestampDate(res.codes[0].expiresAt)).toEqual(expiresAt);
    const listed = await api().listPromotionCodes({ promotionId: id });
    expect(listed.codes.map((c) => c.code)).toEqual(res.codeValues);
    expect(listed.codes[1]?.id).toBe(res.codes[1]?.id);
    expect(listed.nextCursor).toBe("");
  });

  it("generates codes with a prefix and pages through them without gaps or repeats", async () => {
    const id = await newPromotion();
    const res = await api().createPromotionCodes({ promotionId: id, count: 25, prefix: "spring-" });
    expect(res.createdCount).toBe(25);
    expect(new Set(res.codeValues).size).toBe(25);
    for (const code of res.codeValues) expect(code).toMatch(/^SPRING-[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{10}$/);
    expect(res.codes.map((c) => c.code)).toEqual(res.codeValues);

    const seen: string[] = [];
    let cursor = "";
    let pages = 0;
    do {
      const page = await api().listPromotionCodes({ promotionId: id, limit: 10, cursor });
      seen.push(...page.codes.map((c) => c.code));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== "");
    expect(pages).toBe(3);
    expect(seen).toEqual(res.codeValues);
  });

  it("updates a code: deactivation, limits, expiry and metadata; only set fields change", async () => {
    const id = await newPromotion();
    const created = (await api().createPromotionCodes({ promotionId: id, codes: [`edit-${protocol}`], maxRedemptions: 10n, metadata: { a: "1" } })).codes[0];
    if (!created) throw new Error("no code created");

    const off = one(await api().updatePromotionCode({ id: created.id, active: false }));
    expect(off).toMatchObject({ active: false, maxRedemptions: 10n, metadata: { a: "1" } });
    const inactive = await api().listPromotionCodes({ promotionId: id, active: false });
    expect(inactive.codes.map((c) => c.id)).toEqual([created.id]);
    expect((await api().listPromotionCodes({ promotionId: id, active: true })).codes).toEqual([]);

    const expiresAt = new Date("2030-12-31T23:59:59.000Z");
    const limited = one(await api().updatePromotionCode({ id: created.id, maxRedemptions: 3n, minAmountMinor: 999n, expiresAt: timestampFromDate(expiresAt), metadata: { entries: { b: "2" } } }));
    expect(limited).toMatchObject({ active: false, maxRedemptions: 3n, minAmountMinor: 999n, metadata: { b: "2" } });
    expect(limited.expiresAt && timestampDate(limited.expiresAt)).toEqual(expiresAt);

    const cleared = one(await api().updatePromotionCode({ id: created.id, maxRedemptions: 0n, minAmountMinor: 0n, clearExpiresAt: true, active: true }));
    expect(cleared).toMatchObject({ active: true, metadata: { b: "2" } });
    expect(cleared.maxRedemptions).toBeUndefined();
    expect(cleared.minAmountMinor).toBeUndefined();
    expect(cleared.expiresAt).toBeUndefined();
  });

  it("refuses a code held by another live promotion as ALREADY_EXISTS code_taken at its index", async () => {
    const primary = `PRIMARY-${protocol.toUpperCase()}`;
    await newPromotion(primary);
    const id = await newPromotion();
    const r = await refusal(api().createPromotionCodes({ promotionId: id, codes: [`free-${protocol}`, primary.toLowerCase()] }));
    expect(r.code).toBe(Code.AlreadyExists);
    expect(r.details).toEqual([expect.objectContaining({ param: "codes[1]", code: "code_taken", type: "conflict" })]);
    expect((await api().listPromotionCodes({ promotionId: id })).codes).toEqual([]);
  });

  it("names every bad field of a request", async () => {
    const id = await newPromotion();
    const create = await refusal(api().createPromotionCodes({ promotionId: id, codes: ["ok-code", "x", "OK-CODE"], count: 3, maxRedemptions: 0n }));
    expect(create.code).toBe(Code.InvalidArgument);
    expect(create.details.map((d) => [d.param, d.code])).toEqual([
      ["count", "not_allowed"],
      ["codes[1]", "too_short"],
      ["codes[2]", "duplicate"],
      ["max_redemptions", "out_of_range"],
    ]);
    expect(create.details[2]?.message).toContain("codes[0]");

    const tooMany = await refusal(api().createPromotionCodes({ promotionId: id, count: 100_001, prefix: "bad prefix" }));
    expect(tooMany.details.map((d) => [d.param, d.code])).toEqual([
      ["count", "out_of_range"],
      ["prefix", "invalid_format"],
    ]);

    const badId = await refusal(api().createPromotionCodes({ promotionId: "not-a-uuid", codes: ["FINE"] }));
    expect(badId.details.map((d) => [d.param, d.code])).toEqual([["promotion_id", "invalid_format"]]);

    const list = await refusal(api().listPromotionCodes({ promotionId: id, limit: 1001, cursor: "garbage!" }));
    expect(list.details.map((d) => d.param)).toEqual(["limit"]);
    const cursor = await refusal(api().listPromotionCodes({ promotionId: id, cursor: "garbage" }));
    expect(cursor.details.map((d) => [d.param, d.code])).toEqual([["cursor", "invalid_cursor"]]);

    const created = (await api().createPromotionCodes({ promotionId: id, codes: [`upd-${protocol}`] })).codes[0];
    const update = await refusal(
      api().updatePromotionCode({ id: created?.id ?? "", maxRedemptions: -1n, expiresAt: timestampFromDate(new Date()), clearExpiresAt: true }),
    );
    expect(update.code).toBe(Code.InvalidArgument);
    expect(update.details.map((d) => [d.param, d.code])).toEqual([
      ["max_redemptions", "out_of_range"],
      ["clear_expires_at", "not_allowed"],
    ]);
  });

  it("refuses codes for an archived promotion (FAILED_PRECONDITION) and frees its codes", async () => {
    const id = await newPromotion();
    await api().activatePromotion({ id });
    const code = `archived-${protocol}`;
    const created = (await api().createPromotionCodes({ promotionId: id, codes: [code] })).codes[0];
    await api().deactivatePromotion({ id });
    expect((await refusal(api().createPromotionCodes({ promotionId: id, codes: ["MORE-CODES"] }))).code).toBe(Code.FailedPrecondition);
    expect((await refusal(api().updatePromotionCode({ id: created?.id ?? "", active: false }))).code).toBe(Code.FailedPrecondition);
    const next = await newPromotion();
    expect((await api().createPromotionCodes({ promotionId: next, codes: [code] })).createdCount).toBe(1);
  });

  it("hides one tenant's promotions and codes from another (NOT_FOUND)", async () => {
    const id = await newPromotion();
    const created = (await api().createPromotionCodes({ promotionId: id, codes: [`mine-${protocol}`] })).codes[0];
    const theirs = api(globex.key);
    expect((await refusal(theirs.createPromotionCodes({ promotionId: id, codes: ["STEAL"] }))).code).toBe(Code.NotFound);
    expect((await refusal(theirs.listPromotionCodes({ promotionId: id }))).code).toBe(Code.NotFound);
    const update = await refusal(theirs.updatePromotionCode({ id: created?.id ?? "", active: false }));
    expect(update.code).toBe(Code.NotFound);
    expect(update.details[0]).toMatchObject({ code: "code_not_found", param: "id" });
    expect((await api().listPromotionCodes({ promotionId: id })).codes[0]?.active).toBe(true);
  });

  it("needs the write scope to create or update codes, and read to list them", async () => {
    const id = await newPromotion();
    const created = (await api().createPromotionCodes({ promotionId: id, codes: [`scoped-${protocol}`] })).codes[0];
    const reader = await t.tenant(`reader-${protocol}`, ["read"]);
    const readerApi = api(reader.key);
    expect((await refusal(readerApi.createPromotionCodes({ promotionId: id, codes: ["NOPE"] }))).code).toBe(Code.PermissionDenied);
    expect((await refusal(readerApi.updatePromotionCode({ id: created?.id ?? "", active: false }))).code).toBe(Code.PermissionDenied);
    const redeemer = await t.tenant(`redeemer-${protocol}`, ["redeem"]);
    expect((await refusal(api(redeemer.key).listPromotionCodes({ promotionId: id }))).code).toBe(Code.PermissionDenied);
    // Same tenant, read-only key: listing works, writing does not.
    const acmeReader = await t.tenant("acme", ["read"]);
    expect((await api(acmeReader.key).listPromotionCodes({ promotionId: id })).codes).toHaveLength(1);
    expect((await refusal(api(acmeReader.key).createPromotionCodes({ promotionId: id, codes: ["NOPE"] }))).code).toBe(Code.PermissionDenied);
  });
});
