// The vocabulary of a promotion's terms, as plain values. The API layer maps protobuf messages to
// and from these; storage serialises them. Money is bigint minor units so no float ever appears.

export const ARCHETYPES = ["STANDARD", "LOYALTY_LADDER", "GROWTH_LADDER"] as const;
export type Archetype = (typeof ARCHETYPES)[number];

export const PROMOTION_STATUSES = ["DRAFT", "ACTIVE", "ARCHIVED"] as const;
export type PromotionStatus = (typeof PROMOTION_STATUSES)[number];

export const DERIVED_STATUSES = ["DRAFT", "SCHEDULED", "LIVE", "EXPIRED", "EXHAUSTED", "ARCHIVED"] as const;
export type DerivedStatus = (typeof DERIVED_STATUSES)[number];

export const VISIBILITIES = ["PUBLIC", "PRIVATE"] as const;
export type Visibility = (typeof VISIBILITIES)[number];

export const APPLICATION_TIMINGS = ["IMMEDIATE", "NEXT_PERIOD"] as const;
export type ApplicationTiming = (typeof APPLICATION_TIMINGS)[number];

export const CONDITION_MODES = ["ALL", "ANY"] as const;
export type ConditionMode = (typeof CONDITION_MODES)[number];

export const BUDGET_BEHAVIORS = ["CAP", "STRICT"] as const;
export type BudgetBehavior = (typeof BUDGET_BEHAVIORS)[number];

/** How a promotion reaches a customer: by code (entered, or redeemed by id), automatically, or assigned by a service. */
export const APPLICATION_METHODS = ["CODE", "AUTOMATIC", "ASSIGNED"] as const;
export type ApplicationMethod = (typeof APPLICATION_METHODS)[number];

export const PHASE_DURATIONS = ["ONCE", "REPEATING", "FOREVER"] as const;
export type PhaseDuration = (typeof PHASE_DURATIONS)[number];

export const VERSION_STATUSES = ["DRAFT", "SCHEDULED", "PUBLISHED", "SUPERSEDED", "ARCHIVED"] as const;
export type VersionStatus = (typeof VERSION_STATUSES)[number];

/** Lines an effect is limited to; empty lists mean every line. */
export interface AppliesTo {
  planIds: string[];
  productIds: string[];
}

export type Effect =
  | { kind: "percentage_discount"; percentBps: number; appliesTo: AppliesTo | null }
  | { kind: "fixed_discount"; amountMinor: bigint; appliesTo: AppliesTo | null }
  | { kind: "free_trial_extension"; days: number; appliesTo: AppliesTo | null }
  | { kind: "credit_grant"; amountMinor: bigint; appliesTo: AppliesTo | null }
  /** The request named no effect kind (an empty oneof); only validation ever sees it. */
  | { kind: "unset"; appliesTo: AppliesTo | null };

export type Condition =
  | { kind: "min_spend"; amountMinor: bigint }
  | { kind: "plans"; include: string[]; exclude: string[] }
  | { kind: "products"; include: string[]; exclude: string[] }
  | { kind: "customer_segments"; anyOf: string[] }
  | { kind: "first_time_customer" }
  | { kind: "date_range"; start: Date | null; end: Date | null }
  /** The request named no condition kind (an empty oneof); only validation ever sees it. */
  | { kind: "unset" };

export interface Phase {
  name: string;
  /** null when the request left it unspecified; validation rejects that. */
  duration: PhaseDuration | null;
  /** Billing periods; only for REPEATING. */
  cycles: number | null;
  effects: Effect[];
}

/** Everything a version of a promotion fixes. Absent limits are null (unlimited). */
export interface PromotionTerms {
  name: string;
  description: string;
  publicDescription: string;
  /** Upper-cased primary code; "" for an AUTOMATIC or ASSIGNED promotion. */
  code: string;
  /** How it reaches customers; only AUTOMATIC applies without a redemption. */
  applicationMethod: ApplicationMethod;
  archetype: Archetype;
  visibility: Visibility;
  stackable: boolean;
  priority: number;
  applicationTiming: ApplicationTiming;
  conditionMode: ConditionMode;
  conditions: Condition[];
  isPhased: boolean;
  phases: Phase[];
  /** ISO-4217, upper case, or "" when the terms hold no amounts. */
  currency: string;
  maxBudget: bigint | null;
  budgetBehavior: BudgetBehavior;
  maxRedemptions: bigint | null;
  maxRedemptionsPerCustomer: bigint | null;
  validFrom: Date | null;
  validTo: Date | null;
  requiresContinuousCoverage: boolean;
  metadata: Record<string, string>;
}

/** The name a non-phased promotion's single phase always has. */
export const DEFAULT_PHASE_NAME = "Default";

/** What each enum field of the terms is when a request leaves it unspecified: the one table of these defaults. */
export const ENUM_DEFAULTS = {
  archetype: "STANDARD",
  visibility: "PRIVATE",
  applicationTiming: "IMMEDIATE",
  conditionMode: "ALL",
  budgetBehavior: "CAP",
} as const satisfies Partial<PromotionTerms>;

/** Terms a new promotion starts from before the request's fields are applied. */
export function defaultTerms(): PromotionTerms {
  return {
    name: "",
    description: "",
    publicDescription: "",
    code: "",
    applicationMethod: "AUTOMATIC",
    ...ENUM_DEFAULTS,
    stackable: false,
    priority: 0,
    conditions: [],
    isPhased: false,
    phases: [],
    currency: "",
    maxBudget: null,
    maxRedemptions: null,
    maxRedemptionsPerCustomer: null,
    validFrom: null,
    validTo: null,
    requiresContinuousCoverage: false,
    metadata: {},
  };
}

/** The method a request that names none gets: CODE when it gives a code, AUTOMATIC otherwise. */
export function defaultApplicationMethod(code: string): ApplicationMethod {
  return code.trim() === "" ? "AUTOMATIC" : "CODE";
}

/** Codes compare case-insensitively; this is the one canonical form they are stored in. */
export function normalizeCode(code: string): string {
  return code.trim().toUpperCase();
}
