import { randomUUID } from "node:crypto";
import type { Check } from "../domain/billing.js";
import { DomainError, notFound } from "../domain/errors.js";
import { max } from "../domain/money.js";
import { summarizeEffects } from "../domain/pipeline.js";
import { failedChecksText, needsContext, redemptionEligibility, type CodeRestrictions, type RedeemRequest, type RedemptionKind } from "../domain/redemption.js";
import { totalCycles } from "../domain/phases.js";
import type { ReserveRequest, ReserveResult } from "../counters/counters.js";
import { isRefusal, refusalError, refusalOf, ReserveOutcome, type Refusal } from "../counters/outcomes.js";
import { rebuildCounters } from "../counters/rebuild.js";
import type { ResolvedCode } from "../store/code-store.js";
import type { RedemptionRow } from "../store/ledger.js";
import { withCounts } from "../store/promotion-views.js";
import type { NewEvent } from "../events/outbox.js";
import { promotionPayload, redemptionPayload } from "../events/payloads.js";
import { automaticRedemptionKey } from "./automatic.js";
import { redeemRequestHash, sameRequest } from "./idempotency.js";
import { settleReturns } from "./returns.js";
import type { CheckoutCounters, CheckoutStores, RedemptionLedger } from "./ports.js";
import type { TermsCache, TermsEntry } from "./terms-cache.js";

// The checkout hot path: ValidateCode, RedeemPromotion and ReleaseRedemption. Reserve in Redis
// (one script judges every limit and moves every counter), write the ledger row fenced by the
// counter epoch, confirm. Anything that stops between reserve and confirm is settled by the
// sweeper (sweeper.ts); src/counters/README.md has the argument.

/** How long a reservation may stay unwritten before the sweeper settles it (default). */
export const RESERVATION_TTL_MS = 10_000;
/** Rebuilds, stale terms and fenced writes are retried this many times before UNAVAILABLE. */
const MAX_ATTEMPTS = 50;
/** How often a call that met an idempotency key in flight looks for the earlier call's ledger row. */
const AWAIT_EARLIER_POLL_MS = 15;

export interface Validation {
  valid: boolean;
  reason: string;
  message: string;
  promotionId: string;
  publicDescription: string;
  effectSummary: string;
  checks: Check[];
  remainingRedemptions: bigint | null;
}

interface Target {
  terms: TermsEntry;
  code: ResolvedCode | null;
  /** The seq both entries were read at: the older of the two. */
  seq: bigint;
}

/** How one redemption is being taken. */
interface Admission {
  kind: RedemptionKind;
  idempotencyKey: string | null;
  requestHash: string;
  /**
   * The conditions were judged already (an automatic promotion priced on the real invoice), so
   * they are not judged again on the redeem request's context.
   */
  judged: boolean;
  /**
   * The caller holds this redemption's budget already (an automatic promotion's first invoice
   * reserved it first), so the budget is not judged again: the last of it is the caller's own.
   */
  budgetHeld?: boolean;
}

/** What one admission came to. */
type Admitted =
  | { kind: "redeemed"; row: RedemptionRow }
  /** An earlier redemption with the same idempotency key answers. */
  | { kind: "replayed"; row: RedemptionRow }
  | { kind: "refused"; outcome: Refusal }
  | { kind: "not_eligible"; checks: Check[] };

/** An automatic promotion's first application to a customer: its redemption, or the limit that refused it. */
export type AutomaticAdmission = { kind: "redeemed"; row: RedemptionRow } | { kind: "refused"; outcome: Refusal; message: string };

export interface RedeemerDeps {
  counters: CheckoutCounters;
  cache: TermsCache;
  reservationTtlMs?: number;
  clock?: () => Date;
  /** Told how each redeem was decided: "admitted", "duplicate" or the refusal code (metrics). */
  onOutcome?: (reason: string) => void;
}

export class Redeemer {
  readonly reservationTtlMs: number;
  private readonly counters: CheckoutCounters;
  private readonly cache: TermsCache;
  private readonly clock: () => Date;
  private readonly onOutcome: (reason: string) => void;

  constructor(deps: RedeemerDeps) {
    this.counters = deps.counters;
    this.cache = deps.cache;
    this.reservationTtlMs = deps.reservationTtlMs ?? RESERVATION_TTL_MS;
    this.clock = deps.clock ?? (() => new Date());
    this.onOutcome = deps.onOutcome ?? (() => undefined);
  }

  /** What redeem would answer now, with nothing moved. */
  async validate(stores: CheckoutStores, organizationId: string, input: RedeemRequest): Promise<Validation> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const now = this.clock();
      const target = await this.target(stores, organizationId, input);
      if (!target) {
        return { valid: false, reason: "code_not_found", message: "no live promotion has this code", promotionId: "", publicDescription: "", effectSummary: "", checks: [], remainingRedemptions: null };
      }
      const { view } = target.terms;
      const base = {
        promotionId: view.id,
        publicDescription: view.terms.publicDescription,
        effectSummary: summarizeEffects(view.terms),
      };
      if (view.terms.applicationMethod === "AUTOMATIC") {
        return { ...base, valid: false, reason: APPLIES_AUTOMATICALLY.code, message: APPLIES_AUTOMATICALLY.message, checks: [], remainingRedemptions: null };
      }
      const eligibility = await this.eligibility(stores, organizationId, input, target, now);
      // Check mode reads no reservation id (reserve.lua returns before it would).
      const result = await this.counters.reserve(this.reserveRequest("check", "", target, input, now, null));
      if (await this.retryable(stores, organizationId, target, result)) continue;
      const remaining = view.terms.maxRedemptions === null ? null : max(view.terms.maxRedemptions - result.redemptions, 0n);
      if (isRefusal(result.outcome)) {
        const r = refusalOf(result.outcome);
        return { ...base, valid: false, reason: r.code, message: r.message, checks: eligibility.checks, remainingRedemptions: remaining };
      }
      if (!eligibility.eligible) {
        return { ...base, valid: false, reason: "not_eligible", message: failedChecksText(eligibility.checks), checks: eligibility.checks, remainingRedemptions: remaining };
      }
      return { ...base, valid: true, reason: "", message: "", checks: eligibility.checks, remainingRedemptions: remaining };
    }
    throw busy();
  }

  async redeem(stores: CheckoutStores, organizationId: string, input: RedeemRequest): Promise<RedemptionRow> {
    const requestHash = redeemRequestHash(input);
    const idempotencyKey = input.idempotencyKey === "" ? null : input.idempotencyKey;
    const result = await this.admit(stores, organizationId, input, (target) => {
      if (target.terms.view.terms.applicationMethod === "AUTOMATIC") {
        this.onOutcome(APPLIES_AUTOMATICALLY.code);
        throw DomainError.of("failed_precondition", APPLIES_AUTOMATICALLY.code, APPLIES_AUTOMATICALLY.message, "promotion_id");
      }
      return { kind: target.code === null && target.terms.view.terms.applicationMethod === "ASSIGNED" ? "ASSIGNED" : "CODE", idempotencyKey, requestHash, judged: false };
    });
    switch (result.kind) {
      case "redeemed":
        return result.row;
      case "replayed":
        return this.replay(result.row, requestHash);
      case "refused":
        this.onOutcome(refusalOf(result.outcome).code);
        throw refusalError(result.outcome);
      case "not_eligible":
        this.onOutcome("not_eligible");
        throw new DomainError("failed_precondition", [{ param: "", code: "not_eligible", message: `not eligible: ${failedChecksText(result.checks)}` }]);
    }
  }

  /**
   * An automatic promotion's first application to a customer: its redemption (kind AUTOMATIC),
   * taken under the same counters, fence and group commit as a code's. The pipeline judged the
   * invoice already; the customer's one key makes concurrent invoices take one redemption.
   */
  async admitAutomatic(stores: CheckoutStores, organizationId: string, promotionId: string, customerId: string): Promise<AutomaticAdmission> {
    const input: RedeemRequest = { code: "", promotionId, customerId, subscriptionId: "", invoice: null, idempotencyKey: automaticRedemptionKey(promotionId, customerId), metadata: {} };
    const requestHash = redeemRequestHash(input);
    const result = await this.admit(stores, organizationId, input, () => ({ kind: "AUTOMATIC", idempotencyKey: input.idempotencyKey, requestHash, judged: true, budgetHeld: true }));
    switch (result.kind) {
      case "redeemed":
      case "replayed":
        return { kind: "redeemed", row: result.row };
      case "refused":
        return { kind: "refused", outcome: result.outcome, message: refusalOf(result.outcome).message };
      case "not_eligible":
        throw new Error("an automatic admission is judged by the pipeline, never here");
    }
  }

  /**
   * Reserve in Redis, write the ledger row fenced by the counter epoch, confirm — retrying what
   * means "try again" (rebuilt counters, stale terms, a fenced write, an earlier call given back).
   */
  private async admit(stores: CheckoutStores, organizationId: string, input: RedeemRequest, how: (target: Target) => Admission): Promise<Admitted> {
    const { ledger } = stores;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const now = this.clock();
      const target = await this.target(stores, organizationId, input);
      if (!target) {
        this.onOutcome("code_not_found");
        throw DomainError.of("not_found", "code_not_found", "no live promotion has this code", input.code !== "" ? "code" : "promotion_id");
      }
      const admission = how(target);
      const eligibility = admission.judged ? { eligible: true, checks: [] } : await this.eligibility(stores, organizationId, input, target, now);

      // An ineligible request is judged without moving anything (check mode), so its answer keeps
      // the precedence ValidateCode gives (a limit refusal first) and it never holds a slot that a
      // concurrent eligible redemption at the limit would be refused for. Check mode reads no
      // reservation id.
      const mode = eligibility.eligible ? "redeem" : "check";
      const id = mode === "redeem" ? randomUUID() : "";
      const { idempotencyKey } = admission;
      const request = this.reserveRequest(mode, id, target, input, now, idempotencyKey);
      const result = await this.counters.reserve(admission.budgetHeld === true ? { ...request, maxBudget: null, budgetExhausted: false } : request);
      if (await this.retryable(stores, organizationId, target, result)) continue;
      if (result.outcome === ReserveOutcome.Duplicate) {
        const earlier = await this.awaitEarlier(ledger, organizationId, result.earlier);
        if (!earlier) continue; // given back meanwhile: decide afresh
        return { kind: "replayed", row: earlier };
      }
      // Refused (a limit first, then eligibility): an earlier redemption with this idempotency key
      // still answers; else the refusal does.
      const outcome = result.outcome;
      if (isRefusal(outcome) || !eligibility.eligible) {
        const replay = idempotencyKey === null ? null : await ledger.findByIdempotencyKey(organizationId, idempotencyKey);
        if (replay) return { kind: "replayed", row: replay };
        return isRefusal(outcome) ? { kind: "refused", outcome } : { kind: "not_eligible", checks: eligibility.checks };
      }
      // Admitted: from here the reservation must be written or given back.
      const { view } = target.terms;
      const row: RedemptionRow = {
        id,
        organizationId,
        promotionId: view.id,
        status: "ACTIVE",
        kind: admission.kind,
        epoch: result.epoch,
        promotionVersionId: view.liveVersionId,
        version: view.liveVersion,
        codeId: target.code?.codeId ?? null,
        code: target.code?.code ?? null,
        customerId: input.customerId,
        subscriptionId: input.subscriptionId === "" ? null : input.subscriptionId,
        idempotencyKey,
        requestHash: admission.requestHash,
        cyclesUsed: 0,
        cyclesTotal: totalCycles(view.terms.phases),
        metadata: input.metadata,
        createdAt: now,
        releasedAt: null,
        completedAt: null,
        endedAt: null,
        endReason: null,
      };
      // Written by the ledger row's own statement, so only if the row is: a fenced or duplicate
      // row writes none, and its retry decides afresh.
      const events: NewEvent[] = [{ organizationId, type: "redemption.created", payload: redemptionPayload(row), createdAt: now, requestId: stores.requestId }];
      const limit = view.terms.maxRedemptions;
      if (limit !== null && result.redemptions === limit) {
        // reserve.lua admits exactly one reservation at n == max_redemptions per exhaustion.
        events.push({
          organizationId,
          type: "promotion.exhausted",
          payload: promotionPayload(withCounts(view, result.redemptions, result.budgetUsed, now)),
          createdAt: now,
          requestId: stores.requestId,
          dedupeKey: `promotion.exhausted:${view.id}:${id}`,
        });
      }
      let written;
      try {
        written = await ledger.write(row, events);
      } catch (error) {
        await this.giveBack(view.id, id, idempotencyKey);
        throw new DomainError("unavailable", [{ param: "", code: "ledger_unavailable", message: "the redemption could not be recorded; nothing was redeemed; retry" }], { cause: error });
      }
      if (written.kind === "written") {
        this.counters.confirmLater(view.id, id);
        this.onOutcome("admitted");
        return { kind: "redeemed", row };
      }
      await this.giveBack(view.id, id, idempotencyKey);
      if (written.kind === "duplicate_key") return { kind: "replayed", row: written.existing };
      // Fenced: Postgres is at a newer epoch than the counters that admitted this; from now on
      // those counters answer NOT_HYDRATED here and the next attempt rebuilds them (no wedge when
      // a rebuild counted a new epoch and never installed it). Tombstoned: decide afresh.
      if (written.kind === "fenced") this.counters.raiseFloor(view.id, await ledger.counterEpoch(view.id));
    }
    throw busy();
  }

  /** Marks the redemption RELEASED in the ledger, then frees its slot in the counters that counted it (returns.ts). */
  async release(stores: CheckoutStores, organizationId: string, id: string): Promise<RedemptionRow> {
    const now = this.clock();
    const released = await stores.ledger.releaseRedemption(organizationId, id, now);
    if (released.returned) await settleReturns(this.counters, stores.ledger, [released.returned], now);
    return released.row;
  }

  /** Handles the outcomes that mean "try again": not hydrated (rebuild) and stale terms (reload). */
  private async retryable(stores: CheckoutStores, organizationId: string, target: Target, result: ReserveResult): Promise<boolean> {
    const promotionId = target.terms.view.id;
    if (result.outcome === ReserveOutcome.NotHydrated) {
      await rebuildCounters(this.counters, promotionId, () => stores.ledger.rebuild(promotionId));
      return true;
    }
    if (result.outcome === ReserveOutcome.StaleTerms) {
      this.cache.forget(organizationId, promotionId);
      return true;
    }
    return false;
  }

  private async target(stores: CheckoutStores, organizationId: string, input: RedeemRequest): Promise<Target | null> {
    const now = this.clock();
    if (input.code === "") {
      const terms = await this.cache.load(stores.catalog, organizationId, input.promotionId, now);
      if (!terms) throw notFound("promotion", input.promotionId, "promotion_id");
      return { terms, code: null, seq: terms.seq };
    }
    const code = await this.cache.code(stores.catalog, organizationId, input.code);
    if (!code) return null;
    if (input.promotionId !== "" && input.promotionId !== code.resolved.promotionId) {
      throw DomainError.of("invalid_argument", "mismatch", "the code belongs to another promotion than promotion_id", "promotion_id");
    }
    const terms = await this.cache.load(stores.catalog, organizationId, code.resolved.promotionId, now);
    if (!terms) return null;
    return { terms, code: code.resolved, seq: terms.seq < code.seq ? terms.seq : code.seq };
  }

  private reserveRequest(mode: "redeem" | "check", id: string, target: Target, input: RedeemRequest, now: Date, idempotencyKey: string | null): ReserveRequest {
    const { view } = target.terms;
    const code = target.code;
    return {
      mode,
      promotionId: view.id,
      reservationId: id,
      now: now.getTime(),
      deadline: now.getTime() + this.reservationTtlMs,
      termsSeq: target.seq,
      customerId: input.customerId,
      codeId: code?.codeId ?? null,
      status: view.status,
      validFrom: view.terms.validFrom,
      validTo: view.terms.validTo,
      codeActive: code?.active ?? true,
      codeExpiresAt: code?.expiresAt ?? null,
      maxRedemptions: view.terms.maxRedemptions,
      maxPerCustomer: view.terms.maxRedemptionsPerCustomer,
      codeMaxRedemptions: code?.maxRedemptions ?? null,
      maxBudget: view.terms.maxBudget,
      budgetExhausted: view.budgetExhausted,
      idempotencyKey,
    };
  }

  private async eligibility(stores: CheckoutStores, organizationId: string, input: RedeemRequest, target: Target, now: Date): Promise<{ eligible: boolean; checks: Check[] }> {
    const restrictions: CodeRestrictions | null = target.code
      ? { minAmountMinor: target.code.minAmountMinor, firstTimeCustomersOnly: target.code.firstTimeCustomersOnly }
      : null;
    const { terms } = target.terms.view;
    if (!needsContext(terms, restrictions)) return { eligible: true, checks: [] };
    const ctx = await stores.pricing.billingContext(
      organizationId,
      { customerId: input.customerId, subscriptionId: input.subscriptionId, invoice: input.invoice, periodStart: null, periodEnd: null, at: now },
      { requireKnownCustomer: false, emptyInvoiceCurrency: terms.currency },
    );
    return redemptionEligibility(terms, restrictions, ctx);
  }

  /** An earlier redemption with the same idempotency key answers this call (if it was the same request). */
  private replay(row: RedemptionRow, requestHash: string): RedemptionRow {
    this.onOutcome(row.requestHash === requestHash ? "duplicate" : "idempotency_key_reused");
    return sameRequest(row, row.requestHash, requestHash, {
      code: "idempotency_key_reused",
      message: "this idempotency_key was used for a different request",
      param: "idempotency_key",
    });
  }

  /** Gives back an admitted reservation; its idempotency marker is known from the key it was made with. */
  private async giveBack(promotionId: string, id: string, idempotencyKey: string | null): Promise<void> {
    const marker = idempotencyKey === null ? "" : this.counters.keys(promotionId).idempotency(idempotencyKey);
    // When Redis is unreachable the reservation stays pending and the sweeper settles it.
    await this.counters.giveBack(promotionId, id, marker).catch(() => false);
  }

  /** Waits for the ledger row of an earlier reservation with the same idempotency key. */
  private async awaitEarlier(ledger: RedemptionLedger, organizationId: string, id: string): Promise<RedemptionRow | null> {
    const deadline = Date.now() + this.reservationTtlMs + 2_000;
    while (Date.now() < deadline) {
      const { row, abandoned } = await ledger.findReservation(organizationId, id);
      if (row) return row;
      if (abandoned) return null;
      await new Promise((r) => setTimeout(r, AWAIT_EARLIER_POLL_MS));
    }
    return null;
  }
}

/** An AUTOMATIC promotion is never redeemed by a client: its first invoice is its redemption. */
const APPLIES_AUTOMATICALLY = {
  code: "applies_automatically",
  message: "this promotion applies automatically to every eligible customer; it is not redeemed (use an ASSIGNED promotion to give it to chosen customers)",
};

function busy(): DomainError {
  return DomainError.of("unavailable", "counters_busy", "the promotion's counters are being rebuilt; retry");
}
