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
        : v.state === "published" && v.archivedReason === null && v.effectiveFrom !== null && v.effectiveFrom <= now;
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
    .filter((v) => v.state === "published" && v.archivedReason === null && v.effectiveFrom !== null && v.effectiveFrom <= now)
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
  },
  now: Date,
): DerivedStatus {
  if (p.status === "DRAFT") return "DRAFT";
  if (p.status === "ARCHIVED") return "ARCHIVED";
  if (p.validTo !== null && now >= p.validTo) return "EXPIRED";
  if (p.validFrom !== null && now < p.validFrom) return "SCHEDULED";
  const redemptionsUsedUp = p.maxRedemptions !== null && p.currentRedemptions >= p.maxRedemptions;
  const budgetUsedUp = p.maxBudget !== null && p.currentBudgetUsed >= p.maxBudget;
  return redemptionsUsedUp || budgetUsedUp ? "EXHAUSTED" : "LIVE";
}

/** The operations a promotion's status allows; each refusal is FAILED_PRECONDITION naming the status. */
export function assertTransition(
  action: "activate" | "deactivate" | "edit_phases",
  status: PromotionStatus,
): void {
  const allowed: Record<typeof action, PromotionStatus[]> = {
    activate: ["DRAFT"],
    deactivate: ["ACTIVE"],
    edit_phases: ["DRAFT"],
  };
  if (allowed[action].includes(status)) return;
  const messages: Record<typeof action, string> = {
    activate: `only a DRAFT promotion can be activated; this one is ${status}`,
    deactivate: `only an ACTIVE promotion can be deactivated; this one is ${status}`,
    edit_phases: `phases, is_phased and archetype can only change while the promotion is a DRAFT; this one is ${status} (copy it to a new draft instead)`,
  };
  throw DomainError.of("failed_precondition", "invalid_status", messages[action], action === "edit_phases" ? "phases" : "");
}
