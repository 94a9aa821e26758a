// The reusable field checks every request validator is built from. Checks never short-circuit:
// each pushes what it finds into the caller's Violation[], so a client learns everything wrong
// with a request from one INVALID_ARGUMENT, and `assertValid` fails once. Params are the proto
// (snake_case) field paths the client sent.

import { isKnownCurrency } from "./currency.js";
import { DomainError, type Violation } from "./errors.js";

/** The bounds the rules below enforce; exported so docs and the API layer quote the same numbers. */
export const LIMITS = {
  nameLength: 200,
  descriptionLength: 2000,
  codeMinLength: 3,
  codeMaxLength: 64,
  priority: 1_000_000,
  percentBps: 10_000,
  trialDays: 3650,
  moneyMinor: 10n ** 15n,
  cycles: 1200,
  phaseNameLength: 100,
  effectsPerPhase: 10,
  conditions: 20,
  idLength: 200,
  metadataKeys: 50,
  metadataKeyLength: 40,
  metadataValueLength: 500,
  defaultPageLimit: 20,
  maxPageLimit: 100,
} as const;

const CODE_PATTERN = /^[A-Z0-9_-]*$/;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// C0 controls, DEL and C1 controls; descriptions may keep \n and \t.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_EXCEPT_NEWLINE_TAB = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/** Throws one INVALID_ARGUMENT carrying every violation, if there are any. */
export function assertValid(violations: readonly Violation[]): void {
  if (violations.length > 0) throw new DomainError("invalid_argument", violations);
}
// ---- Reusable field checks: each pushes into `out` and returns nothing (or the value to use). ----

/** Shape rules for a free-text field; lengths count characters (code points), not bytes. */
interface TextRule {
  /** 0 (default) allows "", 1+ makes the field required (blank counts as missing). */
  min?: number;
  max: number;
  /** Allow \n and \t (descriptions, metadata values); other control characters never pass. */
  multiline?: boolean;
}

/** A string field: present when required, within its length, free of control characters. */
export function checkText(out: Violation[], value: string, param: string, rule: TextRule): void {
  const min = rule.min ?? 0;
  const label = leaf(param);
  if (min > 0 && value.trim() === "") {
    out.push({ param, code: "required", message: `${label} is required` });
    return;
  }
  const length = charLength(value);
  if (length < min) {
    out.push({ param, code: "too_short", message: `${label} must be at least ${min} characters (got ${length})` });
  }
  if (length > rule.max) {
    out.push({ param, code: "too_long", message: `${label} must be at most ${rule.max} characters (got ${length})` });
  }
  if ((rule.multiline ? CONTROL_EXCEPT_NEWLINE_TAB : CONTROL).test(value)) {
    const allowed = rule.multiline ? " other than newline and tab" : "";
    out.push({ param, code: "invalid_format", message: `${label} must not contain control characters${allowed}` });
  }
}

/** A promotion code after normalizeCode: "" (automatic) or 3..64 of A-Z, 0-9, '_', '-'. */
export function checkCode(out: Violation[], code: string, param = "code"): void {
  if (code === "") return;
  const label = leaf(param);
  const length = charLength(code);
  if (length < LIMITS.codeMinLength) {
    out.push({ param, code: "too_short", message: `${label} must be at least ${LIMITS.codeMinLength} characters (got ${length})` });
  }
  if (length > LIMITS.codeMaxLength) {
    out.push({ param, code: "too_long", message: `${label} must be at most ${LIMITS.codeMaxLength} characters (got ${length})` });
  }
  if (!CODE_PATTERN.test(code)) {
    out.push({ param, code: "invalid_format", message: `${label} may contain only A-Z, 0-9, '_' and '-'` });
  }
}

/** A whole number within [min, max]; the message quotes both bounds and the value sent. */
export function checkIntRange(out: Violation[], value: number, param: string, min: number, max: number): void {
  if (Number.isInteger(value) && value >= min && value <= max) return;
  out.push({ param, code: "out_of_range", message: `${leaf(param)} must be between ${min} and ${max} (got ${value})` });
}

/** An amount of money in minor units: 1..10^15. */
export function checkMoney(out: Violation[], amountMinor: bigint, param: string): void {
  if (amountMinor >= 1n && amountMinor <= LIMITS.moneyMinor) return;
  out.push({
    param,
    code: "out_of_range",
    message: `${leaf(param)} must be between 1 and ${LIMITS.moneyMinor} (got ${amountMinor})`,
  });
}

/** An optional limit: null means unlimited, otherwise at least 1 (and at most `max` if given). */
export function checkLimit(out: Violation[], value: bigint | null, param: string, max?: bigint): void {
  if (value === null) return;
  const label = leaf(param);
  if (value < 1n) {
    out.push({ param, code: "out_of_range", message: `${label} must be at least 1 (got ${value}); leave it unset for no limit` });
  } else if (max !== undefined && value > max) {
    out.push({ param, code: "out_of_range", message: `${label} must be at most ${max} (got ${value})` });
  }
}

/** A validity window: when both ends are set, the start comes strictly before the end. */
export function checkWindow(
  out: Violation[],
  from: Date | null,
  to: Date | null,
  fromParam = "valid_from",
  toParam = "valid_to",
): void {
  if (from === null || to === null || from.getTime() < to.getTime()) return;
  out.push({
    param: toParam,
    code: "invalid_order",
    message: `${leaf(toParam)} (${iso(to)}) must be after ${leaf(fromParam)} (${iso(from)})`,
  });
}

/** A UUID in its canonical 8-4-4-4-12 hex form (any version, either case); "" is missing. */
export function checkUuid(out: Violation[], value: string, param: string): void {
  if (value === "") {
    out.push({ param, code: "required", message: `${leaf(param)} is required` });
  } else if (!isUuid(value)) {
    out.push({ param, code: "invalid_format", message: `${leaf(param)} must be a UUID (got ${quote(value)})` });
  }
}

/** A request's id field as it must be before anything is looked up: a UUID, else INVALID_ARGUMENT naming it. */
export function requireUuid(value: string, param = "id"): string {
  const out: Violation[] = [];
  checkUuid(out, value, param);
  assertValid(out);
  return value;
}

/** Whether `value` is a UUID in canonical 8-4-4-4-12 hex form. */
export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

/** A page size: 0 means the default (20), 1..100 is used as is (other lists pass their own bounds); returns the size to use. */
export function checkPageLimit(
  out: Violation[],
  limit: number,
  param = "limit",
  bounds: { defaultLimit: number; maxLimit: number } = { defaultLimit: LIMITS.defaultPageLimit, maxLimit: LIMITS.maxPageLimit },
): number {
  if (limit === 0) return bounds.defaultLimit;
  if (Number.isInteger(limit) && limit >= 1 && limit <= bounds.maxLimit) return limit;
  out.push({
    param,
    code: "out_of_range",
    message: `${leaf(param)} must be between 1 and ${bounds.maxLimit} (got ${limit}); 0 means the default ${bounds.defaultLimit}`,
  });
  return bounds.defaultLimit;
}

/**
 * A time that must not be in the past relative to `now` (null = unset, fine). Callers that want
 * to forgive clock skew pass a `now` moved back by the grace they allow.
 */
export function checkTimestampNotPast(out: Violation[], value: Date | null, now: Date, param: string): void {
  if (value === null || value.getTime() >= now.getTime()) return;
  out.push({
    param,
    code: "out_of_range",
    message: `${leaf(param)} must not be in the past (got ${iso(value)}, now ${iso(now)})`,
  });
}

/** A currency: "" is missing (a violation only when `requiredBy` names the amount needing it). */
export function checkCurrency(out: Violation[], currency: string, param = "currency", requiredBy?: string): void {
  const label = leaf(param);
  if (currency === "") {
    if (requiredBy !== undefined) {
      out.push({ param, code: "required", message: `${label} is required because ${requiredBy} is an amount of money` });
    }
  } else if (!/^[A-Z]{3}$/.test(currency)) {
    out.push({
      param,
      code: "invalid_format",
      message: `${label} must be a three-letter upper-case ISO-4217 code such as USD (got ${quote(currency)})`,
    });
  } else if (!isKnownCurrency(currency)) {
    out.push({ param, code: "invalid_value", message: `${label} ${quote(currency)} is not an active ISO-4217 currency` });
  }
}

/** A list of external ids (plans, products, segments): each non-empty, ≤ 200 characters, unique. */
export function checkIdList(out: Violation[], ids: readonly string[], param: string): void {
  const seen = new Map<string, number>();
  ids.forEach((id, i) => {
    const at = `${param}[${i}]`;
    if (id === "") {
      out.push({ param: at, code: "required", message: `${leaf(at)} must not be empty` });
      return;
    }
    checkText(out, id, at, { max: LIMITS.idLength });
    const first = seen.get(id);
    if (first === undefined) {
      seen.set(id, i);
    } else {
      out.push({ param: at, code: "duplicate", message: `${leaf(at)} repeats ${quote(id)} (already at index ${first})` });
    }
  });
}

/** Free-form metadata: at most 50 keys, keys 1..40 characters, values at most 500. */
export function checkMetadata(out: Violation[], metadata: Readonly<Record<string, string>>, param = "metadata"): void {
  const entries = Object.entries(metadata);
  if (entries.length > LIMITS.metadataKeys) {
    out.push({
      param,
      code: "too_many",
      message: `${param} may have at most ${LIMITS.metadataKeys} keys (got ${entries.length})`,
    });
  }
  for (const [key, value] of entries) {
    const at = `${param}[${JSON.stringify(key)}]`;
    const keyLength = charLength(key);
    if (keyLength === 0) {
      out.push({ param: at, code: "required", message: `${param} keys must not be empty` });
    } else if (keyLength > LIMITS.metadataKeyLength) {
      out.push({
        param: at,
        code: "too_long",
        message: `${param} key ${quote(key)} must be at most ${LIMITS.metadataKeyLength} characters (got ${keyLength})`,
      });
    }
    if (CONTROL.test(key)) {
      out.push({ param: at, code: "invalid_format", message: `${param} keys must not contain control characters` });
    }
    const valueLength = charLength(value);
    if (valueLength > LIMITS.metadataValueLength) {
      out.push({
        param: at,
        code: "too_long",
        message: `${param} value of ${quote(key)} must be at most ${LIMITS.metadataValueLength} characters (got ${valueLength})`,
      });
    }
    if (CONTROL_EXCEPT_NEWLINE_TAB.test(value)) {
      out.push({
        param: at,
        code: "invalid_format",
        message: `${param} value of ${quote(key)} must not contain control characters other than newline and tab`,
      });
    }
  }
}

// ---- Formatting helpers. ----

/** The last segment of a path, for messages: "phases[0].name" -> "name". */
export function leaf(param: string): string {
  const dot = param.lastIndexOf(".");
  return dot < 0 ? param : param.slice(dot + 1);
}

function charLength(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

/** A value echoed in a message: JSON-quoted so control characters show, and cut short. */
export function quote(value: string): string {
  const short = charLength(value) > 60 ? `${[...value].slice(0, 57).join("")}...` : value;
  return JSON.stringify(short);
}

export function iso(date: Date): string {
  return Number.isNaN(date.getTime()) ? "an invalid time" : date.toISOString();
}

export function formatBps(bps: number): string {
  const sign = bps < 0 ? "-" : "";
  const abs = Math.abs(bps);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, "0")}%`;
}
