import type { EntityManager } from "@mikro-orm/postgresql";
import type { Candidate, CandidatePromotion, Check, InvoiceDraft, PricedInvoice } from "../domain/billing.js";
import { notFound } from "../domain/errors.js";
import { ImpactForecast, type ImpactForecastResult } from "../domain/impact.js";
import { evaluateEligibility, priceInvoice, summarizeEffects } from "../domain/pipeline.js";
import { BillingContextStore } from "../store/billing-context-store.js";
import { automaticPromotions, candidateFrom, loadPromotions } from "../store/candidate-promotions.js";
import { CodeStore } from "../store/code-store.js";
import { findPromotionView } from "../store/promotion-views.js";
import { normalizeCode } from "../domain/terms.js";

// The dry runs of the one pricing pipeline: the eligibility preview of one promotion, a simulated
// invoice, and the impact forecast over every billable subscription. Reads only; nothing here
// writes or moves a counter. Each names a customer the billing system must have pushed.

const KNOWN_CUSTOMERS = { requireKnownCustomer: true } as const;

export interface PricingRequest {
  customerId: string;
  subscriptionId: string;
  invoice: InvoiceDraft | null;
}

export interface Preview {
  promotionId: string;
  promotionName: string;
  eligible: boolean;
  reason: string;
  checks: Check[];
  effectSummary: string;
}

/** Whether one promotion would apply to the customer's invoice at `at`, with every check behind the answer. */
export async function previewEligibility(
  em: EntityManager,
  organizationId: string,
  req: PricingRequest & { promotionId: string; at: Date; cyclesUsed: number; code: string },
  now: Date,
): Promise<Preview> {
  const view = await findPromotionView(em, organizationId, req.promotionId, now);
  if (!view) throw notFound("promotion", req.promotionId);
  const context = await new BillingContextStore(em).billingContext(
    organizationId,
    { customerId: req.customerId, subscriptionId: req.subscriptionId, invoice: req.invoice, periodStart: null, periodEnd: null, at: req.at },
    KNOWN_CUSTOMERS,
  );
  // Any of the promotion's codes counts (its primary code or an extra one); the pipeline is told whether it matched.
  const code = req.code === "" ? null : { entered: normalizeCode(req.code), matches: (await new CodeStore(em).resolve(organizationId, req.code))?.promotionId === view.id };
  const verdict = evaluateEligibility(context, { ...dryRun(candidateFrom(view), req.cyclesUsed, false), code });
  return {
    promotionId: view.id,
    promotionName: view.terms.name,
    eligible: verdict.eligible,
    reason: verdict.reason,
    checks: verdict.checks,
    effectSummary: summarizeEffects(view.terms),
  };
}

/**
 * The invoice the pipeline would price: with the named promotions (drafts priced as if active), or
 * with no names the active promotions without a code (the automatic ones).
 */
export async function simulateInvoice(
  em: EntityManager,
  organizationId: string,
  req: PricingRequest & { promotionIds: readonly string[]; cyclesUsed: number; periodStart: Date | null; periodEnd: Date | null },
  now: Date,
): Promise<PricedInvoice> {
  const context = await new BillingContextStore(em).billingContext(
    organizationId,
    { customerId: req.customerId, subscriptionId: req.subscriptionId, invoice: req.invoice, periodStart: req.periodStart, periodEnd: req.periodEnd, at: req.periodStart ?? now },
    KNOWN_CUSTOMERS,
  );
  const promotions = req.promotionIds.length > 0
    ? await loadPromotions(em, organizationId, req.promotionIds, now)
    : await automaticPromotions(em, organizationId, now);
  return priceInvoice(context, promotions.map((p) => dryRun(p, req.cyclesUsed, true)));
}

/** One forecast, as plain data: what a worker thread needs to run it (src/promotions/forecast-pool.ts). */
export interface ForecastJob {
  organizationId: string;
  promotion: CandidatePromotion;
  periods: number;
  now: Date;
}

/** Where a forecast's subscriptions are streamed and priced: in this thread, or on a worker (ForecastPool.run). */
export type ForecastRunner = (job: ForecastJob, signal: AbortSignal) => Promise<ImpactForecastResult>;

/** Checked before every subscription: throws once the caller is gone (an AbortSignal, or a flag a worker shares). */
export interface Cancellation {
  throwIfAborted(): void;
}

/**
 * What the promotion would cost over `periods` billing periods of every billable subscription.
 * The promotion is read here; `run` streams and prices the subscriptions (in this thread when
 * absent) and stops when `signal` aborts.
 */
export async function forecastImpact(
  em: EntityManager,
  organizationId: string,
  req: { promotionId: string; periods: number },
  signal: AbortSignal,
  now: Date,
  run: ForecastRunner = (job, s) => forecastSubscriptions(em, job, s),
): Promise<ImpactForecastResult> {
  const view = await findPromotionView(em, organizationId, req.promotionId, now);
  if (!view) throw notFound("promotion", req.promotionId, "promotion_id");
  signal.throwIfAborted();
  return run({ organizationId, promotion: candidateFrom(view), periods: req.periods, now }, signal);
}

/**
 * Streams every billable subscription of the job's tenant through one ImpactForecast; the one
 * implementation both threads run. The batch size only trades round trips for how long a read runs
 * before `cancel` is looked at again; the result does not depend on it.
 */
export async function forecastSubscriptions(em: EntityManager, job: ForecastJob, cancel: Cancellation, batchSize = 1000): Promise<ImpactForecastResult> {
  const forecast = new ImpactForecast(job.promotion, job.periods, job.now);
  for await (const batch of new BillingContextStore(em).billableSubscriptions(job.organizationId, batchSize)) {
    for (const { subscription, customer } of batch) {
      // Per subscription, not per batch: a batch of 1,000 over 12 periods is tens of ms of pricing.
      cancel.throwIfAborted();
      forecast.add(subscription, customer);
    }
  }
  return forecast.result();
}

/** A promotion priced in a dry run: no redemption behind it, its cycles as the caller assumes. */
function dryRun(promotion: CandidatePromotion, cyclesUsed: number, allowDraft: boolean): Candidate {
  return { key: promotion.id, promotion, cyclesUsed, redeemedAt: null, redemptionId: null, allowDraft, code: null, alreadyRedeemed: false };
}
