import { describe, expect, it } from "vitest";
import { applyPatch, copyTerms, planUpdate, shorthandPhases } from "../../src/domain/editing.js";
import { DomainError } from "../../src/domain/errors.js";
import { archivedByDeactivation, cancelledBeforeEffect, derivedStatus, versionInForce, versionLifecycles, type VersionFacts } from "../../src/domain/lifecycle.js";
import { defaultTerms } from "../../src/domain/terms.js";

const t = (iso: string) => new Date(iso);
const now = t("2026-06-01T12:00:00Z");
/** A published version; one with an archived reason was cancelled the day before it would have taken effect. */
const published = (version: number, from: string, archivedReason: string | null = null): VersionFacts => ({
  version,
  state: "published",
  effectiveFrom: t(from),
  archivedReason,
  archivedAt: archivedReason === null ? null : new Date(t(from).getTime() - 86_400_000),
});
const draft = (version: number): VersionFacts => ({ version, state: "draft", effectiveFrom: null, archivedReason: null, archivedAt: null });

describe("derivedStatus", () => {
  const base = {
    status: "ACTIVE" as const,
    validFrom: null,
    validTo: null,
    maxRedemptions: null,
    currentRedemptions: 0n,
    maxBudget: null,
    currentBudgetUsed: 0n,
  };
  it.each([
    ["a draft", { status: "DRAFT" as const }, "DRAFT"],
    ["an archived promotion", { status: "ARCHIVED" as const }, "ARCHIVED"],
    ["an active promotion inside its window", {}, "LIVE"],
    ["an active promotion before valid_from", { validFrom: t("2026-07-01T00:00:00Z") }, "SCHEDULED"],
    ["an active promotion at valid_to (exclusive end)", { validTo: now }, "EXPIRED"],
    ["an active promotion past valid_to", { validTo: t("2026-05-01T00:00:00Z") }, "EXPIRED"],
    ["redemptions used up", { maxRedemptions: 10n, currentRedemptions: 10n }, "EXHAUSTED"],
    ["budget used up", { maxBudget: 500n, currentBudgetUsed: 500n }, "EXHAUSTED"],
    ["one redemption left", { maxRedemptions: 10n, currentRedemptions: 9n }, "LIVE"],
  ])("reads %s as %s", (_name, overrides, expected) => {
    expect(derivedStatus({ ...base, ...overrides }, now)).toBe(expected);
  });
});

describe("versionInForce", () => {
  it("is the draft of a draft promotion", () => {
    expect(versionInForce([draft(1)], "DRAFT", now)?.version).toBe(1);
  });
  it("is the newest published version that has started", () => {
    const versions = [published(1, "2026-01-01T00:00:00Z"), published(2, "2026-05-01T00:00:00Z"), published(3, "2026-07-01T00:00:00Z")];
    expect(versionInForce(versions, "ACTIVE", now)?.version).toBe(2);
  });
  it("becomes the scheduled version the moment its time comes, with nothing run", () => {
    const versions = [published(1, "2026-01-01T00:00:00Z"), published(2, "2026-06-01T12:00:00Z")];
    expect(versionInForce(versions, "ACTIVE", t("2026-06-01T11:59:59.999Z"))?.version).toBe(1);
    expect(versionInForce(versions, "ACTIVE", now)?.version).toBe(2);
  });
  it("ignores a pending draft and cancelled versions of an active promotion", () => {
    const versions = [published(1, "2026-01-01T00:00:00Z"), published(2, "2026-02-01T00:00:00Z", "replaced_before_effective"), draft(3)];
    expect(versionInForce(versions, "ACTIVE", now)?.version).toBe(1);
  });
});

describe("versionLifecycles", () => {
  it("labels every status and when each superseded version ended", () => {
    const versions = [
      published(1, "2026-01-01T00:00:00Z"),
      published(2, "2026-03-01T00:00:00Z"),
      published(3, "2026-04-01T00:00:00Z", "replaced_before_effective"),
      published(4, "2026-07-01T00:00:00Z"),
      draft(5),
    ];
    expect(versionLifecycles(versions, "ACTIVE", now)).toEqual([
      { version: 5, status: "DRAFT", effectiveTo: null },
      { version: 4, status: "SCHEDULED", effectiveTo: null },
      { version: 3, status: "ARCHIVED", effectiveTo: null },
      { version: 2, status: "PUBLISHED", effectiveTo: null },
      { version: 1, status: "SUPERSEDED", effectiveTo: t("2026-03-01T00:00:00Z") },
    ]);
  });
  it("archives the version in force when the promotion is archived", () => {
    const statuses = versionLifecycles([published(1, "2026-01-01T00:00:00Z"), published(2, "2026-02-01T00:00:00Z")], "ARCHIVED", now);
    expect(statuses.map((s) => s.status)).toEqual(["ARCHIVED", "SUPERSEDED"]);
  });
});

describe("planUpdate", () => {
  const none = { expectedVersion: null, effectiveAt: null, saveAsDraft: false };
  const active = { status: "ACTIVE" as const, version: 3, pendingDraftVersion: null };

  it("edits a draft in place", () => {
    expect(planUpdate({ status: "DRAFT", version: 1, pendingDraftVersion: null }, { name: "x" }, none, now)).toEqual({ kind: "edit_draft", version: 1 });
  });
  it("publishes a new version of an active promotion now", () => {
    expect(planUpdate(active, { name: "x" }, none, now)).toEqual({ kind: "publish", pendingDraft: null, effectiveFrom: now });
  });
  it("schedules a new version at effective_at", () => {
    const at = t("2026-06-02T00:00:00Z");
    expect(planUpdate(active, { name: "x" }, { ...none, effectiveAt: at }, now)).toEqual({ kind: "publish", pendingDraft: null, effectiveFrom: at });
  });
  it("keeps a new version as a draft with save_as_draft, and edits that draft on the next save", () => {
    expect(planUpdate(active, { name: "x" }, { ...none, saveAsDraft: true }, now)).toEqual({ kind: "new_draft" });
    expect(planUpdate({ ...active, pendingDraftVersion: 4 }, { name: "y" }, { ...none, saveAsDraft: true }, now)).toEqual({ kind: "edit_draft", version: 4 });
  });
  it("publishes the pending draft rather than writing another version", () => {
    expect(planUpdate({ ...active, pendingDraftVersion: 4 }, {}, none, now)).toEqual({ kind: "publish", pendingDraft: 4, effectiveFrom: now });
  });

  const refusals: [string, Parameters<typeof planUpdate>, string, string][] = [
    ["a stale expected_version", [active, { name: "x" }, { ...none, expectedVersion: 2 }, now], "aborted", "version_conflict"],
    ["phases on an active promotion", [active, { phases: [] }, none, now], "failed_precondition", "invalid_status"],
    ["is_phased on an active promotion", [active, { isPhased: true }, none, now], "failed_precondition", "invalid_status"],
    ["any edit of an archived promotion", [{ ...active, status: "ARCHIVED" }, { name: "x" }, none, now], "failed_precondition", "invalid_status"],
    ["effective_at on a draft", [{ status: "DRAFT", version: 1, pendingDraftVersion: null }, {}, { ...none, effectiveAt: now }, now], "invalid_argument", "not_allowed"],
    ["effective_at in the past", [active, {}, { ...none, effectiveAt: t("2026-05-01T00:00:00Z") }, now], "invalid_argument", "out_of_range"],
    ["effective_at with save_as_draft", [active, {}, { expectedVersion: null, effectiveAt: now, saveAsDraft: true }, now], "invalid_argument", "not_allowed"],
  ];
  it.each(refusals)("refuses %s", (_name, args, kind, code) => {
    try {
      planUpdate(...args);
      expect.unreachable("planUpdate accepted it");
    } catch (error) {
      expect(error).toBeInstanceOf(DomainError);
      expect((error as DomainError).kind).toBe(kind);
      expect((error as DomainError).details[0]?.code).toBe(code);
    }
  });
});

describe("applyPatch and copyTerms", () => {
  it("changes only the fields given and normalises codes", () => {
    const base = { ...defaultTerms(), name: "Spring", code: "SPRING", priority: 5 };
    expect(applyPatch(base, { code: " summer-10 " })).toEqual({ ...base, code: "SUMMER-10" });
  });
  it("removes a limit when the patch sets it to null", () => {
    expect(applyPatch({ ...defaultTerms(), maxRedemptions: 10n }, { maxRedemptions: null }).maxRedemptions).toBeNull();
  });
  it("names a copy after its source unless told otherwise", () => {
    const source = { ...defaultTerms(), name: "Spring", code: "SPRING" };
    expect(copyTerms(source, { name: "", code: "", validFrom: null, validTo: null })).toMatchObject({ name: "Spring (copy)", code: "" });
  });
  it("turns a bare effect list into one Default phase that lasts forever", () => {
    const effects = [{ kind: "percentage_discount" as const, percentBps: 1000, appliesTo: null }];
    expect(shorthandPhases(effects)).toEqual([{ name: "Default", duration: "FOREVER", cycles: null, effects }]);
  });
});

describe("deactivation", () => {
  it("archives the version in force with the promotion, and it stays the version in force of the archived promotion", () => {
    const versions = [published(1, "2026-01-01T00:00:00Z"), published(2, "2026-05-01T00:00:00Z"), published(3, "2026-07-01T00:00:00Z"), draft(4)];
    expect(archivedByDeactivation(versions, now).map((v) => v.version)).toEqual([2, 3, 4]);
    const archived = versions.map((v) => (v.version >= 2 ? { ...v, archivedReason: "promotion_deactivated", archivedAt: now } : v));
    expect(cancelledBeforeEffect(archived[1] as VersionFacts)).toBe(false); // it took effect before
    expect(cancelledBeforeEffect(archived[2] as VersionFacts)).toBe(true); // it never did
    expect(versionInForce(archived, "ARCHIVED", new Date("2026-08-01T00:00:00Z"))?.version).toBe(2);
    expect(versionLifecycles(archived, "ARCHIVED", now).map((l) => [l.version, l.status])).toEqual([[4, "ARCHIVED"], [3, "ARCHIVED"], [2, "ARCHIVED"], [1, "SUPERSEDED"]]);
  });
});
