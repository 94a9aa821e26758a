import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Candidate, CandidatePromotion, InvoiceDraft, PricedInvoice, PromotionOutcome } from "../domain/billing.js";
import { DomainError } from "../domain/errors.js";
import { requestHash } from "../domain/request-hash.js";
import { compareCandidates, priceInvoice } from "../domain/pipeline.js";
import { InvoiceLedger, type ApplicationWrite, type RedemptionCandidate } from "../store/invoice-ledger.js";
import { automaticPromotions, loadBillingContext } from "../store/pricing-context.js";
import type { Counters } from "./counters.js";
import type { Redeemer } from "./redeemer.js";

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

export class Invoicer {
  constructor(
    private readonly counters: Counters,
    private readonly redeemer: Redeemer,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async apply(em: EntityManager, organizationId: string, input: ApplyInput): Promise<{ priced: PricedInvoice; replayed: boolean }> {
    const ledger = new InvoiceLedger(em);
    const hash = requestHash(input);
    const replay = await ledger.find(organizationId, input.invoiceId);
    if (replay) return { priced: sameRequest(replay, hash), replayed: true };

    const now = this.clock();
    const ctx = await loadBillingContext(em, organizationId, {
      customerId: input.customerId,
      subscriptionId: input.subscriptionId,
      invoice: input.invoice,
      periodStart: input.periodStart,
      periodEnd: input.periodEnd,
      at: input.periodStart ?? now,
      // A customer the billing system never pushed is priced as unknown (no segments, not known to be new).
      requireKnownCustomer: false,
    });
    const customerId = ctx.customer?.id ?? input.customerId;
    const redeemed = customerId === "" ? [] : await ledger.redemptionCandidates(organizationId, customerId);
    const redeemedIds = new Set(redeemed.map((r) => r.promotion.id));
    const automatic = (await automaticPromotions(em, organizationId, now)).filter((p) => !redeemedIds.has(p.id));
    const cycles = customerId === "" ? new Map<string, number>() : await ledger.automaticCycles(organizationId, customerId);

    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const budgets = await this.budgets(em, [...redeemed.map((r) => r.promotion), ...automatic]);
      const candidates = this.candidates(redeemed, automatic, cycles, budgets);
      const priced = priceInvoice(ctx, candidates);
      const ordered = [...candidates].sort(compareCandidates);

      const reserved: Reservation[] = [];
      const applications: ApplicationWrite[] = [];
      let short = false;
      for (const [i, outcome] of priced.promotions.entries()) {
        const candidate = ordered[i];
        if (!outcome.applied || !candidate) continue;
        const id = randomUUID();
        let epoch: bigint | null = null;
        if (outcome.budgetConsumedMinor > 0n) {
          const terms = candidate.promotion.terms;
          const r = await this.counters.consumeBudget({
            promotionId: outcome.promotionId,
            reservationId: id,
            deadline: now.getTime() + this.redeemer.reservationTtlMs,
            maxBudget: terms.maxBudget,
            amount: outcome.budgetConsumedMinor,
            behavior: terms.budgetBehavior,
          });
          if (!r.hydrated) {
            await this.redeemer.hydrate(em, outcome.promotionId);
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
        applications.push(application(id, epoch, outcome, redemptionIdOf(candidate, redeemed)));
      }
      if (short) {
        await this.giveBack(reserved);
        continue;
      }
      let written;
      try {
        written = await ledger.write(
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
      if (written.kind === "exists") return { priced: sameRequest(written.stored, hash), replayed: true };
    }
    throw DomainError.of("unavailable", "counters_busy", "the budget counters kept moving; retry");
  }

  /** Live budget used per promotion (Redis, rebuilt from the ledger when missing). */
  private async budgets(em: EntityManager, promotions: readonly CandidatePromotion[]): Promise<Map<string, bigint>> {
    const ids = [...new Set(promotions.filter((p) => p.terms.maxBudget !== null).map((p) => p.id))];
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const snapshot = await this.counters.snapshot(ids);
      const missing = ids.filter((id) => snapshot.get(id) == null);
      if (missing.length === 0) return new Map(ids.map((id) => [id, snapshot.get(id)?.budgetUsed ?? 0n]));
      for (const id of missing) await this.redeemer.hydrate(em, id);
    }
    throw DomainError.of("unavailable", "counters_busy", "the budget counters are being rebuilt; retry");
  }

  private candidates(
    redeemed: readonly RedemptionCandidate[],
    automatic: readonly CandidatePromotion[],
    cycles: ReadonlyMap<string, number>,
    budgets: ReadonlyMap<string, bigint>,
  ): Candidate[] {
    const withBudget = (p: CandidatePromotion): CandidatePromotion => ({ ...p, currentBudgetUsed: budgets.get(p.id) ?? 0n });
    return [
      ...redeemed.map((r) => ({
        promotion: withBudget(r.promotion),
        cyclesUsed: r.cyclesUsed,
        redeemedAt: r.redeemedAt,
        allowDraft: false,
        code: null,
        alreadyRedeemed: true,
      })),
      ...automatic.map((p) => ({
        promotion: withBudget(p),
        cyclesUsed: cycles.get(p.id) ?? 0,
        redeemedAt: null,
        allowDraft: false,
        code: null,
        alreadyRedeemed: false,
      })),
    ];
  }

  private async giveBack(reserved: readonly Reservation[]): Promise<void> {
    // Budget reservations set no idempotency marker (consume_budget.lua).
    for (const r of reserved) await this.counters.giveBack(r.promotionId, r.id, "").catch(() => false);
  }
}

function redemptionIdOf(candidate: Candidate, redeemed: readonly RedemptionCandidate[]): string | null {
  return redeemed.find((r) => r.promotion.id === candidate.promotion.id && r.cyclesUsed === candidate.cyclesUsed && r.redeemedAt === candidate.redeemedAt)?.redemptionId ?? null;
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

function sameRequest(stored: { requestHash: string; priced: PricedInvoice }, requestHash: string): PricedInvoice {
  if (stored.requestHash !== requestHash) {
    throw DomainError.of("already_exists", "invoice_id_reused", "this invoice_id was already priced with a different request", "invoice_id");
  }
  return stored.priced;
}

