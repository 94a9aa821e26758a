import { DomainError } from "./errors.js";
import { assertTransition } from "./lifecycle.js";
import { DEFAULT_PHASE_NAME, normalizeCode, type Effect, type Phase, type PromotionStatus, type PromotionTerms } from "./terms.js";

// Edit-as-publish: how a change request turns into new terms and which version it lands in.

/** Fields an update sets; absent fields keep their value. A null limit removes the limit. */
export type TermsPatch = { [K in keyof PromotionTerms]?: PromotionTerms[K] };

/** Upper-cases codes and currency and names a non-phased promotion's phase, so equal terms compare equal. */
export function normalizeTerms(terms: PromotionTerms): PromotionTerms {
  const phases =
    !terms.isPhased && terms.phases.length === 1 && terms.phases[0] && terms.phases[0].name === ""
      ? [{ ...terms.phases[0], name: DEFAULT_PHASE_NAME }]
      : terms.phases;
  return { ...terms, code: normalizeCode(terms.code), currency: terms.currency.trim().toUpperCase(), phases };
}

/** The terms after a patch, normalised. */
export function applyPatch(base: PromotionTerms, patch: TermsPatch): PromotionTerms {
  const merged = { ...base };
  for (const key of Object.keys(patch) as (keyof PromotionTerms)[]) {
    if (patch[key] !== undefined) Object.assign(merged, { [key]: patch[key] });
  }
  return normalizeTerms(merged);
}

/** Whether the patch changes the phase structure, which only drafts may do. */
export function touchesPhases(patch: TermsPatch): boolean {
  return patch.phases !== undefined || patch.isPhased !== undefined || patch.archetype !== undefined;
}

export interface UpdateOptions {
  expectedVersion: number | null;
  effectiveAt: Date | null;
  saveAsDraft: boolean;
}

/** Where an update lands. */
export type UpdatePlan =
  /** Rewrite this draft version (the draft of a draft promotion, or an active one's pending draft). */
  | { kind: "edit_draft"; version: number }
  /** Write a new draft version on top of the live terms. */
  | { kind: "new_draft" }
  /** Publish: the pending draft `version` if there is one, else a new version, effective at `effectiveFrom`. */
  | { kind: "publish"; pendingDraft: number | null; effectiveFrom: Date };

/** How much earlier than "now" an effective_at may be and still count as "now" (clock skew). */
const EFFECTIVE_AT_SKEW_MS = 5_000;

/**
 * Decides where an update goes. Drafts are edited in place; an active promotion never changes
 * its live terms in place but gets a version that is live now, scheduled, or kept as a draft.
 */
export function planUpdate(
  current: { status: PromotionStatus; version: number; pendingDraftVersion: number | null },
  patch: TermsPatch,
  opts: UpdateOptions,
  now: Date,
): UpdatePlan {
  if (opts.expectedVersion !== null && opts.expectedVersion !== current.version) {
    throw DomainError.of(
      "aborted",
      "version_conflict",
      `expected_version is ${opts.expectedVersion} but the promotion is at version ${current.version}; re-read it and retry`,
      "expected_version",
    );
  }
  assertTransition("edit", current.status);
  if (touchesPhases(patch)) assertTransition("edit_phases", current.status);

  if (current.status === "DRAFT") {
    if (opts.effectiveAt !== null) {
      throw DomainError.of("invalid_argument", "not_allowed", "effective_at applies only to ACTIVE promotions; a draft takes effect when activated", "effective_at");
    }
    return { kind: "edit_draft", version: current.version };
  }
  if (opts.saveAsDraft) {
    if (opts.effectiveAt !== null) {
      throw DomainError.of("invalid_argument", "not_allowed", "effective_at cannot be combined with save_as_draft; give it with the update that publishes the draft", "effective_at");
    }
    return current.pendingDraftVersion !== null ? { kind: "edit_draft", version: current.pendingDraftVersion } : { kind: "new_draft" };
  }
  if (opts.effectiveAt !== null && opts.effectiveAt.getTime() < now.getTime() - EFFECTIVE_AT_SKEW_MS) {
    throw DomainError.of("invalid_argument", "out_of_range", `effective_at must not be in the past (got ${opts.effectiveAt.toISOString()})`, "effective_at");
  }
  const effectiveFrom = opts.effectiveAt !== null && opts.effectiveAt > now ? opts.effectiveAt : now;
  return { kind: "publish", pendingDraft: current.pendingDraftVersion, effectiveFrom };
}

/** The terms of a copy: the source's newest terms with a new name, code and window. */
export function copyTerms(
  source: PromotionTerms,
  overrides: { name: string; code: string; validFrom: Date | null; validTo: Date | null },
): PromotionTerms {
  return normalizeTerms({
    ...source,
    name: overrides.name !== "" ? overrides.name : `${source.name} (copy)`.slice(0, 200),
    code: overrides.code,
    validFrom: overrides.validFrom ?? source.validFrom,
    validTo: overrides.validTo ?? source.validTo,
  });
}

/** A non-phased promotion given as a bare effect list: one Default phase that lasts forever. */
export function shorthandPhases(effects: Effect[]): Phase[] {
  return [{ name: DEFAULT_PHASE_NAME, duration: "FOREVER", cycles: null, effects }];
}
