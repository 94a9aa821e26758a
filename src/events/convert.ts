import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  WebhookAttemptStatus,
  WebhookDeliverySchema,
  WebhookDeliveryStatus,
  WebhookDisabledReason,
  WebhookEndpointSchema,
  type WebhookDelivery,
  type WebhookEndpoint,
} from "../../gen/promotions/v1/webhook_pb.js";
import type { DeliveryRecord, DeliveryStatus, EndpointRecord } from "./webhook-store.js";

// Webhook records <-> promotions.v1 messages. A secret never leaves through here.

const ts = (d: Date | null) => (d === null ? undefined : timestampFromDate(d));

export function endpointToProto(e: EndpointRecord): WebhookEndpoint {
  return create(WebhookEndpointSchema, {
    id: e.id,
    organizationId: e.organizationId,
    url: e.url,
    eventTypes: e.eventTypes,
    description: e.description,
    disabled: e.disabledAt !== null,
    disabledReason:
      e.disabledReason === "MANUAL" ? WebhookDisabledReason.MANUAL : e.disabledReason === "PERSISTENT_FAILURE" ? WebhookDisabledReason.PERSISTENT_FAILURE : WebhookDisabledReason.UNSPECIFIED,
    disabledAt: ts(e.disabledAt),
    // Only while the previous secret still signs.
    previousSecretExpiresAt: e.previousSecretExpiresAt !== null && e.previousSecretExpiresAt.getTime() > Date.now() ? ts(e.previousSecretExpiresAt) : undefined,
    createdAt: ts(e.createdAt),
    updatedAt: ts(e.updatedAt),
    deletedAt: ts(e.deletedAt),
  });
}

const DELIVERY_STATUS: Record<DeliveryStatus, WebhookDeliveryStatus> = {
  PENDING: WebhookDeliveryStatus.PENDING,
  SUCCEEDED: WebhookDeliveryStatus.SUCCEEDED,
  FAILED: WebhookDeliveryStatus.FAILED,
};

export function deliveryStatusFromProto(status: WebhookDeliveryStatus): DeliveryStatus | null {
  for (const [name, value] of Object.entries(DELIVERY_STATUS)) if (value === status) return name as DeliveryStatus;
  return null;
}

export function deliveryToProto(d: DeliveryRecord): WebhookDelivery {
  return create(WebhookDeliverySchema, {
    id: d.id,
    endpointId: d.endpointId,
    eventId: d.eventId,
    eventType: d.eventType,
    status: DELIVERY_STATUS[d.status],
    attemptCount: d.attemptCount,
    attempts: d.attempts.map((a) => ({
      attempt: a.attempt,
      status: a.status === "SUCCEEDED" ? WebhookAttemptStatus.SUCCEEDED : WebhookAttemptStatus.FAILED,
      responseStatusCode: a.responseStatusCode ?? 0,
      latencyMs: a.latencyMs,
      error: a.error ?? "",
      startedAt: ts(a.startedAt),
    })),
    createdAt: ts(d.createdAt),
    deliveredAt: ts(d.deliveredAt),
  });
}
