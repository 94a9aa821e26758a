import { randomUUID } from "node:crypto";
import type { Candidate, CandidatePromotion, CounterRefusal, InvoiceDraft, PricedInvoice, PromotionOutcome } from "../domain/billing.js";
import { thresholdsCrossed } from "../domain/budget-thresholds.js";
import { DomainError } from "../domain/errors.js";
import { priceInvoice } from "../domain/pipeline.js";
import { ReserveOutcome, type Refusal } from "../counters/outcomes.js";
import { rebuildCounters } from "../counters/rebuild.js";
import type { PromotionChangeHook } from "../promotions/change-hook.js";
import { refuseReversed, type ApplicationWrite, type BudgetCrossing, type InvoiceEffects, type RedemptionCandidate, type StoredInvoice } from "../store/invoice-ledger.js";
import { invoiceRequestHash, sameRequest } from "./idempotency.js";
import type { CheckoutCounters, CheckoutStores } from "./ports.js";
import type { Redeemer } from "./redeemer.js";
import { settleReturns } from "./returns.js";

// InvoiceService.ApplyPromotions: the one pricing pipeline on a real invoice.
//
// - Candidates: the customer's ACTIVE redemptions (one per promotion: the oldest applies, the
//   others wait until it completes), on the terms each pinned, and the AUTOMATIC promotions that
//   never reached this customer.
// - Budget is reserved in Redis per applied promotion (consume_budget.lua: CAP or STRICT,
//   atomically); when Redis grants less than the price assumed, the invoice is priced again with
//   the budget as it now stands.
// - An automatic promotion's first application then takes its redemption (redeemer.ts
//   admitAutomatic: the same counters, fence and group commit as a code's), after its budget, so a
//   budget that ran out never leaves a customer reached without a discount. A limit that refuses
//   it prices the invoice again without it.
// - The invoice, its applications, each redemption's next cycle (its last one completes it), the
//   coverage gaps that end redemptions and a STRICT budget's exhaustion are written in one
//   transaction, fenced by each promotion's counter epoch; anything that does not reach the ledger
//   is given back (or settled by the sweeper).

const MAX_ATTEMPTS = 20;

export interface ApplyInput {
  invoiceId: string;
  customerId: string;
  subscriptionId: string;
  invoice: InvoiceDraft | null;
  periodStart: Date | null;
  periodEnd: Date | null;
}

interface Reservation {
  promotionId: string;
  id: string;
}

interface LiveCounts {
  budgetUsed: bigint;
  redemptions: bigint;
}

export interface InvoicerDeps {
  counters: CheckoutCounters;
  redeemer: Redeemer;
  /** How long a budget reservation may stay unwritten before the sweeper settles it. */
  reservationTtlMs: number;
  /** Told after commit when an invoice changed a promotion's terms (a STRICT budget exhausted). */
  onChanged?: PromotionChangeHook;
  clock?: () => Date;
}

export class Invoicer {
  private readonly counters: CheckoutCounters;
  private readonly redeemer: Redeemer;
  private readonly reservationTtlMs: number;
  private readonly onChanged: PromotionChangeHook;
  private readonly clock: () => Date;

  constructor(deps: InvoicerDeps) {
    this.counters = deps.counters;
    this.redeemer = deps.redeemer;
    this.reservationTtlMs = deps.reservationTtlMs;
    this.onChanged = deps.onChanged ?? (async () => undefined);
    this.clock = deps.clock ?? (() => new Date());
  }

  async apply(stores: CheckoutStores, organizationId: string, input: ApplyInput): Promise<{ priced: PricedInvoice; replayed: boolean }> {
    const { invoices } = stores;
    const hash = invoiceRequestHash(input);
    const replay = await invoices.find(organizationId, input.invoiceId);
    if (replay) return { priced: sameInvoice(replay, input.invoiceId, hash), replayed: true };

    const now = this.clock();
    const ctx = await stores.pricing.billingContext(
      organizationId,
      { customerId: input.customerId, subscriptionId: input.subscriptionId, invoice: input.invoice, periodStart: input.periodStart, periodEnd: input.periodEnd, at: input.periodStart ?? now },
      // A customer the billing system never pushed is priced as unknown (no segments, not known to be new).
      { requireKnownCustomer: false },
    );
    const customerId = ctx.customer?.id ?? input.customerId;
    let automatic = customerId === "" ? [] : await stores.pricing.automaticPromotions(organizationId, now);
    /** Automatic first applications the counters refused, by promotion: priced again as refused. */
    const refusals = new Map<string, CounterRefusal>();

    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const redeemed = customerId === "" ? [] : oldestPerPromotion(await invoices.redemptionCandidates(organizationId, customerId));
      const reached = customerId === "" ? new Set<string>() : await invoices.redeemedPromotions(organizationId, customerId);
      const firsts = automatic.filter((p) => !reached.has(p.id));
      const live = await this.liveCounts(stores, [...redeemed.map((r) => r.promotion), ...firsts]);
      const candidates = [
        ...redeemed.map((r) => redemptionCandidate(r, live)),
        ...firsts.map((p) => automaticCandidate(p, live, refusals.get(p.id))),
      ];
      const byKey = new Map(candidates.map((c) => [c.key, c]));
      const priced = priceInvoice(ctx, candidates);

      const reserved: Reservation[] = [];
      const applications: { write: ApplicationWrite; outcome: PromotionOutcome; first: boolean }[] = [];
      /** The budget thresholds this invoice's grants crossed (and a budget used up): their events go with the invoice. */
      const crossings: BudgetCrossing[] = [];
      let again = false;
      for (const outcome of priced.promotions) {
        const candidate = byKey.get(outcome.candidateKey);
        if (!outcome.applied || !candidate) continue;
        const id = randomUUID();
        let epoch: bigint | null = null;
        if (outcome.budgetConsumedMinor > 0n) {
          const terms = candidate.promotion.terms;
          const r = await this.counters.consumeBudget({
            promotionId: outcome.promotionId,
            reservationId: id,
            deadline: now.getTime() + this.reservationTtlMs,
            maxBudget: terms.maxBudget,
            amount: outcome.budgetConsumedMinor,
            behavior: terms.budgetBehavior,
          });
          if (!r.hydrated) {
            await this.rebuild(stores, outcome.promotionId);
            again = true;
            break;
          }
          if (r.granted > 0n) reserved.push({ promotionId: outcome.promotionId, id });
          if (r.granted !== outcome.budgetConsumedMinor) {
            again = true; // the budget moved since we read it: price again with what is left
            break;
          }
          epoch = r.epoch;
          if (terms.maxBudget !== null) {
            const thresholds = thresholdsCrossed(r.budgetUsed - r.granted, r.budgetUsed, terms.maxBudget);
            if (thresholds.length > 0) crossings.push({ promotionId: outcome.promotionId, maxBudget: terms.maxBudget, thresholds, exhausted: r.budgetUsed >= terms.maxBudget, budgetUsed: r.budgetUsed });
          }
        }
        applications.push({ write: application(id, epoch, outcome, candidate.redemptionId), outcome, first: candidate.redemptionId === null });
      }

      // Automatic first applications take their redemption now that their budget is held.
      for (const a of again ? [] : applications.filter((x) => x.first)) {
        const taken = await this.redeemer.admitAutomatic(stores, organizationId, a.write.promotionId, customerId);
        if (taken.kind === "refused") {
          const refusal = counterRefusal(taken.outcome, taken.message);
          if (refusal) refusals.set(a.write.promotionId, refusal);
          else automatic = automatic.filter((p) => p.id !== a.write.promotionId); // no longer live (deactivated, expired)
          again = true;
          break;
        }
        a.write.redemptionId = taken.row.id;
        a.outcome.redemptionId = taken.row.id;
      }
      if (again) {
        await this.giveBack(reserved);
        continue;
      }

      let written;
      try {
        written = await invoices.write(
          organizationId,
          {
            id: input.invoiceId,
            requestHash: hash,
            customerId: customerId === "" ? null : customerId,
            subscriptionId: input.subscriptionId === "" ? null : input.subscriptionId,
            priced,
            periodStart: ctx.periodStart,
            periodEnd: ctx.periodEnd,
            now,
            requestId: stores.requestId,
          },
          applications.map((a) => a.write),
          { ...effectsOf(priced, byKey), budgetCrossings: crossings },
        );
      } catch (error) {
        await this.giveBack(reserved);
        throw new DomainError("unavailable", [{ param: "", code: "ledger_unavailable", message: "the invoice could not be recorded; nothing was applied; retry" }], { cause: error });
      }
      if (written.kind === "written") {
        for (const r of reserved) this.counters.confirmLater(r.promotionId, r.id);
        for (const c of written.termsChanged) await this.onChanged(organizationId, c.promotionId, c.termsSeq);
        return { priced, replayed: false };
      }
      await this.giveBack(reserved);
      if (written.kind === "exists") return { priced: sameInvoice(written.stored, input.invoiceId, hash), replayed: true };
      if (written.kind === "fenced") {
        // A promotion's epoch moved past the counters that granted its budget: those counters are
        // rebuilt on the next attempt (redeemer.ts says why).
        for (const a of applications) {
          if (a.write.epoch !== null) this.counters.raiseFloor(a.write.promotionId, await stores.ledger.counterEpoch(a.write.promotionId));
        }
      }
    }
    throw DomainError.of("unavailable", "counters_busy", "the budget counters kept moving; retry");
  }

  /**
   * ReverseInvoice: the ledger marks the invoice and its applications REVERSED, un-uses the cycles
   * they advanced and records the budget to give back; then the counters take it back (returns.ts).
   */
  async reverse(stores: CheckoutStores, organizationId: string, input: { invoiceId: string; reason: string }): Promise<{ stored: StoredInvoice; replayed: boolean; budgetReturnedMinor: bigint }> {
    const now = this.clock();
    const reversal = await stores.invoices.reverse(organizationId, input.invoiceId, input.reason, now, stores.requestId);
    if (reversal.changed) await settleReturns(this.counters, stores.ledger, reversal.returned, now);
    const budgetReturnedMinor = reversal.stored.priced.promotions.reduce((sum, o) => sum + (o.applied ? o.budgetConsumedMinor : 0n), 0n);
    return { stored: reversal.stored, replayed: !reversal.changed, budgetReturnedMinor };
  }

  /** Live budget used and redemptions per promotion with a limit (Redis, rebuilt from the ledger when missing). */
  private async liveCounts(stores: CheckoutStores, promotions: readonly CandidatePromotion[]): Promise<Map<string, LiveCounts>> {
    const ids = [...new Set(promotions.filter((p) => p.terms.maxBudget !== null || p.terms.maxRedemptions !== null).map((p) => p.id))];
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const snapshot = await this.counters.snapshot(ids);
      const missing = ids.filter((id) => snapshot.get(id) == null);
      if (missing.length === 0) {
        return new Map(ids.map((id) => [id, { budgetUsed: snapshot.get(id)?.budgetUsed ?? 0n, redemptions: snapshot.get(id)?.redemptions ?? 0n }]));
      }
      for (const id of missing) await this.rebuild(stores, id);
    }
    throw DomainError.of("unavailable", "counters_busy", "the budget counters are being rebuilt; retry");
  }

  private rebuild(stores: CheckoutStores, promotionId: string): Promise<void> {
    return rebuildCounters(this.counters, promotionId, () => stores.ledger.rebuild(promotionId));
  }

  private async giveBack(reserved: readonly Reservation[]): Promise<void> {
    // Budget reservations set no idempotency marker (consume_budget.lua).
    for (const r of reserved) await this.counters.giveBack(r.promotionId, r.id, "").catch(() => false);
  }
}

/** One redemption per promotion applies to an invoice: the oldest (candidates come oldest first). */
function oldestPerPromotion(redeemed: readonly RedemptionCandidate[]): RedemptionCandidate[] {
  const seen = new Set<string>();
  return redeemed.filter((r) => !seen.has(r.promotion.id) && seen.add(r.promotion.id));
}

const withLive = (p: CandidatePromotion, live: ReadonlyMap<string, LiveCounts>, counted: "ledger" | "redis"): CandidatePromotion => {
  const counts = live.get(p.id);
  return { ...p, currentBudgetUsed: counts?.budgetUsed ?? 0n, currentRedemptions: counted === "redis" && counts ? counts.redemptions : p.currentRedemptions };
};

/** One of the customer's ACTIVE redemptions, on the terms of the version it pinned. */
function redemptionCandidate(r: RedemptionCandidate, live: ReadonlyMap<string, LiveCounts>): Candidate {
  return {
    key: `redemption:${r.redemptionId}`,
    promotion: withLive(r.promotion, live, "ledger"),
    cyclesUsed: r.cyclesUsed,
    redeemedAt: r.redeemedAt,
    redemptionId: r.redemptionId,
    allowDraft: false,
    code: null,
    alreadyRedeemed: true,
    history: r.history,
  };
}

/** An AUTOMATIC promotion that never reached this customer: applying it would take its first redemption. */
function automaticCandidate(p: CandidatePromotion, live: ReadonlyMap<string, LiveCounts>, refusal: CounterRefusal | undefined): Candidate {
  return {
    key: `automatic:${p.id}`,
    promotion: withLive(p, live, "redis"),
    cyclesUsed: 0,
    redeemedAt: null,
    redemptionId: null,
    allowDraft: false,
    code: null,
    alreadyRedeemed: false,
    ...(refusal ? { refusal } : {}),
  };
}

/** The limit a refused automatic admission names, as a failed gate; null when the promotion is simply no longer live. */
function counterRefusal(outcome: Refusal, detail: string): CounterRefusal | null {
  switch (outcome) {
    case ReserveOutcome.MaxRedemptionsReached:
      return { check: "max_redemptions", detail };
    case ReserveOutcome.CustomerLimitReached:
      return { check: "customer_limit", detail };
    case ReserveOutcome.BudgetExhausted:
      return { check: "budget", detail };
    default:
      return null;
  }
}

/** What the invoice ends or exhausts: broken continuous coverage ends its redemption; a STRICT refusal exhausts the budget. */
function effectsOf(priced: PricedInvoice, byKey: ReadonlyMap<string, Candidate>): InvoiceEffects {
  const coverageEnded: string[] = [];
  const budgetExhausted: InvoiceEffects["budgetExhausted"][number][] = [];
  for (const o of priced.promotions) {
    const candidate = byKey.get(o.candidateKey);
    if (!candidate) continue;
    if (o.reason === "continuous_coverage" && candidate.redemptionId !== null) coverageEnded.push(candidate.redemptionId);
    const { terms } = candidate.promotion;
    if (o.reason === "budget_insufficient" && terms.budgetBehavior === "STRICT" && terms.maxBudget !== null) {
      budgetExhausted.push({ promotionId: o.promotionId, maxBudget: terms.maxBudget });
    }
  }
  return { coverageEnded, budgetExhausted, budgetCrossings: [] };
}

function application(id: string, epoch: bigint | null, o: PromotionOutcome, redemptionId: string | null): ApplicationWrite {
  return {
    id,
    promotionId: o.promotionId,
    epoch,
    redemptionId,
    version: o.version,
    phaseName: o.phaseName,
    discountMinor: o.discountMinor,
    creditMinor: o.creditMinor,
    budgetConsumedMinor: o.budgetConsumedMinor,
    trialDays: o.trialDays,
    lines: o.lineDiscounts,
  };
}

/** A stored invoice answers a retry of the same request; a reversed one is refused whatever the request. */
function sameInvoice(stored: StoredInvoice, invoiceId: string, hash: string): PricedInvoice {
  refuseReversed(stored, invoiceId);
  return sameRequest(stored.priced, stored.requestHash, hash, {
    code: "invoice_id_reused",
    message: "this invoice_id was already priced with a different request",
    param: "invoice_id",
  });
}
