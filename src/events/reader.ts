import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { EventSchema, type Event } from "../../gen/promotions/v1/event_pb.js";
import type { Sql } from "./sql.js";

// Reads the outbox in its one order. An event is handed out only once its transaction, and every
// transaction that took an id before it, has finished (txid < the snapshot's xmin); the order is
// (txid, seq). Any event that can still become visible belongs to a transaction at or above the
// xmin, so it sorts after everything handed out so far: a reader that continues "after the last
// event it saw" never skips an event that committed late. (README.md has the full argument.)

/** Where an event sits in the order: its transaction id and its seq. Internal, never shown. */
export interface Position {
  txid: string;
  seq: string;
}

/** Before every event. */
export const START: Position = { txid: "0", seq: "0" };

export interface StoredEvent {
  position: Position;
  event: Event;
}

/** Events whose transaction and every older one have finished: their place in the order is final. */
const SETTLED = `txid < pg_snapshot_xmin(pg_current_snapshot())`;
// Output names differ from the columns they come from: ORDER BY txid would otherwise sort the text.
const COLUMNS = `ev.seq::text as seq_text, ev.id::text as id, ev.txid::text as txid_text, ev.type, ev.created_at, ev.request_id, ev.payload`;

interface EventRow {
  [column: string]: unknown;
  seq_text: string;
  id: string;
  txid_text: string;
  type: string;
  created_at: Date | string;
  request_id: string | null;
  payload: JsonObject;
}

export interface EventFilter {
  /** Only these types; empty = all. */
  types: readonly string[];
  /** Only events created at or after this time. */
  createdFrom: Date | null;
  /** Only events created before this time. */
  createdUntil: Date | null;
}

export const NO_FILTER: EventFilter = { types: [], createdFrom: null, createdUntil: null };

/** Reads one organization's events; every query is scoped to it. */
export class EventReader {
  constructor(private readonly sql: Sql) {}

  /** Up to `limit` settled events after `position`, in order. */
  async after(organizationId: string, position: Position, filter: EventFilter, limit: number): Promise<StoredEvent[]> {
    const where = [`organization_id = $1`, SETTLED, `(txid, seq) > ($2::xid8, $3::bigint)`];
    const params: unknown[] = [organizationId, position.txid, position.seq];
    this.filterInto(filter, where, params);
    params.push(limit);
    const rows = await this.sql.rows<EventRow>(
      `select ${COLUMNS} from events ev where ${where.join(" and ")} order by ev.txid, ev.seq limit $${params.length}`,
      params,
    );
    return rows.map(toStored);
  }

  /**
   * Up to `limit` committed events before `position` (or the newest, when null), newest first.
   * Unlike reading forwards, this needs no settling: an event that commits late with a smaller
   * position than a page already read sorts after it, so a reader paging on towards older events
   * still meets it — and waiting for every older transaction of the whole cluster to finish would
   * hide a change the caller just made behind somebody else's long transaction.
   */
  async newestFirst(organizationId: string, before: Position | null, filter: EventFilter, limit: number): Promise<StoredEvent[]> {
    const where = [`organization_id = $1`];
    const params: unknown[] = [organizationId];
    if (before) {
      params.push(before.txid, before.seq);
      where.push(`(txid, seq) < ($${params.length - 1}::xid8, $${params.length}::bigint)`);
    }
    this.filterInto(filter, where, params);
    params.push(limit);
    const rows = await this.sql.rows<EventRow>(
      `select ${COLUMNS} from events ev where ${where.join(" and ")} order by ev.txid desc, ev.seq desc limit $${params.length}`,
      params,
    );
    return rows.map(toStored);
  }

  /** Event `id` of this organization, settled or not; null when it has none by that id. */
  async byId(organizationId: string, id: string): Promise<StoredEvent | null> {
    const rows = await this.sql.rows<EventRow>(`select ${COLUMNS} from events ev where organization_id = $1 and id = $2`, [organizationId, id]);
    return rows[0] ? toStored(rows[0]) : null;
  }

  /** Where event `id` of this organization sits; null when it has none by that id. */
  async positionOf(organizationId: string, id: string): Promise<Position | null> {
    const rows = await this.sql.rows<{ txid: string; seq: string }>(
      `select txid::text as txid, seq::text as seq from events where organization_id = $1 and id = $2`,
      [organizationId, id],
    );
    const row = rows[0];
    return row ? { txid: row.txid, seq: row.seq } : null;
  }

  /** The position of the newest settled event: everything that can still appear comes after it. */
  async head(organizationId: string): Promise<Position> {
    const rows = await this.sql.rows<{ txid: string; seq: string }>(
      `select ev.txid::text as txid, ev.seq::text as seq from events ev where organization_id = $1 and ${SETTLED} order by ev.txid desc, ev.seq desc limit 1`,
      [organizationId],
    );
    const row = rows[0];
    return row ? { txid: row.txid, seq: row.seq } : START;
  }

  private filterInto(filter: EventFilter, where: string[], params: unknown[]): void {
    if (filter.types.length > 0) {
      params.push(filter.types);
      where.push(`type = any($${params.length}::varchar[])`);
    }
    if (filter.createdFrom) {
      params.push(filter.createdFrom.toISOString());
      where.push(`created_at >= $${params.length}::timestamptz`);
    }
    if (filter.createdUntil) {
      params.push(filter.createdUntil.toISOString());
      where.push(`created_at < $${params.length}::timestamptz`);
    }
  }
}

function toStored(row: EventRow): StoredEvent {
  const createdAt = row.created_at instanceof Date ? row.created_at : new Date(row.created_at);
  const event = fromJson(
    EventSchema,
    { ...row.payload, id: row.id, type: row.type, createdAt: createdAt.toISOString(), requestId: row.request_id ?? "" },
    // A field a later release removed from a payload message must not make old events unreadable.
    { ignoreUnknownFields: true },
  );
  return { position: { txid: row.txid_text, seq: row.seq_text }, event };
}
