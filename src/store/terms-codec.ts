import type { AppliesTo, Condition, Effect, Phase, PromotionTerms } from "../domain/terms.js";
import type { PromotionVersion } from "./entities.js";
import { asBig, asDate } from "./row-values.js";

// Terms <-> the columns and JSON documents of a promotion_versions row, both as MikroORM entity
// properties and as a raw SQL row (the reads that join versions by hand). The one mapping path of
// every term field at the storage boundary; test/integration/terms-round-trip.test.ts proves that
// no field is lost on the way. JSON cannot hold bigint, so amounts are stored as decimal strings
// and parsed back exactly.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function appliesToJson(a: AppliesTo | null): Json {
  return a === null ? null : { plan_ids: a.planIds, product_ids: a.productIds };
}

function effectToJson(e: Effect): Json {
  const applies_to = appliesToJson(e.appliesTo);
  switch (e.kind) {
    case "percentage_discount":
      return { kind: e.kind, percent_bps: e.percentBps, applies_to };
    case "fixed_discount":
    case "credit_grant":
      return { kind: e.kind, amount_minor: e.amountMinor.toString(), applies_to };
    case "free_trial_extension":
      return { kind: e.kind, days: e.days, applies_to };
    case "unset":
      throw new Error("an unset effect cannot be stored; validation must refuse it first");
  }
}

function conditionToJson(c: Condition): Json {
  switch (c.kind) {
    case "min_spend":
      return { kind: c.kind, amount_minor: c.amountMinor.toString() };
    case "plans":
    case "products":
      return { kind: c.kind, include: c.include, exclude: c.exclude };
    case "customer_segments":
      return { kind: c.kind, any_of: c.anyOf };
    case "first_time_customer":
      return { kind: c.kind };
    case "date_range":
      return { kind: c.kind, start: c.start?.toISOString() ?? null, end: c.end?.toISOString() ?? null };
    case "unset":
      throw new Error("an unset condition cannot be stored; validation must refuse it first");
  }
}

export function phasesToJson(phases: readonly Phase[]): Json[] {
  return phases.map((p) => ({ name: p.name, duration: p.duration, cycles: p.cycles, effects: p.effects.map(effectToJson) }));
}

export function conditionsToJson(conditions: readonly Condition[]): Json[] {
  return conditions.map(conditionToJson);
}

interface Reader {
  [key: string]: unknown;
}

const str = (v: unknown): string => (typeof v === "string" ? v : "");
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
const num = (v: unknown): number => (typeof v === "number" ? v : 0);
const big = (v: unknown): bigint => BigInt(typeof v === "string" || typeof v === "number" ? v : 0);
const date = (v: unknown): Date | null => (typeof v === "string" ? new Date(v) : null);

function appliesToFromJson(v: unknown): AppliesTo | null {
  if (v === null || typeof v !== "object") return null;
  const r = v as Reader;
  return { planIds: strs(r.plan_ids), productIds: strs(r.product_ids) };
}

function effectFromJson(v: unknown): Effect {
  const r = (v ?? {}) as Reader;
  const appliesTo = appliesToFromJson(r.applies_to);
  switch (r.kind) {
    case "percentage_discount":
      return { kind: "percentage_discount", percentBps: num(r.percent_bps), appliesTo };
    case "fixed_discount":
      return { kind: "fixed_discount", amountMinor: big(r.amount_minor), appliesTo };
    case "credit_grant":
      return { kind: "credit_grant", amountMinor: big(r.amount_minor), appliesTo };
    case "free_trial_extension":
      return { kind: "free_trial_extension", days: num(r.days), appliesTo };
    default:
      throw new Error(`stored effect has unknown kind ${JSON.stringify(r.kind)}`);
  }
}

function conditionFromJson(v: unknown): Condition {
  const r = (v ?? {}) as Reader;
  switch (r.kind) {
    case "min_spend":
      return { kind: "min_spend", amountMinor: big(r.amount_minor) };
    case "plans":
      return { kind: "plans", include: strs(r.include), exclude: strs(r.exclude) };
    case "products":
      return { kind: "products", include: strs(r.include), exclude: strs(r.exclude) };
    case "customer_segments":
      return { kind: "customer_segments", anyOf: strs(r.any_of) };
    case "first_time_customer":
      return { kind: "first_time_customer" };
    case "date_range":
      return { kind: "date_range", start: date(r.start), end: date(r.end) };
    default:
      throw new Error(`stored condition has unknown kind ${JSON.stringify(r.kind)}`);
  }
}

export function phasesFromJson(v: unknown): Phase[] {
  if (!Array.isArray(v)) return [];
  return v.map((x) => {
    const r = (x ?? {}) as Reader;
    const duration = r.duration === "ONCE" || r.duration === "REPEATING" || r.duration === "FOREVER" ? r.duration : null;
    return {
      name: str(r.name),
      duration,
      cycles: typeof r.cycles === "number" ? r.cycles : null,
      effects: Array.isArray(r.effects) ? r.effects.map(effectFromJson) : [],
    };
  });
}

export function conditionsFromJson(v: unknown): Condition[] {
  return Array.isArray(v) ? v.map(conditionFromJson) : [];
}

/** The term columns of a promotion_versions row. */
export type TermColumns = Pick<
  PromotionVersion,
  | "name"
  | "description"
  | "publicDescription"
  | "code"
  | "applicationMethod"
  | "archetype"
  | "visibility"
  | "stackable"
  | "priority"
  | "applicationTiming"
  | "conditionMode"
  | "conditions"
  | "isPhased"
  | "phases"
  | "currency"
  | "maxBudget"
  | "budgetBehavior"
  | "maxRedemptions"
  | "maxRedemptionsPerCustomer"
  | "validFrom"
  | "validTo"
  | "requiresContinuousCoverage"
  | "metadata"
>;

/** How each term column's raw SQL value is read back. */
type ColumnKind = "string" | "nullable_string" | "boolean" | "integer" | "nullable_bigint" | "nullable_date" | "json";

/** Every term column with its kind: a column missing here is a type error, so none can be forgotten. */
const TERM_COLUMN_KINDS = {
  name: "string",
  description: "string",
  publicDescription: "string",
  code: "nullable_string",
  applicationMethod: "string",
  archetype: "string",
  visibility: "string",
  stackable: "boolean",
  priority: "integer",
  applicationTiming: "string",
  conditionMode: "string",
  conditions: "json",
  isPhased: "boolean",
  phases: "json",
  currency: "nullable_string",
  maxBudget: "nullable_bigint",
  budgetBehavior: "string",
  maxRedemptions: "nullable_bigint",
  maxRedemptionsPerCustomer: "nullable_bigint",
  validFrom: "nullable_date",
  validTo: "nullable_date",
  requiresContinuousCoverage: "boolean",
  metadata: "json",
} as const satisfies Record<keyof TermColumns, ColumnKind>;

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The SQL names of the term columns, each prefixed with `alias.` (for hand-written joins). */
export function termSqlColumns(alias: string): string {
  return Object.keys(TERM_COLUMN_KINDS).map((key) => `${alias}.${snake(key)}`).join(", ");
}

function readColumn(kind: ColumnKind, raw: unknown): unknown {
  switch (kind) {
    case "string":
      return String(raw ?? "");
    case "nullable_string":
      return raw === null || raw === undefined ? null : String(raw);
    case "boolean":
      return Boolean(raw);
    case "integer":
      return Number(raw ?? 0);
    case "nullable_bigint":
      return asBig(raw);
    case "nullable_date":
      return asDate(raw);
    case "json":
      return raw ?? null;
  }
}

/** The terms of a raw SQL row that selected termSqlColumns (snake_case names). */
export function termsFromRow(row: Readonly<Record<string, unknown>>): PromotionTerms {
  const columns = Object.fromEntries(
    Object.entries(TERM_COLUMN_KINDS).map(([key, kind]) => [key, readColumn(kind, row[snake(key)])]),
  ) as unknown as TermColumns;
  return termsFromColumns({ ...columns, conditions: columns.conditions ?? [], phases: columns.phases ?? [], metadata: columns.metadata ?? {} });
}

export function termsToColumns(t: PromotionTerms): TermColumns {
  return {
    name: t.name,
    description: t.description,
    publicDescription: t.publicDescription,
    code: t.code === "" ? null : t.code,
    applicationMethod: t.applicationMethod,
    archetype: t.archetype,
    visibility: t.visibility,
    stackable: t.stackable,
    priority: t.priority,
    applicationTiming: t.applicationTiming,
    conditionMode: t.conditionMode,
    conditions: conditionsToJson(t.conditions),
    isPhased: t.isPhased,
    phases: phasesToJson(t.phases),
    currency: t.currency === "" ? null : t.currency,
    maxBudget: t.maxBudget,
    budgetBehavior: t.budgetBehavior,
    maxRedemptions: t.maxRedemptions,
    maxRedemptionsPerCustomer: t.maxRedemptionsPerCustomer,
    validFrom: t.validFrom,
    validTo: t.validTo,
    requiresContinuousCoverage: t.requiresContinuousCoverage,
    metadata: { ...t.metadata },
  };
}

export function termsFromColumns(c: TermColumns): PromotionTerms {
  return {
    name: c.name,
    description: c.description,
    publicDescription: c.publicDescription,
    code: c.code ?? "",
    applicationMethod: c.applicationMethod as PromotionTerms["applicationMethod"],
    archetype: c.archetype as PromotionTerms["archetype"],
    visibility: c.visibility as PromotionTerms["visibility"],
    stackable: c.stackable,
    priority: c.priority,
    applicationTiming: c.applicationTiming as PromotionTerms["applicationTiming"],
    conditionMode: c.conditionMode as PromotionTerms["conditionMode"],
    conditions: conditionsFromJson(c.conditions),
    isPhased: c.isPhased,
    phases: phasesFromJson(c.phases),
    currency: c.currency ?? "",
    maxBudget: c.maxBudget ?? null,
    budgetBehavior: c.budgetBehavior as PromotionTerms["budgetBehavior"],
    maxRedemptions: c.maxRedemptions ?? null,
    maxRedemptionsPerCustomer: c.maxRedemptionsPerCustomer ?? null,
    validFrom: c.validFrom ?? null,
    validTo: c.validTo ?? null,
    requiresContinuousCoverage: c.requiresContinuousCoverage,
    metadata: { ...c.metadata },
  };
}
