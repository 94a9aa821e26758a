import { randomUUID } from "node:crypto";
import type { Candidate, CandidatePromotion, InvoiceDraft, PricedInvoice, PromotionOutcome } from "../domain/billing.js";
import { DomainError } from "../domain/errors.js";
import { priceInvoice } from "../domain/pipeline.js";
import { rebuildCounters } from "../counters/rebuild.js";
import type { ApplicationWrite, RedemptionCandidate, StoredInvoice } from "../store/invoice-ledger.js";
import { invoiceRequestHash, sameRequest } from "./idempotency.js";
import type { CheckoutCounters, CheckoutStores } from "./ports.js";

// InvoiceService.ApplyPromotions: the one pricing pipeline on a real invoice. Budget is reserved
// in Redis per applied promotion (consume_budget.lua: CAP or STRICT, atomically), the ledger
// write is fenced by each promotion's counter epoch like a redemption's, and anything that does
// not reach the ledger is given back (or settled by the sweeper). When Redis grants less budget
// than the price assumed, the invoice is priced again with the budget as it now stands.

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

export interface InvoicerDeps {
  counters: CheckoutCounters;
  /** How long a budget reservation may stay unwritten before the sweeper settles it. */
  reservationTtlMs: number;
  clock?: () => Date;
}

export class Invoicer {
  private readonly counters: CheckoutCounters;
  private readonly reservationTtlMs: number;
  private readonly clock: () => Date;

  constructor(deps: InvoicerDeps) {
    this.counters = deps.counters;
    this.reservationTtlMs = deps.reservationTtlMs;
    this.clock = deps.clock ?? (() => new Date());
  }

  async apply(stores: CheckoutStores, organizationId: string, input: ApplyInput): Promise<{ priced: PricedInvoice; replayed: boolean }> {
    const { invoices } = stores;
    const hash = invoiceRequestHash(input);
    const replay = await invoices.find(organizationId, input.invoiceId);
    if (replay) return { priced: sameInvoice(replay, hash), replayed: true };

    const now = this.clock();
    const ctx = await stores.pricing.billingContext(
      organizationId,
      { customerId: input.customerId, subscriptionId: input.subscriptionId, invoice: input.invoice, periodStart: input.periodStart, periodEnd: input.periodEnd, at: input.periodStart ?? now },
      // A customer the billing system never pushed is priced as unknown (no segments, not known to be new).
      { requireKnownCustomer: false },
    );
    const customerId = ctx.customer?.id ?? input.customerId;
    const redeemed = customerId === "" ? [] : await invoices.redemptionCandidates(organizationId, customerId);
    const redeemedIds = new Set(redeemed.map((r) => r.promotion.id));
    const automatic = (await stores.pricing.automaticPromotions(organizationId, now)).filter((p) => !redeemedIds.has(p.id));
    const cycles = customerId === "" ? new Map<string, number>() : await invoices.automaticCycles(organizationId, customerId);

    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const budgets = await this.budgets(stores, [...redeemed.map((r) => r.promotion), ...automatic]);
      const candidates = [
        ...redeemed.map((r) => redemptionCandidate(r, budgets)),
        ...automatic.map((p) => automaticCandidate(p, cycles.get(p.id) ?? 0, budgets)),
      ];
      const byKey = new Map(candidates.map((c) => [c.key, c]));
      const priced = priceInvoice(ctx, candidates);

      const reserved: Reservation[] = [];
      const applications: ApplicationWrite[] = [];
      let short = false;
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
            short = true;
            break;
          }
          if (r.granted > 0n) reserved.push({ promotionId: outcome.promotionId, id });
          if (r.granted !== outcome.budgetConsumedMinor) {
            short = true; // the budget moved since we read it: price again with what is left
            break;
          }
          epoch = r.epoch;
        }
        applications.push(application(id, epoch, outcome, candidate.redemptionId));
      }
      if (short) {
        await this.giveBack(reserved);
        continue;
      }
      let written;
      try {
        written = await invoices.write(
          organizationId,
          { id: input.invoiceId, requestHash: hash, customerId: customerId === "" ? null : customerId, subscriptionId: input.subscriptionId === "" ? null : input.subscriptionId, priced, now },
          applications,
        );
      } catch (error) {
        await this.giveBack(reserved);
        throw new DomainError("unavailable", [{ param: "", code: "ledger_unavailable", message: "the invoice could not be recorded; nothing was applied; retry" }], { cause: error });
      }
      if (written.kind === "written") {
        for (const r of reserved) this.counters.confirmLater(r.promotionId, r.id);
        return { priced, replayed: false };
      }
      await this.giveBack(reserved);
      if (written.kind === "exists") return { priced: sameInvoice(written.stored, hash), replayed: true };
    }
    throw DomainError.of("unavailable", "counters_busy", "the budget counters kept moving; retry");
  }

  /** Live budget used per promotion (Redis, rebuilt from the ledger when missing). */
  private async budgets(stores: CheckoutStores, promotions: readonly CandidatePromotion[]): Promise<Map<string, bigint>> {
    const ids = [...new Set(promotions.filter((p) => p.terms.maxBudget !== null).map((p) => p.id))];
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const snapshot = await this.counters.snapshot(ids);
      const missing = ids.filter((id) => snapshot.get(id) == null);
      if (missing.length === 0) return new Map(ids.map((id) => [id, snapshot.get(id)?.budgetUsed ?? 0n]));
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

const withBudget = (p: CandidatePromotion, budgets: ReadonlyMap<string, bigint>): CandidatePromotion => ({ ...p, currentBudgetUsed: budgets.get(p.id) ?? 0n });

/** One of the customer's ACTIVE redemptions, on the terms of the version it pinned. */
function redemptionCandidate(r: RedemptionCandidate, budgets: ReadonlyMap<string, bigint>): Candidate {
  return {
    key: `redemption:${r.redemptionId}`,
    promotion: withBudget(r.promotion, budgets),
    cyclesUsed: r.cyclesUsed,
    redeemedAt: r.redeemedAt,
    redemptionId: r.redemptionId,
    allowDraft: false,
    code: null,
    alreadyRedeemed: true,
  };
}

/** An active promotion without a code; its phase is chosen by how many invoices of this customer it already priced. */
function automaticCandidate(p: CandidatePromotion, cyclesUsed: number, budgets: ReadonlyMap<string, bigint>): Candidate {
  return {
    key: `automatic:${p.id}`,
    promotion: withBudget(p, budgets),
    cyclesUsed,
    redeemedAt: null,
    redemptionId: null,
    allowDraft: false,
    code: null,
    alreadyRedeemed: false,
  };
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

function sameInvoice(stored: StoredInvoice, hash: string): PricedInvoice {
  return sameRequest(stored.priced, stored.requestHash, hash, {
    code: "invoice_id_reused",
    message: "this invoice_id was already priced with a different request",
    param: "invoice_id",
  });
}
