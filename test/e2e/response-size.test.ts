// Responses fit the clients' default 4 MiB receive limit at every documented maximum, proven with
// a plain grpc-js client (which refuses a larger message with RESOURCE_EXHAUSTED after the server
// did all the work): pages stop at a byte budget as well as at `limit`, CreatePromotionCodes hands
// out a cursor for what it cannot carry, and a promotion cannot grow too big to be returned.
// CreatePromotionCodes also takes an idempotency_key, so a retry after a lost response never
// creates the codes twice.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { client, startTestApp, type TestApp } from "../support/app.js";
import { grpcJsService, grpcStatusDetails, type GrpcJsResult, type GrpcJsService } from "./support/clients.js";

let t: TestApp;
let key: string;
let promotions: GrpcJsService;
let redemptions: GrpcJsService;

beforeAll(async () => {
  t = await startTestApp("response_size");
  ({ key } = await t.tenant("size-co"));
  const address = new URL(t.url).host;
  promotions = grpcJsService(address, ["promotions/v1/promotion_service.proto"], "promotions.v1.PromotionService");
  redemptions = grpcJsService(address, ["promotions/v1/redemption_service.proto"], "promotions.v1.RedemptionService");
});
afterAll(async () => {
  promotions?.close();
  redemptions?.close();
  await t?.stop();
});

/** The fullest metadata the contract allows: 50 keys of 40 characters, values of 500, every character 4 bytes in UTF-8. */
function fullestMetadata(): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (let i = 0; i < 50; i++) metadata[`${String(i).padStart(2, "0")}${"𝔸".repeat(38)}`] = "😀".repeat(500);
  return metadata;
}

function ok<T>(result: GrpcJsResult<T>): T {
  if (result.error) throw new Error(`grpc-js: ${result.error.code} ${result.error.details}`);
  if (result.value === undefined) throw new Error("no response message");
  return result.value;
}

interface CodeJson {
  id: string;
  code: string;
  metadata: Record<string, string>;
}
interface CreatedJson {
  createdCount: number;
  codeValues: string[];
  codes: CodeJson[];
  nextCursor: string;
  replayed: boolean;
}
interface CodePage {
  codes: CodeJson[];
  nextCursor: string;
}

const pct = { percentageDiscount: { percentBps: 1000 } };

async function newPromotion(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const created = await client(PromotionService, t.url, key).createPromotion({ name, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }], ...extra });
  return created.promotion?.id ?? "";
}

/** Every page of ListPromotionCodes from `cursor` on, through grpc-js. */
async function allCodePages(promotionId: string, cursor = ""): Promise<CodePage[]> {
  const pages: CodePage[] = [];
  let next = cursor;
  do {
    const page = ok(await promotions.call<CodePage>("ListPromotionCodes", { promotionId, limit: 1000, cursor: next }, key));
    pages.push(page);
    next = page.nextCursor;
  } while (next !== "" && pages.length < 500);
  return pages;
}

describe("codes at the documented maximums", () => {
  it("1,000 codes with the fullest metadata: created and listed in pages that each fit 4 MiB, every code once", async () => {
    const promotionId = await newPromotion("Big metadata");
    const metadata = fullestMetadata();
    const codes = Array.from({ length: 1_000 }, (_, i) => `BIG-${String(i).padStart(4, "0")}`);
    const created = ok(await promotions.call<CreatedJson>("CreatePromotionCodes", { promotionId, codes, metadata }, key));
    expect(created.createdCount).toBe(1_000);
    expect(created.codeValues).toEqual(codes); // short texts: all of them fit
    expect(created.nextCursor).toBe("");
    // In full only as many as fit 1 MiB (each code carries ~108 KB of metadata).
    expect(created.codes.length).toBeGreaterThan(0);
    expect(created.codes.length).toBeLessThan(20);
    expect(created.codes.map((c) => c.code)).toEqual(codes.slice(0, created.codes.length));
    expect(created.codes[0]?.metadata).toEqual(metadata);

    const pages = await allCodePages(promotionId);
    expect(pages.length).toBeGreaterThan(40);
    const listed = pages.flatMap((p) => p.codes.map((c) => c.code));
    expect(listed).toEqual(codes);
    for (const page of pages) expect(page.codes.every((c) => c.metadata["00" + "𝔸".repeat(38)] === "😀".repeat(500))).toBe(true);
  }, 120_000);

  it("100,000 generated codes with a 40-character prefix: what does not fit comes through next_cursor, and only those codes", async () => {
    const promotionId = await newPromotion("Bulk");
    const prefix = "P".repeat(40);
    const created = ok(await promotions.call<CreatedJson>("CreatePromotionCodes", { promotionId, count: 100_000, prefix }, key));
    expect(created.createdCount).toBe(100_000);
    expect(created.codeValues.length).toBeLessThan(100_000);
    expect(created.codeValues.length).toBeGreaterThan(30_000);
    expect(created.nextCursor).not.toBe("");
    // Codes another call adds meanwhile are not this call's, and its cursor must not list them.
    ok(await promotions.call<CreatedJson>("CreatePromotionCodes", { promotionId, codes: ["OTHER-CALL-1", "OTHER-CALL-2"] }, key));

    const rest = (await allCodePages(promotionId, created.nextCursor)).flatMap((p) => p.codes.map((c) => c.code));
    const all = [...created.codeValues, ...rest];
    expect(all).toHaveLength(100_000);
    expect(new Set(all).size).toBe(100_000);
    expect(all.every((c) => c.startsWith(prefix) && c.length === 50)).toBe(true);
  }, 180_000);
});

describe("CreatePromotionCodes with an idempotency_key", () => {
  it("answers a retry with the first call's codes (replayed) and creates none", async () => {
    const promotionId = await newPromotion("Retried");
    const request = { promotionId, count: 50, prefix: "RETRY-", idempotencyKey: "batch-1" };
    const first = ok(await promotions.call<CreatedJson>("CreatePromotionCodes", request, key));
    expect(first).toMatchObject({ createdCount: 50, replayed: false });
    const again = ok(await promotions.call<CreatedJson>("CreatePromotionCodes", request, key));
    expect(again).toMatchObject({ createdCount: 50, replayed: true, codeValues: first.codeValues });
    expect(again.codes.map((c) => c.id)).toEqual(first.codes.map((c) => c.id));
    const listed = (await allCodePages(promotionId)).flatMap((p) => p.codes);
    expect(listed).toHaveLength(50);
  });

  it("refuses the same key with a different request: ALREADY_EXISTS idempotency_key_reused, nothing created", async () => {
    const promotionId = await newPromotion("Reused");
    const other = await newPromotion("Other");
    ok(await promotions.call<CreatedJson>("CreatePromotionCodes", { promotionId, codes: ["REUSED-1"], idempotencyKey: "batch-2" }, key));
    for (const request of [
      { promotionId, codes: ["REUSED-2"], idempotencyKey: "batch-2" },
      { promotionId, codes: ["REUSED-1"], maxRedemptions: "5", idempotencyKey: "batch-2" },
      { promotionId: other, codes: ["REUSED-1"], idempotencyKey: "batch-2" },
    ]) {
      const { error } = await promotions.call<CreatedJson>("CreatePromotionCodes", request, key);
      expect(error?.code).toBe(GrpcStatus.ALREADY_EXISTS);
      expect(error && grpcStatusDetails(error)?.errorDetails).toEqual([expect.objectContaining({ code: "idempotency_key_reused", param: "idempotency_key" })]);
    }
    expect((await allCodePages(promotionId)).flatMap((p) => p.codes.map((c) => c.code))).toEqual(["REUSED-1"]);
    expect((await allCodePages(other)).flatMap((p) => p.codes)).toEqual([]);
  });

  it("creates the codes once when the same request races itself", async () => {
    const promotionId = await newPromotion("Raced");
    const request = { promotionId, count: 20, prefix: "RACE-", idempotencyKey: "batch-3" };
    const answers = await Promise.all(Array.from({ length: 6 }, () => promotions.call<CreatedJson>("CreatePromotionCodes", request, key)));
    const values = answers.map((a) => ok(a).codeValues);
    for (const v of values) expect(v).toEqual(values[0]);
    expect(answers.filter((a) => ok(a).replayed === false)).toHaveLength(1);
    expect((await allCodePages(promotionId)).flatMap((p) => p.codes)).toHaveLength(20);
  });
});

describe("promotions and redemptions at their maximums", () => {
  /** A promotion whose terms are just under the 1 MiB a request may carry: a plan list of long ids. */
  const heavy = (name: string, ids = 4_400) => ({
    name,
    conditions: [{ plans: { include: Array.from({ length: ids }, (_, i) => `${String(i).padStart(5, "0")}${"x".repeat(195)}`) } }],
    effects: [pct],
  });

  it("ListPromotions pages promotions of ~900 KB each within 4 MiB", async () => {
    const { key: ownKey } = await t.tenant("heavy-co");
    for (let i = 0; i < 6; i++) ok(await promotions.call("CreatePromotion", heavy(`Heavy ${i}`), ownKey));
    const seen: string[] = [];
    let cursor = "";
    let pages = 0;
    do {
      const page = ok(await promotions.call<{ promotions: { name: string }[]; nextCursor: string }>("ListPromotions", { limit: 100, cursor }, ownKey));
      seen.push(...page.promotions.map((p) => p.name));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== "" && pages < 20);
    expect(seen.sort()).toEqual(Array.from({ length: 6 }, (_, i) => `Heavy ${i}`));
    expect(pages).toBeGreaterThan(1);
  }, 120_000);

  it("refuses a CreatePromotion over 1 MiB as INVALID_ARGUMENT too_large", async () => {
    const { error } = await promotions.call("CreatePromotion", heavy("Too heavy", 5_500), key);
    expect(error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(error && grpcStatusDetails(error)?.errorDetails[0]).toMatchObject({ code: "too_large" });
  });

  it("ListRedemptions pages redemptions with the fullest metadata within 4 MiB", async () => {
    const promotionId = await newPromotion("Redeemed a lot", { code: "MANY-REDEEMS" });
    await client(PromotionService, t.url, key).activatePromotion({ id: promotionId });
    const metadata = fullestMetadata();
    for (let i = 0; i < 45; i++) ok(await redemptions.call("RedeemPromotion", { code: "MANY-REDEEMS", customerId: `cus-${i}`, metadata }, key));
    const ids = new Set<string>();
    let cursor = "";
    let pages = 0;
    do {
      const page = ok(await redemptions.call<{ redemptions: { id: string }[]; nextCursor: string }>("ListRedemptions", { promotionId, limit: 100, cursor }, key));
      for (const r of page.redemptions) ids.add(r.id);
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== "" && pages < 20);
    expect(ids.size).toBe(45);
    expect(pages).toBeGreaterThan(2);
  }, 120_000);
});
