import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import * as pb from "../../../gen/promotions/v1/promotion_pb.js";
import * as types from "../../../gen/promotions/v1/types_pb.js";
import type { CreatePromotionRequest, UpdatePromotionRequest } from "../../../gen/promotions/v1/promotion_service_pb.js";
import { shorthandPhases, type TermsPatch } from "../../domain/editing.js";
import type { Violation } from "../../domain/errors.js";
import * as d from "../../domain/terms.js";
import type { VersionRecord } from "../../promotions/promotions.js";
import type { PromotionView } from "../../store/promotion-views.js";

// protobuf messages <-> domain values. Nothing here decides anything: unknown enum numbers and
// unreadable timestamps are reported as violations for the validation module to fail with.

/** Collects conversion problems (unknown enum numbers, bad timestamps) under their field paths. */
export class ConversionProblems {
  readonly violations: Violation[] = [];

  enumValue<T extends string>(
    names: Record<number, string>,
    value: number,
    allowed: readonly T[],
    fallback: T,
    param: string,
  ): T {
    if (value === 0) return fallback;
    const name = names[value];
    if (name !== undefined && (allowed as readonly string[]).includes(name)) return name as T;
    this.violations.push({ param, code: "invalid_enum", message: `${param} has no value ${value} (known: ${allowed.join(", ")})` });
    return fallback;
  }

  date(ts: Timestamp | undefined, param: string): Date | null {
    if (ts === undefined) return null;
    const date = timestampDate(ts);
    if (Number.isNaN(date.getTime()) || ts.nanos < 0 || ts.nanos > 999_999_999 || Math.abs(date.getFullYear()) > 9999) {
      this.violations.push({ param, code: "invalid_timestamp", message: `${param} is not a valid timestamp` });
      return null;
    }
    return date;
  }
}

function appliesTo(a: types.AppliesTo | undefined): d.AppliesTo | null {
  return a === undefined ? null : { planIds: [...a.planIds], productIds: [...a.productIds] };
}

export function effectFromProto(e: types.Effect): d.Effect {
  const a = appliesTo(e.appliesTo);
  switch (e.kind.case) {
    case "percentageDiscount":
      return { kind: "percentage_discount", percentBps: e.kind.value.percentBps, appliesTo: a };
    case "fixedDiscount":
      return { kind: "fixed_discount", amountMinor: e.kind.value.amountMinor, appliesTo: a };
    case "freeTrialExtension":
      return { kind: "free_trial_extension", days: e.kind.value.days, appliesTo: a };
    case "creditGrant":
      return { kind: "credit_grant", amountMinor: e.kind.value.amountMinor, appliesTo: a };
    default:
      return { kind: "unset", appliesTo: a };
  }
}

export function conditionFromProto(c: types.Condition, param: string, problems: ConversionProblems): d.Condition {
  switch (c.kind.case) {
    case "minSpend":
      return { kind: "min_spend", amountMinor: c.kind.value.amountMinor };
    case "plans":
      return { kind: "plans", include: [...c.kind.value.include], exclude: [...c.kind.value.exclude] };
    case "products":
      return { kind: "products", include: [...c.kind.value.include], exclude: [...c.kind.value.exclude] };
    case "customerSegments":
      return { kind: "customer_segments", anyOf: [...c.kind.value.anyOf] };
    case "firstTimeCustomer":
      return { kind: "first_time_customer" };
    case "dateRange":
      return {
        kind: "date_range",
        start: problems.date(c.kind.value.start, `${param}.date_range.start`),
        end: problems.date(c.kind.value.end, `${param}.date_range.end`),
      };
    default:
      return { kind: "unset" };
  }
}

export function phaseFromProto(p: types.Phase, param: string, problems: ConversionProblems): d.Phase {
  const duration = p.duration === types.PhaseDuration.UNSPECIFIED
    ? null
    : problems.enumValue(types.PhaseDuration, p.duration, d.PHASE_DURATIONS, "ONCE", `${param}.duration`);
  return { name: p.name, duration, cycles: p.cycles === 0 ? null : p.cycles, effects: p.effects.map(effectFromProto) };
}

export const conditionsFromProto = (list: readonly types.Condition[], problems: ConversionProblems): d.Condition[] =>
  list.map((c, i) => conditionFromProto(c, `conditions[${i}]`, problems));

export const phasesFromProto = (list: readonly types.Phase[], problems: ConversionProblems): d.Phase[] =>
  list.map((p, i) => phaseFromProto(p, `phases[${i}]`, problems));

/** Each enum field of the terms: its proto enum, the domain's values, and the request field naming it. */
const TERM_ENUMS = {
  archetype: { names: pb.Archetype, values: d.ARCHETYPES, param: "archetype" },
  visibility: { names: pb.Visibility, values: d.VISIBILITIES, param: "visibility" },
  applicationTiming: { names: pb.ApplicationTiming, values: d.APPLICATION_TIMINGS, param: "application_timing" },
  conditionMode: { names: pb.ConditionMode, values: d.CONDITION_MODES, param: "condition_mode" },
  budgetBehavior: { names: pb.BudgetBehavior, values: d.BUDGET_BEHAVIORS, param: "budget_behavior" },
} as const;
type TermEnum = keyof typeof TERM_ENUMS;

/** An enum term field of a request as a domain value; UNSPECIFIED is the domain's default (ENUM_DEFAULTS). */
function termEnum<K extends TermEnum>(problems: ConversionProblems, key: K, value: number): d.PromotionTerms[K] {
  const e = TERM_ENUMS[key];
  return problems.enumValue(e.names, value, e.values as readonly string[], d.ENUM_DEFAULTS[key], e.param) as d.PromotionTerms[K];
}

/** A request's application method; UNSPECIFIED is the domain's default for the code it names. */
function applicationMethod(problems: ConversionProblems, value: number, code: string): d.ApplicationMethod {
  return problems.enumValue(pb.ApplicationMethod, value, d.APPLICATION_METHODS, d.defaultApplicationMethod(code), "application_method");
}

/** CreatePromotionRequest -> the terms of the new draft (`effects` is the shorthand for a single Default phase). */
export function termsFromCreateRequest(req: CreatePromotionRequest, problems: ConversionProblems): { terms: d.PromotionTerms; effectsShorthand: boolean } {
  const effectsShorthand = req.effects.length > 0;
  if (effectsShorthand && req.phases.length > 0) {
    problems.violations.push({ param: "effects", code: "not_allowed", message: "give either effects (a single Default phase) or phases, not both" });
  }
  const terms: d.PromotionTerms = {
    name: req.name,
    description: req.description,
    publicDescription: req.publicDescription,
    code: req.code,
    applicationMethod: applicationMethod(problems, req.applicationMethod, req.code),
    archetype: termEnum(problems, "archetype", req.archetype),
    visibility: termEnum(problems, "visibility", req.visibility),
    stackable: req.stackable,
    priority: req.priority,
    applicationTiming: termEnum(problems, "applicationTiming", req.applicationTiming),
    conditionMode: termEnum(problems, "conditionMode", req.conditionMode),
    conditions: conditionsFromProto(req.conditions, problems),
    isPhased: req.isPhased,
    phases: effectsShorthand ? shorthandPhases(req.effects.map(effectFromProto)) : phasesFromProto(req.phases, problems),
    currency: req.currency,
    maxBudget: req.maxBudget ?? null,
    budgetBehavior: termEnum(problems, "budgetBehavior", req.budgetBehavior),
    maxRedemptions: req.maxRedemptions ?? null,
    maxRedemptionsPerCustomer: req.maxRedemptionsPerCustomer ?? null,
    validFrom: problems.date(req.validFrom, "valid_from"),
    validTo: problems.date(req.validTo, "valid_to"),
    requiresContinuousCoverage: req.requiresContinuousCoverage,
    metadata: { ...req.metadata },
  };
  return { terms, effectsShorthand };
}

/** 0 removes a limit in an update: limits are otherwise always positive. */
const limitPatch = (v: bigint): bigint | null => (v === 0n ? null : v);

/** UpdatePromotionRequest -> the fields it sets (unset fields are absent from the patch). */
export function patchFromUpdateRequest(req: UpdatePromotionRequest, problems: ConversionProblems): TermsPatch {
  const patch: TermsPatch = {};
  if (req.name !== undefined) patch.name = req.name;
  if (req.description !== undefined) patch.description = req.description;
  if (req.publicDescription !== undefined) patch.publicDescription = req.publicDescription;
  if (req.code !== undefined) patch.code = req.code;
  if (req.applicationMethod !== undefined) patch.applicationMethod = applicationMethod(problems, req.applicationMethod, req.code ?? "");
  if (req.archetype !== undefined) patch.archetype = termEnum(problems, "archetype", req.archetype);
  if (req.visibility !== undefined) patch.visibility = termEnum(problems, "visibility", req.visibility);
  if (req.stackable !== undefined) patch.stackable = req.stackable;
  if (req.priority !== undefined) patch.priority = req.priority;
  if (req.applicationTiming !== undefined) patch.applicationTiming = termEnum(problems, "applicationTiming", req.applicationTiming);
  if (req.conditionMode !== undefined) patch.conditionMode = termEnum(problems, "conditionMode", req.conditionMode);
  if (req.conditions !== undefined) patch.conditions = conditionsFromProto(req.conditions.conditions, problems);
  if (req.isPhased !== undefined) patch.isPhased = req.isPhased;
  if (req.phases !== undefined) patch.phases = phasesFromProto(req.phases.phases, problems);
  if (req.currency !== undefined) patch.currency = req.currency;
  if (req.maxBudget !== undefined) patch.maxBudget = limitPatch(req.maxBudget);
  if (req.budgetBehavior !== undefined) patch.budgetBehavior = termEnum(problems, "budgetBehavior", req.budgetBehavior);
  if (req.maxRedemptions !== undefined) patch.maxRedemptions = limitPatch(req.maxRedemptions);
  if (req.maxRedemptionsPerCustomer !== undefined) patch.maxRedemptionsPerCustomer = limitPatch(req.maxRedemptionsPerCustomer);
  if (req.validFrom !== undefined) patch.validFrom = problems.date(req.validFrom, "valid_from");
  if (req.validTo !== undefined) patch.validTo = problems.date(req.validTo, "valid_to");
  if (req.requiresContinuousCoverage !== undefined) patch.requiresContinuousCoverage = req.requiresContinuousCoverage;
  if (req.metadata !== undefined) patch.metadata = { ...req.metadata.entries };
  return patch;
}

// ---- domain -> proto ----

const ts = (date: Date | null): Timestamp | undefined => (date === null ? undefined : timestampFromDate(date));

function effectToProto(e: d.Effect): MessageInitShape<typeof types.EffectSchema> {
  const applies = e.appliesTo === null ? undefined : { planIds: e.appliesTo.planIds, productIds: e.appliesTo.productIds };
  switch (e.kind) {
    case "percentage_discount":
      return { kind: { case: "percentageDiscount", value: { percentBps: e.percentBps } }, appliesTo: applies };
    case "fixed_discount":
      return { kind: { case: "fixedDiscount", value: { amountMinor: e.amountMinor } }, appliesTo: applies };
    case "free_trial_extension":
      return { kind: { case: "freeTrialExtension", value: { days: e.days } }, appliesTo: applies };
    case "credit_grant":
      return { kind: { case: "creditGrant", value: { amountMinor: e.amountMinor } }, appliesTo: applies };
    case "unset":
      return { appliesTo: applies };
  }
}

function conditionToProto(c: d.Condition): MessageInitShape<typeof types.ConditionSchema> {
  switch (c.kind) {
    case "min_spend":
      return { kind: { case: "minSpend", value: { amountMinor: c.amountMinor } } };
    case "plans":
      return { kind: { case: "plans", value: { include: c.include, exclude: c.exclude } } };
    case "products":
      return { kind: { case: "products", value: { include: c.include, exclude: c.exclude } } };
    case "customer_segments":
      return { kind: { case: "customerSegments", value: { anyOf: c.anyOf } } };
    case "first_time_customer":
      return { kind: { case: "firstTimeCustomer", value: {} } };
    case "date_range":
      return { kind: { case: "dateRange", value: { start: ts(c.start), end: ts(c.end) } } };
    case "unset":
      return {};
  }
}

const enumNumber = (e: Record<string, string | number>, name: string): number => {
  const value = e[name];
  return typeof value === "number" ? value : 0;
};

/** The term fields shared by Promotion and PromotionTerms messages. */
function termsToProto(t: d.PromotionTerms) {
  return {
    name: t.name,
    description: t.description,
    publicDescription: t.publicDescription,
    code: t.code,
    applicationMethod: enumNumber(pb.ApplicationMethod, t.applicationMethod),
    archetype: enumNumber(pb.Archetype, t.archetype),
    visibility: enumNumber(pb.Visibility, t.visibility),
    stackable: t.stackable,
    priority: t.priority,
    applicationTiming: enumNumber(pb.ApplicationTiming, t.applicationTiming),
    conditionMode: enumNumber(pb.ConditionMode, t.conditionMode),
    conditions: t.conditions.map(conditionToProto),
    isPhased: t.isPhased,
    phases: t.phases.map((p) => ({
      name: p.name,
      duration: p.duration === null ? 0 : enumNumber(types.PhaseDuration, p.duration),
      cycles: p.cycles ?? 0,
      effects: p.effects.map(effectToProto),
    })),
    currency: t.currency,
    maxBudget: t.maxBudget ?? undefined,
    budgetBehavior: enumNumber(pb.BudgetBehavior, t.budgetBehavior),
    maxRedemptions: t.maxRedemptions ?? undefined,
    maxRedemptionsPerCustomer: t.maxRedemptionsPerCustomer ?? undefined,
    validFrom: ts(t.validFrom),
    validTo: ts(t.validTo),
    requiresContinuousCoverage: t.requiresContinuousCoverage,
    metadata: t.metadata,
  };
}

export function promotionToProto(v: PromotionView): pb.Promotion {
  const t = v.terms;
  return create(pb.PromotionSchema, {
    ...termsToProto(t),
    id: v.id,
    organizationId: v.organizationId,
    status: enumNumber(pb.PromotionStatus, v.status),
    derivedStatus: enumNumber(pb.DerivedStatus, v.derivedStatus),
    currentBudgetUsed: v.currentBudgetUsed,
    remainingBudget: t.maxBudget === null ? undefined : maxZero(t.maxBudget - v.currentBudgetUsed),
    currentRedemptions: v.currentRedemptions,
    remainingRedemptions: t.maxRedemptions === null ? undefined : maxZero(t.maxRedemptions - v.currentRedemptions),
    version: BigInt(v.version),
    headVersionId: v.headVersionId,
    liveVersion: BigInt(v.liveVersion),
    publishedAt: ts(v.publishedAt),
    publishedBy: v.publishedBy ?? "",
    createdAt: ts(v.createdAt),
    updatedAt: ts(v.updatedAt),
    archivedAt: ts(v.archivedAt),
    deletedAt: ts(v.deletedAt),
  });
}

const maxZero = (n: bigint): bigint => (n < 0n ? 0n : n);

export function versionToProto(r: VersionRecord): pb.PromotionVersion {
  return create(pb.PromotionVersionSchema, {
    id: r.id,
    promotionId: r.promotionId,
    version: BigInt(r.version),
    status: enumNumber(pb.VersionStatus, r.status),
    effectiveFrom: ts(r.effectiveFrom),
    effectiveTo: ts(r.effectiveTo),
    publishedAt: ts(r.publishedAt),
    publishedBy: r.publishedBy ?? "",
    createdAt: ts(r.createdAt),
    createdBy: r.createdBy ?? "",
    archivedReason: r.archivedReason ?? "",
    usageCount: r.usageCount,
  });
}

export function termsMessage(t: d.PromotionTerms): pb.PromotionTerms {
  return create(pb.PromotionTermsSchema, termsToProto(t));
}
