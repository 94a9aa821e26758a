import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import * as cpb from "../../../gen/promotions/v1/customer_pb.js";
import * as ipb from "../../../gen/promotions/v1/invoice_pb.js";
import * as d from "../../domain/billing.js";
import type { StoredCustomer, StoredSubscription } from "../../store/billing-context-store.js";
import type { ConversionProblems } from "./promotion.js";

// Customers, subscriptions and invoices: protobuf <-> domain values.

const ts = (date: Date | null): Timestamp | undefined => (date === null ? undefined : timestampFromDate(date));

/** What a request carries: like the stored value, but updated_at may be missing (validation refuses that). */
export type Incoming<T extends { updatedAt: Date }> = Omit<T, "updatedAt"> & { updatedAt: Date | null };

export function customerFromProto(c: cpb.Customer, problems: ConversionProblems): Incoming<StoredCustomer> {
  return {
    id: c.id,
    segments: [...c.segments],
    hasPaidBefore: c.hasPaidBefore,
    createdAt: problems.date(c.createdAt, "customer.created_at"),
    metadata: { ...c.metadata },
    updatedAt: problems.date(c.updatedAt, "customer.updated_at"),
  };
}

export function subscriptionFromProto(s: cpb.Subscription, problems: ConversionProblems): Incoming<StoredSubscription> {
  return {
    id: s.id,
    customerId: s.customerId,
    status: problems.enumValue(cpb.SubscriptionStatus, s.status, d.SUBSCRIPTION_STATUSES, "ACTIVE", "subscription.status"),
    currency: s.currency.trim().toUpperCase(),
    interval: problems.enumValue(cpb.BillingInterval, s.interval, d.BILLING_INTERVALS, "MONTH", "subscription.interval"),
    currentPeriodStart: problems.date(s.currentPeriodStart, "subscription.current_period_start"),
    currentPeriodEnd: problems.date(s.currentPeriodEnd, "subscription.current_period_end"),
    trialEnd: problems.date(s.trialEnd, "subscription.trial_end"),
    items: s.items.map((i) => ({ planId: i.planId, productId: i.productId, unitAmountMinor: i.unitAmountMinor, quantity: i.quantity })),
    updatedAt: problems.date(s.updatedAt, "subscription.updated_at"),
  };
}

export function invoiceFromProto(invoice: ipb.Invoice): d.InvoiceDraft {
  return {
    currency: invoice.currency.trim().toUpperCase(),
    lines: invoice.lines.map((l, i) => ({
      id: l.id === "" ? `line-${i + 1}` : l.id,
      planId: l.planId,
      productId: l.productId,
      unitAmountMinor: l.unitAmountMinor,
      quantity: l.quantity,
      description: l.description,
    })),
  };
}

const enumNumber = (e: Record<string, string | number>, name: string): number => {
  const value = e[name];
  return typeof value === "number" ? value : 0;
};

export function customerToProto(c: StoredCustomer): cpb.Customer {
  return create(cpb.CustomerSchema, {
    id: c.id,
    segments: c.segments,
    createdAt: ts(c.createdAt),
    hasPaidBefore: c.hasPaidBefore,
    metadata: c.metadata,
    updatedAt: ts(c.updatedAt),
  });
}

export function subscriptionToProto(s: StoredSubscription): cpb.Subscription {
  return create(cpb.SubscriptionSchema, {
    id: s.id,
    customerId: s.customerId,
    status: enumNumber(cpb.SubscriptionStatus, s.status),
    currency: s.currency,
    interval: enumNumber(cpb.BillingInterval, s.interval),
    currentPeriodStart: ts(s.currentPeriodStart),
    currentPeriodEnd: ts(s.currentPeriodEnd),
    trialEnd: ts(s.trialEnd),
    items: s.items.map((i) => ({ planId: i.planId, productId: i.productId, unitAmountMinor: i.unitAmountMinor, quantity: i.quantity })),
    updatedAt: ts(s.updatedAt),
  });
}

export function checkToProto(c: d.Check): MessageInitShape<typeof ipb.EligibilityCheckSchema> {
  return { check: c.check, passed: c.passed, detail: c.detail };
}

export function pricedInvoiceToProto(p: d.PricedInvoice): ipb.PricedInvoice {
  return create(ipb.PricedInvoiceSchema, {
    currency: p.currency,
    lines: p.lines.map((l) => ({
      lineId: l.lineId,
      planId: l.planId,
      productId: l.productId,
      amountMinor: l.amountMinor,
      discountMinor: l.discountMinor,
      totalMinor: l.totalMinor,
      discounts: l.discounts.map((x) => ({ promotionId: x.promotionId, amountMinor: x.amountMinor })),
    })),
    subtotalMinor: p.subtotalMinor,
    discountMinor: p.discountMinor,
    totalMinor: p.totalMinor,
    creditsGrantedMinor: p.creditsGrantedMinor,
    trialDaysAdded: p.trialDaysAdded,
    promotions: p.promotions.map((o) => ({
      promotionId: o.promotionId,
      promotionName: o.promotionName,
      applied: o.applied,
      reason: o.reason,
      phaseName: o.phaseName,
      discountMinor: o.discountMinor,
      creditMinor: o.creditMinor,
      trialDays: o.trialDays,
      budgetConsumedMinor: o.budgetConsumedMinor,
      checks: o.checks.map(checkToProto),
      version: BigInt(o.version),
      // Invoices stored before these fields existed read back without them.
      trialEnd: o.trialEnd ? ts(o.trialEnd) : undefined,
      redemptionId: o.redemptionId ?? "",
    })),
  });
}
