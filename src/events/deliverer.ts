import { toJsonString } from "@bufbuild/protobuf";
import type { MikroORM } from "@mikro-orm/postgresql";
import { EventSchema } from "../../gen/promotions/v1/event_pb.js";
import type { Logger } from "../observability/logger.js";
import { destinationOf, type ResolveHost } from "./addresses.js";
import { endpointToProto } from "./convert.js";
import { observeAttempt, type EventMetrics } from "./metrics.js";
import { appendEvents } from "./outbox.js";
import type { DeliveryJob } from "./queue.js";
import { EventReader } from "./reader.js";
import { sendAttempt } from "./sender.js";
import { secretsInUse, signedHeaders } from "./signing.js";
import { sqlOf } from "./sql.js";
import { DeliveryLog } from "./webhook-store.js";

// One delivery job: sends the event to the endpoint once and records the attempt. The body is the
// Event in proto JSON (what StreamEvents returns), signed with every secret in use; the address
// is resolved and checked again right before the attempt and the connection goes to that very
// address. A failed attempt throws, so the queue schedules the next one; a delivery that is done
// (succeeded, or its endpoint disabled or deleted) completes without sending.

/** Thrown to have the queue retry: the attempt failed. Carries no body, header or secret. */
export class AttemptFailed extends Error {
  override name = "AttemptFailed";
}

export interface DelivererOptions {
  resolve: ResolveHost;
  allowPrivateNetworks: boolean;
  /** Picks the secrets in use and stamps webhook-timestamp. */
  clock?: () => Date;
}

export class Deliverer {
  private readonly clock: () => Date;

  constructor(
    private readonly orm: MikroORM,
    private readonly opts: DelivererOptions,
    private readonly metrics: EventMetrics,
    private readonly logger: Logger,
  ) {
    this.clock = opts.clock ?? (() => new Date());
  }

  async attempt(job: DeliveryJob): Promise<void> {
    const em = this.orm.em.fork();
    const log = new DeliveryLog(sqlOf(em));
    const context = await log.context(job.deliveryId);
    if (!context || context.delivery.status === "SUCCEEDED") return;
    const { endpoint } = context;
    if (endpoint.deletedAt !== null || endpoint.disabledAt !== null) {
      await log.fail(job.deliveryId, this.clock());
      return;
    }
    const stored = await new EventReader(sqlOf(em)).byId(endpoint.organizationId, context.event.id);
    if (!stored) return;
    const body = toJsonString(EventSchema, stored.event);
    const url = new URL(endpoint.url);
    const startedAt = this.clock();
    const destination = await destinationOf(url, this.opts.resolve, this.opts.allowPrivateNetworks);
    const headers = signedHeaders(secretsInUse(endpoint, startedAt), stored.event.id, startedAt, body);
    const result = await sendAttempt(url, destination, headers, body);
    const succeeded = result.outcome === "succeeded";
    const attempt = await log.record(
      job.deliveryId,
      { status: succeeded ? "SUCCEEDED" : "FAILED", responseStatusCode: result.statusCode, latencyMs: result.latencyMs, error: result.error, startedAt },
      this.clock(),
    );
    observeAttempt(this.metrics, result.outcome, result.latencyMs);
    const line = { delivery_id: job.deliveryId, endpoint_id: endpoint.id, event_id: stored.event.id, organization: endpoint.organizationId, attempt, outcome: result.outcome, status_code: result.statusCode, latency_ms: result.latencyMs };
    if (succeeded) {
      this.metrics.deliveryLag.observe(Math.max(0, Date.now() - context.event.createdAt.getTime()) / 1000);
      this.logger.debug(line, "webhook delivered");
      return;
    }
    this.logger.info({ ...line, error: result.error }, "webhook attempt failed");
    throw new AttemptFailed(result.error ?? result.outcome);
  }

  /**
   * A delivery that used up its attempts: FAILED. When it was a dispatched delivery (not a
   * manual retry) and nothing reached the endpoint since the delivery was created — about a day
   * of failures — the endpoint is disabled and a `webhook_endpoint.disabled` event says so, in the
   * same transaction.
   */
  async giveUp(job: DeliveryJob): Promise<void> {
    await this.orm.em.fork().transactional(async (em) => {
      const log = new DeliveryLog(sqlOf(em));
      const now = this.clock();
      const context = await log.context(job.deliveryId);
      if (!context || !(await log.fail(job.deliveryId, now))) return;
      this.metrics.deliveriesFailed.inc();
      if (job.manual) return;
      const disabled = await log.disableIfNoSuccessSince(context.endpoint.id, context.delivery.createdAt, now);
      if (!disabled) return;
      this.metrics.endpointsDisabled.inc();
      this.logger.warn({ endpoint_id: disabled.id, organization: disabled.organizationId, delivery_id: job.deliveryId }, "webhook endpoint disabled after persistent failure");
      await appendEvents(em, [
        {
          organizationId: disabled.organizationId,
          type: "webhook_endpoint.disabled",
          payload: { case: "webhookEndpoint", value: endpointToProto(disabled) },
          createdAt: now,
          dedupeKey: `webhook_endpoint.disabled:${disabled.id}:${now.getTime()}`,
        },
      ]);
    });
  }
}
