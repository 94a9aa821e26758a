import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { assertValid } from "../domain/checks.js";
import { applyPatch, copyTerms, normalizeTerms, planUpdate, type TermsPatch, type UpdateOptions } from "../domain/editing.js";
import { notFound, type Violation } from "../domain/errors.js";
import {
  ARCHIVED_REASON,
  archivedByDeactivation,
  assertTransition,
  cancelledBeforeEffect,
  cancelledByPublish,
  versionLifecycles,
  type VersionFacts,
  type VersionLifecycle,
} from "../domain/lifecycle.js";
import { END_REASONS } from "../domain/redemption.js";
import { DomainError } from "../domain/errors.js";
import type { PromotionStatus, PromotionTerms, VersionStatus } from "../domain/terms.js";
import { validateTerms } from "../domain/validation.js";
import type { PromotionVersion } from "../store/entities.js";
import { PromotionStore, type Actor, type PromotionWrites } from "../store/promotion-store.js";
import type { PromotionView } from "../store/promotion-views.js";
import { termsFromColumns } from "../store/terms-codec.js";
import { promotionPayload, redemptionPayload } from "../events/payloads.js";
import type { NewEvent } from "../events/outbox.js";
import { notifyChanged, type ChangeNotification } from "./change-hook.js";

// Managing promotions: create, edit-as-publish, the lifecycle (activate, deactivate, delete) and
// copy. Each change runs in one transaction that locks the promotion row, so concurrent edits
// serialise and `expected_version` checks are exact; it moves the promotion's `terms_seq` and
// writes its events (src/events/README.md) in that transaction and, after commit, tells the
// change hook (caches). Which version an edit lands in is decided by domain/editing.ts, which
// transitions are allowed by domain/lifecycle.ts.

export type { Actor };

/** DeletePromotion ends ACTIVE redemptions this many per statement (each batch with its events). */
export const END_REDEMPTIONS_BATCH = 5_000;

/** A version published for later: promotion.version_published is written when it takes effect. */
export interface ScheduledVersion {
  organizationId: string;
  promotionId: string;
  versionId: string;
  effectiveAt: Date;
}

/**
 * Enqueues, inside the scheduling transaction (`em`), the job that writes a scheduled version's
 * promotion.version_published at its effective_at (src/events/scheduled-versions.ts).
 */
export interface VersionScheduler {
  schedule(em: EntityManager, version: ScheduledVersion): Promise<void>;
}

export interface PromotionsOptions extends ChangeNotification {
  /** Without one (some tests), a scheduled version writes no event when it takes effect. */
  scheduler?: VersionScheduler;
}

/** A version as clients see it: its lifecycle status, its terms and how many redemptions it has. */
export interface VersionRecord extends VersionLifecycle {
  id: string;
  promotionId: string;
  effectiveFrom: Date | null;
  publishedAt: Date | null;
  publishedBy: string | null;
  createdAt: Date;
  createdBy: string | null;
  archivedReason: string | null;
  usageCount: bigint;
  terms: PromotionTerms;
}

/** The events a promotion's own changes write (payload: the promotion after the change). */
type PromotionEventType = "promotion.created" | "promotion.updated" | "promotion.activated" | "promotion.archived" | "promotion.deleted" | "promotion.version_published";

/** A version row's lifecycle facts, as domain/lifecycle.ts reads them. */
export function versionFacts(row: PromotionVersion): VersionFacts {
  return {
    version: row.version,
    state: row.state === "draft" ? "draft" : "published",
    effectiveFrom: row.effectiveFrom ?? null,
    archivedReason: row.archivedReason ?? null,
    archivedAt: row.archivedAt ?? null,
  };
}

export class Promotions {
  private readonly store: PromotionStore;

  constructor(
    em: EntityManager,
    private readonly clock: () => Date = () => new Date(),
    private readonly options: PromotionsOptions = {},
  ) {
    this.store = new PromotionStore(em);
  }

  /** Writes the promotion's event(s) of this change, with the promotion as it is at the end of the transaction. */
  private async emit(tx: PromotionWrites, organizationId: string, id: string, now: Date, types: readonly PromotionEventType[], includeDeleted = false): Promise<void> {
    const view = await tx.view(organizationId, id, now, includeDeleted);
    const payload = promotionPayload(view);
    await tx.append(types.map((type) => ({ organizationId, type, payload, createdAt: now, requestId: this.requestId })));
  }

  private get requestId(): string | null {
    return this.options.requestId ?? null;
  }

  /** A new DRAFT promotion at version 1; `inputViolations` are what the request conversion found. */
  async create(
    actor: Actor,
    input: PromotionTerms,
    options: { effectsShorthand?: boolean; inputViolations?: readonly Violation[] } = {},
  ): Promise<PromotionView> {
    const terms = normalizeTerms(input);
    assertValid([...(options.inputViolations ?? []), ...validateTerms(terms, options)]);
    const now = this.clock();
    const ids = { id: randomUUID(), versionId: randomUUID() };
    await this.store.transaction(async (tx) => {
      if (terms.code !== "") await tx.reserveCode(actor.organizationId, ids.id, terms.code);
      await tx.insertPromotion(actor, terms, now, ids);
      await this.emit(tx, actor.organizationId, ids.id, now, ["promotion.created"]);
    });
    return this.get(actor.organizationId, ids.id);
  }

  async get(organizationId: string, id: string): Promise<PromotionView> {
    const view = await this.store.view(organizationId, id, this.clock());
    if (!view) throw notFound("promotion", id);
    return view;
  }

  /** Edit-as-publish: a draft changes in place; an active promotion gets a version live now, scheduled, or kept as a draft. */
  async update(actor: Actor, id: string, patch: TermsPatch, opts: UpdateOptions, inputViolations: readonly Violation[] = []): Promise<PromotionView> {
    const termsSeq = await this.store.transaction(async (tx) => {
      const now = this.clock();
      const promotion = await tx.lock(actor.organizationId, id);
      if (!promotion) throw notFound("promotion", id);
      const versions = await tx.versions(id);
      const status = promotion.status as PromotionStatus;
      const pendingDraft = status === "ACTIVE" ? versions.find((v) => v.state === "draft" && v.archivedReason == null) : undefined;
      const plan = planUpdate({ status, version: promotion.version, pendingDraftVersion: pendingDraft?.version ?? null }, patch, opts, now);
      const head = versions[0];
      if (!head) throw new Error(`promotion ${id} has no versions`);
      // Edits build on the newest terms (a pending draft or a scheduled version included).
      const base = versions.find((v) => v.archivedReason == null) ?? head;
      const before = termsFromColumns(base);
      const terms = applyPatch(before, patch);
      // How a promotion reaches customers never changes once it is live (DESIGN §8).
      if (terms.applicationMethod !== before.applicationMethod) assertTransition("change_method", status);
      assertValid([...inputViolations, ...validateTerms(terms)]);

      let target: PromotionVersion;
      if (plan.kind === "edit_draft") {
        target = versions.find((v) => v.version === plan.version) ?? head;
        tx.setTerms(target, terms);
      } else if (plan.kind === "new_draft") {
        target = tx.insertVersion(promotion, promotion.version + 1, "draft", terms, actor, now);
      } else {
        const facts = new Map(versions.map((v) => [v.version, v]));
        for (const cancelled of cancelledByPublish(versions.map(versionFacts), now)) {
          const row = facts.get(cancelled.version);
          if (row) Object.assign(row, { archivedReason: ARCHIVED_REASON.replacedBeforeEffective, archivedAt: now });
        }
        const draft = plan.pendingDraft === null ? undefined : versions.find((v) => v.version === plan.pendingDraft);
        target = draft ?? tx.insertVersion(promotion, promotion.version + 1, "published", terms, actor, now);
        tx.setTerms(target, terms);
        Object.assign(target, { state: "published", effectiveFrom: plan.effectiveFrom, publishedAt: now, publishedBy: actor.keyId });
      }
      promotion.version = Math.max(promotion.version, target.version);
      promotion.headVersionId = promotion.version === target.version ? target.id : promotion.headVersionId;
      if (target.code != null && target.code !== promotion.code && promotion.status !== "ARCHIVED") {
        await tx.reserveCode(actor.organizationId, id, target.code);
      }
      promotion.code = target.code;
      promotion.updatedAt = now;
      const seq = tx.bumpSeq(promotion);
      // A version published now is in force at once; one scheduled for later is announced when it
      // takes effect, by a job enqueued in this transaction.
      const publishedNow = plan.kind === "publish" && plan.effectiveFrom.getTime() <= now.getTime();
      await this.emit(tx, actor.organizationId, id, now, publishedNow ? ["promotion.updated", "promotion.version_published"] : ["promotion.updated"]);
      if (plan.kind === "publish" && !publishedNow) {
        await this.options.scheduler?.schedule(tx.em, { organizationId: actor.organizationId, promotionId: id, versionId: target.id, effectiveAt: plan.effectiveFrom });
      }
      return seq;
    });
    await notifyChanged(this.options, actor.organizationId, id, termsSeq);
    return this.get(actor.organizationId, id);
  }

  /** DRAFT -> ACTIVE: the draft version is published, effective now. */
  async activate(actor: Actor, id: string): Promise<PromotionView> {
    const termsSeq = await this.store.transaction(async (tx) => {
      const now = this.clock();
      const promotion = await tx.lock(actor.organizationId, id);
      if (!promotion) throw notFound("promotion", id);
      assertTransition("activate", promotion.status as PromotionStatus);
      const draft = await tx.version(id, promotion.version);
      Object.assign(draft, { state: "published", effectiveFrom: now, publishedAt: now, publishedBy: actor.keyId });
      promotion.status = "ACTIVE";
      promotion.updatedAt = now;
      const seq = tx.bumpSeq(promotion);
      await this.emit(tx, actor.organizationId, id, now, ["promotion.activated"]);
      return seq;
    });
    await notifyChanged(this.options, actor.organizationId, id, termsSeq);
    return this.get(actor.organizationId, id);
  }

  /** ACTIVE -> ARCHIVED; the version in force and those that never took effect are archived with it, and its codes are freed. */
  async deactivate(actor: Actor, id: string): Promise<PromotionView> {
    const termsSeq = await this.store.transaction(async (tx) => {
      const now = this.clock();
      const promotion = await tx.lock(actor.organizationId, id);
      if (!promotion) throw notFound("promotion", id);
      assertTransition("deactivate", promotion.status as PromotionStatus);
      const versions = await tx.versions(id);
      const byNumber = new Map(versions.map((v) => [v.version, v]));
      for (const archived of archivedByDeactivation(versions.map(versionFacts), now)) {
        const row = byNumber.get(archived.version);
        if (row) Object.assign(row, { archivedReason: ARCHIVED_REASON.promotionDeactivated, archivedAt: now });
      }
      promotion.status = "ARCHIVED";
      promotion.archivedAt = now;
      promotion.updatedAt = now;
      await tx.retireCodes(id, now);
      const seq = tx.bumpSeq(promotion);
      await this.emit(tx, actor.organizationId, id, now, ["promotion.archived"]);
      return seq;
    });
    await notifyChanged(this.options, actor.organizationId, id, termsSeq);
    return this.get(actor.organizationId, id);
  }

  /** A new DRAFT with the source's newest terms (any status). */
  async copy(actor: Actor, id: string, overrides: { name: string; code: string; validFrom: Date | null; validTo: Date | null }): Promise<PromotionView> {
    const source = await this.store.findLive(actor.organizationId, id);
    if (!source) throw notFound("promotion", id);
    // The newest terms that were not cancelled before they took effect.
    const newest = (await this.store.versions(id)).filter((v) => !cancelledBeforeEffect(versionFacts(v))).sort((a, b) => b.version - a.version)[0];
    if (!newest) throw new Error(`promotion ${id} has no terms to copy`);
    return this.create(actor, copyTerms(termsFromColumns(newest), overrides));
  }

  /**
   * Soft delete: the promotion disappears from reads and its codes are free again. ACTIVE
   * redemptions would stop applying without a word, so a promotion that has some is refused unless
   * the caller asks to end them (ENDED, promotion_deleted), in the same transaction.
   */
  async softDelete(actor: Actor, id: string, opts: { endRedemptions: boolean } = { endRedemptions: false }): Promise<PromotionView> {
    const termsSeq = await this.store.transaction(async (tx) => {
      const now = this.clock();
      const promotion = await tx.lock(actor.organizationId, id);
      if (!promotion) throw notFound("promotion", id);
      const active = await tx.countActiveRedemptions(id);
      if (active > 0n && !opts.endRedemptions) {
        throw DomainError.of(
          "failed_precondition",
          "promotion_has_redemptions",
          `the promotion has ${active} ACTIVE ${active === 1n ? "redemption" : "redemptions"} that would stop applying; pass end_redemptions to end them`,
          "end_redemptions",
        );
      }
      for (let ended = active > 0n ? END_REDEMPTIONS_BATCH : 0; ended === END_REDEMPTIONS_BATCH; ) {
        const rows = await tx.endRedemptions(id, END_REASONS.promotionDeleted, now, END_REDEMPTIONS_BATCH);
        await tx.append(rows.map((row): NewEvent => ({ organizationId: actor.organizationId, type: "redemption.ended", payload: redemptionPayload(row), createdAt: now, requestId: this.requestId })));
        ended = rows.length;
      }
      promotion.deletedAt = now;
      promotion.updatedAt = now;
      await tx.retireCodes(id, now);
      const seq = tx.bumpSeq(promotion);
      await this.emit(tx, actor.organizationId, id, now, ["promotion.deleted"], true);
      return seq;
    });
    await notifyChanged(this.options, actor.organizationId, id, termsSeq);
    const view = await this.store.view(actor.organizationId, id, this.clock(), true);
    if (!view) throw notFound("promotion", id);
    return view;
  }

  /** Versions of a promotion, newest first, optionally only some statuses, after `beforeVersion`. */
  async listVersions(
    organizationId: string,
    id: string,
    q: { statuses: readonly VersionStatus[]; beforeVersion: number | null; limit: number },
  ): Promise<VersionRecord[]> {
    const records = await this.versionRecords(organizationId, id);
    return records
      .filter((r) => q.statuses.length === 0 || q.statuses.includes(r.status))
      .filter((r) => q.beforeVersion === null || r.version < q.beforeVersion)
      .slice(0, q.limit);
  }

  async getVersion(organizationId: string, id: string, version: number): Promise<VersionRecord> {
    const record = (await this.versionRecords(organizationId, id)).find((r) => r.version === version);
    if (!record) throw DomainError.of("not_found", "version_not_found", `promotion ${id} has no version ${version}`, "version");
    return record;
  }

  private async versionRecords(organizationId: string, id: string): Promise<VersionRecord[]> {
    const promotion = await this.store.findLive(organizationId, id);
    if (!promotion) throw notFound("promotion", id);
    const rows = await this.store.versions(id);
    // usage_count is counted from the ledger: every redemption made under the version, released or not.
    const usage = await this.store.usageByVersion(organizationId, id);
    const lifecycles = versionLifecycles(rows.map(versionFacts), promotion.status as PromotionStatus, this.clock());
    const byNumber = new Map(rows.map((r) => [r.version, r]));
    return lifecycles.flatMap((l) => {
      const row = byNumber.get(l.version);
      if (!row) return [];
      return [
        {
          ...l,
          id: row.id,
          promotionId: row.promotionId,
          effectiveFrom: row.effectiveFrom ?? null,
          publishedAt: row.publishedAt ?? null,
          publishedBy: row.publishedBy ?? null,
          createdAt: row.createdAt,
          createdBy: row.createdBy ?? null,
          archivedReason: row.archivedReason ?? null,
          usageCount: usage.get(row.id) ?? 0n,
          terms: termsFromColumns(row),
        },
      ];
    });
  }
}
