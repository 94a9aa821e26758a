import { DomainError } from "./errors.js";
import type { DerivedStatus, PromotionStatus, VersionStatus } from "./terms.js";

// The lifecycle rules of promotions and their versions, computed from stored facts and a clock.
// Nothing here is scheduled: a version "becomes" live because `now` passed its effective_from.

/** The stored facts of one version that its lifecycle status depends on. */
export interface VersionFacts {
  version: number;
  state: "draft" | "published";
  effectiveFrom: Date | null;
  archivedReason: string | null;
  archivedAt: Date | null;
}

export interface VersionLifecycle {
  version: number;
  status: VersionStatus;
  /** When a later version took over; null while in force or never in force. */
  effectiveTo: Date | null;
}

export const ARCHIVED_REASON = {
  promotionDeactivated: "promotion_deactivated",
  replacedBeforeEffective: "replaced_before_effective",
} as const;

/**
 * Whether a version was cancelled before it took effect: archived (replaced by a later publish, or
 * its promotion deactivated) while a draft or while still scheduled. The version in force when its
 * promotion was deactivated is archived too, but it did take effect, and stays the one in force.
 */
export function cancelledBeforeEffect(v: VersionFacts): boolean {
  return v.archivedReason !== null && (v.effectiveFrom === null || v.archivedAt === null || v.effectiveFrom > v.archivedAt);
}

/** The version whose terms are in force at `now`: the draft of a draft, else the newest published one that has started. */
export function versionInForce<V extends VersionFacts>(
  versions: readonly V[],
  promotionStatus: PromotionStatus,
  now: Date,
): V | undefined {
  let best: V | undefined;
  for (const v of versions) {
    const eligible =
      promotionStatus === "DRAFT"
        ? v.state === "draft"
        : v.state === "published" && !cancelledBeforeEffect(v) && v.effectiveFrom !== null && v.effectiveFrom <= now;
    if (eligible && (best === undefined || v.version > best.version)) best = v;
  }
  return best;
}

/** Lifecycle status and end of effect of every version, newest first. */
export function versionLifecycles(
  versions: readonly VersionFacts[],
  promotionStatus: PromotionStatus,
  now: Date,
): VersionLifecycle[] {
  const live = versionInForce(versions, promotionStatus, now);
  // Versions that actually took effect, in order; each one ends when the next one starts.
  const started = versions
    .filter((v) => v.state === "published" && !cancelledBeforeEffect(v) && v.effectiveFrom !== null && v.effectiveFrom <= now)
    .sort((a, b) => a.version - b.version);
  const endOf = new Map<number, Date>();
  for (let i = 0; i + 1 < started.length; i++) {
    const current = started[i];
    const next = started[i + 1];
    if (current && next?.effectiveFrom) endOf.set(current.version, next.effectiveFrom);
  }
  return [...versions]
    .sort((a, b) => b.version - a.version)
    .map((v) => ({ version: v.version, status: statusOf(v, live, promotionStatus, now), effectiveTo: endOf.get(v.version) ?? null }));
}

function statusOf(v: VersionFacts, live: VersionFacts | undefined, promotionStatus: PromotionStatus, now: Date): VersionStatus {
  if (v.archivedReason !== null) return "ARCHIVED";
  if (v.state === "draft") return "DRAFT";
  if (v.effectiveFrom !== null && v.effectiveFrom > now) return "SCHEDULED";
  if (live && v.version === live.version) return promotionStatus === "ARCHIVED" ? "ARCHIVED" : "PUBLISHED";
  return "SUPERSEDED";
}

/** Versions a publish at `now` cancels: published ones scheduled for later that have not taken effect. */
export function cancelledByPublish<V extends VersionFacts>(versions: readonly V[], now: Date): V[] {
  return versions.filter((v) => v.state === "published" && v.archivedReason === null && v.effectiveFrom !== null && v.effectiveFrom > now);
}

/**
 * Versions a deactivation at `now` archives with it: the one in force (it stays the promotion's
 * terms, now read-only) and those that never took effect (drafts, scheduled ones).
 */
export function archivedByDeactivation<V extends VersionFacts>(versions: readonly V[], now: Date): V[] {
  const inForce = versionInForce(versions, "ACTIVE", now);
  return versions.filter((v) => v.archivedReason === null && (v === inForce || v.state === "draft" || (v.effectiveFrom !== null && v.effectiveFrom > now)));
}

/** What a promotion is doing at `now`, from its status, window and counters. */
export function derivedStatus(
  p: {
    status: PromotionStatus;
    validFrom: Date | null;
    validTo: Date | null;
    maxRedemptions: bigint | null;
    currentRedemptions: bigint;
    maxBudget: bigint | null;
    currentBudgetUsed: bigint;
    /** A STRICT budget refused a grant it could no longer pay. */
    budgetExhausted?: boolean;
  },
  now: Date,
): DerivedStatus {
  if (p.status === "DRAFT") return "DRAFT";
  if (p.status === "ARCHIVED") return "ARCHIVED";
  if (p.validTo !== null && now >= p.validTo) return "EXPIRED";
  if (p.validFrom !== null && now < p.validFrom) return "SCHEDULED";
  const redemptionsUsedUp = p.maxRedemptions !== null && p.currentRedemptions >= p.maxRedemptions;
  const budgetUsedUp = p.maxBudget !== null && (p.currentBudgetUsed >= p.maxBudget || p.budgetExhausted === true);
  return redemptionsUsedUp || budgetUsedUp ? "EXHAUSTED" : "LIVE";
}

/** What a caller may ask of a promotion, each allowed in some statuses only. */
export type LifecycleAction = "activate" | "deactivate" | "edit" | "edit_phases" | "change_method" | "add_codes" | "change_codes";

const ALLOWED: Record<LifecycleAction, readonly PromotionStatus[]> = {
  activate: ["DRAFT"],
  deactivate: ["ACTIVE"],
  edit: ["DRAFT", "ACTIVE"],
  edit_phases: ["DRAFT"],
  change_method: ["DRAFT"],
  add_codes: ["DRAFT", "ACTIVE"],
  change_codes: ["DRAFT", "ACTIVE"],
};

/** The request field a refusal names. */
const PARAM: Record<LifecycleAction, string> = {
  activate: "",
  deactivate: "",
  edit: "",
  edit_phases: "phases",
  change_method: "application_method",
  add_codes: "promotion_id",
  change_codes: "id",
};

/** The one place a promotion's status allows or refuses an operation; each refusal is FAILED_PRECONDITION invalid_status naming the status. */
export function assertTransition(action: LifecycleAction, status: PromotionStatus): void {
  if (ALLOWED[action].includes(status)) return;
  const messages: Record<LifecycleAction, string> = {
    activate: `only a DRAFT promotion can be activated; this one is ${status}`,
    deactivate: `only an ACTIVE promotion can be deactivated; this one is ${status}`,
    edit: `an ${status} promotion is read-only; copy it to a new draft instead`,
    edit_phases: `phases, is_phased and archetype can only change while the promotion is a DRAFT; this one is ${status} (copy it to a new draft instead)`,
    change_method: `application_method can only change while the promotion is a DRAFT; this one is ${status} (copy it to a new draft instead)`,
    add_codes: `codes can be added only to a DRAFT or ACTIVE promotion; this one is ${status}`,
    change_codes: `the codes of an ${status} promotion cannot change`,
  };
  throw DomainError.of("failed_precondition", "invalid_status", messages[action], PARAM[action]);
}
