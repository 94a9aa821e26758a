import type { ServiceImpl } from "@connectrpc/connect";
import type { SimulationService } from "../../../gen/promotions/v1/simulation_service_pb.js";
import { validateInvoice } from "../../domain/billing-validation.js";
import { DomainError, type Violation } from "../../domain/errors.js";
import { ImpactForecast } from "../../domain/impact.js";
import { priceInvoice } from "../../domain/pipeline.js";
import { assertValid, checkIntRange, checkUuid } from "../../domain/checks.js";
import { BillingContextStore } from "../../store/billing-context-store.js";
import { automaticPromotions, candidateFrom, loadBillingContext, loadPromotions } from "../../store/pricing-context.js";
import { findPromotionView } from "../../store/promotion-views.js";
import { invoiceFromProto, pricedInvoiceToProto } from "../convert/billing.js";
import { ConversionProblems } from "../convert/promotion.js";
import { promotionId } from "./promotion-service.js";
import { requestScope } from "../request-scope.js";

// promotions.v1.SimulationService: dry runs of the one pricing pipeline. Reads only; nothing here
// writes or moves a counter.

const MAX_PROMOTION_IDS = 50;
const DEFAULT_PERIODS = 12;
const MAX_PERIODS = 120;

export function simulationService(): ServiceImpl<typeof SimulationService> {
  return {
    async simulatePromotion(req, ctx) {
      const { em, actor, clock } = requestScope(ctx);
      const now = clock();
      const problems = new ConversionProblems();
      const out: Violation[] = [];
      const invoice = req.invoice ? invoiceFromProto(req.invoice) : null;
      if (invoice) out.push(...validateInvoice(invoice));
      if (req.promotionIds.length > MAX_PROMOTION_IDS) {
        out.push({ param: "promotion_ids", code: "too_many", message: `promotion_ids may have at most ${MAX_PROMOTION_IDS} entries` });
      }
      req.promotionIds.forEach((id, i) => checkUuid(out, id, `promotion_ids[${i}]`));
      checkIntRange(out, req.cyclesUsed, "cycles_used", 0, 10_000);
      const periodStart = problems.date(req.billingPeriodStart, "billing_period_start");
      const periodEnd = problems.date(req.billingPeriodEnd, "billing_period_end");
      assertValid([...problems.violations, ...out]);

      const context = await loadBillingContext(em, actor.organizationId, {
        customerId: req.customerId,
        subscriptionId: req.subscriptionId,
        invoice,
        periodStart,
        periodEnd,
        at: periodStart ?? now,
      });
      const promotions = req.promotionIds.length > 0
        ? await loadPromotions(em, actor.organizationId, req.promotionIds, now)
        : await automaticPromotions(em, actor.organizationId, now);
      const priced = priceInvoice(
        context,
        promotions.map((promotion) => ({
          promotion,
          cyclesUsed: req.cyclesUsed,
          redeemedAt: null,
          allowDraft: true,
          code: null,
          alreadyRedeemed: false,
        })),
      );
      return { invoice: pricedInvoiceToProto(priced) };
    },

    async simulatePromotionImpact(req, ctx) {
      const { em, actor, clock } = requestScope(ctx);
      const now = clock();
      const id = promotionId(req.promotionId, "promotion_id");
      const out: Violation[] = [];
      if (req.periods !== 0) checkIntRange(out, req.periods, "periods", 1, MAX_PERIODS);
      assertValid(out);
      const view = await findPromotionView(em, actor.organizationId, id, now);
      if (!view) throw DomainError.of("not_found", "promotion_not_found", `promotion ${id} does not exist`, "promotion_id");
      const forecast = new ImpactForecast(candidateFrom(view), req.periods || DEFAULT_PERIODS, now);
      for await (const batch of new BillingContextStore(em).billableSubscriptions(actor.organizationId)) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        for (const { subscription, customer } of batch) forecast.add(subscription, customer);
      }
      const r = forecast.result();
      return {
        promotionId: id,
        currency: r.currency,
        evaluatedSubscriptions: r.evaluatedSubscriptions,
        eligibleSubscriptions: r.eligibleSubscriptions,
        periods: r.periods.map((p) => ({
          period: p.period,
          eligibleSubscriptions: p.eligibleSubscriptions,
          discountMinor: p.discountMinor,
          creditMinor: p.creditMinor,
          cumulativeCostMinor: p.cumulativeCostMinor,
          budgetRemainingMinor: p.budgetRemainingMinor ?? undefined,
        })),
        totalCostMinor: r.totalCostMinor,
        budgetExhaustedPeriod: r.budgetExhaustedPeriod ?? undefined,
        skippedCurrencyMismatch: r.skippedCurrencyMismatch,
      };
    },
  };
}
