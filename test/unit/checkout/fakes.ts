// Fakes for the checkout use cases' unit tests: a scripted counters face (each reserve answers
// what the test queued, and every call is recorded) and an in-memory ledger and catalog. They
// stand in for Redis and Postgres only here, where the subject is the use case's decisions
// (retry, give back, wait, replay); the real scripts and ledger are proven in test/integration
// and test/e2e.
import type { CheckoutCounters, CheckoutStores } from "../../../src/checkout/ports.js";
import type { ReserveRequest, ReserveResult } from "../../../src/counters/counters.js";
import { promotionKeys } from "../../../src/counters/keys.js";
import { ReserveOutcome } from "../../../src/counters/outcomes.js";
import type { BillingContext } from "../../../src/domain/billing.js";
import type { PromotionTerms } from "../../../src/domain/terms.js";
import type { ResolvedCode } from "../../../src/store/code-store.js";
import type { CounterReturn, Rebuilt, RedemptionRow, RedemptionWrite } from "../../../src/store/ledger.js";
import type { TermsInForce } from "../../../src/store/promotion-views.js";
import { AT, terms as baseTerms } from "../support/pricing.js";

export const ORG = "00000000-0000-4000-8000-00000000000a";
export const PROMOTION = "00000000-0000-4000-8000-0000000000b1";

export const admitted = (epoch = 1n, n = 1n): ReserveResult => ({ outcome: ReserveOutcome.Admitted, epoch, earlier: "", redemptions: n, budgetUsed: 0n });
export const outcome = (o: ReserveOutcome, extra = ""): ReserveResult => ({ outcome: o, epoch: 1n, earlier: extra, redemptions: 0n, budgetUsed: 0n });

/** Counters whose reserve answers come from a queue; the last answer repeats when the queue runs dry. */
export class ScriptedCounters implements CheckoutCounters {
  readonly reserves: ReserveRequest[] = [];
  readonly givenBack: { promotionId: string; reservationId: string; marker: string | undefined }[] = [];
  readonly confirmed: { promotionId: string; reservationId: string }[] = [];
  readonly returned: CounterReturn[] = [];
  readonly installed: Rebuilt[] = [];
  readonly budgetCalls: { promotionId: string; amount: bigint }[] = [];
  /** What consumeBudget grants per call, in order (default: all it is asked for). */
  grants: (bigint | "not_hydrated")[] = [];
  budgetUsed = new Map<string, bigint | null>();
  hydrated = true;
  /** Every raiseFloor call, in order. */
  readonly floors: { promotionId: string; epoch: bigint }[] = [];

  constructor(private readonly answers: ReserveResult[] = [admitted()]) {}

  keys(promotionId: string) {
    return promotionKeys("fake:", promotionId);
  }

  async reserve(r: ReserveRequest): Promise<ReserveResult> {
    this.reserves.push(r);
    const answer = this.answers.length > 1 ? this.answers.shift() : this.answers[0];
    if (!answer) throw new Error("no scripted answer");
    return answer;
  }

  async consumeBudget(r: Parameters<CheckoutCounters["consumeBudget"]>[0]): ReturnType<CheckoutCounters["consumeBudget"]> {
    this.budgetCalls.push({ promotionId: r.promotionId, amount: r.amount });
    const grant = this.grants.length > 0 ? this.grants.shift() : r.amount;
    if (grant === "not_hydrated") return { hydrated: false, epoch: 0n, granted: 0n, budgetUsed: 0n };
    const granted = grant ?? r.amount;
    return { hydrated: true, epoch: 1n, granted, budgetUsed: granted };
  }

  async giveBack(promotionId: string, reservationId: string, marker?: string): Promise<boolean> {
    this.givenBack.push({ promotionId, reservationId, marker });
    return true;
  }

  confirmLater(promotionId: string, reservationId: string): void {
    this.confirmed.push({ promotionId, reservationId });
  }

  async applyReturn(r: CounterReturn): Promise<"applied" | "other_epoch" | "already" | "not_yet"> {
    if (this.returned.some((x) => x.id === r.id)) return "already";
    this.returned.push(r);
    return "applied";
  }

  async snapshot(ids: readonly string[]) {
    return new Map(ids.map((id) => [id, this.hydrated ? { epoch: 1n, seq: 1n, redemptions: 0n, budgetUsed: this.budgetUsed.get(id) ?? 0n } : null]));
  }

  async lockRebuild(): Promise<boolean> {
    return true;
  }

  async extendRebuildLock(): Promise<boolean> {
    return true;
  }

  async unlockRebuild(): Promise<void> {}

  raiseFloor(promotionId: string, epoch: bigint): void {
    this.floors.push({ promotionId, epoch });
  }

  async isHydrated(): Promise<boolean> {
    return this.hydrated;
  }

  async install(_promotionId: string, rebuilt: Rebuilt): Promise<"installed"> {
    this.installed.push(rebuilt);
    this.hydrated = true;
    return "installed";
  }
}

/** The redemption ledger in memory; `writes` scripts what each write answers (default: written). */
export class MemoryLedger {
  readonly rows = new Map<string, RedemptionRow>();
  readonly abandoned = new Set<string>();
  writes: (RedemptionWrite["kind"] | Error)[] = [];
  rebuilds = 0;
  /** promotions.counter_epoch as a fenced write would find it. */
  epoch = 1n;
  /** Called on every findReservation, so a test can land an earlier call's row mid-wait. */
  onFindReservation: (id: string, polls: number) => void = () => undefined;
  private polls = 0;

  async write(row: RedemptionRow): Promise<RedemptionWrite> {
    const next = this.writes.shift() ?? "written";
    if (next instanceof Error) throw next;
    if (next === "written") {
      this.rows.set(row.id, row);
      return { kind: "written" };
    }
    if (next === "duplicate_key") {
      const existing = [...this.rows.values()].find((r) => r.idempotencyKey === row.idempotencyKey);
      if (!existing) throw new Error("scripted duplicate_key without an existing row");
      return { kind: "duplicate_key", existing };
    }
    return { kind: next };
  }

  async findByIdempotencyKey(organizationId: string, key: string): Promise<RedemptionRow | null> {
    return [...this.rows.values()].find((r) => r.organizationId === organizationId && r.idempotencyKey === key) ?? null;
  }

  async findReservation(organizationId: string, id: string): Promise<{ row: RedemptionRow | null; abandoned: boolean }> {
    this.onFindReservation(id, ++this.polls);
    const row = this.rows.get(id);
    return { row: row && row.organizationId === organizationId ? row : null, abandoned: this.abandoned.has(id) };
  }

  readonly settledReturns: string[] = [];

  async releaseRedemption(organizationId: string, id: string, now: Date): Promise<{ row: RedemptionRow; changed: boolean; returned: CounterReturn | null }> {
    const row = this.rows.get(id);
    if (!row || row.organizationId !== organizationId) throw new Error("not found");
    if (row.status === "RELEASED") return { row, changed: false, returned: null };
    const released: RedemptionRow = { ...row, status: "RELEASED", releasedAt: now };
    this.rows.set(id, released);
    const returned: CounterReturn = { id: `return-${id}`, organizationId, promotionId: row.promotionId, epoch: row.epoch, kind: "RELEASE", customerId: row.customerId, codeId: row.codeId, amountMinor: 0n };
    return { row: released, changed: true, returned };
  }

  async markReturnsApplied(ids: readonly string[]): Promise<void> {
    this.settledReturns.push(...ids);
  }

  async counterEpoch(): Promise<bigint> {
    return this.epoch;
  }

  async rebuild(): Promise<Rebuilt> {
    this.rebuilds++;
    this.epoch++;
    return { epoch: this.epoch, seq: 1n, redemptions: BigInt(this.rows.size), budgetUsed: 0n, perCustomer: new Map(), perCode: new Map() };
  }
}

export function termsInForce(over: Partial<PromotionTerms> = {}, status: TermsInForce["status"] = "ACTIVE"): TermsInForce {
  return {
    id: PROMOTION,
    organizationId: ORG,
    status,
    version: 1,
    headVersionId: "00000000-0000-4000-8000-0000000000c1",
    liveVersion: 1,
    liveVersionId: "00000000-0000-4000-8000-0000000000c1",
    publishedAt: AT,
    publishedBy: null,
    createdAt: AT,
    updatedAt: AT,
    archivedAt: null,
    deletedAt: null,
    budgetExhausted: false,
    terms: baseTerms([{ kind: "percentage_discount", percentBps: 1000, appliesTo: null }], { code: "SAVE10", applicationMethod: "CODE", ...over }),
  };
}

/** A catalog of one promotion and its primary code; `seq` moves when a test says the terms changed. */
export class MemoryCatalog {
  seq = 1n;
  termsLoads = 0;
  constructor(public view: TermsInForce = termsInForce()) {}

  async checkoutTerms(organizationId: string, promotionId: string) {
    this.termsLoads++;
    if (organizationId !== this.view.organizationId || promotionId !== this.view.id) return undefined;
    return { view: this.view, seq: this.seq, nextVersionAt: null };
  }

  async resolveCode(organizationId: string, code: string): Promise<ResolvedCode | null> {
    if (organizationId !== this.view.organizationId || code.trim().toUpperCase() !== this.view.terms.code) return null;
    return { promotionId: this.view.id, codeId: null, code: this.view.terms.code, active: true, maxRedemptions: null, minAmountMinor: null, firstTimeCustomersOnly: false, expiresAt: null, termsSeq: this.seq };
  }
}

export function stores(ledger: MemoryLedger, catalog: MemoryCatalog, context?: Partial<BillingContext>): CheckoutStores {
  return {
    requestId: null,
    ledger,
    invoices: {
      find: async () => null,
      redemptionCandidates: async () => [],
      redeemedPromotions: async () => new Set(),
      write: async () => ({ kind: "written", termsChanged: [] }),
      reverse: async () => {
        throw new Error("not used here");
      },
    },
    catalog,
    pricing: {
      billingContext: async () => ({ customer: null, subscription: null, invoice: { currency: "USD", lines: [] }, periodStart: AT, periodEnd: AT, at: AT, ...context }),
      automaticPromotions: async () => [],
    },
  };
}
