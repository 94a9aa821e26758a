import { asDate } from "../store/row-values.js";
import type { Row, Sql } from "./sql.js";

// Persistence of webhook endpoints, deliveries and attempts. No rules here: webhooks.ts decides,
// this reads and writes. Every query a caller's request reaches is scoped to its organization.

export type DisabledReason = "MANUAL" | "PERSISTENT_FAILURE";
export type DeliveryStatus = "PENDING" | "SUCCEEDED" | "FAILED";

export interface EndpointRecord {
  id: string;
  organizationId: string;
  url: string;
  description: string;
  eventTypes: string[];
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
  disabledAt: Date | null;
  disabledReason: DisabledReason | null;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

export interface AttemptRecord {
  attempt: number;
  status: "SUCCEEDED" | "FAILED";
  responseStatusCode: number | null;
  latencyMs: number;
  error: string | null;
  startedAt: Date;
}

export interface DeliveryRecord {
  id: string;
  organizationId: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  status: DeliveryStatus;
  attemptCount: number;
  createdAt: Date;
  deliveredAt: Date | null;
  attempts: AttemptRecord[];
}

const ENDPOINT_COLUMNS = `id::text as id, organization_id::text as organization_id, url, description, event_types, secret, previous_secret,
  previous_secret_expires_at, disabled_at, disabled_reason, created_at, updated_at, deleted_at`;
const DELIVERY_COLUMNS = `d.id::text as id, d.organization_id::text as organization_id, d.endpoint_id::text as endpoint_id, d.event_id::text as event_id,
  d.event_type, d.status, d.attempt_count, d.created_at, d.delivered_at`;

function toEndpoint(r: Row): EndpointRecord {
  return {
    id: String(r.id),
    organizationId: String(r.organization_id),
    url: String(r.url),
    description: String(r.description ?? ""),
    eventTypes: Array.isArray(r.event_types) ? r.event_types.map(String) : [],
    secret: String(r.secret),
    previousSecret: r.previous_secret == null ? null : String(r.previous_secret),
    previousSecretExpiresAt: asDate(r.previous_secret_expires_at),
    disabledAt: asDate(r.disabled_at),
    disabledReason: r.disabled_reason === "MANUAL" || r.disabled_reason === "PERSISTENT_FAILURE" ? r.disabled_reason : null,
    createdAt: asDate(r.created_at) ?? new Date(0),
    updatedAt: asDate(r.updated_at) ?? new Date(0),
    deletedAt: asDate(r.deleted_at),
  };
}

function toDelivery(r: Row, attempts: AttemptRecord[]): DeliveryRecord {
  const status = r.status === "SUCCEEDED" || r.status === "FAILED" ? r.status : "PENDING";
  return {
    id: String(r.id),
    organizationId: String(r.organization_id),
    endpointId: String(r.endpoint_id),
    eventId: String(r.event_id),
    eventType: String(r.event_type),
    status,
    attemptCount: Number(r.attempt_count ?? 0),
    createdAt: asDate(r.created_at) ?? new Date(0),
    deliveredAt: asDate(r.delivered_at),
    attempts,
  };
}

export interface EndpointPatch {
  url?: string;
  eventTypes?: string[];
  description?: string;
  disabled?: boolean;
}

export class WebhookStore {
  constructor(private readonly sql: Sql) {}

  async createEndpoint(e: EndpointRecord): Promise<EndpointRecord> {
    const rows = await this.sql.rows(
      `insert into webhook_endpoints (id, organization_id, url, description, event_types, secret, created_at, updated_at)
       values ($1, $2, $3, $4, $5::text[], $6, $7, $7) returning ${ENDPOINT_COLUMNS}`,
      [e.id, e.organizationId, e.url, e.description, e.eventTypes, e.secret, e.createdAt.toISOString()],
    );
    return toEndpoint(rows[0] ?? {});
  }

  async findEndpoint(organizationId: string, id: string): Promise<EndpointRecord | null> {
    const rows = await this.sql.rows(`select ${ENDPOINT_COLUMNS} from webhook_endpoints where organization_id = $1 and id = $2 and deleted_at is null`, [organizationId, id]);
    return rows[0] ? toEndpoint(rows[0]) : null;
  }

  /** Newest first, keyset paged by (created_at, id). */
  async listEndpoints(organizationId: string, after: { createdAt: Date; id: string } | null, limit: number): Promise<EndpointRecord[]> {
    const params: unknown[] = [organizationId, limit];
    let page = "";
    if (after) {
      params.push(after.createdAt.toISOString(), after.id);
      page = `and (created_at, id) < ($3::timestamptz, $4::uuid)`;
    }
    const rows = await this.sql.rows(
      `select ${ENDPOINT_COLUMNS} from webhook_endpoints where organization_id = $1 and deleted_at is null ${page} order by created_at desc, id desc limit $2`,
      params,
    );
    return rows.map(toEndpoint);
  }

  /** Applies the fields that are set; null when the endpoint does not exist for this organization. */
  async updateEndpoint(organizationId: string, id: string, patch: EndpointPatch, now: Date): Promise<EndpointRecord | null> {
    const sets = ["updated_at = $3"];
    const params: unknown[] = [organizationId, id, now.toISOString()];
    if (patch.url !== undefined) {
      params.push(patch.url);
      sets.push(`url = $${params.length}`);
    }
    if (patch.eventTypes !== undefined) {
      params.push(patch.eventTypes);
      sets.push(`event_types = $${params.length}::text[]`);
    }
    if (patch.description !== undefined) {
      params.push(patch.description);
      sets.push(`description = $${params.length}`);
    }
    if (patch.disabled === true) {
      // Disabling an endpoint that already is keeps its first reason and time.
      sets.push(`disabled_at = coalesce(disabled_at, $3::timestamptz)`, `disabled_reason = coalesce(disabled_reason, 'MANUAL')`);
    } else if (patch.disabled === false) {
      sets.push(`disabled_at = null`, `disabled_reason = null`);
    }
    const rows = await this.sql.rows(
      `update webhook_endpoints set ${sets.join(", ")} where organization_id = $1 and id = $2 and deleted_at is null returning ${ENDPOINT_COLUMNS}`,
      params,
    );
    return rows[0] ? toEndpoint(rows[0]) : null;
  }

  async deleteEndpoint(organizationId: string, id: string, now: Date): Promise<EndpointRecord | null> {
    const rows = await this.sql.rows(
      `update webhook_endpoints set deleted_at = $3, updated_at = $3 where organization_id = $1 and id = $2 and deleted_at is null returning ${ENDPOINT_COLUMNS}`,
      [organizationId, id, now.toISOString()],
    );
    return rows[0] ? toEndpoint(rows[0]) : null;
  }

  /** The current secret becomes the previous one (valid until `previousExpiresAt`); `secret` signs from now on. */
  async rotateSecret(organizationId: string, id: string, secret: string, previousExpiresAt: Date, now: Date): Promise<EndpointRecord | null> {
    const rows = await this.sql.rows(
      `update webhook_endpoints set previous_secret = secret, previous_secret_expires_at = $4, secret = $3, updated_at = $5
       where organization_id = $1 and id = $2 and deleted_at is null returning ${ENDPOINT_COLUMNS}`,
      [organizationId, id, secret, previousExpiresAt.toISOString(), now.toISOString()],
    );
    return rows[0] ? toEndpoint(rows[0]) : null;
  }

  /** Newest first, keyset paged by (created_at, id), each with its attempts. */
  async listDeliveries(q: {
    organizationId: string;
    endpointId: string | null;
    eventId: string | null;
    status: DeliveryStatus | null;
    after: { createdAt: Date; id: string } | null;
    limit: number;
  }): Promise<DeliveryRecord[]> {
    const where = ["d.organization_id = $1"];
    const params: unknown[] = [q.organizationId];
    const add = (clause: (n: number) => string, ...values: unknown[]) => {
      params.push(...values);
      where.push(clause(params.length));
    };
    if (q.endpointId !== null) add((n) => `d.endpoint_id = $${n}::uuid`, q.endpointId);
    if (q.eventId !== null) add((n) => `d.event_id = $${n}::uuid`, q.eventId);
    if (q.status !== null) add((n) => `d.status = $${n}`, q.status);
    if (q.after) add((n) => `(d.created_at, d.id) < ($${n - 1}::timestamptz, $${n}::uuid)`, q.after.createdAt.toISOString(), q.after.id);
    params.push(q.limit);
    const rows = await this.sql.rows(
      `select ${DELIVERY_COLUMNS} from webhook_deliveries d where ${where.join(" and ")} order by d.created_at desc, d.id desc limit $${params.length}`,
      params,
    );
    return this.withAttempts(rows);
  }

  async findDelivery(organizationId: string, id: string): Promise<DeliveryRecord | null> {
    const rows = await this.sql.rows(`select ${DELIVERY_COLUMNS} from webhook_deliveries d where d.organization_id = $1 and d.id = $2`, [organizationId, id]);
    return (await this.withAttempts(rows))[0] ?? null;
  }

  /** Makes a delivery that is not pending pending again; null when it is pending already (or missing). */
  async markPendingAgain(organizationId: string, id: string, now: Date): Promise<string | null> {
    const rows = await this.sql.rows<{ id: string }>(
      `update webhook_deliveries set status = 'PENDING', updated_at = $3 where organization_id = $1 and id = $2 and status <> 'PENDING' returning id::text as id`,
      [organizationId, id, now.toISOString()],
    );
    return rows[0]?.id ?? null;
  }

  async eventExists(organizationId: string, eventId: string): Promise<boolean> {
    return (await this.sql.rows(`select 1 from events where organization_id = $1 and id = $2`, [organizationId, eventId])).length > 0;
  }

  private async withAttempts(rows: Row[]): Promise<DeliveryRecord[]> {
    if (rows.length === 0) return [];
    const attempts = await this.sql.rows(
      `select delivery_id::text as delivery_id, attempt, status, response_status_code, latency_ms, error, started_at
       from webhook_attempts where delivery_id = any($1::uuid[]) order by delivery_id, attempt`,
      [rows.map((r) => String(r.id))],
    );
    const byDelivery = new Map<string, AttemptRecord[]>();
    for (const a of attempts) {
      const list = byDelivery.get(String(a.delivery_id)) ?? [];
      list.push({
        attempt: Number(a.attempt),
        status: a.status === "SUCCEEDED" ? "SUCCEEDED" : "FAILED",
        responseStatusCode: a.response_status_code == null ? null : Number(a.response_status_code),
        latencyMs: Number(a.latency_ms),
        error: a.error == null ? null : String(a.error),
        startedAt: asDate(a.started_at) ?? new Date(0),
      });
      byDelivery.set(String(a.delivery_id), list);
    }
    return rows.map((r) => toDelivery(r, byDelivery.get(String(r.id)) ?? []));
  }
}

/** What one attempt needs: the delivery, its endpoint (deleted ones too) and its event. */
export interface AttemptContext {
  delivery: { id: string; status: DeliveryStatus; createdAt: Date };
  endpoint: EndpointRecord;
  event: { id: string; createdAt: Date };
}

/** The delivery worker's side: internal, by delivery id (jobs carry no tenant input). */
export class DeliveryLog {
  constructor(private readonly sql: Sql) {}

  async context(deliveryId: string): Promise<AttemptContext | null> {
    const rows = await this.sql.rows(
      `select d.id::text as delivery_id, d.status as delivery_status, d.created_at as delivery_created_at,
              ev.id::text as event_id, ev.created_at as event_created_at,
              ${ENDPOINT_COLUMNS.split(",").map((c) => `e.${c.trim()}`).join(", ")}
       from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id join events ev on ev.id = d.event_id
       where d.id = $1`,
      [deliveryId],
    );
    const r = rows[0];
    if (!r) return null;
    const status = r.delivery_status === "SUCCEEDED" || r.delivery_status === "FAILED" ? r.delivery_status : "PENDING";
    return {
      delivery: { id: String(r.delivery_id), status, createdAt: asDate(r.delivery_created_at) ?? new Date(0) },
      endpoint: toEndpoint(r),
      event: { id: String(r.event_id), createdAt: asDate(r.event_created_at) ?? new Date(0) },
    };
  }

  /** Records one attempt and moves the delivery (SUCCEEDED on success; it stays PENDING otherwise). Returns the attempt number. */
  async record(deliveryId: string, a: Omit<AttemptRecord, "attempt">, now: Date): Promise<number> {
    const rows = await this.sql.rows<{ attempt: number }>(
      `with d as (
         update webhook_deliveries set attempt_count = attempt_count + 1, updated_at = $2,
           status = case when $3::varchar = 'SUCCEEDED' then 'SUCCEEDED' else status end,
           delivered_at = case when $3::varchar = 'SUCCEEDED' then coalesce(delivered_at, $2::timestamptz) else delivered_at end
         where id = $1 returning id, attempt_count)
       insert into webhook_attempts (delivery_id, attempt, status, response_status_code, latency_ms, error, started_at)
       select d.id, d.attempt_count, $3::varchar, $4::int, $5::int, $6::varchar, $7::timestamptz from d
       returning attempt`,
      [deliveryId, now.toISOString(), a.status, a.responseStatusCode, a.latencyMs, a.error?.slice(0, 300) ?? null, a.startedAt.toISOString()],
    );
    return Number(rows[0]?.attempt ?? 0);
  }

  /** A delivery that will not be tried again; returns whether this call moved it. */
  async fail(deliveryId: string, now: Date): Promise<boolean> {
    const rows = await this.sql.rows(`update webhook_deliveries set status = 'FAILED', updated_at = $2 where id = $1 and status = 'PENDING' returning 1`, [
      deliveryId,
      now.toISOString(),
    ]);
    return rows.length > 0;
  }

  /**
   * Disables the endpoint for persistent failure unless any of its attempts succeeded since
   * `since` (when the failed delivery was created); returns it when this call disabled it.
   */
  async disableIfNoSuccessSince(endpointId: string, since: Date, now: Date): Promise<EndpointRecord | null> {
    const rows = await this.sql.rows(
      `update webhook_endpoints e set disabled_at = $3, disabled_reason = 'PERSISTENT_FAILURE', updated_at = $3
       where e.id = $1 and e.disabled_at is null and e.deleted_at is null
         and not exists (
           select 1 from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id
           where d.endpoint_id = e.id and a.status = 'SUCCEEDED' and a.started_at >= $2)
       returning ${ENDPOINT_COLUMNS.split(",").map((c) => `e.${c.trim()}`).join(", ")}`,
      [endpointId, since.toISOString(), now.toISOString()],
    );
    return rows[0] ? toEndpoint(rows[0]) : null;
  }
}
