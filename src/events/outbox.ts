import { create, toJson, type JsonObject } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/postgresql";
import { EventSchema } from "../../gen/promotions/v1/event_pb.js";
import { EVENT_TYPES, resourceIdOf, type EventPayload, type EventType, type PayloadOf } from "./event-types.js";
import { sqlOf } from "./sql.js";

// The transactional outbox: an event is a row written in the same transaction as the change it is
// about, so it commits with the change or not at all. Readers (reader.ts) and the webhook
// dispatcher take events only once the writing transaction, and every older one, has finished;
// see README.md for why that makes "after the last event I saw" safe.
//
// Two ways in:
// - appendEvents(em, events) inside a store's `em.transactional(...)`;
// - withRowEvents(insertSql, n) around a single `insert … returning id` statement (the
//   group-commit ledger INSERT): the events of exactly the rows that statement wrote are inserted
//   by the same statement.

interface EventFields<T extends EventType> {
  organizationId: string;
  type: T;
  /** The resource after the change, as the API shows it. */
  payload: PayloadOf<T>;
  /** The change's time (the use case's clock). */
  createdAt: Date;
  /** The x-request-id of the call that made the change; null for changes no call made. */
  requestId?: string | null;
  /**
   * Set for events that must exist at most once (per organization), e.g.
   * `promotion.exhausted:<promotion id>:<id of the redemption that took the last slot>` or
   * `promotion.budget_threshold:<promotion id>:<max_budget>:80`: a second event with the same key
   * is dropped, in the same statement or any later one.
   */
  dedupeKey?: string | null;
}

/** An event to append; `payload` must be the case its `type` carries (checked at compile time). */
export type NewEvent = { [T in EventType]: EventFields<T> }[EventType];

/** An event as a row of jsonb_to_recordset (what both SQL entry points bind, with `n`: its place, so seq follows the caller's order). */
interface EventRecord {
  organization_id: string;
  type: EventType;
  created_at: string;
  request_id: string | null;
  resource_id: string;
  payload: JsonObject;
  dedupe_key: string | null;
}

const RECORD_COLUMNS = `organization_id uuid, type varchar, created_at timestamptz, request_id varchar, resource_id varchar, payload jsonb, dedupe_key varchar`;
const INSERT_COLUMNS = `organization_id, type, created_at, request_id, resource_id, payload, dedupe_key`;
const SELECT_COLUMNS = INSERT_COLUMNS.split(", ").map((c) => `e.${c}`).join(", ");
const ON_DUPLICATE = `on conflict (organization_id, dedupe_key) where dedupe_key is not null do nothing`;

const MAX_REQUEST_ID = 128;
const MAX_DEDUPE_KEY = 300;

/** The payload oneof's fields by case, for payloadJson. */
const PAYLOAD_FIELDS = new Map(EventSchema.oneofs.find((o) => o.localName === "payload")?.fields.map((f) => [f.localName, f]) ?? []);

/**
 * The payload oneof as proto JSON, e.g. {"promotion": {...}}: what the payload column holds, and
 * exactly what toJson(EventSchema, create(EventSchema, { payload })) gives (test/unit/outbox-payload.test.ts),
 * at a third of its cost: the hot path encodes one per redemption.
 */
export function payloadJson(payload: EventPayload): JsonObject {
  const field = payload.case === undefined ? undefined : PAYLOAD_FIELDS.get(payload.case);
  if (field?.fieldKind !== "message" || payload.value === undefined) return toJson(EventSchema, create(EventSchema, { payload })) as JsonObject;
  return { [field.jsonName]: toJson(field.message, payload.value) };
}

function record(event: NewEvent): EventRecord {
  if (EVENT_TYPES[event.type] !== event.payload.case) {
    // Unreachable from typed code; a cast somewhere upstream would otherwise store a lie.
    throw new Error(`event ${event.type} must carry a ${EVENT_TYPES[event.type]} payload, not ${String(event.payload.case)}`);
  }
  return {
    organization_id: event.organizationId,
    type: event.type,
    created_at: event.createdAt.toISOString(),
    request_id: event.requestId ? event.requestId.slice(0, MAX_REQUEST_ID) : null,
    resource_id: resourceIdOf(event.payload),
    payload: payloadJson(event.payload),
    dedupe_key: event.dedupeKey ? event.dedupeKey.slice(0, MAX_DEDUPE_KEY) : null,
  };
}

const INSERT_EVENTS = `insert into events (${INSERT_COLUMNS})
  select ${SELECT_COLUMNS}
  from jsonb_to_recordset($1::jsonb) as e(${RECORD_COLUMNS}, n int)
  order by e.n
  ${ON_DUPLICATE}
  returning id`;

/**
 * Appends events inside the caller's transaction (`em` is the one `em.transactional` hands its
 * callback): they commit or roll back with the change. Returns the ids of the events written; an
 * event whose dedupe key is already taken is not written and has no id here. Throws when `em` has
 * no transaction, because an event written on its own could outlive a rolled-back change.
 */
export async function appendEvents(em: EntityManager, events: readonly NewEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const sql = sqlOf(em);
  if (!sql.inTransaction) throw new Error("appendEvents must run inside the transaction of the change (em.transactional)");
  const rows = await sql.rows<{ id: string }>(INSERT_EVENTS, [JSON.stringify(events.map((e, n) => ({ ...record(e), n })))]);
  return rows.map((r) => String(r.id));
}

/** An event of one row of a multi-row INSERT, keyed by that row's id. */
export interface RowEvent {
  rowId: string;
  event: NewEvent;
}

/**
 * Wraps one `insert … returning id` statement (the ledger's group-commit INSERT, say) so that the
 * same statement also writes the events of the rows it actually inserted: a row skipped by its
 * WHERE (fenced) or ON CONFLICT (duplicate) writes no event, a row written writes all of its own.
 * `eventsParam` is the number of the extra parameter to bind rowEventsParam(...) to. The combined
 * statement still returns the ids of the rows written, as the original did.
 */
export function withRowEvents(insertReturningId: string, eventsParam: number): string {
  return `with written as (${insertReturningId}),
  written_events as (
    insert into events (${INSERT_COLUMNS})
    select ${SELECT_COLUMNS}
    from jsonb_to_recordset($${eventsParam}::jsonb) as e(row_id uuid, ${RECORD_COLUMNS}, n int)
    join written w on w.id = e.row_id
    order by e.n
    ${ON_DUPLICATE}
    returning 1)
  select w.id from written w`;
}

/** The value of withRowEvents' extra parameter. */
export function rowEventsParam(events: readonly RowEvent[]): string {
  return JSON.stringify(events.map((e, n) => ({ row_id: e.rowId, ...record(e.event), n })));
}
