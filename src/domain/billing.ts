import type { PromotionStatus, PromotionTerms } from "./terms.js";

// The billing context the pricing pipeline works on, and what it produces. Plain values: the API
// layer maps protobuf to these, storage loads them, and src/domain/pipeline.ts prices them.

export const SUBSCRIPTION_STATUSES = ["TRIALING", "ACTIVE", "PAST_DUE", "PAUSED", "CANCELED"] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];

export const BILLING_INTERVALS = ["DAY", "WEEK", "MONTH", "YEAR"] as const;
export type BillingInterval = (typeof BILLING_INTERVALS)[number];

export interface CustomerFacts {
  id: string;
  segments: string[];
  hasPaidBefore: boolean;
  createdAt: Date | null;
}

export interface SubscriptionItem {
  planId: string;
  productId: string;
  unitAmountMinor: bigint;
  quantity: number;
}

export interface SubscriptionFacts {
  id: string;
  customerId: string;
  status: SubscriptionStatus;
  currency: string;
  interval: BillingInterval;
  currentPeriodStart: Date | null;
  currentPeriodEnd: Date | null;
  trialEnd: Date | null;
  items: SubscriptionItem[];
}

export interface InvoiceLine {
  id: string;
  planId: string;
  productId: string;
  unitAmountMinor: bigint;
  quantity: number;
  description: string;
}

export interface InvoiceDraft {
  currency: string;
  lines: InvoiceLine[];
}

/** Everything the pipeline knows about whom and what it is pricing. */
export interface BillingContext {
  customer: CustomerFacts | null;
  subscription: SubscriptionFacts | null;
  invoice: InvoiceDraft;
  periodStart: Date;
  periodEnd: Date;
  /** The evaluation instant (validity windows, date_range conditions, code expiry). */
  at: Date;
}

/** A promotion as the pipeline needs it: the terms of one version plus live counters. */
export interface CandidatePromotion {
  id: string;
  createdAt: Date;
  status: PromotionStatus;
  /** The version whose terms these are (pinned for redemptions). */
  version: number;
  terms: PromotionTerms;
  currentRedemptions: bigint;
  currentBudgetUsed: bigint;
  /**
   * A STRICT budget refused a grant it could no longer pay: the promotion reads EXHAUSTED and
   * grants nothing more until an edit raises max_budget.
   */
  budgetExhausted?: boolean;
}

/** What the ledger knows of an existing redemption's earlier invoices. */
export interface RedemptionHistory {
  /** Its trial extension was granted already (a trial is extended once per redemption). */
  trialExtended: boolean;
  /** End of the last billing period it applied to; null before its first. */
  lastPeriodEnd: Date | null;
}

/** A limit the counters refused a candidate's redemption for (an automatic promotion's first application). */
export interface CounterRefusal {
  check: "max_redemptions" | "customer_limit" | "budget";
  detail: string;
}

/** A code a customer entered, and whether it is one of this promotion's codes (the use case looked it up). */
export interface EnteredCode {
  entered: string;
  matches: boolean;
}

/** Why this promotion is being considered for this invoice. */
export interface Candidate {
  /** Names this candidate among the ones priced together; its outcome carries it back (candidateKey). */
  key: string;
  promotion: CandidatePromotion;
  /** Billing periods of this promotion the customer has already used (0 = first). Selects the phase. */
  cyclesUsed: number;
  /** When the customer redeemed it (NEXT_PERIOD timing starts after the period containing it); null = automatic. */
  redeemedAt: Date | null;
  /**
   * The customer's existing redemption this candidate applies, or null. Status and validity window
   * gated that redemption when it was made, so they pass for it now: a redemption keeps applying on
   * its pinned terms after the promotion is archived or its window closes.
   */
  redemptionId: string | null;
  /** Simulations may price drafts as if they were active. */
  allowDraft: boolean;
  /** A code the customer entered; null = none given. */
  code: EnteredCode | null;
  /** Whether this customer's redemption of it already counts against max_redemptions (a redemption being applied). */
  alreadyRedeemed: boolean;
  /** The existing redemption's earlier invoices (with redemptionId). */
  history?: RedemptionHistory;
  /** The counters refused this candidate's redemption: a failed gate. */
  refusal?: CounterRefusal;
}

export interface Check {
  /** e.g. "status", "validity_window", "condition.min_spend". */
  check: string;
  passed: boolean;
  /** Human explanation. */
  detail: string;
}

export interface LineDiscount {
  promotionId: string;
  amountMinor: bigint;
}

export interface PricedLine {
  lineId: string;
  planId: string;
  productId: string;
  amountMinor: bigint;
  discountMinor: bigint;
  totalMinor: bigint;
  discounts: LineDiscount[];
}

export interface PromotionOutcome {
  /** The key of the candidate this is the outcome of. */
  candidateKey: string;
  promotionId: string;
  promotionName: string;
  version: number;
  applied: boolean;
  /** "" when applied; else the first failing gate check's name (see pipeline.ts), "not_stackable", "currency_mismatch", "budget_insufficient" or "no_effect". */
  reason: string;
  phaseName: string;
  discountMinor: bigint;
  creditMinor: bigint;
  trialDays: number;
  budgetConsumedMinor: bigint;
  /** What this promotion took off each line (lines it did not touch are absent); sums to discountMinor. */
  lineDiscounts: { lineId: string; amountMinor: bigint }[];
  checks: Check[];
  /** The trial's new end when this promotion extended it; null otherwise. */
  trialEnd: Date | null;
  /** The redemption that applied (an existing one, or the one an automatic promotion's first application took); null otherwise. */
  redemptionId: string | null;
}

export interface PricedInvoice {
  currency: string;
  lines: PricedLine[];
  subtotalMinor: bigint;
  discountMinor: bigint;
  totalMinor: bigint;
  creditsGrantedMinor: bigint;
  trialDaysAdded: number;
  promotions: PromotionOutcome[];
}

/** The invoice a subscription's items make for one period: one line per item. */
export function invoiceOf(subscription: SubscriptionFacts): InvoiceDraft {
  return {
    currency: subscription.currency,
    lines: subscription.items.map((item, i) => ({
      id: `item-${i + 1}`,
      planId: item.planId,
      productId: item.productId,
      unitAmountMinor: item.unitAmountMinor,
      quantity: item.quantity,
      description: "",
    })),
  };
}
