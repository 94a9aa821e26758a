// The list filter grammar `field.op=value` (DESIGN §3 Lists), parsed against a catalogue of the
// fields a list allows. Parsing turns text into typed values once, so the store layer only maps
// clauses to SQL and never sees a raw string. Every bad clause is reported, then it fails once.

import { DomainError, type Violation } from "./errors.js";
import {
  APPLICATION_METHODS,
  APPLICATION_TIMINGS,
  ARCHETYPES,
  BUDGET_BEHAVIORS,
  CONDITION_MODES,
  PROMOTION_STATUSES,
  VISIBILITIES,
} from "./terms.js";
import { isUuid } from "./checks.js";

export type FieldType = "string" | "int" | "bool" | "timestamp" | "uuid" | { enum: readonly string[] };
export interface FieldSpec {
  type: FieldType;
  nullable?: boolean;
}
export const FILTER_OPS = ["eq", "ne", "in", "nin", "gt", "gte", "lt", "lte"] as const;
export type FilterOp = (typeof FILTER_OPS)[number];
export type FilterValue = string | bigint | boolean | Date | null;
/** One parsed filter; `in`/`nin` carry one value or more, every other op exactly one. */
export interface FilterClause {
  field: string;
  op: FilterOp;
  values: FilterValue[];
}

export const MAX_FILTERS = 20;
export const MAX_FILTER_VALUE_LENGTH = 500;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const ORDERING_OPS: ReadonlySet<FilterOp> = new Set(["gt", "gte", "lt", "lte"]);
const LIST_OPS: ReadonlySet<FilterOp> = new Set(["in", "nin"]);

/** The scalar fields of a Promotion that ListPromotions filters on (proto names). */
export const PROMOTION_FILTER_FIELDS: Readonly<Record<string, FieldSpec>> = Object.freeze({
  id: { type: "uuid" },
  name: { type: "string" },
  code: { type: "string", nullable: true },
  application_method: { type: { enum: APPLICATION_METHODS } },
  description: { type: "string" },
  public_description: { type: "string" },
  currency: { type: "string" },
  archetype: { type: { enum: ARCHETYPES } },
  status: { type: { enum: PROMOTION_STATUSES } },
  visibility: { type: { enum: VISIBILITIES } },
  application_timing: { type: { enum: APPLICATION_TIMINGS } },
  condition_mode: { type: { enum: CONDITION_MODES } },
  budget_behavior: { type: { enum: BUDGET_BEHAVIORS } },
  stackable: { type: "bool" },
  is_phased: { type: "bool" },
  requires_continuous_coverage: { type: "bool" },
  priority: { type: "int" },
  version: { type: "int" },
  live_version: { type: "int" },
  current_redemptions: { type: "int" },
  current_budget_used: { type: "int" },
  max_budget: { type: "int", nullable: true },
  max_redemptions: { type: "int", nullable: true },
  max_redemptions_per_customer: { type: "int", nullable: true },
  valid_from: { type: "timestamp", nullable: true },
  valid_to: { type: "timestamp", nullable: true },
  archived_at: { type: "timestamp", nullable: true },
  published_at: { type: "timestamp", nullable: true },
  created_at: { type: "timestamp" },
  updated_at: { type: "timestamp" },
});

/**
 * Parses `field.op=value` filters against `fields`. Field and op are case-insensitive; the value
 * is taken verbatim (no trimming). Throws one INVALID_ARGUMENT listing every bad clause, each at
 * `${param}[i]`.
 */
export function parseFilters(
  raw: readonly string[],
  fields: Readonly<Record<string, FieldSpec>>,
  param = "filter",
): FilterClause[] {
  const out: Violation[] = [];
  if (raw.length > MAX_FILTERS) {
    out.push({ param, code: "too_many", message: `at most ${MAX_FILTERS} filters are allowed (got ${raw.length})` });
  }
  const clauses: FilterClause[] = [];
  raw.forEach((text, i) => {
    const clause = parseClause(out, text, fields, `${param}[${i}]`);
    if (clause) clauses.push(clause);
  });
  if (out.length > 0) throw new DomainError("invalid_argument", out);
  return clauses;
}

function parseClause(
  out: Violation[],
  text: string,
  fields: Readonly<Record<string, FieldSpec>>,
  param: string,
): FilterClause | null {
  const eq = text.indexOf("=");
  const dot = eq < 0 ? -1 : text.lastIndexOf(".", eq);
  if (eq < 0 || dot < 0) {
    out.push({ param, code: "invalid_format", message: `a filter must look like field.op=value (got ${quote(text)})` });
    return null;
  }
  const field = text.slice(0, dot).toLowerCase();
  const opText = text.slice(dot + 1, eq).toLowerCase();
  const valueText = text.slice(eq + 1);
  const before = out.length;

  const spec = Object.hasOwn(fields, field) ? fields[field] : undefined;
  if (!spec) {
    out.push({
      param,
      code: "unknown_field",
      message: `unknown filter field ${quote(field)}; known fields: ${Object.keys(fields).join(", ")}`,
    });
  }
  const op = FILTER_OPS.find((known) => known === opText);
  if (!op) {
    out.push({
      param,
      code: "unknown_operator",
      message: `unknown filter operator ${quote(opText)}; operators: ${FILTER_OPS.join(", ")}`,
    });
  }
  if (!spec || !op) return null;

  if (ORDERING_OPS.has(op) && !isOrdered(spec.type)) {
    out.push({
      param,
      code: "not_allowed",
      message: `operator ${op} does not apply to ${field} (${typeName(spec.type)}); use eq, ne, in or nin`,
    });
  }
  const valueLength = [...valueText].length;
  if (valueLength > MAX_FILTER_VALUE_LENGTH) {
    out.push({
      param,
      code: "too_long",
      message: `a filter value must be at most ${MAX_FILTER_VALUE_LENGTH} characters (got ${valueLength})`,
    });
    return null;
  }

  const texts = LIST_OPS.has(op) ? (valueText === "" ? [] : valueText.split(",")) : [valueText];
  if (texts.length === 0) {
    out.push({ param, code: "required", message: `${op} needs at least one comma-separated value` });
  }
  const values: FilterValue[] = [];
  for (const item of texts) {
    const parsed = parseValue(item, spec, field, op);
    if (parsed.ok) values.push(parsed.value);
    else out.push({ param, code: parsed.code, message: parsed.message });
  }
  return out.length > before ? null : { field, op, values };
}

type Parsed = { ok: true; value: FilterValue } | { ok: false; code: string; message: string };

function parseValue(text: string, spec: FieldSpec, field: string, op: FilterOp): Parsed {
  // A nullable field reads the literal `null` as SQL NULL; a plain string field keeps it as text
  // (a code may be spelled NULL), and every other field says plainly that it is never null.
  if (text === "null" && (spec.nullable || spec.type !== "string")) {
    if (!spec.nullable) return fail("not_allowed", `${field} is never null`);
    if (op !== "eq" && op !== "ne") return fail("not_allowed", `null only works with eq and ne (got ${op})`);
    return { ok: true, value: null };
  }
  const type = spec.type;
  switch (type) {
    case "string":
      return { ok: true, value: text };
    case "int": {
      if (!/^-?\d+$/.test(text)) return fail("invalid_format", `${field} expects an integer (got ${quote(text)})`);
      const value = BigInt(text);
      if (value < INT64_MIN || value > INT64_MAX) {
        return fail("out_of_range", `${field} value ${quote(text)} is outside the 64-bit integer range`);
      }
      return { ok: true, value };
    }
    case "bool": {
      const lower = text.toLowerCase();
      if (lower === "true" || lower === "false") return { ok: true, value: lower === "true" };
      return fail("invalid_format", `${field} expects true or false (got ${quote(text)})`);
    }
    case "timestamp": {
      const value = parseTimestamp(text);
      if (value) return { ok: true, value };
      return fail(
        "invalid_format",
        `${field} expects an RFC 3339 timestamp such as 2026-01-01T00:00:00Z (got ${quote(text)})`,
      );
    }
    case "uuid":
      if (isUuid(text)) return { ok: true, value: text.toLowerCase() };
      return fail("invalid_format", `${field} expects a UUID (got ${quote(text)})`);
    default: {
      const value = matchEnum(text, type.enum);
      if (value !== null) return { ok: true, value };
      return fail("invalid_value", `${field} expects one of ${type.enum.join(", ")} (got ${quote(text)})`);
    }
  }
}

/**
 * An enum value, case-insensitively, with or without a proto prefix: for [DRAFT, ACTIVE] the
 * inputs `active`, `ACTIVE` and `promotion_status_active` all give "ACTIVE". Any prefix ending in
 * `_` is accepted; when several values fit, the longest wins.
 */
function matchEnum(text: string, values: readonly string[]): string | null {
  const upper = text.toUpperCase();
  let best: string | null = null;
  for (const value of values) {
    const known = value.toUpperCase();
    if (upper === known || upper.endsWith(`_${known}`)) {
      if (best === null || value.length > best.length) best = value;
    }
  }
  return best;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 date-time (`2026-01-01T00:00:00Z`, `…+02:00`, fractional seconds) as a Date, or
 * null when the text is not one or names an impossible time (month 13, 30 February, hour 24).
 * Fractions beyond milliseconds are truncated; leap seconds are refused.
 */
export function parseTimestamp(text: string): Date | null {
  const m = RFC3339.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number, number, number, number, number, number,
  ];
  const millis = m[7] ? Number(m[7].slice(0, 3).padEnd(3, "0")) : 0;
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offsetMinutes = 0;
  if (!m[8]) {
    const offsetHours = Number(m[10]);
    const offsetMins = Number(m[11]);
    if (offsetHours > 23 || offsetMins > 59) return null;
    offsetMinutes = (m[9] === "-" ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  const utc = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0..99 to 1900..1999.
  utc.setUTCFullYear(year, month - 1, day);
  utc.setUTCHours(hour, minute, second, millis);
  return new Date(utc.getTime() - offsetMinutes * 60_000);
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function isOrdered(type: FieldType): boolean {
  return type === "int" || type === "timestamp" || type === "string";
}

function typeName(type: FieldType): string {
  return typeof type === "string" ? type : "enum";
}

function fail(code: string, message: string): Parsed {
  return { ok: false, code, message };
}

function quote(value: string): string {
  return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
}
