import type { EntityManager } from "@mikro-orm/postgresql";

// One code, one live promotion per tenant — across both places a code lives: a row of
// promotion_codes (live while retired_at is null) and the primary `promotions.code` of a promotion
// that is neither archived nor deleted. Two partial unique indexes each guard one place; what
// makes the pair exact is that every transaction writing codes in either place first takes the
// tenant's code lock below, then checks the other place, so check-then-write cannot interleave.
// Lock order everywhere: the promotion row first (when there is one), then this lock.

type Row = Record<string, unknown>;

/** Raw SQL inside `em`'s transaction (or none). */
export function sql<T extends Row = Row>(em: EntityManager, query: string, params: readonly unknown[] = []): Promise<T[]> {
  return em.getConnection().execute<T[]>(query, [...params], "all", em.getTransactionContext());
}

/** Serialises code writes of one tenant until the transaction ends. */
export async function lockTenantCodes(em: EntityManager, organizationId: string): Promise<void> {
  await sql(em, `select pg_advisory_xact_lock(hashtext('codes:' || ?::text))`, [organizationId]);
}

/** A requested code already held by a live promotion. */
export interface TakenCode {
  /** Position in the list that was checked. */
  index: number;
  code: string;
  promotionId: string;
  /** Where it is held: a promotion_codes row or a promotion's primary code. */
  heldAs: "code" | "primary";
}

/** Which of `codes` (normalised) are held by a live promotion of the tenant, in list order. */
export async function findTakenCodes(em: EntityManager, organizationId: string, codes: readonly string[]): Promise<TakenCode[]> {
  if (codes.length === 0) return [];
  const rows = await sql(
    em,
    `select x.i, x.code, c.promotion_id as code_promotion, p.id as primary_promotion
       from unnest(array[?]::text[]) with ordinality as x(code, i)
       left join promotion_codes c on c.organization_id = ? and c.code = x.code and c.retired_at is null
       left join promotions p on p.organization_id = ? and p.code = x.code and p.deleted_at is null and p.status <> 'ARCHIVED'
      where c.id is not null or p.id is not null
      order by x.i`,
    [codes, organizationId, organizationId],
  );
  return rows.map((r) => ({
    index: Number(r.i) - 1,
    code: String(r.code),
    promotionId: String(r.code_promotion ?? r.primary_promotion),
    heldAs: r.code_promotion != null ? "code" : "primary",
  }));
}

/** Frees the codes of a promotion that is being archived or deleted. */
export async function retirePromotionCodes(em: EntityManager, promotionId: string, now: Date): Promise<void> {
  await sql(em, `update promotion_codes set retired_at = ?, updated_at = ? where promotion_id = ? and retired_at is null`, [now, now, promotionId]);
}
