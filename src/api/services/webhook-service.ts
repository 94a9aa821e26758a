import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { WebhookDeliverySchema, WebhookDeliveryStatus, WebhookEndpointSchema } from "../../../gen/promotions/v1/webhook_pb.js";
import type { WebhookService } from "../../../gen/promotions/v1/webhook_service_pb.js";
import { decodeTimeIdCursor } from "../cursor.js";
import { sizedPage } from "../page-size.js";
import { requestScope } from "../request-scope.js";
import { assertValid, checkPageLimit } from "../../domain/checks.js";
import type { Violation } from "../../domain/errors.js";
import { deliveryStatusFromProto, deliveryToProto, endpointToProto } from "../../events/convert.js";
import { Webhooks, type WebhookDeps } from "../../events/webhooks.js";

// promotions.v1.WebhookService: maps messages to the webhook use cases and back. Scopes: lists
// `read`, the rest `write` (src/api/method-scopes.ts). Secrets appear only in the Create and Rotate
// answers; nothing here logs a message.

const ENDPOINTS_CURSOR = "webhook_endpoints";
const DELIVERIES_CURSOR = "webhook_deliveries";

function useCases(ctx: HandlerContext, deps: WebhookDeps) {
  const { em, actor, clock } = requestScope(ctx);
  return { webhooks: new Webhooks(em, deps, clock), organizationId: actor.organizationId };
}

function pageLimit(limit: number): number {
  const out: Violation[] = [];
  const checked = checkPageLimit(out, limit);
  assertValid(out);
  return checked;
}

export function webhookService(deps: WebhookDeps): ServiceImpl<typeof WebhookService> {
  return {
    async createWebhookEndpoint(req, ctx) {
      const { webhooks, organizationId } = useCases(ctx, deps);
      const { endpoint, secret } = await webhooks.create(organizationId, { url: req.url, eventTypes: req.eventTypes, description: req.description });
      return { webhookEndpoint: endpointToProto(endpoint), signingSecret: secret };
    },

    async listWebhookEndpoints(req, ctx) {
      const { webhooks, organizationId } = useCases(ctx, deps);
      const limit = pageLimit(req.limit);
      const after = decodeTimeIdCursor(ENDPOINTS_CURSOR, req.cursor);
      const rows = await webhooks.list(organizationId, after, limit + 1);
      const { messages, nextCursor } = sizedPage(ENDPOINTS_CURSOR, rows, limit, WebhookEndpointSchema, endpointToProto);
      return { webhookEndpoints: messages, nextCursor };
    },

    async updateWebhookEndpoint(req, ctx) {
      const { webhooks, organizationId } = useCases(ctx, deps);
      const endpoint = await webhooks.update(organizationId, req.id, {
        url: req.url,
        eventTypes: req.eventTypes?.eventTypes,
        description: req.description,
        disabled: req.disabled,
      });
      return { webhookEndpoint: endpointToProto(endpoint) };
    },

    async deleteWebhookEndpoint(req, ctx) {
      const { webhooks, organizationId } = useCases(ctx, deps);
      return { webhookEndpoint: endpointToProto(await webhooks.delete(organizationId, req.id)) };
    },

    async rotateWebhookSecret(req, ctx) {
      const { webhooks, organizationId } = useCases(ctx, deps);
      const { endpoint, secret, previousExpiresAt } = await webhooks.rotateSecret(organizationId, req.id);
      return { webhookEndpoint: endpointToProto(endpoint), signingSecret: secret, previousSecretExpiresAt: timestampFromDate(previousExpiresAt) };
    },

    async listWebhookDeliveries(req, ctx) {
      const { webhooks, organizationId } = useCases(ctx, deps);
      const out: Violation[] = [];
      const limit = checkPageLimit(out, req.limit);
      const status = req.status === WebhookDeliveryStatus.UNSPECIFIED ? null : deliveryStatusFromProto(req.status);
      if (req.status !== WebhookDeliveryStatus.UNSPECIFIED && status === null) out.push({ param: "status", code: "invalid_enum", message: `status ${req.status} is not a delivery status` });
      assertValid(out);
      const after = decodeTimeIdCursor(DELIVERIES_CURSOR, req.cursor);
      const rows = await webhooks.listDeliveries({ organizationId, endpointId: req.endpointId, eventId: req.eventId, status, after, limit: limit + 1 });
      const { messages, nextCursor } = sizedPage(DELIVERIES_CURSOR, rows, limit, WebhookDeliverySchema, deliveryToProto);
      return { webhookDeliveries: messages, nextCursor };
    },

    async retryWebhookDelivery(req, ctx) {
      const { webhooks, organizationId } = useCases(ctx, deps);
      return { webhookDelivery: deliveryToProto(await webhooks.retryDelivery(organizationId, req.id)) };
    },
  };
}
