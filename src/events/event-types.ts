import type { Event } from "../../gen/promotions/v1/event_pb.js";

// Every event type and the payload it carries (DESIGN §9). The outbox refuses a type with the
// wrong payload at compile time (NewEvent below), so a consumer can rely on `type` alone.

/** The Event.payload oneof. */
export type EventPayload = Event["payload"];
export type PayloadCase = Exclude<EventPayload["case"], undefined>;

export const EVENT_TYPES = {
  "promotion.created": "promotion",
  "promotion.updated": "promotion",
  "promotion.activated": "promotion",
  "promotion.archived": "promotion",
  "promotion.deleted": "promotion",
  "promotion.version_published": "promotion",
  "promotion.exhausted": "promotion",
  "promotion.budget_threshold": "budgetThreshold",
  "code.created": "code",
  "code.updated": "code",
  "redemption.created": "redemption",
  "redemption.released": "redemption",
  "redemption.completed": "redemption",
  "redemption.ended": "redemption",
  "invoice.promotions_applied": "invoice",
  "invoice.reversed": "invoice",
  "webhook_endpoint.disabled": "webhookEndpoint",
} as const satisfies Record<string, PayloadCase>;

export type EventType = keyof typeof EVENT_TYPES;

/** The payload an event of type T must carry. */
export type PayloadOf<T extends EventType> = Extract<EventPayload, { case: (typeof EVENT_TYPES)[T] }>;

export function isEventType(value: string): value is EventType {
  return Object.hasOwn(EVENT_TYPES, value);
}

/** The id of the resource a payload is about (what `resource_id` indexes). */
export function resourceIdOf(payload: EventPayload): string {
  switch (payload.case) {
    case "promotion":
    case "code":
    case "redemption":
    case "webhookEndpoint":
      return payload.value.id;
    case "budgetThreshold":
      return payload.value.promotion?.id ?? "";
    case "invoice":
      return payload.value.invoiceId;
    case undefined:
      return "";
  }
}
