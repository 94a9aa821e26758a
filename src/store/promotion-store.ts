import { randomUUID } from "node:crypto";
import { LockMode, UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { applyPatch, copyTerms, normalizeTerms, planUpdate, type TermsPatch, type UpdateOptions } from "../domain/editing.js";
import { DomainError, type Violation } from "../domain/errors.js";
import { ARCHIVED_REASON, versionLifecycles, type VersionLifecycle } from "../domain/lifecycle.js";
import type { PromotionStatus, PromotionTerms, VersionStatus } from "../domain/terms.js";
import { validateTerms } from "../domain/validation.js";
import { assertValid } from "../domain/checks.js";
import { notifyChanged, type ChangeNotification } from "./change-hook.js";
import { findTakenCodes, lockTenantCodes, retirePromotionCodes } from "./code-uniqueness.js";
import { Promotion, PromotionVersion } from "./entities.js";
import { findPromotionView, type PromotionView } from "./promotion-views.js";
import { termsFromColumns, termsToColumns } from "./terms-codec.js";

// Writes to promotions and their versions. Each operation runs in one transaction that locks the
// promotion row, so concurrent edits serialise and `expected_version` checks are exact. Every
// change moves the promotion's `terms_seq` in that transaction and, after commit, calls the
// optional change hook (change-hook.ts). A primary code is checked against promotion_codes under
// the tenant's code lock (code-uniqueness.ts).

/** Who is acting: the tenant and the API key id recorded as creator/publisher. */
export interface Actor {
  organizationId: string;
  keyId: string;
}

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

const notFound = (id: string): DomainError =>
  DomainError.of("not_found", "promotion_not_found", `promotion ${id} does not exist`, "id");

export class PromotionStore {
  constructor(
    private readonly em: EntityManager,
    private readonly clock: () => Date = () => new Date(),
    private readonly options: ChangeNotification = {},
  ) {}

  /** A new DRAFT promotion at version 1. */
  async create(
    actor: Actor,
    input: PromotionTerms,
    options: { effectsShorthand?: boolean; inputViolations?: readonly Violation[] } = {},
  ): Promise<PromotionView> {
    const terms = normalizeTerms(input);
    assertValid([...(options.inputViolations ?? []), ...validateTerms(terms, options)]);
    const now = this.clock();
    const id = randomUUID();
    const versionId = randomUUID();
    await this.write(async (em) => {
      if (terms.code !== "") await this.reserveCode(em, actor.organizationId, id, terms.code);
      em.create(Promotion, {
        id,
        organizationId: actor.organizationId,
        status: "DRAFT",
        code: terms.code === "" ? null : terms.code,
        version: 1,
        headVersionId: versionId,
        createdAt: now,
        updatedAt: now,
        archivedAt: null,
        deletedAt: null,
      });
      // The promotion row must exist before its version references it (plain FK, no ORM relation).
      await em.flush();
      this.newVersion(em, { id, organizationId: actor.organizationId }, 1, "draft", terms, actor, now, versionId);
    });
    return this.get(actor.organizationId, id);
  }

  async get(organizationId: string, id: string): Promise<PromotionView> {
    const view = await findPromotionView(this.em, organizationId, id, this.clock());
    if (!view) throw notFound(id);
    return view;
  }

  /** Edit-as-publish; see domain/editing.ts planUpdate for where the change lands. */
  async update(
    actor: Actor,
    id: string,
    patch: TermsPatch,
    opts: UpdateOptions,
    inputViolations: readonly Violation[] = [],
  ): Promise<PromotionView> {
    const termsSeq = await this.write(async (em) => {
      const now = this.clock();
      const promotion = await this.lock(em, actor.organizationId, id);
      const versions = await em.find(PromotionVersion, { promotionId: id }, { orderBy: { version: "desc" } });
      const status = promotion.status as PromotionStatus;
      const pendingDraft = status === "ACTIVE" ? versions.find((v) => v.state === "draft" && v.archivedReason == null) : undefined;
      const plan = planUpdate({ status, version: promotion.version, pendingDraftVersion: pendingDraft?.version ?? null }, patch, opts, now);
      const head = versions[0];
      if (!head) throw new Error(`promotion ${id} has no versions`);
      // Edits build on the newest terms (a pending draft or a scheduled version included).
      const base = versions.find((v) => v.archivedReason == null) ?? head;
      const terms = applyPatch(termsFromColumns(base), patch);
      assertValid([...inputViolations, ...validateTerms(terms)]);

      let target: PromotionVersion;
      if (plan.kind === "edit_draft") {
        target = versions.find((v) => v.version === plan.version) ?? head;
        Object.assign(target, termsToColumns(terms));
      } else if (plan.kind === "new_draft") {
        target = this.newVersion(em, promotion, promotion.version + 1, "draft", terms, actor, now);
      } else {
        // Publishing cancels versions that were scheduled but have not taken effect.
        for (const v of versions) {
          if (v.state === "published" && v.archivedReason == null && v.effectiveFrom != null && v.effectiveFrom > now) {
            v.archivedReason = ARCHIVED_REASON.replacedBeforeEffective;
            v.archivedAt = now;
          }
        }
        const draft = plan.pendingDraft === null ? undefined : versions.find((v) => v.version === plan.pendingDraft);
        target = draft ?? this.newVersion(em, promotion, promotion.version + 1, "published", terms, actor, now);
        Object.assign(target, termsToColumns(terms), {
          state: "published",
          effectiveFrom: plan.effectiveFrom,
          publishedAt: now,
          publishedBy: actor.keyId,
        });
      }
      promotion.version = Math.max(promotion.version, target.version);
      promotion.headVersionId = promotion.version === target.version ? target.id : promotion.headVersionId;
      if (target.code != null && target.code !== promotion.code && promotion.status !== "ARCHIVED") {
        await this.reserveCode(em, actor.organizationId, id, target.code);
      }
      promotion.code = target.code;
      promotion.updatedAt = now;
      return bump(promotion);
    });
    await notifyChanged(this.options, actor.organizationId, id, termsSeq);
    return this.get(actor.organizationId, id);
  }

  /** DRAFT -> ACTIVE: the draft version is published, effective now. */
  async activate(actor: Actor, id: string): Promise<PromotionView> {
    const termsSeq = await this.write(async (em) => {
      const now = this.clock();
      const promotion = await this.lock(em, actor.organizationId, id);
      if (promotion.status !== "DRAFT") {
        throw DomainError.of("failed_precondition", "invalid_status", `only a DRAFT promotion can be activated; this one is ${promotion.status}`);
      }
      const draft = await em.findOneOrFail(PromotionVersion, { promotionId: id, version: promotion.version });
      Object.assign(draft, { state: "published", effectiveFrom: now, publishedAt: now, publishedBy: actor.keyId });
      promotion.status = "ACTIVE";
      promotion.updatedAt = now;
      return bump(promotion);
    });
    await notifyChanged(this.options, actor.organizationId, id, termsSeq);
    return this.get(actor.organizationId, id);
  }

  /** ACTIVE -> ARCHIVED; versions that never took effect are archived with it, and its codes are freed. */
  async deactivate(actor: Actor, id: string): Promise<PromotionView> {
    const termsSeq = await this.write(async (em) => {
      const now = this.clock();
      const promotion = await this.lock(em, actor.organizationId, id);
      if (promotion.status !== "ACTIVE") {
        throw DomainError.of("failed_precondition", "invalid_status", `only an ACTIVE promotion can be deactivated; this one is ${promotion.status}`);
      }
      const versions = await em.find(PromotionVersion, { promotionId: id });
      for (const v of versions) {
        const neverInForce = v.state === "draft" || (v.effectiveFrom != null && v.effectiveFrom > now);
        if (v.archivedReason == null && neverInForce) {
          v.archivedReason = ARCHIVED_REASON.promotionDeactivated;
          v.archivedAt = now;
        }
      }
      promotion.status = "ARCHIVED";
      promotion.archivedAt = now;
      promotion.updatedAt = now;
      await retirePromotionCodes(em, id, now);
      return bump(promotion);
    });
    await notifyChanged(this.options, actor.organizationId, id, termsSeq);
    return this.get(actor.organizationId, id);
  }

  /** A new DRAFT with the source's newest terms (any status). */
  async copy(
    actor: Actor,
    id: string,
    overrides: { name: string; code: string; validFrom: Date | null; validTo: Date | null },
  ): Promise<PromotionView> {
    const source = await this.em.findOne(Promotion, { id, organizationId: actor.organizationId, deletedAt: null });
    if (!source) throw notFound(id);
    const newest = await this.em.findOneOrFail(
      PromotionVersion,
      { promotionId: id, archivedReason: null },
      { orderBy: { version: "desc" } },
    );
    return this.create(actor, copyTerms(termsFromColumns(newest), overrides));
  }

  /** Soft delete: the promotion disappears from reads and its codes are free again. */
  async softDelete(actor: Actor, id: string): Promise<PromotionView> {
    const termsSeq = await this.write(async (em) => {
      const now = this.clock();
      const promotion = await this.lock(em, actor.organizationId, id);
      promotion.deletedAt = now;
      promotion.updatedAt = now;
      await retirePromotionCodes(em, id, now);
      return bump(promotion);
    });
    await notifyChanged(this.options, actor.organizationId, id, termsSeq);
    const view = await findPromotionView(this.em, actor.organizationId, id, this.clock(), true);
    if (!view) throw notFound(id);
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
    const records = await this.versionRecords(organizationId, id);
    const record = records.find((r) => r.version === version);
    if (!record) {
      throw DomainError.of("not_found", "version_not_found", `promotion ${id} has no version ${version}`, "version");
    }
    return record;
  }

  private async versionRecords(organizationId: string, id: string): Promise<VersionRecord[]> {
    const promotion = await this.em.findOne(Promotion, { id, organizationId, deletedAt: null });
    if (!promotion) throw notFound(id);
    const rows = await this.em.find(PromotionVersion, { promotionId: id });
    // usage_count is counted from the ledger: every redemption made under the version, released or not.
    const usage = await this.em.getConnection().execute<{ promotion_version_id: string; n: string | number }[]>(
      `select promotion_version_id, count(*) as n from redemptions
        where organization_id = ? and promotion_id = ? and status <> 'ABANDONED' group by promotion_version_id`,
      [organizationId, id],
      "all",
    );
    const usageByVersion = new Map(usage.map((u) => [u.promotion_version_id, BigInt(String(u.n))]));
    const now = this.clock();
    const facts = rows.map((r) => ({
      version: r.version,
      state: r.state === "draft" ? ("draft" as const) : ("published" as const),
      effectiveFrom: r.effectiveFrom ?? null,
      archivedReason: r.archivedReason ?? null,
    }));
    const lifecycles = versionLifecycles(facts, promotion.status as PromotionStatus, now);
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
          usageCount: usageByVersion.get(row.id) ?? 0n,
          terms: termsFromColumns(row),
        },
      ];
    });
  }


  private newVersion(
    em: EntityManager,
    promotion: { id: string; organizationId: string },
    number: number,
    state: "draft" | "published",
    terms: PromotionTerms,
    actor: Actor,
    now: Date,
    id: string = randomUUID(),
  ): PromotionVersion {
    return em.create(PromotionVersion, {
      id,
      promotionId: promotion.id,
      organizationId: promotion.organizationId,
      version: number,
      state,
      effectiveFrom: null,
      publishedAt: null,
      publishedBy: null,
      createdAt: now,
      createdBy: actor.keyId,
      archivedAt: null,
      archivedReason: null,
      ...termsToColumns(terms),
    });
  }

  private async lock(em: EntityManager, organizationId: string, id: string): Promise<Promotion> {
    const promotion = await em.findOne(
      Promotion,
      { id, organizationId, deletedAt: null },
      { lockMode: LockMode.PESSIMISTIC_WRITE },
    );
    if (!promotion) throw notFound(id);
    return promotion;
  }

  /**
   * Takes the tenant's code lock and refuses a primary code that is a live promotion_codes row
   * (another live promotion's primary code is refused by the unique index, see `write`).
   */
  private async reserveCode(em: EntityManager, organizationId: string, promotionId: string, code: string): Promise<void> {
    await lockTenantCodes(em, organizationId);
    const [taken] = (await findTakenCodes(em, organizationId, [code])).filter((t) => t.heldAs === "code");
    if (taken) {
      const whose = taken.promotionId === promotionId ? "one of this promotion's codes" : "a code of another live promotion of this organization";
      throw new DomainError("already_exists", [{ param: "code", code: "code_taken", message: `${code} is already ${whose}` }]);
    }
  }

  /** One transaction; a code already taken by another live promotion becomes ALREADY_EXISTS. */
  private async write<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    try {
      return await this.em.transactional(work);
    } catch (error) {
      if (error instanceof UniqueConstraintViolationException && /promotions_org_code_unique/.test(error.message)) {
        throw new DomainError(
          "already_exists",
          [{ param: "code", code: "code_taken", message: "another live promotion of this organization already uses this code" }],
          { cause: error },
        );
      }
      throw error;
    }
  }
}

/** Moves terms_seq (caches compare it); the promotion row is locked, so this is exact. */
function bump(promotion: Promotion): bigint {
  promotion.termsSeq = promotion.termsSeq + 1n;
  return promotion.termsSeq;
}
