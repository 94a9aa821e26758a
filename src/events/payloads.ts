import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { BudgetThresholdSchema, EventInvoiceSchema } from "../../gen/promotions/v1/event_pb.js";
import { pricedInvoiceToProto } from "../api/convert/billing.js";
import { codeToProto } from "../api/convert/code.js";
import { promotionToProto } from "../api/convert/promotion.js";
import { redemptionToProto } from "../api/convert/redemption.js";
import type { PricedInvoice } from "../domain/billing.js";
import type { PromotionCodeRecord } from "../store/code-store.js";
import type { RedemptionRow } from "../store/ledger.js";
import type { PromotionView } from "../store/promotion-views.js";
import type { PayloadOf } from "./event-types.js";

// Event payloads: the resource after the change, built by the same conversions the API answers
// with, so an event's payload is what a Get right after the change would have shown.

export function promotionPayload(view: PromotionView): PayloadOf<"promotion.created"> {
  return { case: "promotion", value: promotionToProto(view) };
}

export function codePayload(code: PromotionCodeRecord): PayloadOf<"code.created"> {
  return { case: "code", value: codeToProto(code) };
}

export function redemptionPayload(row: RedemptionRow): PayloadOf<"redemption.created"> {
  return { case: "redemption", value: redemptionToProto(row) };
}

export function budgetThresholdPayload(view: PromotionView, thresholdPercent: number): PayloadOf<"promotion.budget_threshold"> {
  return { case: "budgetThreshold", value: create(BudgetThresholdSchema, { promotion: promotionToProto(view), thresholdPercent }) };
}

export interface InvoiceFacts {
  invoiceId: string;
  customerId: string | null;
  subscriptionId: string | null;
  priced: PricedInvoice;
  reversedAt?: Date | null;
  reversalReason?: string | null;
}

export function invoicePayload(i: InvoiceFacts): PayloadOf<"invoice.promotions_applied"> {
  return {
    case: "invoice",
    value: create(EventInvoiceSchema, {
      invoiceId: i.invoiceId,
      customerId: i.customerId ?? "",
      subscriptionId: i.subscriptionId ?? "",
      invoice: pricedInvoiceToProto(i.priced),
      reversedAt: i.reversedAt ? timestampFromDate(i.reversedAt) : undefined,
      reversalReason: i.reversalReason ?? "",
    }),
  };
}
