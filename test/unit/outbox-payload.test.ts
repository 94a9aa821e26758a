import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { BudgetThresholdSchema, EventInvoiceSchema, EventSchema } from "../../gen/promotions/v1/event_pb.js";
import { PromotionCodeSchema, PromotionSchema } from "../../gen/promotions/v1/promotion_pb.js";
import { RedemptionSchema, RedemptionStatus } from "../../gen/promotions/v1/redemption_service_pb.js";
import { WebhookEndpointSchema } from "../../gen/promotions/v1/webhook_pb.js";
import type { EventPayload } from "../../src/events/event-types.js";
import { payloadJson } from "../../src/events/outbox.js";

// The payload column holds the Event's payload oneof as proto JSON. payloadJson encodes only the
// case's message (the hot path encodes one per redemption); it must give exactly what encoding
// the whole Event would.

const at = timestampFromDate(new Date("2026-12-02T01:02:03.456Z"));
const promotion = create(PromotionSchema, { id: "p1", name: "Spring", maxRedemptions: 3n, currentRedemptions: 3n, createdAt: at, metadata: { a: "b" } });

const cases: EventPayload[] = [
  { case: "promotion", value: promotion },
  { case: "code", value: create(PromotionCodeSchema, { id: "c1", code: "SPRING-A", maxRedemptions: 1n, active: true, createdAt: at }) },
  { case: "redemption", value: create(RedemptionSchema, { id: "r1", customerId: "cus_1", status: RedemptionStatus.ENDED, endReason: "promotion_deleted", createdAt: at, cyclesRemaining: 0 }) },
  { case: "invoice", value: create(EventInvoiceSchema, { invoiceId: "inv-1", invoice: { currency: "USD", discountMinor: 1_000n }, reversedAt: at }) },
  { case: "budgetThreshold", value: create(BudgetThresholdSchema, { promotion, thresholdPercent: 80 }) },
  { case: "webhookEndpoint", value: create(WebhookEndpointSchema, { id: "w1", url: "https://hooks.example.com/x", eventTypes: ["promotion.exhausted"] }) },
  { case: "promotion", value: create(PromotionSchema) },
];

describe("payloadJson", () => {
  it.each(cases.map((payload) => [payload.case, payload] as const))("encodes a %s payload exactly as the whole Event's JSON has it", (_case, payload) => {
    const whole = toJson(EventSchema, create(EventSchema, { payload })) as Record<string, unknown>;
    expect(payloadJson(payload)).toEqual(whole);
  });
});
