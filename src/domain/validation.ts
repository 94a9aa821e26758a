// Request validation: every rule a promotion's terms must satisfy, in one place. Checks never
// short-circuit: each pushes what it finds into the caller's Violation[], so a client learns
// everything wrong with a request from one INVALID_ARGUMENT, and `assertValid` fails once.
// Params are the proto (snake_case) field paths the client sent.

import { isKnownCurrency } from "./currency.js";
import { DomainError, type Violation } from "./errors.js";
import { DEFAULT_PHASE_NAME, type AppliesTo, type Condition, type Effect, type PromotionTerms } from "./terms.js";

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

/** Every violation of a promotion's terms; empty when they are valid. */
export function validateTerms(terms: PromotionTerms, options: { effectsShorthand?: boolean } = {}): Violation[] {
  const out: Violation[] = [];
  const paths = new EffectPaths(options.effectsShorthand === true);
  checkText(out, terms.name, "name", { min: 1, max: LIMITS.nameLength });
  checkText(out, terms.description, "description", { max: LIMITS.descriptionLength, multiline: true });
  checkText(out, terms.publicDescription, "public_description", { max: LIMITS.descriptionLength, multiline: true });
  checkCode(out, terms.code);
  checkIntRange(out, terms.priority, "priority", -LIMITS.priority, LIMITS.priority);
  checkWindow(out, terms.validFrom, terms.validTo);
  checkLimits(out, terms);
  checkPhases(out, terms, paths);
  checkLadder(out, terms, paths);
  checkConditions(out, terms.conditions);
  checkMetadata(out, terms.metadata);
  checkTermsCurrency(out, terms, paths);
  return out;
}

// ---- Reusable field checks: each pushes into `out` and returns nothing (or the value to use). ----

/** Shape rules for a free-text field; lengths count characters (code points), not bytes. */
export interface TextRule {
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

/** Whether `value` is a UUID in canonical 8-4-4-4-12 hex form. */
export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

/** A page size: 0 means the default (20), 1..100 is used as is; returns the size to use. */
export function checkPageLimit(out: Violation[], limit: number, param = "limit"): number {
  if (limit === 0) return LIMITS.defaultPageLimit;
  if (Number.isInteger(limit) && limit >= 1 && limit <= LIMITS.maxPageLimit) return limit;
  out.push({
    param,
    code: "out_of_range",
    message: `${leaf(param)} must be between 1 and ${LIMITS.maxPageLimit} (got ${limit}); 0 means the default ${LIMITS.defaultPageLimit}`,
  });
  return LIMITS.defaultPageLimit;
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

// ---- The rules of a promotion's terms. ----

/** Where a phase's effects live in the request: `effects` when the client used the shorthand. */
class EffectPaths {
  constructor(private readonly shorthand: boolean) {}
  list(phase: number): string {
    return this.shorthand && phase === 0 ? "effects" : `phases[${phase}].effects`;
  }
  effect(phase: number, effect: number): string {
    return `${this.list(phase)}[${effect}]`;
  }
}

function checkLimits(out: Violation[], terms: PromotionTerms): void {
  checkLimit(out, terms.maxBudget, "max_budget", LIMITS.moneyMinor);
  checkLimit(out, terms.maxRedemptions, "max_redemptions");
  checkLimit(out, terms.maxRedemptionsPerCustomer, "max_redemptions_per_customer");
  const total = terms.maxRedemptions;
  const perCustomer = terms.maxRedemptionsPerCustomer;
  if (total !== null && perCustomer !== null && total >= 1n && perCustomer > total) {
    out.push({
      param: "max_redemptions_per_customer",
      code: "out_of_range",
      message: `max_redemptions_per_customer (${perCustomer}) must not exceed max_redemptions (${total})`,
    });
  }
}

function checkPhases(out: Violation[], terms: PromotionTerms, paths: EffectPaths): void {
  const { phases } = terms;
  if (phases.length === 0) {
    out.push({ param: "phases", code: "required", message: "at least one phase is required" });
    return;
  }
  if (!terms.isPhased) {
    if (phases.length > 1) {
      out.push({
        param: "phases",
        code: "too_many",
        message: `a promotion that is not phased has exactly one phase (got ${phases.length}); set is_phased for several`,
      });
    }
    const only = phases[0];
    if (only && only.name !== DEFAULT_PHASE_NAME) {
      out.push({
        param: "phases[0].name",
        code: "invalid_value",
        message: `the phase of a promotion that is not phased must be named ${quote(DEFAULT_PHASE_NAME)} (got ${quote(only.name)})`,
      });
    }
  }
  const names = new Map<string, number>();
  phases.forEach((phase, i) => {
    const at = `phases[${i}]`;
    checkText(out, phase.name, `${at}.name`, { min: 1, max: LIMITS.phaseNameLength });
    const key = phase.name.trim().toLowerCase();
    const first = names.get(key);
    if (first === undefined) {
      names.set(key, i);
    } else if (key !== "") {
      out.push({
        param: `${at}.name`,
        code: "duplicate",
        message: `phase name ${quote(phase.name)} is already used by phases[${first}]; phase names must be unique`,
      });
    }
    checkDuration(out, phase.duration, phase.cycles, at, i === phases.length - 1);
    const effectsAt = paths.list(i);
    if (phase.effects.length === 0) {
      out.push({ param: effectsAt, code: "required", message: `phase ${quote(phase.name)} needs at least one effect` });
    } else if (phase.effects.length > LIMITS.effectsPerPhase) {
      out.push({
        param: effectsAt,
        code: "too_many",
        message: `a phase has at most ${LIMITS.effectsPerPhase} effects (got ${phase.effects.length})`,
      });
    }
    phase.effects.forEach((effect, j) => checkEffect(out, effect, paths.effect(i, j)));
  });
}

function checkDuration(out: Violation[], duration: string | null, cycles: number | null, at: string, isLast: boolean): void {
  const cyclesAt = `${at}.cycles`;
  switch (duration) {
    case null:
      out.push({ param: `${at}.duration`, code: "required", message: "duration is required (ONCE, REPEATING or FOREVER)" });
      return;
    case "REPEATING":
      if (cycles === null || cycles === 0) {
        out.push({ param: cyclesAt, code: "required", message: "cycles is required for a REPEATING phase" });
      } else {
        checkIntRange(out, cycles, cyclesAt, 1, LIMITS.cycles);
      }
      return;
    default:
      if (cycles !== null && cycles !== 0) {
        out.push({
          param: cyclesAt,
          code: "not_allowed",
          message: `cycles is only allowed on a REPEATING phase (got ${cycles} on a ${duration} phase)`,
        });
      }
      if (duration === "FOREVER" && !isLast) {
        out.push({ param: `${at}.duration`, code: "not_allowed", message: "only the last phase may be FOREVER" });
      }
  }
}

function checkEffect(out: Violation[], effect: Effect, at: string): void {
  switch (effect.kind) {
    case "percentage_discount":
      checkIntRange(out, effect.percentBps, `${at}.percentage_discount.percent_bps`, 1, LIMITS.percentBps);
      break;
    case "fixed_discount":
      checkMoney(out, effect.amountMinor, `${at}.fixed_discount.amount_minor`);
      break;
    case "free_trial_extension":
      checkIntRange(out, effect.days, `${at}.free_trial_extension.days`, 1, LIMITS.trialDays);
      break;
    case "credit_grant":
      checkMoney(out, effect.amountMinor, `${at}.credit_grant.amount_minor`);
      break;
    case "unset":
      out.push({
        param: at,
        code: "required",
        message: "must set one of percentage_discount, fixed_discount, free_trial_extension, credit_grant",
      });
      break;
  }
  if (effect.appliesTo) checkAppliesTo(out, effect.appliesTo, `${at}.applies_to`);
}

function checkAppliesTo(out: Violation[], appliesTo: AppliesTo, at: string): void {
  checkIdList(out, appliesTo.planIds, `${at}.plan_ids`);
  checkIdList(out, appliesTo.productIds, `${at}.product_ids`);
}

interface PhaseDiscount {
  percentBps: number;
  fixedMinor: bigint;
  any: boolean;
}

function phaseDiscount(effects: readonly Effect[]): PhaseDiscount {
  const total: PhaseDiscount = { percentBps: 0, fixedMinor: 0n, any: false };
  for (const effect of effects) {
    if (effect.kind === "percentage_discount") {
      total.percentBps += effect.percentBps;
      total.any = true;
    } else if (effect.kind === "fixed_discount") {
      total.fixedMinor += effect.amountMinor;
      total.any = true;
    }
  }
  return total;
}

// Ladders are monotonic per kind: the total percentage and the total fixed amount of each phase
// are compared with the phase before, so mixing kinds cannot hide a fall (or rise).
function checkLadder(out: Violation[], terms: PromotionTerms, paths: EffectPaths): void {
  const archetype = terms.archetype;
  if (archetype === "STANDARD") return;
  if (!terms.isPhased) {
    out.push({ param: "is_phased", code: "invalid_value", message: `a ${archetype} promotion must be phased (set is_phased)` });
  }
  if (terms.phases.length === 1) {
    out.push({ param: "phases", code: "too_few", message: `a ${archetype} needs at least 2 phases (got 1)` });
  }
  const loyalty = archetype === "LOYALTY_LADDER";
  const verb = loyalty ? "fall" : "rise";
  const comparison = loyalty ? "less" : "more";
  let previous: { discount: PhaseDiscount; name: string; index: number } | null = null;
  terms.phases.forEach((phase, i) => {
    const discount = phaseDiscount(phase.effects);
    if (!discount.any) {
      if (phase.effects.length > 0) {
        out.push({
          param: paths.list(i),
          code: "required",
          message: `every phase of a ${archetype} needs a percentage_discount or fixed_discount; phase ${quote(phase.name)} has none`,
        });
      }
      return;
    }
    if (previous) {
      const breaks = (now: number | bigint, before: number | bigint): boolean => (loyalty ? now < before : now > before);
      const prefix = `a ${archetype}'s discount must never ${verb} from one phase to the next: phase ${quote(phase.name)} (phases[${i}]) gives`;
      const previousName = `phase ${quote(previous.name)} (phases[${previous.index}])`;
      if (breaks(discount.percentBps, previous.discount.percentBps)) {
        out.push({
          param: `phases[${i}]`,
          code: "invalid_order",
          message: `${prefix} ${formatBps(discount.percentBps)} off, ${comparison} than the ${formatBps(previous.discount.percentBps)} of ${previousName}`,
        });
      }
      if (breaks(discount.fixedMinor, previous.discount.fixedMinor)) {
        out.push({
          param: `phases[${i}]`,
          code: "invalid_order",
          message: `${prefix} a fixed ${discount.fixedMinor} minor units off, ${comparison} than the ${previous.discount.fixedMinor} of ${previousName}`,
        });
      }
    }
    previous = { discount, name: phase.name, index: i };
  });
}

function checkConditions(out: Violation[], conditions: readonly Condition[]): void {
  if (conditions.length > LIMITS.conditions) {
    out.push({
      param: "conditions",
      code: "too_many",
      message: `at most ${LIMITS.conditions} conditions are allowed (got ${conditions.length})`,
    });
  }
  conditions.forEach((condition, i) => checkCondition(out, condition, `conditions[${i}]`));
}

function checkCondition(out: Violation[], condition: Condition, at: string): void {
  switch (condition.kind) {
    case "min_spend":
      checkMoney(out, condition.amountMinor, `${at}.min_spend.amount_minor`);
      return;
    case "plans":
    case "products":
      checkIncludeExclude(out, condition.include, condition.exclude, `${at}.${condition.kind}`);
      return;
    case "customer_segments":
      if (condition.anyOf.length === 0) {
        out.push({ param: `${at}.customer_segments.any_of`, code: "required", message: "any_of needs at least one segment" });
      }
      checkIdList(out, condition.anyOf, `${at}.customer_segments.any_of`);
      return;
    case "first_time_customer":
      return;
    case "date_range":
      if (condition.start === null && condition.end === null) {
        out.push({ param: `${at}.date_range`, code: "required", message: "date_range needs a start, an end or both" });
      } else {
        checkWindow(out, condition.start, condition.end, `${at}.date_range.start`, `${at}.date_range.end`);
      }
      return;
    case "unset":
      out.push({
        param: at,
        code: "required",
        message: "must set one of min_spend, plans, products, customer_segments, first_time_customer, date_range",
      });
      return;
  }
}

function checkIncludeExclude(out: Violation[], include: readonly string[], exclude: readonly string[], at: string): void {
  if (include.length === 0 && exclude.length === 0) {
    out.push({ param: at, code: "required", message: `${leaf(at)} needs at least one id in include or exclude` });
  }
  checkIdList(out, include, `${at}.include`);
  checkIdList(out, exclude, `${at}.exclude`);
  const included = new Set(include);
  exclude.forEach((id, j) => {
    if (id !== "" && included.has(id)) {
      out.push({
        param: `${at}.exclude[${j}]`,
        code: "not_allowed",
        message: `${quote(id)} cannot be in both include and exclude`,
      });
    }
  });
}

// Currency is required exactly when some amount of money needs one; the message names the first.
function checkTermsCurrency(out: Violation[], terms: PromotionTerms, paths: EffectPaths): void {
  checkCurrency(out, terms.currency, "currency", firstMoneyPath(terms, paths));
}

function firstMoneyPath(terms: PromotionTerms, paths: EffectPaths): string | undefined {
  for (const [i, phase] of terms.phases.entries()) {
    for (const [j, effect] of phase.effects.entries()) {
      if (effect.kind === "fixed_discount" || effect.kind === "credit_grant") return `${paths.effect(i, j)}.${effect.kind}`;
    }
  }
  const minSpend = terms.conditions.findIndex((c) => c.kind === "min_spend");
  if (minSpend >= 0) return `conditions[${minSpend}].min_spend`;
  if (terms.maxBudget !== null) return "max_budget";
  return undefined;
}

// ---- Formatting helpers. ----

/** The last segment of a path, for messages: "phases[0].name" -> "name". */
function leaf(param: string): string {
  const dot = param.lastIndexOf(".");
  return dot < 0 ? param : param.slice(dot + 1);
}

function charLength(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

/** A value echoed in a message: JSON-quoted so control characters show, and cut short. */
function quote(value: string): string {
  const short = charLength(value) > 60 ? `${[...value].slice(0, 57).join("")}...` : value;
  return JSON.stringify(short);
}

function iso(date: Date): string {
  return Number.isNaN(date.getTime()) ? "an invalid time" : date.toISOString();
}

function formatBps(bps: number): string {
  const sign = bps < 0 ? "-" : "";
  const abs = Math.abs(bps);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, "0")}%`;
}
