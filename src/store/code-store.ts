import { appendEvents, type NewEvent } from "../events/outbox.js";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { CodeAttributes } from "../domain/codes.js";
import { DomainError, type Violation } from "../domain/errors.js";
import { normalizeCode, type PromotionStatus } from "../domain/terms.js";
import { checkCode } from "../domain/checks.js";
import { findTakenCodes, lockTenantCodes, sql, type TakenCode } from "./code-uniqueness.js";
import { PromotionCode } from "./entities.js";
import { asBig, asDate } from "./row-values.js";
import { violatedUnique } from "./unique-violation.js";
import { COUNTED_REDEMPTION, on } from "./ledger-sql.js";

// Persistence of a promotion's extra codes: set-based inserts (up to 100,000 in one statement),
// keyset pages, single reads, and the redemption hot path's lookup of a code typed at checkout.
// The rules of creating and changing codes live in src/promotions/codes.ts; uniqueness across
// codes and primary codes (the tenant's code lock) in code-uniqueness.ts.

/** A code as clients see it. */
export interface PromotionCodeRecord extends CodeAttributes {
  id: string;
  promotionId: string;
  code: string;
  active: boolean;
  /** ACTIVE redemptions made through this code. */
  redemptionCount: bigint;
  createdAt: Date;
}

/** Keyset position for oldest-first paging. */
export interface CodePosition {
  createdAt: Date;
  id: string;
}

/** What redemption needs to know about a code typed at checkout. */
export interface ResolvedCode {
  promotionId: string;
  /** null when the code is the promotion's primary code. */
  codeId: string | null;
  code: string;
  active: boolean;
  maxRedemptions: bigint | null;
  minAmountMinor: bigint | null;
  firstTimeCustomersOnly: boolean;
  expiresAt: Date | null;
  /** The promotion's terms_seq, read in the same statement as the code (caches compare it). */
  termsSeq: bigint;
}

type Row = Record<string, unknown>;

/** What every code of one insert shares. */
export interface CodeInsert {
  organizationId: string;
  promotionId: string;
  /** The CreatePromotionCodes call the codes belong to. */
  batchId: string;
  now: Date;
  attributes: CodeAttributes;
}

/** The batch an idempotency key made, and the digest of the request that made it. */
export interface KeyedBatch {
  batchId: string;
  requestHash: string;
}

export class CodeStore {
  constructor(private readonly em: EntityManager) {}

  /** One transaction; a unique-index violation that slipped past the checks still reads as code_taken. */
  async transaction<T>(work: (tx: CodeWrites) => Promise<T>): Promise<T> {
    try {
      return await this.em.transactional((em) => work(new CodeWrites(em)));
    } catch (error) {
      if (violatedUnique(error) === "promotion_codes_org_code_unique") {
        throw new DomainError("already_exists", [{ param: "codes", code: "code_taken", message: "a code is already used by another live promotion of this organization" }], { cause: error });
      }
      throw error;
    }
  }

  /** Whether the tenant has this promotion (not deleted). */
  async promotionExists(organizationId: string, promotionId: string): Promise<boolean> {
    const [row] = await sql(this.em, `select 1 from promotions where id = ? and organization_id = ? and deleted_at is null`, [promotionId, organizationId]);
    return row !== undefined;
  }

  /** A page of a promotion's codes (of one batch, when given), oldest first, after `after`, each with its ACTIVE redemptions. */
  async list(
    organizationId: string,
    promotionId: string,
    q: { active: boolean | null; after: CodePosition | null; limit: number; batchId?: string | null },
  ): Promise<PromotionCodeRecord[]> {
    const where = ["c.organization_id = ?", "c.promotion_id = ?"];
    const params: unknown[] = [organizationId, promotionId];
    if (q.active !== null) {
      where.push("c.active = ?");
      params.push(q.active);
    }
    if (q.batchId !== undefined && q.batchId !== null) {
      where.push("c.batch_id = ?");
      params.push(q.batchId);
    }
    if (q.after) {
      where.push("(c.created_at, c.id) > (?, ?)");
      params.push(q.after.createdAt, q.after.id);
    }
    params.push(q.limit, organizationId, promotionId);
    // Count redemptions for the page only, through the ledger's (organization, promotion) index.
    const rows = await sql(
      this.em,
      `with page as (
         select c.* from promotion_codes c where ${where.join(" and ")} order by c.created_at, c.id limit ?
       )
       select page.*, coalesce(r.n, 0) as redemption_count
         from page
         left join (
           select code_id, count(*) as n from redemptions
            where organization_id = ? and promotion_id = ? and ${COUNTED_REDEMPTION} and code_id in (select id from page)
            group by code_id
         ) r on r.code_id = page.id
        order by page.created_at, page.id`,
      params,
    );
    return rows.map(toRecord);
  }

  /** Every code of a batch, in creation order: id, text and when it was made. */
  async batchCodes(organizationId: string, batchId: string): Promise<{ id: string; code: string; createdAt: Date }[]> {
    const rows = await sql(this.em, `select id, code, created_at from promotion_codes where organization_id = ? and batch_id = ? order by created_at, id`, [organizationId, batchId]);
    return rows.map((r) => ({ id: String(r.id), code: String(r.code), createdAt: asDate(r.created_at) ?? new Date(0) }));
  }

  /** One code of the tenant, or null (also when its promotion is deleted). */
  async find(organizationId: string, id: string): Promise<PromotionCodeRecord | null> {
    const [row] = await sql(
      this.em,
      `select c.*,
              (select count(*) from redemptions r
                where r.organization_id = c.organization_id and r.promotion_id = c.promotion_id
                  and r.code_id = c.id and ${on("r", COUNTED_REDEMPTION)}) as redemption_count
         from promotion_codes c join promotions p on p.id = c.promotion_id
        where c.id = ? and c.organization_id = ? and p.deleted_at is null`,
      [id, organizationId],
    );
    return row ? toRecord(row) : null;
  }

  /**
   * The promotion a code typed at checkout redeems, or null. A promotion_codes row wins; else the
   * primary code of a draft or active promotion (which has no per-code limits). Case-insensitive.
   */
  async resolve(organizationId: string, code: string): Promise<ResolvedCode | null> {
    const normalized = normalizeCode(code);
    const shape: Violation[] = [];
    checkCode(shape, normalized);
    if (normalized === "" || shape.length > 0) return null;
    const [row] = await sql(
      this.em,
      `select * from (
         select c.promotion_id, c.id as code_id, c.code, c.active, c.max_redemptions, c.min_amount_minor,
                c.first_time_customers_only, c.expires_at, p.terms_seq, 0 as preference
           from promotion_codes c join promotions p on p.id = c.promotion_id
          where c.organization_id = ? and c.code = ? and c.retired_at is null and p.deleted_at is null
         union all
         select p.id, null::uuid, p.code, true, null::bigint, null::bigint, false, null::timestamptz, p.terms_seq, 1
           from promotions p
          where p.organization_id = ? and p.code = ? and p.code is not null and p.deleted_at is null and p.status <> 'ARCHIVED'
       ) found order by preference limit 1`,
      [organizationId, normalized, organizationId, normalized],
    );
    if (!row) return null;
    return {
      promotionId: String(row.promotion_id),
      codeId: row.code_id == null ? null : String(row.code_id),
      code: String(row.code),
      active: Boolean(row.active),
      maxRedemptions: asBig(row.max_redemptions),
      minAmountMinor: asBig(row.min_amount_minor),
      firstTimeCustomersOnly: Boolean(row.first_time_customers_only),
      expiresAt: asDate(row.expires_at),
      termsSeq: BigInt(String(row.terms_seq)),
    };
  }
}

/** The writes of one code transaction (CodeStore.transaction). */
export class CodeWrites {
  constructor(readonly em: EntityManager) {}

  /** Locks the promotion row (org-scoped); its status, or null when it does not exist or is deleted. */
  async lockPromotion(organizationId: string, promotionId: string): Promise<PromotionStatus | null> {
    const [row] = await sql(this.em, `select status from promotions where id = ? and organization_id = ? and deleted_at is null for update`, [promotionId, organizationId]);
    return row ? (String(row.status) as PromotionStatus) : null;
  }

  /** Serialises code writes of the tenant until the transaction ends (code-uniqueness.ts). */
  lockTenantCodes(organizationId: string): Promise<void> {
    return lockTenantCodes(this.em, organizationId);
  }

  /** Which of `codes` a live promotion of the tenant holds already. */
  findTaken(organizationId: string, codes: readonly string[]): Promise<TakenCode[]> {
    return findTakenCodes(this.em, organizationId, codes);
  }

  /** Inserts codes, skipping any a live promotion holds; returns the rows written. */
  insert(base: CodeInsert, rows: readonly { id: string; code: string }[]): Promise<{ id: string; code: string }[]> {
    return insertCodes(this.em, base, rows);
  }

  /** The batch the tenant made with this idempotency key, or null. */
  async findKeyedBatch(organizationId: string, idempotencyKey: string): Promise<KeyedBatch | null> {
    const [row] = await sql(this.em, `select batch_id, request_hash from promotion_codes where organization_id = ? and idempotency_key = ?`, [organizationId, idempotencyKey]);
    return row ? { batchId: String(row.batch_id), requestHash: String(row.request_hash) } : null;
  }

  /** Records the key and request digest on the batch's first code (the unique index keeps one batch per key). */
  async markKeyedBatch(batchId: string, idempotencyKey: string, requestHash: string): Promise<void> {
    await sql(
      this.em,
      `update promotion_codes set idempotency_key = ?, request_hash = ?
        where id = (select id from promotion_codes where batch_id = ? order by created_at, id limit 1)`,
      [idempotencyKey, requestHash, batchId],
    );
  }


  /** The code row of the tenant, for an update. */
  findCode(organizationId: string, id: string): Promise<PromotionCode | null> {
    return this.em.findOne(PromotionCode, { id, organizationId });
  }

  async flush(): Promise<void> {
    await this.em.flush();
  }

  /** The code as clients see it, read inside this transaction (what its event carries). */
  async record(organizationId: string, id: string): Promise<PromotionCodeRecord | null> {
    await this.em.flush();
    return new CodeStore(this.em).find(organizationId, id);
  }

  /** Writes events in this transaction: they commit with the change or not at all. */
  async append(events: readonly NewEvent[]): Promise<void> {
    await appendEvents(this.em, events);
  }

  /** Moves the promotion's terms_seq (caches compare it) and returns the new value. */
  async bumpTermsSeq(promotionId: string): Promise<bigint> {
    const [row] = await sql(this.em, `update promotions set terms_seq = terms_seq + 1 where id = ? returning terms_seq`, [promotionId]);
    if (!row) throw new Error(`promotion ${promotionId} vanished inside its own transaction`);
    return BigInt(String(row.terms_seq));
  }
}

/**
 * One set-based INSERT of many codes; codes held elsewhere (a live code row, via the partial
 * unique index, or a live primary code) are skipped. Returns the rows written.
 */
async function insertCodes(
  em: EntityManager,
  base: CodeInsert,
  rows: readonly { id: string; code: string }[],
): Promise<{ id: string; code: string }[]> {
  if (rows.length === 0) return [];
  const a = base.attributes;
  const written = await sql(
    em,
    `insert into promotion_codes (id, organization_id, promotion_id, code, active, max_redemptions, min_amount_minor,
                                  first_time_customers_only, expires_at, metadata, created_at, updated_at, retired_at, batch_id)
     select x.id, ?, ?, x.code, true, ?::bigint, ?::bigint, ?, ?::timestamptz, ?::jsonb, ?, ?, null, ?::uuid
       from unnest(array[?]::uuid[], array[?]::text[]) as x(id, code)
      where not exists (
        select 1 from promotions p
         where p.organization_id = ? and p.code = x.code and p.deleted_at is null and p.status <> 'ARCHIVED')
     on conflict (organization_id, code) where retired_at is null do nothing
     returning id, code`,
    [
      base.organizationId,
      base.promotionId,
      a.maxRedemptions,
      a.minAmountMinor,
      a.firstTimeCustomersOnly,
      a.expiresAt,
      a.metadata,
      base.now,
      base.now,
      base.batchId,
      rows.map((r) => r.id),
      rows.map((r) => r.code),
      base.organizationId,
    ],
  );
  return written.map((r) => ({ id: String(r.id), code: String(r.code) }));
}

function toRecord(row: Row): PromotionCodeRecord {
  return {
    id: String(row.id),
    promotionId: String(row.promotion_id),
    code: String(row.code),
    active: Boolean(row.active),
    maxRedemptions: asBig(row.max_redemptions),
    minAmountMinor: asBig(row.min_amount_minor),
    firstTimeCustomersOnly: Boolean(row.first_time_customers_only),
    expiresAt: asDate(row.expires_at),
    metadata: (row.metadata ?? {}) as Record<string, string>,
    redemptionCount: asBig(row.redemption_count) ?? 0n,
    createdAt: asDate(row.created_at) ?? new Date(0),
  };
}
