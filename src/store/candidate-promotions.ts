import type { EntityManager } from "@mikro-orm/postgresql";
import type { CandidatePromotion } from "../domain/billing.js";
import { notFound } from "../domain/errors.js";
import { findPromotionView, queryPromotionViews, type PromotionView } from "./promotion-views.js";

// Promotions as the pricing pipeline considers them: the terms in force and the live counts.
// Reads only.

export function candidateFrom(view: PromotionView): CandidatePromotion {
  return {
    id: view.id,
    createdAt: view.createdAt,
    status: view.status,
    version: view.liveVersion,
    terms: view.terms,
    currentRedemptions: view.currentRedemptions,
    currentBudgetUsed: view.currentBudgetUsed,
    budgetExhausted: view.budgetExhausted,
  };
}

/** The named promotions (any status, drafts included), each refused as NOT_FOUND when it is not the tenant's. */
export async function loadPromotions(em: EntityManager, organizationId: string, ids: readonly string[], now: Date): Promise<CandidatePromotion[]> {
  const promotions: CandidatePromotion[] = [];
  for (const [i, id] of [...new Set(ids)].entries()) {
    const view = await findPromotionView(em, organizationId, id, now);
    if (!view) throw notFound("promotion", id, `promotion_ids[${i}]`);
    promotions.push(candidateFrom(view));
  }
  return promotions;
}

/** Active AUTOMATIC promotions: the ones that apply, without a redemption call, to every invoice they are eligible for. */
export async function automaticPromotions(em: EntityManager, organizationId: string, now: Date): Promise<CandidatePromotion[]> {
  const views = await queryPromotionViews(em, {
    organizationId,
    now,
    filters: [
      { field: "status", op: "eq", values: ["ACTIVE"] },
      { field: "application_method", op: "eq", values: ["AUTOMATIC"] },
    ],
  });
  return views.map(candidateFrom);
}
