import type { EntityManager } from "@mikro-orm/postgresql";
import {
  CODE_LIMITS,
  generateCodes,
  validateCreateCodes,
  type CodeAttributes,
  type CodePatch,
  type CreateCodesInput,
} from "../domain/codes.js";
import { DomainError, type Violation } from "../domain/errors.js";
import { normalizeCode } from "../domain/terms.js";
import { assertValid, checkCode } from "../domain/checks.js";
import { notifyChanged, type ChangeNotification } from "./change-hook.js";
import { findTakenCodes, lockTenantCodes, sql, type TakenCode } from "./code-uniqueness.js";
import { PromotionCode } from "./entities.js";
import type { Actor } from "./promotion-store.js";
import { asBig, asDate } from "./row-values.js";
import { sequentialUuids } from "./sequential-ids.js";
import { violatedUnique } from "./unique-violation.js";

// A promotion's extra codes: bulk creation (explicit lists, or up to 100,000 generated in one
// set-based INSERT), keyset listing, per-code updates, and the redemption hot path's lookup of a
// code typed at checkout. Uniqueness across codes and primary codes: see code-uniqueness.ts.

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

export interface CreatedCodes {
  createdCount: number;
  /** Every created code, in creation order (= list order). */
  codeValues: string[];
  /** The first CODE_LIMITS.fullCodesInResponse created codes in full. */
  codes: PromotionCodeRecord[];
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
}

/** Generated codes that collide with live ones are drawn again; this many rounds is far beyond need. */
const MAX_GENERATION_ROUNDS = 8;

const promotionNotFound = (id: string, param: string): DomainError =>
  DomainError.of("not_found", "promotion_not_found", `promotion ${id} does not exist`, param);
const codeNotFound = (id: string): DomainError => DomainError.of("not_found", "code_not_found", `promotion code ${id} does not exist`, "id");

type Row = Record<string, unknown>;

export interface CodeStoreOptions extends ChangeNotification {
  /** Where generated codes come from; domain/codes.ts generateCodes unless a test needs collisions. */
  generate?: typeof generateCodes;
}

export class CodeStore {
  constructor(
    private readonly em: EntityManager,
    private readonly clock: () => Date = () => new Date(),
    private readonly options: CodeStoreOptions = {},
  ) {}

  /**
   * Adds codes to a DRAFT or ACTIVE promotion. Explicit codes are all-or-nothing: one taken code
   * (ALREADY_EXISTS `code_taken` at `codes[i]`) creates none. Generated codes never fail on a
   * collision; colliding ones are drawn again.
   */
  async create(actor: Actor, promotionId: string, input: CreateCodesInput, inputViolations: readonly Violation[] = []): Promise<CreatedCodes> {
    const { violations, source } = validateCreateCodes(input);
    assertValid([...inputViolations, ...violations]);
    const now = this.clock();
    const attributes: CodeAttributes = {
      maxRedemptions: input.maxRedemptions,
      minAmountMinor: input.minAmountMinor,
      firstTimeCustomersOnly: input.firstTimeCustomersOnly,
      expiresAt: input.expiresAt,
      metadata: { ...input.metadata },
    };
    const nextId = sequentialUuids(now);
    const { created, termsSeq } = await this.transaction(async (em) => {
      await lockLivePromotion(em, actor.organizationId, promotionId, "promotion_id");
      await lockTenantCodes(em, actor.organizationId);
      const insert = (codes: readonly string[]) =>
        insertCodes(em, { organizationId: actor.organizationId, promotionId, now, attributes }, codes.map((code) => ({ id: nextId(), code })));
      let rows: { id: string; code: string }[];
      if (source.kind === "explicit") {
        const taken = await findTakenCodes(em, actor.organizationId, source.codes);
        if (taken.length > 0) throw codesTaken(taken, promotionId);
        rows = await insert(source.codes);
        if (rows.length !== source.codes.length) {
          // Unreachable while every code writer holds the tenant lock; refuse rather than half-create.
          const inserted = new Set(rows.map((r) => r.code));
          const missing = source.codes.flatMap((code, index) => (inserted.has(code) ? [] : [{ index, code, promotionId: "", heldAs: "code" as const }]));
          throw codesTaken(missing, promotionId);
        }
      } else {
        rows = [];
        const tried = new Set<string>();
        for (let round = 0; rows.length < source.count; round++) {
          if (round === MAX_GENERATION_ROUNDS) {
            throw DomainError.of("resource_exhausted", "codes_exhausted", "could not generate enough unique codes with this prefix; use a longer or different prefix", "prefix");
          }
          const batch = (this.options.generate ?? generateCodes)(source.count - rows.length, source.prefix, tried);
          for (const code of batch) tried.add(code);
          rows.push(...(await insert(batch)));
        }
      }
      return { created: rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), termsSeq: await bumpTermsSeq(em, promotionId) };
    });
    await notifyChanged(this.options, actor.organizationId, promotionId, termsSeq);
    return {
      createdCount: created.length,
      codeValues: created.map((r) => r.code),
      codes: created.slice(0, CODE_LIMITS.fullCodesInResponse).map((r) => ({
        id: r.id,
        promotionId,
        code: r.code,
        active: true,
        redemptionCount: 0n,
        createdAt: now,
        ...attributes,
        metadata: { ...attributes.metadata },
      })),
    };
  }

  /** A page of a promotion's codes, oldest first, after `after`. A deleted promotion has none (NOT_FOUND). */
  async list(
    organizationId: string,
    promotionId: string,
    q: { active: boolean | null; after: CodePosition | null; limit: number },
  ): Promise<PromotionCodeRecord[]> {
    const [promotion] = await sql(this.em, `select 1 from promotions where id = ? and organization_id = ? and deleted_at is null`, [promotionId, organizationId]);
    if (!promotion) throw promotionNotFound(promotionId, "promotion_id");
    const where = ["c.organization_id = ?", "c.promotion_id = ?"];
    const params: unknown[] = [organizationId, promotionId];
    if (q.active !== null) {
      where.push("c.active = ?");
      params.push(q.active);
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
            where organization_id = ? and promotion_id = ? and status = 'ACTIVE' and code_id in (select id from page)
            group by code_id
         ) r on r.code_id = page.id
        order by page.created_at, page.id`,
      params,
    );
    return rows.map(toRecord);
  }

  /** One code of the tenant, or NOT_FOUND (also when its promotion is deleted). */
  async get(organizationId: string, id: string): Promise<PromotionCodeRecord> {
    const [row] = await sql(
      this.em,
      `select c.*,
              (select count(*) from redemptions r
                where r.organization_id = c.organization_id and r.promotion_id = c.promotion_id
                  and r.code_id = c.id and r.status = 'ACTIVE') as redemption_count
         from promotion_codes c join promotions p on p.id = c.promotion_id
        where c.id = ? and c.organization_id = ? and p.deleted_at is null`,
      [id, organizationId],
    );
    if (!row) throw codeNotFound(id);
    return toRecord(row);
  }

  /** Changes the fields the patch sets; the code of an archived promotion cannot change (FAILED_PRECONDITION). */
  async update(actor: Actor, id: string, patch: CodePatch): Promise<PromotionCodeRecord> {
    const { promotionId, termsSeq } = await this.transaction(async (em) => {
      const code = await em.findOne(PromotionCode, { id, organizationId: actor.organizationId });
      if (!code) throw codeNotFound(id);
      const promotionId = code.promotionId;
      const status = await lockPromotion(em, actor.organizationId, promotionId);
      if (status === null) throw codeNotFound(id);
      if (status === "ARCHIVED") {
        throw DomainError.of("failed_precondition", "invalid_status", "the codes of an ARCHIVED promotion cannot change", "id");
      }
      await lockTenantCodes(em, actor.organizationId);
      if (patch.active !== undefined) code.active = patch.active;
      if (patch.maxRedemptions !== undefined) code.maxRedemptions = patch.maxRedemptions;
      if (patch.minAmountMinor !== undefined) code.minAmountMinor = patch.minAmountMinor;
      if (patch.firstTimeCustomersOnly !== undefined) code.firstTimeCustomersOnly = patch.firstTimeCustomersOnly;
      if (patch.expiresAt !== undefined) code.expiresAt = patch.expiresAt;
      if (patch.metadata !== undefined) code.metadata = { ...patch.metadata };
      code.updatedAt = this.clock();
      await em.flush();
      return { promotionId, termsSeq: await bumpTermsSeq(em, promotionId) };
    });
    await notifyChanged(this.options, actor.organizationId, promotionId, termsSeq);
    return this.get(actor.organizationId, id);
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
                c.first_time_customers_only, c.expires_at, 0 as preference
           from promotion_codes c join promotions p on p.id = c.promotion_id
          where c.organization_id = ? and c.code = ? and c.retired_at is null and p.deleted_at is null
         union all
         select p.id, null::uuid, p.code, true, null::bigint, null::bigint, false, null::timestamptz, 1
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
    };
  }

  /** One transaction; a unique-index violation that slipped past the checks still reads as code_taken. */
  private async transaction<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    try {
      return await this.em.transactional(work);
    } catch (error) {
      if (violatedUnique(error) === "promotion_codes_org_code_unique") {
        throw new DomainError("already_exists", [{ param: "codes", code: "code_taken", message: "a code is already used by another live promotion of this organization" }], { cause: error });
      }
      throw error;
    }
  }
}

/** Locks the promotion row (org-scoped); returns its status, or null when it does not exist or is deleted. */
async function lockPromotion(em: EntityManager, organizationId: string, promotionId: string): Promise<string | null> {
  const [row] = await sql(em, `select status from promotions where id = ? and organization_id = ? and deleted_at is null for update`, [promotionId, organizationId]);
  return row ? String(row.status) : null;
}

/** Locks a promotion that may receive codes: it exists (NOT_FOUND) and is not archived (FAILED_PRECONDITION). */
async function lockLivePromotion(em: EntityManager, organizationId: string, promotionId: string, param: string): Promise<void> {
  const status = await lockPromotion(em, organizationId, promotionId);
  if (status === null) throw promotionNotFound(promotionId, param);
  if (status === "ARCHIVED") {
    throw DomainError.of("failed_precondition", "invalid_status", "codes can be added only to a DRAFT or ACTIVE promotion; this one is ARCHIVED", param);
  }
}

/** Moves the promotion's terms_seq (caches compare it) and returns the new value. */
export async function bumpTermsSeq(em: EntityManager, promotionId: string): Promise<bigint> {
  const [row] = await sql(em, `update promotions set terms_seq = terms_seq + 1 where id = ? returning terms_seq`, [promotionId]);
  if (!row) throw new Error(`promotion ${promotionId} vanished inside its own transaction`);
  return BigInt(String(row.terms_seq));
}

/**
 * One set-based INSERT of many codes; codes held elsewhere (a live code row, via the partial
 * unique index, or a live primary code) are skipped. Returns the rows written.
 */
async function insertCodes(
  em: EntityManager,
  base: { organizationId: string; promotionId: string; now: Date; attributes: CodeAttributes },
  rows: readonly { id: string; code: string }[],
): Promise<{ id: string; code: string }[]> {
  if (rows.length === 0) return [];
  const a = base.attributes;
  const written = await sql(
    em,
    `insert into promotion_codes (id, organization_id, promotion_id, code, active, max_redemptions, min_amount_minor,
                                  first_time_customers_only, expires_at, metadata, created_at, updated_at, retired_at)
     select x.id, ?, ?, x.code, true, ?::bigint, ?::bigint, ?, ?::timestamptz, ?::jsonb, ?, ?, null
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
      rows.map((r) => r.id),
      rows.map((r) => r.code),
      base.organizationId,
    ],
  );
  return written.map((r) => ({ id: String(r.id), code: String(r.code) }));
}

function codesTaken(taken: readonly TakenCode[], promotionId: string): DomainError {
  return new DomainError(
    "already_exists",
    taken.map((t) => ({
      param: `codes[${t.index}]`,
      code: "code_taken",
      message:
        t.promotionId === promotionId
          ? `${t.code} is already ${t.heldAs === "primary" ? "the primary code" : "a code"} of this promotion`
          : `${t.code} is already used by another live promotion of this organization`,
    })),
  );
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
