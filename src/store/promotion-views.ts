import type { EntityManager } from "@mikro-orm/postgresql";
import { derivedStatus } from "../domain/lifecycle.js";
import type { FilterClause } from "../domain/filter.js";
import type { DerivedStatus, PromotionStatus, PromotionTerms } from "../domain/terms.js";
import { termsFromRow, termSqlColumns } from "./terms-codec.js";
import { filterToSql } from "./promotion-filter-sql.js";
import { asBig, asDate } from "./row-values.js";
import { APPLIED_APPLICATION, COUNTED_REDEMPTION, on } from "./ledger-sql.js";

// Reading promotions as clients see them: the promotion row joined with the version in force at
// `now`. The join is computed per query, so a scheduled version is live the moment its time
// comes without any job rewriting rows. current_redemptions and current_budget_used are counted
// from the ledger (the truth Redis is rebuilt from), so they are exact once a call has returned.

/** A promotion with the terms of the version in force. */
export interface PromotionView extends TermsInForce {
  derivedStatus: DerivedStatus;
  currentRedemptions: bigint;
  currentBudgetUsed: bigint;
}

/** A promotion and the terms of its version in force, without the ledger counts (checkout reads these). */
export interface TermsInForce {
  id: string;
  organizationId: string;
  status: PromotionStatus;
  version: number;
  headVersionId: string;
  liveVersion: number;
  /** UUID of the version in force (redemptions pin it). */
  liveVersionId: string;
  publishedAt: Date | null;
  publishedBy: string | null;
  createdAt: Date;
  updatedAt: Date;
  archivedAt: Date | null;
  deletedAt: Date | null;
  terms: PromotionTerms;
  /** A STRICT budget refused a grant at the max_budget in force (and no edit raised it since): EXHAUSTED. */
  budgetExhausted: boolean;
}

/** Keyset position for newest-first paging. */
export interface PromotionPosition {
  createdAt: Date;
  id: string;
}

export interface ViewQuery {
  organizationId: string;
  now: Date;
  id?: string;
  includeDeleted?: boolean;
  filters?: readonly FilterClause[];
  after?: PromotionPosition;
  limit?: number;
}

// The version in force: a draft promotion's draft; otherwise the newest published version that
// has started and was not cancelled before it took effect. Mirrors domain/lifecycle.ts
// versionInForce (test/integration/version-in-force.test.ts holds the two to each other).
const TERMS_COLUMNS = `p.id, p.organization_id, p.status, p.version, p.head_version_id,
         p.created_at, p.updated_at, p.archived_at, p.deleted_at, p.budget_exhausted_max,
         v.version as live_version, v.id as live_version_id, v.published_at, v.published_by, ${termSqlColumns("v")}`;
const IN_FORCE = `
  from promotions p
  join lateral (
    select * from promotion_versions v
    where v.promotion_id = p.id
      and ((p.status = 'DRAFT' and v.state = 'draft')
        or (p.status <> 'DRAFT' and v.state = 'published' and (v.archived_reason is null or v.effective_from <= v.archived_at) and v.effective_from <= ?))
    order by v.version desc
    limit 1
  ) v on true`;
const SELECT_TERMS_WITH_SEQ = `select ${TERMS_COLUMNS}, p.terms_seq,
    (select min(n.effective_from) from promotion_versions n
      where n.promotion_id = p.id and n.state = 'published' and n.archived_reason is null and n.effective_from > ?) as next_version_at
  ${IN_FORCE}`;
const SELECT = `
  select ${TERMS_COLUMNS}, rc.n as current_redemptions, bc.b as current_budget_used ${IN_FORCE}
  cross join lateral (
    select count(*) as n from redemptions r where r.promotion_id = p.id and ${on("r", COUNTED_REDEMPTION)}
  ) rc
  cross join lateral (
    select coalesce(sum(a.budget_consumed_minor), 0) as b from invoice_applications a
    where a.promotion_id = p.id and ${on("a", APPLIED_APPLICATION)}
  ) bc`;

type Row = Record<string, unknown>;

/** Promotions matching the query, newest first, with their terms in force at `q.now`. */
export async function queryPromotionViews(em: EntityManager, q: ViewQuery): Promise<PromotionView[]> {
  const where: string[] = ["p.organization_id = ?"];
  const params: unknown[] = [q.now, q.organizationId];
  if (!q.includeDeleted) where.push("p.deleted_at is null");
  if (q.id !== undefined) {
    where.push("p.id = ?");
    params.push(q.id);
  }
  for (const clause of q.filters ?? []) {
    const sql = filterToSql(clause);
    where.push(sql.sql);
    params.push(...sql.params);
  }
  if (q.after) {
    where.push("(p.created_at, p.id) < (?, ?)");
    params.push(q.after.createdAt, q.after.id);
  }
  let sql = `${SELECT} where ${where.join(" and ")} order by p.created_at desc, p.id desc`;
  if (q.limit !== undefined) {
    sql += " limit ?";
    params.push(q.limit);
  }
  const rows = await em.getConnection().execute<Row[]>(sql, params, "all", em.getTransactionContext());
  return rows.map((row) => toView(row, q.now));
}

/** One promotion of the tenant, or undefined when it does not exist there (or is deleted). */
export async function findPromotionView(
  em: EntityManager,
  organizationId: string,
  id: string,
  now: Date,
  includeDeleted = false,
): Promise<PromotionView | undefined> {
  const [view] = await queryPromotionViews(em, { organizationId, id, now, includeDeleted });
  return view;
}

/** What checkout caches about a promotion: its terms in force, its terms seq, and when they next change. */
export interface CheckoutTerms {
  view: TermsInForce;
  /** The promotion's terms_seq, read in the same snapshot as the terms. */
  seq: bigint;
  /** When a version scheduled for later takes effect; null when none is. */
  nextVersionAt: Date | null;
}

/**
 * The terms in force of one promotion of the tenant (not deleted), with its terms seq and the next
 * scheduled version, in one statement (one snapshot), without counting its ledger: the hot path's
 * cache loads this after every terms change, on a promotion that may have millions of redemptions.
 */
export async function findCheckoutTerms(em: EntityManager, organizationId: string, id: string, now: Date): Promise<CheckoutTerms | undefined> {
  const rows = await em.getConnection().execute<Row[]>(
    `${SELECT_TERMS_WITH_SEQ} where p.organization_id = ? and p.deleted_at is null and p.id = ?`,
    [now, now, organizationId, id],
    "all",
    em.getTransactionContext(),
  );
  const row = rows[0];
  if (!row) return undefined;
  return { view: toTermsInForce(row), seq: BigInt(String(row.terms_seq)), nextVersionAt: asDate(row.next_version_at) };
}

function toView(row: Row, now: Date): PromotionView {
  return withCounts(toTermsInForce(row), asBig(row.current_redemptions) ?? 0n, asBig(row.current_budget_used) ?? 0n, now);
}

/** A promotion as clients see it from its terms in force and counts taken elsewhere (the counters that just admitted a redemption). */
export function withCounts(base: TermsInForce, currentRedemptions: bigint, currentBudgetUsed: bigint, now: Date): PromotionView {
  return {
    ...base,
    derivedStatus: derivedStatus({ status: base.status, ...base.terms, currentRedemptions, currentBudgetUsed, budgetExhausted: base.budgetExhausted }, now),
    currentRedemptions,
    currentBudgetUsed,
  };
}

function toTermsInForce(row: Row): TermsInForce {
  const terms = termsFromRow(row);
  return {
    id: String(row.id),
    organizationId: String(row.organization_id),
    status: String(row.status) as PromotionStatus,
    version: Number(row.version),
    headVersionId: String(row.head_version_id),
    liveVersion: Number(row.live_version),
    liveVersionId: String(row.live_version_id),
    publishedAt: asDate(row.published_at),
    publishedBy: row.published_by === null ? null : String(row.published_by),
    createdAt: asDate(row.created_at) ?? new Date(0),
    updatedAt: asDate(row.updated_at) ?? new Date(0),
    archivedAt: asDate(row.archived_at),
    deletedAt: asDate(row.deleted_at),
    terms,
    budgetExhausted: exhaustedAt(asBig(row.budget_exhausted_max), terms.maxBudget),
  };
}

/** Whether a STRICT refusal at `refusedAtMax` still holds under the budget in force: only raising max_budget reopens it. */
export function exhaustedAt(refusedAtMax: bigint | null, maxBudget: bigint | null): boolean {
  return refusedAtMax !== null && maxBudget !== null && maxBudget <= refusedAtMax;
}
