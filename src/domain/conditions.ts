import type { BillingContext, Check, InvoiceLine } from "./billing.js";
import { formatMoney, sum } from "./money.js";
import type { Condition, PromotionTerms } from "./terms.js";

// Eligibility conditions, each judged against the billing context with a sentence a support
// engineer can read back to a customer. Plans and products are read from the invoice lines being
// priced (the API layer builds those from the subscription's items), so a simulation of an inline
// invoice and a real invoice are judged the same way.

export interface ConditionsResult {
  /** Whether the conditions allow the promotion, under its condition_mode. */
  passed: boolean;
  /** The overall "conditions" check first, then one "condition.<kind>" check per condition. */
  checks: Check[];
}

/** A line's amount before any discount: unit amount × quantity. */
export function lineAmount(line: InvoiceLine): bigint {
  return line.unitAmountMinor * BigInt(line.quantity);
}

/** The invoice subtotal: the sum of its line amounts. */
export function invoiceSubtotal(lines: readonly InvoiceLine[]): bigint {
  return sum(lines.map(lineAmount));
}

/** Every condition of `terms` judged on `ctx`, combined by condition_mode (ALL, or ANY one). */
export function evaluateConditions(terms: PromotionTerms, ctx: BillingContext): ConditionsResult {
  const checks = terms.conditions.map((c) => evaluateCondition(c, terms, ctx));
  const met = checks.filter((c) => c.passed).length;
  const total = checks.length;
  let passed: boolean;
  let detail: string;
  if (total === 0) {
    // ALL of nothing and ANY of nothing both hold: a promotion without conditions is for everyone.
    passed = true;
    detail = "no conditions";
  } else if (terms.conditionMode === "ANY") {
    passed = met > 0;
    detail = passed
      ? `${met} of ${total} ${plural(total, "condition")} met (any one is enough)`
      : `none of the ${total} ${plural(total, "condition")} met (any one would do)`;
  } else {
    passed = met === total;
    const failing = checks.filter((c) => !c.passed).map((c) => c.check.replace(/^condition\./, ""));
    detail = passed
      ? `all ${total} ${plural(total, "condition")} met`
      : `${failing.length} of ${total} ${plural(total, "condition")} not met (all are required): ${failing.join(", ")}`;
  }
  return { passed, checks: [{ check: "conditions", passed, detail }, ...checks] };
}

/** One condition judged on `ctx`, as a "condition.<kind>" check with a human detail. */
export function evaluateCondition(condition: Condition, terms: PromotionTerms, ctx: BillingContext): Check {
  const check = `condition.${condition.kind}`;
  const result = (passed: boolean, detail: string): Check => ({ check, passed, detail });
  switch (condition.kind) {
    case "min_spend": {
      const minimum = formatMoney(condition.amountMinor, terms.currency);
      const invoiceCurrency = ctx.invoice.currency;
      // Amounts in different currencies cannot be compared without a rate, and guessing one would
      // let a cheap currency pass a minimum meant for a dear one.
      if (invoiceCurrency !== terms.currency) {
        return result(false, `the invoice is in ${invoiceCurrency || "no currency"}, so it cannot meet the ${minimum} minimum`);
      }
      const subtotal = invoiceSubtotal(ctx.invoice.lines);
      const shown = formatMoney(subtotal, invoiceCurrency);
      return subtotal >= condition.amountMinor
        ? result(true, `subtotal ${shown} meets the ${minimum} minimum`)
        : result(false, `subtotal ${shown} is below the ${minimum} minimum`);
    }
    case "plans":
      return includeExclude("plan", ctx.invoice.lines.map((l) => l.planId), condition.include, condition.exclude, check);
    case "products":
      return includeExclude("product", ctx.invoice.lines.map((l) => l.productId), condition.include, condition.exclude, check);
    case "customer_segments": {
      const customer = ctx.customer;
      if (!customer) return result(false, "no customer is known, so its segments cannot be checked");
      const hit = condition.anyOf.find((s) => customer.segments.includes(s));
      if (hit !== undefined) return result(true, `customer is in segment ${hit}`);
      const has = customer.segments.length > 0 ? `it is in ${customer.segments.join(", ")}` : "it is in no segment";
      return result(false, `customer is in none of the segments ${either(condition.anyOf)} (${has})`);
    }
    case "first_time_customer": {
      const customer = ctx.customer;
      if (!customer) return result(false, "no customer is known, so whether it has paid before cannot be checked");
      return customer.hasPaidBefore
        ? result(false, "customer has paid before; this is for first-time customers")
        : result(true, "customer has never paid: a first-time customer");
    }
    case "date_range": {
      const at = ctx.at.getTime();
      if (condition.start !== null && at < condition.start.getTime()) {
        return result(false, `${iso(ctx.at)} is before the range starts at ${iso(condition.start)}`);
      }
      // The end is exclusive, like valid_to: a range ending at midnight does not include midnight.
      if (condition.end !== null && at >= condition.end.getTime()) {
        return result(false, `${iso(ctx.at)} is at or after the range ended at ${iso(condition.end)}`);
      }
      return result(true, `${iso(ctx.at)} is within ${condition.start ? iso(condition.start) : "the beginning"} – ${condition.end ? iso(condition.end) : "open end"}`);
    }
    case "unset":
      return result(false, "the condition names no kind, so it cannot be met");
  }
}

// Include: some line is on an included id. Exclude: no line is on an excluded id. Lines without
// a plan or product ("") are never matched by either list.
function includeExclude(noun: string, present: readonly string[], include: readonly string[], exclude: readonly string[], check: string): Check {
  const ids = new Set(present.filter((id) => id !== ""));
  const excluded = exclude.find((id) => ids.has(id));
  if (excluded !== undefined) return { check, passed: false, detail: `${noun} ${excluded} is excluded` };
  if (include.length > 0) {
    const included = include.find((id) => ids.has(id));
    if (included === undefined) {
      const has = ids.size > 0 ? `the invoice has ${plural(ids.size, noun)} ${[...ids].join(", ")}` : `the invoice has no ${noun}`;
      return { check, passed: false, detail: `no line is on ${noun} ${either(include)} (${has})` };
    }
    return { check, passed: true, detail: `${noun} ${included} is included` };
  }
  return { check, passed: true, detail: `no line is on an excluded ${noun} (${exclude.join(", ")})` };
}

function either(ids: readonly string[]): string {
  if (ids.length <= 1) return ids.join("");
  return `${ids.slice(0, -1).join(", ")} or ${ids[ids.length - 1] ?? ""}`;
}

function plural(n: number, noun: string): string {
  return n === 1 ? noun : `${noun}s`;
}

function iso(date: Date): string {
  return date.toISOString();
}
