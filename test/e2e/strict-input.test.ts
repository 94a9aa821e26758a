// Strict input on every protocol: a field the contract does not have, or an enum value it does not
// name, is INVALID_ARGUMENT with an ErrorDetail naming the field, never silently dropped. Over
// Connect JSON that is a misspelled key (`maxRedemption`) or enum name (`STRICT`); over the binary
// protocols an unknown field number or enum number. Nothing may be written by any of them.
import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { BudgetBehavior, VersionStatus } from "../../gen/promotions/v1/promotion_pb.js";
import {
  CreatePromotionRequestSchema,
  PromotionService,
  UpdatePromotionRequestSchema,
} from "../../gen/promotions/v1/promotion_service_pb.js";
import { PromotionVersionService } from "../../gen/promotions/v1/promotion_version_service_pb.js";
import { RedeemPromotionRequestSchema, RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { PhaseDuration } from "../../gen/promotions/v1/types_pb.js";
import { client, startTestApp, transport, type TestApp } from "../support/app.js";
import { refusal } from "../support/rpc.js";
import { snapshotDiff, snapshotRedis, takeSnapshot, type Snapshot } from "./support/snapshot.js";

let t: TestApp;
let redis: Redis;
let key: string;
let promotionId: string;
let before: Snapshot;

const CODE = "STRICT-10";
const pct = (percentBps: number) => ({ kind: { case: "percentageDiscount" as const, value: { percentBps } } });

beforeAll(async () => {
  t = await startTestApp("strict_input");
  redis = snapshotRedis();
  ({ key } = await t.tenant("strict-co"));
  // A live code, so a RedeemPromotion that slipped through would write a redemption.
  const promotions = client(PromotionService, t.url, key);
  promotionId = (await promotions.createPromotion({ name: "Ten off", code: CODE, effects: [pct(1000)] })).promotion?.id ?? "";
  await promotions.activatePromotion({ id: promotionId });
  await client(RedemptionService, t.url, key).validateCode({ code: CODE, customerId: "warm-up" });
  before = await takeSnapshot(t, redis);
});
afterAll(async () => {
  redis?.disconnect();
  await t?.stop();
});

interface JsonRow {
  label: string;
  path: string;
  body: () => Record<string, unknown>;
  param: string;
  code: "unknown_field" | "invalid_enum";
  /** Words the message must contain (the suggestion, the allowed names). */
  says?: string;
}

const JSON_ROWS: JsonRow[] = [
  {
    label: "a misspelled limit (maxRedemption) on CreatePromotion",
    path: "PromotionService/CreatePromotion",
    body: () => ({ name: "Typo", effects: [{ percentageDiscount: { percentBps: 500 } }], maxRedemption: "5" }),
    param: "maxRedemption",
    code: "unknown_field",
    says: "max_redemptions",
  },
  {
    label: "a wrong enum name (STRICT) on CreatePromotion",
    path: "PromotionService/CreatePromotion",
    body: () => ({ name: "Budget", effects: [{ percentageDiscount: { percentBps: 500 } }], maxBudget: "1000", budgetBehavior: "STRICT" }),
    param: "budget_behavior",
    code: "invalid_enum",
    says: "BUDGET_BEHAVIOR_STRICT",
  },
  {
    label: "a wrong enum name inside a phase",
    path: "PromotionService/CreatePromotion",
    body: () => ({ name: "Phased", phases: [{ name: "Default", duration: "FOREVER", effects: [{ percentageDiscount: { percentBps: 500 } }] }] }),
    param: "phases[0].duration",
    code: "invalid_enum",
    says: "PHASE_DURATION_FOREVER",
  },
  {
    label: "a misspelled field deep inside an effect",
    path: "PromotionService/CreatePromotion",
    body: () => ({ name: "Deep", effects: [{ percentageDiscount: { percentBps: 500, percent: 5 } }] }),
    param: "effects[0].percentage_discount.percent",
    code: "unknown_field",
  },
  {
    label: "a misspelled limit on UpdatePromotion",
    path: "PromotionService/UpdatePromotion",
    body: () => ({ id: promotionId, maxRedemptionsPerCustomr: "1" }),
    param: "maxRedemptionsPerCustomr",
    code: "unknown_field",
    says: "max_redemptions_per_customer",
  },
  {
    label: "a misspelled idempotency key on RedeemPromotion",
    path: "RedemptionService/RedeemPromotion",
    body: () => ({ code: CODE, customerId: "cus-json", idempotencyKy: "order-1" }),
    param: "idempotencyKy",
    code: "unknown_field",
    says: "idempotency_key",
  },
  {
    label: "a misspelled field of a nested customer on UpsertCustomer",
    path: "CustomerService/UpsertCustomer",
    body: () => ({ customer: { id: "cus-json", segmnts: ["vip"] } }),
    param: "customer.segmnts",
    code: "unknown_field",
    says: "segments",
  },
  {
    label: "a misspelled filter on ListPromotions",
    path: "PromotionService/ListPromotions",
    body: () => ({ visibilty: "VISIBILITY_PUBLIC" }),
    param: "visibilty",
    code: "unknown_field",
    says: "visibility",
  },
];

describe("over Connect JSON", () => {
  it.each(JSON_ROWS)("refuses $label as INVALID_ARGUMENT naming $param", async (row) => {
    const res = await fetch(`${t.url}/promotions.v1.${row.path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify(row.body()),
    });
    const body = (await res.json()) as { code: string; message: string; details?: { type: string; debug?: Record<string, string> }[] };
    expect(res.status).toBe(400);
    expect(body.code).toBe("invalid_argument");
    const detail = body.details?.find((d) => d.type === "promotions.v1.ErrorDetail")?.debug;
    expect(detail).toMatchObject({ type: "invalid_request", code: row.code, param: row.param });
    expect(body.message).toMatch(new RegExp(`^${row.param.replace(/[[\].]/g, "\\$&")}: `));
    if (row.says) expect(body.message).toContain(row.says);
  });

  it("still takes proto field names and enum numbers that exist (the JSON mapping allows both)", async () => {
    const res = await fetch(`${t.url}/promotions.v1.PromotionService/ListPromotions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ status: 2, limit: 5, visibility: "VISIBILITY_PRIVATE" }),
    });
    expect(res.status).toBe(200);
  });
});

/** A request of `schema` with an unknown field `no` (a varint) appended, as a newer client would send it. */
function withUnknown<S extends DescMessage>(schema: S, init: MessageInitShape<S>, no: number) {
  const message = create(schema, init);
  message.$unknown = [{ no, wireType: WireType.Varint, data: Uint8Array.from([5]) }];
  return message;
}

interface BinaryRow {
  label: string;
  call: (tr: Transport) => Promise<unknown>;
  param: string;
  code: "unknown_field" | "invalid_enum";
}

const BINARY_ROWS: BinaryRow[] = [
  {
    label: "an unknown field number on CreatePromotion",
    call: (tr) => createClient(PromotionService, tr).createPromotion(withUnknown(CreatePromotionRequestSchema, { name: "Newer client", effects: [pct(500)] }, 99)),
    param: "#99",
    code: "unknown_field",
  },
  {
    label: "an unknown enum number for budget_behavior",
    call: (tr) => createClient(PromotionService, tr).createPromotion({ name: "Budget", effects: [pct(500)], maxBudget: 1000n, budgetBehavior: 7 as BudgetBehavior }),
    param: "budget_behavior",
    code: "invalid_enum",
  },
  {
    label: "an unknown enum number inside a phase",
    call: (tr) =>
      createClient(PromotionService, tr).createPromotion({ name: "Phased", phases: [{ name: "Default", duration: 42 as PhaseDuration, effects: [pct(500)] }] }),
    param: "phases[0].duration",
    code: "invalid_enum",
  },
  {
    label: "an unknown field number deep inside an effect",
    call: (tr) => {
      const request = create(CreatePromotionRequestSchema, { name: "Deep", effects: [pct(500)] });
      const effect = request.effects[0];
      if (effect?.kind.case !== "percentageDiscount") throw new Error("unreachable");
      effect.kind.value.$unknown = [{ no: 5, wireType: WireType.Varint, data: Uint8Array.from([1]) }];
      return createClient(PromotionService, tr).createPromotion(request);
    },
    param: "effects[0].percentage_discount.#5",
    code: "unknown_field",
  },
  {
    label: "an unknown enum number on UpdatePromotion",
    call: (tr) => createClient(PromotionService, tr).updatePromotion(create(UpdatePromotionRequestSchema, { id: promotionId, budgetBehavior: 9 as BudgetBehavior })),
    param: "budget_behavior",
    code: "invalid_enum",
  },
  {
    label: "an unknown field number on RedeemPromotion",
    call: (tr) => createClient(RedemptionService, tr).redeemPromotion(withUnknown(RedeemPromotionRequestSchema, { code: CODE, customerId: "cus-binary" }, 77)),
    param: "#77",
    code: "unknown_field",
  },
  {
    label: "an unknown enum number in a repeated filter",
    call: (tr) => createClient(PromotionVersionService, tr).listPromotionVersions({ id: promotionId, status: [VersionStatus.PUBLISHED, 99 as VersionStatus] }),
    param: "status[1]",
    code: "invalid_enum",
  },
  {
    label: "an unknown field number inside a customer on UpsertCustomer",
    call: (tr) => {
      const request = { customer: { id: "cus-binary", segments: ["vip"] } };
      const message = create(CustomerService.method.upsertCustomer.input, request);
      if (message.customer) message.customer.$unknown = [{ no: 300, wireType: WireType.Varint, data: Uint8Array.from([1]) }];
      return createClient(CustomerService, tr).upsertCustomer(message);
    },
    param: "customer.#300",
    code: "unknown_field",
  },
];

describe.each(["connect-binary", "grpc"] as const)("over %s", (protocol) => {
  it.each(BINARY_ROWS)("refuses $label as INVALID_ARGUMENT naming $param", async (row) => {
    const r = await refusal(row.call(transport(t.url, protocol, key)));
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.details).toEqual([expect.objectContaining({ type: "invalid_request", code: row.code, param: row.param })]);
    expect(r.message).toContain(row.param);
  });
});

describe("after every refusal above", () => {
  it("nothing was written: every table and Redis key is as it was", async () => {
    const after = await takeSnapshot(t, redis);
    expect(snapshotDiff(before, after)).toEqual([]);
  });
});
