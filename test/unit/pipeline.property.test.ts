import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BillingContext, Candidate, InvoiceLine, PricedInvoice } from "../../src/domain/billing.js";
import { lineAmount } from "../../src/domain/conditions.js";
import { matchesAppliesTo } from "../../src/domain/effects.js";
import { priceInvoice } from "../../src/domain/pipeline.js";
import type { AppliesTo, Effect } from "../../src/domain/terms.js";
import { candidate, context, phase, promotion, terms } from "./support/pricing.js";

// Random invoices and promotions, few enough plans, priorities and creation times that ties are
// common: that is where an order that is not total would show.

const appliesToArb: fc.Arbitrary<AppliesTo | null> = fc.oneof(
  fc.constant(null),
  fc.record({ planIds: fc.subarray(["pro", "team", "addon"]), productIds: fc.subarray(["app", "seats"]) }),
);

const effectArb: fc.Arbitrary<Effect> = fc.oneof(
  fc.record({ kind: fc.constant("percentage_discount" as const), percentBps: fc.integer({ min: 1, max: 10_000 }), appliesTo: appliesToArb }),
  fc.record({ kind: fc.constant("fixed_discount" as const), amountMinor: fc.bigInt({ min: 1n, max: 2_000_000n }), appliesTo: appliesToArb }),
  fc.record({ kind: fc.constant("credit_grant" as const), amountMinor: fc.bigInt({ min: 1n, max: 100_000n }), appliesTo: appliesToArb }),
  fc.record({ kind: fc.constant("free_trial_extension" as const), days: fc.integer({ min: 1, max: 60 }), appliesTo: appliesToArb }),
);

const lineArb: fc.Arbitrary<Omit<InvoiceLine, "id">> = fc.record({
  planId: fc.constantFrom("pro", "team", "addon", ""),
  productId: fc.constantFrom("app", "seats", ""),
  unitAmountMinor: fc.bigInt({ min: 0n, max: 5_000_000n }),
  quantity: fc.integer({ min: 1, max: 5 }),
  description: fc.constant("line"),
});

const ctxArb: fc.Arbitrary<BillingContext> = fc
  .record({ lines: fc.array(lineArb, { minLength: 0, maxLength: 6 }), currency: fc.constantFrom("USD", "USD", "EUR") })
  .map(({ lines, currency }) => context(lines.map((l, i) => ({ ...l, id: `l${i}` })), { currency }));

const promoArb = fc.record({
  effects: fc.array(effectArb, { minLength: 1, maxLength: 3 }),
  stackable: fc.boolean(),
  priority: fc.integer({ min: 0, max: 2 }),
  createdDay: fc.integer({ min: 1, max: 3 }),
  currency: fc.constantFrom("USD", "USD", "EUR"),
  budget: fc.option(fc.record({ max: fc.bigInt({ min: 1n, max: 3_000_000n }), usedPermille: fc.integer({ min: 0, max: 1000 }), strict: fc.boolean() })),
});

const candidatesArb: fc.Arbitrary<Candidate[]> = fc.array(promoArb, { minLength: 1, maxLength: 5 }).map((promos) =>
  promos.map((p, i) => {
    const used = p.budget ? (p.budget.max * BigInt(p.budget.usedPermille)) / 1000n : 0n;
    const t = terms([], {
      phases: [phase("Default", p.effects)],
      stackable: p.stackable,
      priority: p.priority,
      currency: p.currency,
      maxBudget: p.budget?.max ?? null,
      budgetBehavior: p.budget?.strict ? "STRICT" : "CAP",
    });
    return candidate(promotion(`promo-${String.fromCharCode(97 + ((i * 7) % 26))}${i}`, t, {
      createdAt: new Date(Date.UTC(2026, 0, p.createdDay)),
      currentBudgetUsed: used,
    }));
  }),
);

const RUNS = { numRuns: 500 };

describe("priceInvoice properties", () => {
  it("line discounts add up to the invoice discount, and to each promotion's discount", () => {
    fc.assert(
      fc.property(ctxArb, candidatesArb, (ctx, cands) => {
        const priced = priceInvoice(ctx, cands);
        const allLineDiscounts = priced.lines.flatMap((l) => l.discounts);
        expect(sum(allLineDiscounts.map((d) => d.amountMinor))).toBe(priced.discountMinor);
        expect(sum(priced.lines.map((l) => l.discountMinor))).toBe(priced.discountMinor);
        for (const o of priced.promotions) {
          const mine = allLineDiscounts.filter((d) => d.promotionId === o.promotionId);
          expect(sum(mine.map((d) => d.amountMinor))).toBe(o.discountMinor);
          if (!o.applied) expect([o.discountMinor, o.creditMinor, o.budgetConsumedMinor, BigInt(o.trialDays)]).toEqual([0n, 0n, 0n, 0n]);
        }
        expect(priced.subtotalMinor - priced.discountMinor).toBe(priced.totalMinor);
      }),
      RUNS,
    );
  });

  it("every line total is at least zero, and the discount is between zero and the subtotal", () => {
    fc.assert(
      fc.property(ctxArb, candidatesArb, (ctx, cands) => {
        const priced = priceInvoice(ctx, cands);
        for (const l of priced.lines) {
          expect(l.discountMinor >= 0n && l.discountMinor <= l.amountMinor).toBe(true);
          expect(l.totalMinor >= 0n).toBe(true);
          expect(l.discounts.every((d) => d.amountMinor > 0n)).toBe(true);
        }
        expect(priced.discountMinor >= 0n && priced.discountMinor <= priced.subtotalMinor).toBe(true);
      }),
      RUNS,
    );
  });

  it("one promotion's discount is between zero and the amount of the lines it applies to", () => {
    fc.assert(
      fc.property(ctxArb, candidatesArb, (ctx, cands) => {
        for (const c of cands) {
          const [o] = priceInvoice(ctx, [c]).promotions;
          const effects = c.promotion.terms.phases[0]?.effects ?? [];
          const eligible = sum(ctx.invoice.lines.filter((l) => effects.some((e) => matchesAppliesTo(l, e.appliesTo))).map(lineAmount));
          expect(o && o.discountMinor >= 0n && o.discountMinor <= eligible).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it("never grants more than a promotion's remaining budget", () => {
    fc.assert(
      fc.property(ctxArb, candidatesArb, (ctx, cands) => {
        const priced = priceInvoice(ctx, cands);
        for (const c of cands) {
          const { maxBudget } = c.promotion.terms;
          const o = priced.promotions.find((p) => p.promotionId === c.promotion.id);
          if (maxBudget !== null && o) expect(o.budgetConsumedMinor <= maxBudget - c.promotion.currentBudgetUsed).toBe(true);
          if (o) expect(o.budgetConsumedMinor).toBe(o.discountMinor + o.creditMinor);
        }
      }),
      RUNS,
    );
  });

  it("gives the identical result for any order of the same candidates (the order is total)", () => {
    fc.assert(
      fc.property(
        ctxArb,
        candidatesArb.chain((cands) => fc.tuple(fc.constant(cands), fc.shuffledSubarray(cands, { minLength: cands.length, maxLength: cands.length }))),
        (ctx, [cands, shuffled]) => {
          expect(priceInvoice(ctx, shuffled)).toEqual(priceInvoice(ctx, cands));
        },
      ),
      RUNS,
    );
  });

  it("produces no float: every amount is a bigint and every count a whole number", () => {
    fc.assert(
      fc.property(ctxArb, candidatesArb, (ctx, cands) => {
        assertNoFloat(priceInvoice(ctx, cands));
      }),
      RUNS,
    );
  });
});

const WHOLE_NUMBER_FIELDS = new Set(["trialDays", "trialDaysAdded", "version"]);

function assertNoFloat(priced: PricedInvoice): void {
  const walk = (value: unknown, key: string): void => {
    if (typeof value === "number") {
      expect(WHOLE_NUMBER_FIELDS.has(key), `number in field ${key}`).toBe(true);
      expect(Number.isInteger(value)).toBe(true);
    } else if (key.endsWith("Minor")) {
      expect(typeof value, `field ${key}`).toBe("bigint");
    } else if (Array.isArray(value)) {
      value.forEach((v) => walk(v, key));
    } else if (value !== null && typeof value === "object" && !(value instanceof Date)) {
      for (const [k, v] of Object.entries(value)) walk(v, k);
    }
  };
  walk(priced, "");
}

function sum(amounts: readonly bigint[]): bigint {
  return amounts.reduce((a, b) => a + b, 0n);
}
