// The rules a promotion's terms must satisfy, in one place, built from the field checks in
// checks.ts: every violation of a request is collected and reported at once.

import type { Violation } from "./errors.js";
import { DEFAULT_PHASE_NAME, type AppliesTo, type Condition, type Effect, type PromotionTerms } from "./terms.js";
import { checkCode, checkCurrency, checkIdList, checkIntRange, checkLimit, checkMetadata, checkMoney, checkText, checkWindow, formatBps, leaf, LIMITS, quote } from "./checks.js";

/** Every violation of a promotion's terms; empty when they are valid. */
export function validateTerms(terms: PromotionTerms, options: { effectsShorthand?: boolean } = {}): Violation[] {
  const out: Violation[] = [];
  const paths = new EffectPaths(options.effectsShorthand === true);
  checkText(out, terms.name, "name", { min: 1, max: LIMITS.nameLength });
  checkText(out, terms.description, "description", { max: LIMITS.descriptionLength, multiline: true });
  checkText(out, terms.publicDescription, "public_description", { max: LIMITS.descriptionLength, multiline: true });
  checkCode(out, terms.code);
  checkApplicationMethod(out, terms);
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


// ---- The rules of a promotion's terms. ----

/** A CODE promotion has a code; AUTOMATIC and ASSIGNED ones have none (a code would be a second way in). */
function checkApplicationMethod(out: Violation[], terms: PromotionTerms): void {
  if (terms.applicationMethod === "CODE" && terms.code === "") {
    out.push({ param: "code", code: "code_required", message: "a CODE promotion needs a code (set application_method to AUTOMATIC or ASSIGNED for one without)" });
  } else if (terms.applicationMethod !== "CODE" && terms.code !== "") {
    out.push({ param: "code", code: "not_allowed", message: `an ${terms.applicationMethod} promotion takes no code (set application_method to CODE)` });
  }
}

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

