import type { ServiceImpl } from "@connectrpc/connect";
import type { InvoiceService } from "../../../gen/promotions/v1/invoice_service_pb.js";
import type { Checkout } from "../../checkout/checkout.js";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { validateApplyRequest, validateReverseRequest } from "../../domain/billing-validation.js";
import { assertValid } from "../../domain/checks.js";
import { invoiceFromProto, pricedInvoiceToProto } from "../convert/billing.js";
import { ConversionProblems } from "../convert/promotion.js";
import { requestScope } from "../request-scope.js";

// promotions.v1.InvoiceService: maps messages, calls the checkout use cases (src/checkout/invoicer.ts).

export function invoiceService(checkout: Checkout): ServiceImpl<typeof InvoiceService> {
  return {
    async applyPromotions(req, ctx) {
      const { forkEm, actor, requestId } = requestScope(ctx);
      const problems = new ConversionProblems();
      const invoice = req.invoice ? invoiceFromProto(req.invoice) : null;
      const periodStart = problems.date(req.billingPeriodStart, "billing_period_start");
      const periodEnd = problems.date(req.billingPeriodEnd, "billing_period_end");
      assertValid([...problems.violations, ...validateApplyRequest({ invoiceId: req.invoiceId, customerId: req.customerId, subscriptionId: req.subscriptionId, invoice })]);
      const result = await checkout.invoicer.apply(checkout.stores(forkEm, requestId), actor.organizationId, {
        invoiceId: req.invoiceId,
        customerId: req.customerId,
        subscriptionId: req.subscriptionId,
        invoice,
        periodStart,
        periodEnd,
      });
      return { invoiceId: req.invoiceId, invoice: pricedInvoiceToProto(result.priced), replayed: result.replayed };
    },

    async reverseInvoice(req, ctx) {
      const { forkEm, actor, requestId } = requestScope(ctx);
      assertValid(validateReverseRequest({ invoiceId: req.invoiceId, reason: req.reason }));
      const r = await checkout.invoicer.reverse(checkout.stores(forkEm, requestId), actor.organizationId, { invoiceId: req.invoiceId, reason: req.reason });
      return {
        invoiceId: req.invoiceId,
        invoice: pricedInvoiceToProto(r.stored.priced),
        budgetReturnedMinor: r.budgetReturnedMinor,
        reversedAt: r.stored.reversedAt ? timestampFromDate(r.stored.reversedAt) : undefined,
        reason: r.stored.reverseReason ?? "",
        replayed: r.replayed,
      };
    },
  };
}
