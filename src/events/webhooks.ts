import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { assertValid, checkText, checkUuid } from "../domain/checks.js";
import { DomainError, type Violation } from "../domain/errors.js";
import type { ResolveHost } from "./addresses.js";
import { checkEndpointUrl } from "./endpoint-url.js";
import { isEventType } from "./event-types.js";
import type { DeliveryQueue } from "./queue.js";
import { newSigningSecret, ROTATION_OVERLAP_MS } from "./signing.js";
import { sqlOf } from "./sql.js";
import { WebhookStore, type DeliveryRecord, type DeliveryStatus, type EndpointPatch, type EndpointRecord } from "./webhook-store.js";

// Use cases of webhook endpoints and their deliveries, for one tenant: another organization's
// endpoints and deliveries do not exist (NOT_FOUND), like every other resource.

export interface WebhookDeps {
  queue: DeliveryQueue;
  resolve: ResolveHost;
  allowPrivateNetworks: boolean;
}

const MAX_EVENT_TYPES = 50;

const NOT_FOUND = {
  endpoint: { code: "webhook_endpoint_not_found", noun: "webhook endpoint" },
  delivery: { code: "webhook_delivery_not_found", noun: "webhook delivery" },
  event: { code: "event_not_found", noun: "event" },
} as const;

const notFound = (what: keyof typeof NOT_FOUND, id: string, param: string) =>
  DomainError.of("not_found", NOT_FOUND[what].code, `${NOT_FOUND[what].noun} ${id} does not exist`, param);

function checkEventTypes(out: Violation[], types: readonly string[], param: string): string[] {
  if (types.length > MAX_EVENT_TYPES) out.push({ param, code: "too_many", message: `${param} holds at most ${MAX_EVENT_TYPES} types (got ${types.length})` });
  types.forEach((type, i) => {
    if (!isEventType(type)) out.push({ param: `${param}[${i}]`, code: "unknown_event_type", message: `unknown event type ${JSON.stringify(type.slice(0, 80))}` });
  });
  return [...new Set(types)];
}

export class Webhooks {
  private readonly store: WebhookStore;

  constructor(
    private readonly em: EntityManager,
    private readonly deps: WebhookDeps,
    private readonly clock: () => Date,
  ) {
    this.store = new WebhookStore(sqlOf(em));
  }

  async create(organizationId: string, input: { url: string; eventTypes: readonly string[]; description: string }): Promise<{ endpoint: EndpointRecord; secret: string }> {
    const out: Violation[] = [];
    const eventTypes = checkEventTypes(out, input.eventTypes, "event_types");
    checkText(out, input.description, "description", { max: 500, multiline: true });
    const { url, violations } = await checkEndpointUrl(input.url, this.deps);
    assertValid([...violations, ...out]);
    const now = this.clock();
    const secret = newSigningSecret();
    const endpoint = await this.store.createEndpoint({
      id: randomUUID(),
      organizationId,
      url,
      description: input.description,
      eventTypes,
      secret,
      previousSecret: null,
      previousSecretExpiresAt: null,
      disabledAt: null,
      disabledReason: null,
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
    });
    return { endpoint, secret };
  }

  async list(organizationId: string, after: { createdAt: Date; id: string } | null, limit: number): Promise<EndpointRecord[]> {
    return this.store.listEndpoints(organizationId, after, limit);
  }

  async update(organizationId: string, id: string, input: { url?: string; eventTypes?: readonly string[]; description?: string; disabled?: boolean }): Promise<EndpointRecord> {
    const out: Violation[] = [];
    checkUuid(out, id, "id");
    const patch: EndpointPatch = {};
    if (input.eventTypes !== undefined) patch.eventTypes = checkEventTypes(out, input.eventTypes, "event_types.event_types");
    if (input.description !== undefined) {
      checkText(out, input.description, "description", { max: 500, multiline: true });
      patch.description = input.description;
    }
    if (input.disabled !== undefined) patch.disabled = input.disabled;
    if (input.url !== undefined) {
      const checked = await checkEndpointUrl(input.url, this.deps);
      out.push(...checked.violations);
      patch.url = checked.url;
    }
    assertValid(out);
    const updated = await this.store.updateEndpoint(organizationId, id, patch, this.clock());
    if (!updated) throw notFound("endpoint", id, "id");
    return updated;
  }

  async delete(organizationId: string, id: string): Promise<EndpointRecord> {
    this.checkId(id, "id");
    const deleted = await this.store.deleteEndpoint(organizationId, id, this.clock());
    if (!deleted) throw notFound("endpoint", id, "id");
    return deleted;
  }

  /** A new secret; the old one keeps signing for ROTATION_OVERLAP_MS. */
  async rotateSecret(organizationId: string, id: string): Promise<{ endpoint: EndpointRecord; secret: string; previousExpiresAt: Date }> {
    this.checkId(id, "id");
    const now = this.clock();
    const secret = newSigningSecret();
    const previousExpiresAt = new Date(now.getTime() + ROTATION_OVERLAP_MS);
    const endpoint = await this.store.rotateSecret(organizationId, id, secret, previousExpiresAt, now);
    if (!endpoint) throw notFound("endpoint", id, "id");
    return { endpoint, secret, previousExpiresAt };
  }

  async listDeliveries(q: {
    organizationId: string;
    endpointId: string;
    eventId: string;
    status: DeliveryStatus | null;
    after: { createdAt: Date; id: string } | null;
    limit: number;
  }): Promise<DeliveryRecord[]> {
    const out: Violation[] = [];
    if (q.endpointId !== "") checkUuid(out, q.endpointId, "endpoint_id");
    if (q.eventId !== "") checkUuid(out, q.eventId, "event_id");
    assertValid(out);
    if (q.endpointId !== "" && !(await this.store.findEndpoint(q.organizationId, q.endpointId))) throw notFound("endpoint", q.endpointId, "endpoint_id");
    if (q.eventId !== "" && !(await this.store.eventExists(q.organizationId, q.eventId))) throw notFound("event", q.eventId, "event_id");
    return this.store.listDeliveries({ ...q, endpointId: q.endpointId || null, eventId: q.eventId || null });
  }

  /** Sends a delivery that is not pending once more, now; its job is enqueued in the same transaction. */
  async retryDelivery(organizationId: string, id: string): Promise<DeliveryRecord> {
    this.checkId(id, "id");
    await this.em.transactional(async (em) => {
      const store = new WebhookStore(sqlOf(em));
      const delivery = await store.findDelivery(organizationId, id);
      if (!delivery) throw notFound("delivery", id, "id");
      const endpoint = await store.findEndpoint(organizationId, delivery.endpointId);
      if (!endpoint) throw DomainError.of("failed_precondition", "webhook_endpoint_deleted", `the endpoint of delivery ${id} was deleted`, "id");
      if (endpoint.disabledAt !== null) {
        throw DomainError.of("failed_precondition", "webhook_endpoint_disabled", `the endpoint of delivery ${id} is disabled; enable it first (UpdateWebhookEndpoint)`, "id");
      }
      if ((await store.markPendingAgain(organizationId, id, this.clock())) === null) {
        throw DomainError.of("failed_precondition", "webhook_delivery_pending", `delivery ${id} is pending already; it will be attempted`, "id");
      }
      await this.deps.queue.enqueue(em, [{ deliveryId: id, manual: true }]);
    });
    const delivery = await this.store.findDelivery(organizationId, id);
    if (!delivery) throw notFound("delivery", id, "id");
    return delivery;
  }

  private checkId(id: string, param: string): void {
    const out: Violation[] = [];
    checkUuid(out, id, param);
    assertValid(out);
  }
}
