import type { ServiceImpl } from "@connectrpc/connect";
import type { SimulationService } from "../../../gen/promotions/v1/simulation_service_pb.js";
import { impactPeriods, validateSimulateRequest } from "../../domain/billing-validation.js";
import { assertValid, requireUuid } from "../../domain/checks.js";
import type { Violation } from "../../domain/errors.js";
import { forecastImpact, simulateInvoice } from "../../promotions/dry-runs.js";
import type { ForecastPool } from "../../promotions/forecast-pool.js";
import { invoiceFromProto, pricedInvoiceToProto } from "../convert/billing.js";
import { ConversionProblems } from "../convert/promotion.js";
import { requestScope } from "../request-scope.js";

// promotions.v1.SimulationService: dry runs of the one pricing pipeline (src/promotions/dry-runs.ts).
// Reads only; nothing here writes or moves a counter.

/** `forecasts` runs SimulatePromotionImpact off the event loop (src/promotions/forecast-pool.ts). */
export function simulationService(forecasts: ForecastPool): ServiceImpl<typeof SimulationService> {
  return {
    async simulatePromotion(req, ctx) {
      const { em, actor, clock } = requestScope(ctx);
      const problems = new ConversionProblems();
      const invoice = req.invoice ? invoiceFromProto(req.invoice) : null;
      const violations = validateSimulateRequest({ promotionIds: req.promotionIds, cyclesUsed: req.cyclesUsed, invoice });
      const periodStart = problems.date(req.billingPeriodStart, "billing_period_start");
      const periodEnd = problems.date(req.billingPeriodEnd, "billing_period_end");
      assertValid([...problems.violations, ...violations]);
      const priced = await simulateInvoice(
        em,
        actor.organizationId,
        { customerId: req.customerId, subscriptionId: req.subscriptionId, invoice, promotionIds: req.promotionIds, cyclesUsed: req.cyclesUsed, periodStart, periodEnd },
        clock(),
      );
      return { invoice: pricedInvoiceToProto(priced) };
    },

    async simulatePromotionImpact(req, ctx) {
      const { em, actor, clock } = requestScope(ctx);
      const promotionId = requireUuid(req.promotionId, "promotion_id");
      const out: Violation[] = [];
      const periods = impactPeriods(out, req.periods);
      assertValid(out);
      const r = await forecastImpact(em, actor.organizationId, { promotionId, periods }, ctx.signal, clock(), (job, signal) => forecasts.run(job, signal));
      return {
        promotionId,
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
