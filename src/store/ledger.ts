import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { CompiledQuery } from "kysely";
import { DomainError, notFound } from "../domain/errors.js";
import type { RedemptionKind, RedemptionStatus } from "../domain/redemption.js";
import { appendEvents, rowEventsParam, withRowEvents, type NewEvent, type RowEvent } from "../events/outbox.js";
import { redemptionPayload } from "../events/payloads.js";
import { traced } from "../observability/tracing.js";
import { asDate } from "./row-values.js";
import { APPLIED_APPLICATION, COUNTED_REDEMPTION, MADE_REDEMPTION } from "./ledger-sql.js";

// The durable ledger behind the Redis counters: redemptions and invoice applications. Every write
// that a Redis reservation admitted is fenced by the promotion's counter epoch, and every row id
// is the reservation id, so the sweeper's tombstone and the real write can never both land.
// See src/counters/README.md for the argument.

export interface RedemptionRow {
  id: string;
  organizationId: string;
  promotionId: string;
  status: RedemptionStatus;
  kind: RedemptionKind;
  epoch: bigint;
  promotionVersionId: string;
  version: number;
  codeId: string | null;
  code: string | null;
  customerId: string;
  subscriptionId: string | null;
  idempotencyKey: string | null;
  requestHash: string | null;
  cyclesUsed: number;
  /** Billing periods its pinned terms last; null when a phase is FOREVER. */
  cyclesTotal: number | null;
  metadata: Record<string, string>;
  createdAt: Date;
  releasedAt: Date | null;
  completedAt: Date | null;
  endedAt: Date | null;
  endReason: string | null;
}

/**
 * What a release or reversal gives back to the Redis counters, recorded in the ledger transaction
 * that made it with the counter epoch that transaction saw (table counter_returns); applied to
 * Redis after commit, once (apply_return.lua), by the caller or else by the sweeper.
 */
export interface CounterReturn {
  id: string;
  organizationId: string;
  promotionId: string;
  epoch: bigint;
  /** RELEASE gives a redemption's slot back (n, the customer's, the code's); REVERSAL budget. */
  kind: "RELEASE" | "REVERSAL";
  customerId: string | null;
  codeId: string | null;
  amountMinor: bigint;
}

/** A promotion's counters as counted from the ledger under a new epoch (what Redis is rebuilt to). */
export interface Rebuilt {
  epoch: bigint;
  seq: bigint;
  redemptions: bigint;
  budgetUsed: bigint;
  perCustomer: ReadonlyMap<string, bigint>;
  perCode: ReadonlyMap<string, bigint>;
}

export type RedemptionWrite =
  | { kind: "written" }
  /** The counter epoch moved (Redis was rebuilt): the reservation no longer counts. */
  | { kind: "fenced" }
  /** The sweeper gave this reservation back already. */
  | { kind: "tombstoned" }
  /** Another redemption holds this idempotency key. */
  | { kind: "duplicate_key"; existing: RedemptionRow };

type Row = Record<string, unknown>;

const COLUMNS = `id, organization_id, promotion_id, status, kind, epoch, promotion_version_id, version, code_id, code,
  customer_id, subscription_id, idempotency_key, request_hash, cycles_used, cycles_total, metadata, created_at, released_at,
  completed_at, ended_at, end_reason`;
/** The columns toRedemptionRow reads. */
export const REDEMPTION_COLUMNS = COLUMNS;
const COLUMNS_OF_V = COLUMNS.split(",").map((c) => `v.${c.trim()}`).join(", ");

/** Ledger.insertRedemptions: $1 is a JSON array of rows; each is written only under its promotion's current epoch. */
const INSERT_FENCED = `insert into redemptions (${COLUMNS})
  select ${COLUMNS_OF_V}
  from jsonb_to_recordset($1::jsonb) as v(id uuid, organization_id uuid, promotion_id uuid, status varchar, kind varchar, epoch bigint,
    promotion_version_id uuid, version int, code_id uuid, code varchar, customer_id varchar, subscription_id varchar,
    idempotency_key varchar, request_hash varchar, cycles_used int, cycles_total int, metadata jsonb, created_at timestamptz,
    released_at timestamptz, completed_at timestamptz, ended_at timestamptz, end_reason varchar)
  where exists (
    select 1 from promotions p
    where p.id = v.promotion_id and p.organization_id = v.organization_id and p.counter_epoch = v.epoch and p.deleted_at is null
    for key share)
  on conflict do nothing
  returning id`;

/** INSERT_FENCED that also writes the events of exactly the rows it wrote ($2), in the same statement. */
const INSERT_FENCED_WITH_EVENTS = withRowEvents(INSERT_FENCED, 2);

export class Ledger {
  constructor(private readonly em: EntityManager) {}

  /**
   * Writes a redemption admitted under `row.epoch`, only if that is still the promotion's epoch.
   * The FOR KEY SHARE lock makes a concurrent rebuild (FOR UPDATE) wait for this insert to commit,
   * so the rebuild either counts it or this insert sees the new epoch and writes nothing.
   */
  async writeRedemption(row: RedemptionRow, events: readonly NewEvent[] = []): Promise<RedemptionWrite> {
    const written = await traced("Ledger.writeRedemption", () => this.insertRedemptions([row], events.map((event) => ({ rowId: row.id, event }))));
    return written.has(row.id) ? { kind: "written" } : this.whyNotWritten(row);
  }

  /**
   * Inserts every row whose promotion (and organization) still has the row's counter epoch, each
   * checked under FOR KEY SHARE, in one statement and one commit; a row that collides with an
   * existing id or idempotency key is skipped. The same statement writes the events of the rows it
   * wrote (redemption.created, promotion.exhausted), none of a row it skipped. Returns the ids written.
   */
  async insertRedemptions(rows: readonly RedemptionRow[], events: readonly RowEvent[] = []): Promise<Set<string>> {
    const records = rows.map((r) => ({
      id: r.id,
      organization_id: r.organizationId,
      promotion_id: r.promotionId,
      status: r.status,
      kind: r.kind,
      epoch: r.epoch.toString(),
      promotion_version_id: r.promotionVersionId,
      version: r.version,
      code_id: r.codeId,
      code: r.code,
      customer_id: r.customerId,
      subscription_id: r.subscriptionId,
      idempotency_key: r.idempotencyKey,
      request_hash: r.requestHash,
      cycles_used: r.cyclesUsed,
      cycles_total: r.cyclesTotal,
      metadata: r.metadata,
      created_at: r.createdAt.toISOString(),
      released_at: r.releasedAt?.toISOString() ?? null,
      completed_at: r.completedAt?.toISOString() ?? null,
      ended_at: r.endedAt?.toISOString() ?? null,
      end_reason: r.endReason,
    }));
    // The rows go as one bound parameter, straight to the driver: MikroORM's execute() would
    // escape them into the SQL text, which for a batch costs more than the rest of the write.
    const inserted = await this.em
      .getConnection()
      .getClient<Record<string, never>>()
      .executeQuery(
        events.length === 0
          ? CompiledQuery.raw(INSERT_FENCED, [JSON.stringify(records)])
          : CompiledQuery.raw(INSERT_FENCED_WITH_EVENTS, [JSON.stringify(records), rowEventsParam(events)]),
      );
    return new Set(inserted.rows.map((r) => String((r as Row).id)));
  }

  /**
   * Why insertRedemptions skipped a row: the sweeper's tombstone holds its id, another redemption
   * holds its idempotency key, or else its epoch was no longer the promotion's. (A conflicting
   * write still in flight was waited for by the insert, so what it left is committed.)
   */
  async whyNotWritten(row: RedemptionRow): Promise<RedemptionWrite> {
    const taken = await this.em.getConnection().execute<Row[]>(`select 1 from redemptions where id = ?`, [row.id], "all");
    if (taken.length > 0) return { kind: "tombstoned" };
    const existing = row.idempotencyKey === null ? null : await this.findByIdempotencyKey(row.organizationId, row.idempotencyKey);
    return existing ? { kind: "duplicate_key", existing } : { kind: "fenced" };
  }

  /**
   * The sweeper's side of a reservation that outlived its deadline: writes an ABANDONED tombstone
   * with the reservation's id unless a real row is there. Returns "abandoned" when the reservation
   * never reached the ledger (give it back), "written" when it did (confirm it).
   */
  async settleRedemptionReservation(promotionId: string, id: string): Promise<"abandoned" | "written"> {
    return this.settle("redemptions", promotionId, id);
  }

  async settleBudgetReservation(promotionId: string, id: string): Promise<"abandoned" | "written"> {
    return this.settle("invoice_applications", promotionId, id);
  }

  /** The tombstone takes the organization of the promotion. */
  private async settle(table: "redemptions" | "invoice_applications", promotionId: string, id: string): Promise<"abandoned" | "written"> {
    const conn = this.em.getConnection();
    const tombstone = "ABANDONED";
    const rows = await conn.execute<Row[]>(
      `insert into ${table} (id, organization_id, promotion_id, status, epoch, created_at)
       select ?, p.organization_id, p.id, ?, 0, now() from promotions p where p.id = ?
       on conflict (id) do nothing
       returning id`,
      [id, tombstone, promotionId],
      "all",
    );
    if (rows.length === 1) return "abandoned";
    const existing = await conn.execute<Row[]>(`select status from ${table} where id = ?`, [id], "all");
    return existing[0]?.status === "ABANDONED" ? "abandoned" : "written";
  }

  /** Every promotion that can hold reservations (any but drafts), for the sweeper. */
  async promotionsThatMayHoldReservations(): Promise<string[]> {
    const rows = await this.em.getConnection().execute<Row[]>(`select id from promotions where status <> 'DRAFT'`, [], "all");
    return rows.map((r) => String(r.id));
  }

  async findRedemption(organizationId: string, id: string): Promise<RedemptionRow | null> {
    const rows = await this.em
      .getConnection()
      .execute<Row[]>(`select ${COLUMNS} from redemptions where organization_id = ? and id = ? and ${MADE_REDEMPTION}`, [organizationId, id], "all");
    return rows[0] ? toRow(rows[0]) : null;
  }

  /**
   * What the ledger holds under a reservation's id, in one read: the redemption (null when there is
   * none in this organization, or it is the sweeper's tombstone) and whether the sweeper abandoned
   * the reservation (an ABANDONED tombstone holds its id).
   */
  async findReservation(organizationId: string, id: string): Promise<{ row: RedemptionRow | null; abandoned: boolean }> {
    const rows = await this.em.getConnection().execute<Row[]>(`select ${COLUMNS} from redemptions where id = ?`, [id], "all");
    const found = rows[0];
    if (!found) return { row: null, abandoned: false };
    if (found.status === "ABANDONED") return { row: null, abandoned: true };
    return { row: String(found.organization_id) === organizationId ? toRow(found) : null, abandoned: false };
  }

  async findByIdempotencyKey(organizationId: string, key: string): Promise<RedemptionRow | null> {
    const rows = await this.em
      .getConnection()
      .execute<Row[]>(`select ${COLUMNS} from redemptions where organization_id = ? and idempotency_key = ?`, [organizationId, key], "all");
    return rows[0] ? toRow(rows[0]) : null;
  }

  /** Newest first, keyset paged by (created_at, id). */
  async listRedemptions(q: {
    organizationId: string;
    promotionId: string | null;
    customerId: string | null;
    /** Only these statuses; empty for every status. */
    statuses: readonly RedemptionStatus[];
    after: { createdAt: Date; id: string } | null;
    limit: number;
  }): Promise<RedemptionRow[]> {
    const where = ["organization_id = ?", MADE_REDEMPTION];
    const params: unknown[] = [q.organizationId];
    if (q.statuses.length > 0) {
      where.push(`status in (${q.statuses.map(() => "?").join(", ")})`);
      params.push(...q.statuses);
    }
    if (q.promotionId !== null) {
      where.push("promotion_id = ?");
      params.push(q.promotionId);
    }
    if (q.customerId !== null) {
      where.push("customer_id = ?");
      params.push(q.customerId);
    }
    if (q.after) {
      where.push("(created_at, id) < (?, ?)");
      params.push(q.after.createdAt, q.after.id);
    }
    params.push(q.limit);
    const rows = await this.em
      .getConnection()
      .execute<Row[]>(`select ${COLUMNS} from redemptions where ${where.join(" and ")} order by created_at desc, id desc limit ?`, params, "all");
    return rows.map(toRow);
  }

  /**
   * Marks an ACTIVE redemption RELEASED and records, in the same transaction, the slot to give
   * back under the counter epoch seen under FOR KEY SHARE — the epoch whose counters counted it.
   * Returns the row, whether this call changed it, and that return (null when nothing changed).
   */
  async releaseRedemption(organizationId: string, id: string, now: Date, requestId: string | null = null): Promise<{ row: RedemptionRow; changed: boolean; returned: CounterReturn | null }> {
    return traced("Ledger.releaseRedemption", () => this.em.transactional(async (em) => {
      const conn = em.getConnection();
      const ctx = em.getTransactionContext();
      const found = await conn.execute<Row[]>(
        `select ${COLUMNS} from redemptions where organization_id = ? and id = ? and ${MADE_REDEMPTION} for update`,
        [organizationId, id],
        "all",
        ctx,
      );
      const current = found[0] ? toRow(found[0]) : null;
      if (!current) throw notFound("redemption", id);
      if (current.status === "RELEASED") return { row: current, changed: false, returned: null };
      if (current.status !== "ACTIVE") {
        throw DomainError.of("failed_precondition", "redemption_not_active", `redemption ${id} is ${current.status}: it was used, so its slot stays taken and there is nothing to release`, "id");
      }
      const epochRows = await conn.execute<Row[]>(`select counter_epoch from promotions where id = ? for key share`, [current.promotionId], "all", ctx);
      const updated = await conn.execute<Row[]>(
        `update redemptions set status = 'RELEASED', released_at = ? where id = ? returning ${COLUMNS}`,
        [now, id],
        "all",
        ctx,
      );
      const returned: CounterReturn = {
        id: randomUUID(),
        organizationId,
        promotionId: current.promotionId,
        epoch: BigInt(String(epochRows[0]?.counter_epoch ?? 0)),
        kind: "RELEASE",
        customerId: current.customerId,
        codeId: current.codeId,
        amountMinor: 0n,
      };
      await recordReturns(em, [returned], now);
      const row = updated[0] ? toRow(updated[0]) : current;
      await appendEvents(em, [{ organizationId, type: "redemption.released", payload: redemptionPayload(row), createdAt: now, requestId }]);
      return { row, changed: true, returned };
    }));
  }

  /** Counter returns the caller could not apply (a crash, Redis unreachable) that are older than `before`. */
  async pendingReturns(before: Date, limit = 500): Promise<CounterReturn[]> {
    const rows = await this.em.getConnection().execute<Row[]>(
      `select * from counter_returns where applied_at is null and created_at < ? order by created_at limit ?`,
      [before, limit],
      "all",
    );
    return rows.map((r) => ({
      id: String(r.id),
      organizationId: String(r.organization_id),
      promotionId: String(r.promotion_id),
      epoch: BigInt(String(r.epoch)),
      kind: r.kind === "REVERSAL" ? "REVERSAL" : "RELEASE",
      customerId: r.customer_id == null ? null : String(r.customer_id),
      codeId: r.code_id == null ? null : String(r.code_id),
      amountMinor: BigInt(String(r.amount_minor ?? 0)),
    }));
  }

  /** The promotion's counter epoch now (a fenced write asks which epoch fenced it). */
  async counterEpoch(promotionId: string): Promise<bigint> {
    const [row] = await this.em.getConnection().execute<Row[]>(`select counter_epoch from promotions where id = ?`, [promotionId]);
    return BigInt(String(row?.counter_epoch ?? 0));
  }

  /** The returns are settled in Redis (applied, or left out by a rebuild). */
  async markReturnsApplied(ids: readonly string[], now: Date): Promise<void> {
    if (ids.length === 0) return;
    await this.em.getConnection().execute(`update counter_returns set applied_at = ? where id in (?) and applied_at is null`, [now, ids], "run");
  }

  /**
   * Starts a new counter epoch for a promotion and counts the ledger under it. FOR UPDATE waits for
   * every ledger write that passed the old epoch's check to commit, so they are all counted; every
   * later write of the old epoch fails its check.
   */
  async rebuild(promotionId: string): Promise<Rebuilt> {
    return traced("Ledger.rebuild", () => this.em.transactional(async (em) => {
      const conn = em.getConnection();
      const ctx = em.getTransactionContext();
      // FOR UPDATE (not the FOR NO KEY UPDATE a plain UPDATE takes) is what conflicts with the
      // ledger writes' FOR KEY SHARE: it waits for every write that passed the old epoch's check.
      await conn.execute(`select id from promotions where id = ? for update`, [promotionId], "all", ctx);
      const bumped = await conn.execute<Row[]>(
        `update promotions set counter_epoch = counter_epoch + 1 where id = ? returning counter_epoch, terms_seq`,
        [promotionId],
        "all",
        ctx,
      );
      const head = bumped[0];
      if (!head) throw notFound("promotion", promotionId, "promotion_id");
      const customers = await conn.execute<Row[]>(
        `select customer_id, count(*) as n from redemptions where promotion_id = ? and ${COUNTED_REDEMPTION} group by customer_id`,
        [promotionId],
        "all",
        ctx,
      );
      const codes = await conn.execute<Row[]>(
        `select code_id, count(*) as n from redemptions where promotion_id = ? and ${COUNTED_REDEMPTION} and code_id is not null group by code_id`,
        [promotionId],
        "all",
        ctx,
      );
      const budget = await conn.execute<Row[]>(
        `select coalesce(sum(budget_consumed_minor), 0) as b from invoice_applications where promotion_id = ? and ${APPLIED_APPLICATION}`,
        [promotionId],
        "all",
        ctx,
      );
      const perCustomer = new Map(customers.map((r) => [String(r.customer_id), BigInt(String(r.n))]));
      const perCode = new Map(codes.map((r) => [String(r.code_id), BigInt(String(r.n))]));
      let redemptions = 0n;
      for (const n of perCustomer.values()) redemptions += n;
      return {
        epoch: BigInt(String(head.counter_epoch)),
        seq: BigInt(String(head.terms_seq)),
        redemptions,
        budgetUsed: BigInt(String(budget[0]?.b ?? 0)),
        perCustomer,
        perCode,
      };
    }));
  }
}

/** Records counter returns inside the ledger transaction `em` runs. */
export async function recordReturns(em: EntityManager, returns: readonly CounterReturn[], now: Date): Promise<void> {
  for (const r of returns) {
    await em.getConnection().execute(
      `insert into counter_returns (id, organization_id, promotion_id, epoch, kind, customer_id, code_id, amount_minor, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [r.id, r.organizationId, r.promotionId, r.epoch.toString(), r.kind, r.customerId, r.codeId, r.amountMinor.toString(), now],
      "run",
      em.getTransactionContext(),
    );
  }
}

/** A redemptions row (REDEMPTION_COLUMNS) as the ledger hands it out. */
export function toRedemptionRow(r: Row): RedemptionRow {
  return toRow(r);
}

function toRow(r: Row): RedemptionRow {
  return {
    id: String(r.id),
    organizationId: String(r.organization_id),
    promotionId: String(r.promotion_id),
    status: String(r.status) as RedemptionStatus,
    kind: String(r.kind ?? "CODE") as RedemptionKind,
    epoch: BigInt(String(r.epoch)),
    promotionVersionId: String(r.promotion_version_id ?? ""),
    version: Number(r.version ?? 0),
    codeId: r.code_id == null ? null : String(r.code_id),
    code: r.code == null ? null : String(r.code),
    customerId: String(r.customer_id ?? ""),
    subscriptionId: r.subscription_id == null ? null : String(r.subscription_id),
    idempotencyKey: r.idempotency_key == null ? null : String(r.idempotency_key),
    requestHash: r.request_hash == null ? null : String(r.request_hash),
    cyclesUsed: Number(r.cycles_used ?? 0),
    cyclesTotal: r.cycles_total == null ? null : Number(r.cycles_total),
    metadata: (r.metadata ?? {}) as Record<string, string>,
    createdAt: r.created_at instanceof Date ? r.created_at : new Date(String(r.created_at)),
    releasedAt: asDate(r.released_at),
    completedAt: asDate(r.completed_at),
    endedAt: asDate(r.ended_at),
    endReason: r.end_reason == null ? null : String(r.end_reason),
  };
}
