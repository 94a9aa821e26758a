import { describe, expect, it } from "vitest";
import { automaticRedemptionKey } from "../../../src/checkout/automatic.js";
import { Invoicer } from "../../../src/checkout/invoicer.js";
import { Redeemer } from "../../../src/checkout/redeemer.js";
import { TermsCache } from "../../../src/checkout/terms-cache.js";
import type { CheckoutStores } from "../../../src/checkout/ports.js";
import type { CandidatePromotion, PricedInvoice } from "../../../src/domain/billing.js";
import type { PromotionTerms } from "../../../src/domain/terms.js";
import type { ApplicationWrite, InvoiceWrite, RedemptionCandidate } from "../../../src/store/invoice-ledger.js";
import { AT, context, line, pct, terms } from "../support/pricing.js";
import { MemoryCatalog, MemoryLedger, ORG, PROMOTION, ScriptedCounters, stores } from "./fakes.js";

// The decisions of ApplyPromotions (src/checkout/invoicer.ts) on a scripted counters face: budget
// that moved since the price was computed, a fenced write, and outcomes mapped back to the
// candidates they are about.

const promotion = (over: Partial<PromotionTerms> = {}, id = PROMOTION): CandidatePromotion => ({
  id,
  createdAt: AT,
  status: "ACTIVE",
  version: 1,
  terms: terms([pct(1000)], over),
  currentRedemptions: 0n,
  currentBudgetUsed: 0n,
});

interface Written {
  priced: PricedInvoice;
  applications: readonly ApplicationWrite[];
}

function setup(opts: { automatic?: CandidatePromotion[]; redeemed?: RedemptionCandidate[]; writes?: InvoiceWrite["kind"][] } = {}) {
  const counters = new ScriptedCounters();
  const written: Written[] = [];
  const writes = [...(opts.writes ?? [])];
  const base = stores(new MemoryLedger(), new MemoryCatalog());
  const s: CheckoutStores = {
    ...base,
    invoices: {
      find: async () => null,
      redemptionCandidates: async () => opts.redeemed ?? [],
      redeemedPromotions: async () => new Set((opts.redeemed ?? []).map((r) => r.promotion.id)),
      write: async (_org, invoice, applications) => {
        const kind = writes.shift() ?? "written";
        if (kind === "written") written.push({ priced: invoice.priced, applications });
        if (kind === "exists") throw new Error("not scripted");
        return kind === "written" ? { kind, termsChanged: [] } : { kind: "fenced" };
      },
      reverse: base.invoices.reverse,
    },
    pricing: {
      billingContext: async () => context([line("l1", 10_000n)]),
      automaticPromotions: async () => opts.automatic ?? [],
    },
  };
  const redeemer = new Redeemer({ counters, cache: new TermsCache(), clock: () => AT });
  const invoicer = new Invoicer({ counters, redeemer, reservationTtlMs: 1_000, clock: () => AT });
  const apply = () => invoicer.apply(s, ORG, { invoiceId: "in_1", customerId: "cus_1", subscriptionId: "", invoice: { currency: "USD", lines: [] }, periodStart: null, periodEnd: null });
  return { counters, written, apply };
}

describe("ApplyPromotions decisions", () => {
  it("prices again with what is left when Redis grants less budget than the price assumed, giving the short grant back", async () => {
    const { counters, written, apply } = setup({ automatic: [promotion({ maxBudget: 1_000n, budgetBehavior: "CAP" })] });
    // Another invoice spent 600 since the budget was read: Redis grants only the 400 left, and the
    // next read of the counters shows the 600.
    counters.grants = [400n];
    const consume = counters.consumeBudget.bind(counters);
    counters.consumeBudget = async (r) => {
      const grant = await consume(r);
      if (grant.granted < r.amount) counters.budgetUsed.set(r.promotionId, 600n);
      return grant;
    };
    const { priced } = await apply();
    expect(counters.budgetCalls.map((c) => c.amount)).toEqual([1_000n, 400n]);
    expect(counters.givenBack).toHaveLength(1);
    expect(priced.discountMinor).toBe(400n);
    expect(written).toHaveLength(1);
    expect(written[0]?.applications.map((a) => a.budgetConsumedMinor)).toEqual([400n]);
    // Confirmed: the automatic promotion's first redemption, then the budget the invoice wrote.
    const redemption = written[0]?.applications[0]?.redemptionId;
    expect(counters.confirmed.map((c) => c.reservationId)).toEqual([redemption, ...(written[0]?.applications.map((a) => a.id) ?? [])]);
    expect(counters.reserves.map((r) => [r.mode, r.customerId, r.idempotencyKey])).toEqual([["redeem", "cus_1", automaticRedemptionKey(PROMOTION, "cus_1")]]);
  });

  it("gives the budget back when the invoice write is fenced, and writes on the next attempt", async () => {
    const { counters, written, apply } = setup({ automatic: [promotion({ maxBudget: 5_000n })], writes: ["fenced", "written"] });
    await apply();
    expect(counters.budgetCalls).toHaveLength(2);
    expect(counters.givenBack).toHaveLength(1);
    expect(counters.givenBack[0]?.reservationId).not.toBe(written[0]?.applications[0]?.id);
    expect(written).toHaveLength(1);
    // The fenced promotion's counters are held to the ledger's epoch from then on.
    expect(counters.floors.map((f) => f.promotionId)).toEqual([PROMOTION]);
  });

  it("records each applied outcome against the candidate it is about: a redemption's application names the redemption", async () => {
    const redeemed: RedemptionCandidate = { redemptionId: "00000000-0000-4000-8000-0000000000d1", kind: "CODE", history: { trialExtended: false, lastPeriodEnd: null }, cyclesUsed: 2, redeemedAt: new Date("2026-01-01T00:00:00Z"), promotion: promotion({ stackable: true }, "00000000-0000-4000-8000-0000000000b2") };
    const automatic = promotion({ stackable: true });
    const { written, apply } = setup({ redeemed: [redeemed], automatic: [automatic] });
    const { priced } = await apply();
    expect(priced.promotions.map((o) => [o.candidateKey, o.applied])).toEqual(
      expect.arrayContaining([[`redemption:${redeemed.redemptionId}`, true], [`automatic:${automatic.id}`, true]]),
    );
    const byPromotion = new Map(written[0]?.applications.map((a) => [a.promotionId, a.redemptionId]));
    expect(byPromotion.get(redeemed.promotion.id)).toBe(redeemed.redemptionId);
    // The automatic promotion's first application took its redemption; the application and the outcome name it.
    const taken = byPromotion.get(automatic.id);
    expect(taken).toEqual(expect.stringMatching(/^[0-9a-f-]{36}$/));
    expect(priced.promotions.find((o) => o.promotionId === automatic.id)?.redemptionId).toBe(taken);
  });

  it("applies an existing redemption after its promotion was archived and its window closed (they gated the redemption, not its use)", async () => {
    const archived = { ...promotion({ validTo: new Date("2026-01-31T00:00:00Z") }, "00000000-0000-4000-8000-0000000000b3"), status: "ARCHIVED" as const };
    const redeemed: RedemptionCandidate = { redemptionId: "00000000-0000-4000-8000-0000000000d2", kind: "CODE", history: { trialExtended: false, lastPeriodEnd: null }, cyclesUsed: 0, redeemedAt: new Date("2026-01-10T00:00:00Z"), promotion: archived };
    const { priced } = await setup({ redeemed: [redeemed] }).apply();
    const [outcome] = priced.promotions;
    expect(outcome).toMatchObject({ applied: true, discountMinor: 1_000n });
    expect(outcome?.checks.find((c) => c.check === "status")).toMatchObject({ passed: true });
    expect(outcome?.checks.find((c) => c.check === "validity_window")).toMatchObject({ passed: true });
  });
});
