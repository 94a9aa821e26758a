import { describe, expect, it } from "vitest";
import type { BillingContext } from "../../src/domain/billing.js";
import { evaluateCondition, evaluateConditions, invoiceSubtotal, lineAmount } from "../../src/domain/conditions.js";
import type { Condition } from "../../src/domain/terms.js";
import { AT, context, customer, line, terms } from "./support/pricing.js";

const usd = terms([]);
const two = [line("a", 2_000n, { plan: "pro", product: "app" }), line("b", 2_000n, { plan: "addon", product: "seats" })];
const at = (iso: string) => new Date(iso);

const minSpend = (amountMinor: bigint): Condition => ({ kind: "min_spend", amountMinor });
const plans = (include: string[], exclude: string[] = []): Condition => ({ kind: "plans", include, exclude });
const products = (include: string[], exclude: string[] = []): Condition => ({ kind: "products", include, exclude });
const segments = (...anyOf: string[]): Condition => ({ kind: "customer_segments", anyOf });
const firstTime: Condition = { kind: "first_time_customer" };
const range = (start: string | null, end: string | null): Condition => ({
  kind: "date_range",
  start: start ? at(start) : null,
  end: end ? at(end) : null,
});

// Every case: a condition, the context it is judged in, whether it holds, and the detail it gives.
const cases: [string, Condition, BillingContext, boolean, string][] = [
  ["min_spend: a subtotal below the minimum fails", minSpend(5_000n), context(two), false, "subtotal 40.00 USD is below the 50.00 USD minimum"],
  ["min_spend: a subtotal equal to the minimum passes", minSpend(4_000n), context(two), true, "subtotal 40.00 USD meets the 40.00 USD minimum"],
  ["min_spend: quantities count toward the subtotal", minSpend(5_000n), context([line("a", 2_000n, { quantity: 3 })]), true, "subtotal 60.00 USD meets the 50.00 USD minimum"],
  ["min_spend: an invoice in another currency fails", minSpend(1n), context(two, { currency: "EUR" }), false, "the invoice is in EUR, so it cannot meet the 0.01 USD minimum"],
  ["plans: an included plan on the invoice passes", plans(["pro"]), context(two), true, "plan pro is included"],
  ["plans: no included plan on the invoice fails", plans(["enterprise", "team"]), context(two), false, "no line is on plan enterprise or team (the invoice has plans pro, addon)"],
  ["plans: an excluded plan on the invoice fails", plans([], ["addon"]), context(two), false, "plan addon is excluded"],
  ["plans: exclusion wins over inclusion", plans(["pro"], ["addon"]), context(two), false, "plan addon is excluded"],
  ["plans: no excluded plan on the invoice passes", plans([], ["pro-monthly"]), context(two), true, "no line is on an excluded plan (pro-monthly)"],
  ["products: an included product passes", products(["seats"]), context(two), true, "product seats is included"],
  ["products: an excluded product fails", products([], ["app"]), context(two), false, "product app is excluded"],
  ["products: an empty invoice has no included product", products(["app"]), context([]), false, "no line is on product app (the invoice has no product)"],
  ["customer_segments: a customer in one of the segments passes", segments("enterprise", "smb"), context(), true, "customer is in segment smb"],
  ["customer_segments: a customer in none fails", segments("enterprise"), context(), false, "customer is in none of the segments enterprise (it is in smb)"],
  ["customer_segments: an unknown customer fails", segments("smb"), context(undefined, { customer: null }), false, "no customer is known, so its segments cannot be checked"],
  ["first_time_customer: a customer who never paid passes", firstTime, context(undefined, { customer: customer({ hasPaidBefore: false }) }), true, "customer has never paid: a first-time customer"],
  ["first_time_customer: a customer who paid before fails", firstTime, context(), false, "customer has paid before; this is for first-time customers"],
  ["first_time_customer: an unknown customer fails", firstTime, context(undefined, { customer: null }), false, "no customer is known, so whether it has paid before cannot be checked"],
  ["date_range: inside [start, end) passes", range("2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"), context(), true, "2026-06-15T12:00:00.000Z is within 2026-06-01T00:00:00.000Z – 2026-07-01T00:00:00.000Z"],
  ["date_range: exactly at start passes", range(AT.toISOString(), null), context(), true, "is within 2026-06-15T12:00:00.000Z – open end"],
  ["date_range: before start fails", range("2026-06-16T00:00:00Z", null), context(), false, "2026-06-15T12:00:00.000Z is before the range starts at 2026-06-16T00:00:00.000Z"],
  ["date_range: exactly at end fails (the end is exclusive)", range(null, AT.toISOString()), context(), false, "is at or after the range ended at 2026-06-15T12:00:00.000Z"],
];

const alwaysTrue = range("2020-01-01T00:00:00Z", null);
const alwaysFalse = range(null, "2020-01-01T00:00:00Z");

describe("evaluateCondition", () => {
  it.each(cases)("%s", (_name, condition, ctx, passed, detail) => {
    const check = evaluateCondition(condition, usd, ctx);
    expect(check).toEqual({ check: `condition.${condition.kind}`, passed, detail: expect.stringContaining(detail) as string });
  });

  it("fails a condition that names no kind", () => {
    expect(evaluateCondition({ kind: "unset" }, usd, context()).passed).toBe(false);
  });
});

describe("evaluateConditions with condition_mode ALL", () => {
  it.each(cases)("%s — beside a condition that holds, decides the result", (_name, condition, ctx, passed) => {
    const result = evaluateConditions({ ...usd, conditionMode: "ALL", conditions: [alwaysTrue, condition] }, ctx);
    expect(result.passed).toBe(passed);
    expect(result.checks[0]).toMatchObject({ check: "conditions", passed });
    expect(result.checks).toHaveLength(3);
  });

  it("names every condition that is not met", () => {
    const result = evaluateConditions({ ...usd, conditionMode: "ALL", conditions: [minSpend(10n ** 9n), firstTime, alwaysTrue] }, context());
    expect(result.checks[0]).toEqual({ check: "conditions", passed: false, detail: "2 of 3 conditions not met (all are required): min_spend, first_time_customer" });
  });
});

describe("evaluateConditions with condition_mode ANY", () => {
  it.each(cases)("%s — beside a condition that fails, decides the result", (_name, condition, ctx, passed) => {
    const result = evaluateConditions({ ...usd, conditionMode: "ANY", conditions: [alwaysFalse, condition] }, ctx);
    expect(result.passed).toBe(passed);
    expect(result.checks[0]).toMatchObject({ check: "conditions", passed });
  });

  it("passes when one of several holds and says any one is enough", () => {
    const result = evaluateConditions({ ...usd, conditionMode: "ANY", conditions: [alwaysFalse, alwaysTrue, firstTime] }, context());
    expect(result.checks[0]).toEqual({ check: "conditions", passed: true, detail: "1 of 3 conditions met (any one is enough)" });
  });

  it("fails when none holds", () => {
    const result = evaluateConditions({ ...usd, conditionMode: "ANY", conditions: [alwaysFalse, firstTime] }, context());
    expect(result.checks[0]).toEqual({ check: "conditions", passed: false, detail: "none of the 2 conditions met (any one would do)" });
  });
});

describe("evaluateConditions without conditions", () => {
  it.each(["ALL", "ANY"] as const)("passes in %s mode: the promotion is for everyone", (mode) => {
    const result = evaluateConditions({ ...usd, conditionMode: mode, conditions: [] }, context());
    expect(result).toEqual({ passed: true, checks: [{ check: "conditions", passed: true, detail: "no conditions" }] });
  });
});

describe("invoice amounts", () => {
  it("a line is its unit amount times its quantity, and the subtotal their sum", () => {
    const lines = [line("a", 1_250n, { quantity: 4 }), line("b", 99n)];
    expect(lineAmount(lines[0] ?? line("x", 0n))).toBe(5_000n);
    expect(invoiceSubtotal(lines)).toBe(5_099n);
  });
});
