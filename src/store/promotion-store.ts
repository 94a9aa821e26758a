import { randomUUID } from "node:crypto";
import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { DomainError } from "../domain/errors.js";
import type { PromotionTerms } from "../domain/terms.js";
import type { RedemptionRow } from "./ledger.js";
import { appendEvents, type NewEvent } from "../events/outbox.js";
import { findTakenCodes, lockTenantCodes, retirePromotionCodes } from "./code-uniqueness.js";
import { Promotion, PromotionVersion } from "./entities.js";
import { APPLYING_REDEMPTION, MADE_REDEMPTION } from "./ledger-sql.js";
import { REDEMPTION_COLUMNS, toRedemptionRow } from "./ledger.js";
import { findPromotionView, type PromotionView } from "./promotion-views.js";
import { termsToColumns } from "./terms-codec.js";
import { violatedUnique } from "./unique-violation.js";

// Persistence of promotions and their versions: reads, and a transaction in which the use cases
// (src/promotions/promotions.ts) lock a promotion row, change its entities and bump its terms_seq.
// The rules of what may change live in the use cases and src/domain; what stays here is storage:
// locking, the unique code of a live promotion (under the tenant's code lock, code-uniqueness.ts),
// and entity creation.

export class PromotionStore {
  constructor(private readonly em: EntityManager) {}

  /** One transaction; a code another live promotion took meanwhile (the unique index) reads as ALREADY_EXISTS code_taken. */
  async transaction<T>(work: (tx: PromotionWrites) => Promise<T>): Promise<T> {
    try {
      return await this.em.transactional((em) => work(new PromotionWrites(em)));
    } catch (error) {
      if (violatedUnique(error) === "promotions_org_code_unique") {
        throw new DomainError(
          "already_exists",
          [{ param: "code", code: "code_taken", message: "another live promotion of this organization already uses this code" }],
          { cause: error },
        );
      }
      throw error;
    }
  }

  /** A promotion as clients see it (terms in force at `now`, counts from the ledger); undefined when not the tenant's. */
  view(organizationId: string, id: string, now: Date, includeDeleted = false): Promise<PromotionView | undefined> {
    return findPromotionView(this.em, organizationId, id, now, includeDeleted);
  }

  /** The tenant's promotion row unless deleted. */
  findLive(organizationId: string, id: string): Promise<Promotion | null> {
    return this.em.findOne(Promotion, { id, organizationId, deletedAt: null });
  }

  versions(promotionId: string): Promise<PromotionVersion[]> {
    return this.em.find(PromotionVersion, { promotionId });
  }

  /** Redemptions made under each version (released ones included), from the ledger. */
  async usageByVersion(organizationId: string, promotionId: string): Promise<Map<string, bigint>> {
    const usage = await this.em.getConnection().execute<{ promotion_version_id: string; n: string | number }[]>(
      `select promotion_version_id, count(*) as n from redemptions
        where organization_id = ? and promotion_id = ? and ${MADE_REDEMPTION} group by promotion_version_id`,
      [organizationId, promotionId],
      "all",
    );
    return new Map(usage.map((u) => [u.promotion_version_id, BigInt(String(u.n))]));
  }
}

/** Who is acting: the tenant and the API key id recorded as creator/publisher. */
export interface Actor {
  organizationId: string;
  keyId: string;
}

/** The writes of one promotion transaction (PromotionStore.transaction). */
export class PromotionWrites {
  constructor(readonly em: EntityManager) {}

  /** The tenant's promotion row, locked until the transaction ends (concurrent edits serialise); null when it is not there. */
  lock(organizationId: string, id: string): Promise<Promotion | null> {
    return this.em.findOne(Promotion, { id, organizationId, deletedAt: null }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  }

  /** Every version of the promotion, newest first. */
  versions(promotionId: string): Promise<PromotionVersion[]> {
    return this.em.find(PromotionVersion, { promotionId }, { orderBy: { version: "desc" } });
  }

  version(promotionId: string, version: number): Promise<PromotionVersion> {
    return this.em.findOneOrFail(PromotionVersion, { promotionId, version });
  }

  /** A new DRAFT promotion row with its first version (a draft). */
  async insertPromotion(actor: Actor, terms: PromotionTerms, now: Date, ids: { id: string; versionId: string }): Promise<void> {
    this.em.create(Promotion, {
      id: ids.id,
      organizationId: actor.organizationId,
      status: "DRAFT",
      code: terms.code === "" ? null : terms.code,
      version: 1,
      headVersionId: ids.versionId,
      createdAt: now,
      updatedAt: now,
      archivedAt: null,
      deletedAt: null,
    });
    // The promotion row must exist before its version references it (plain FK, no ORM relation).
    await this.em.flush();
    this.insertVersion({ id: ids.id, organizationId: actor.organizationId }, 1, "draft", terms, actor, now, ids.versionId);
  }

  insertVersion(
    promotion: { id: string; organizationId: string },
    number: number,
    state: "draft" | "published",
    terms: PromotionTerms,
    actor: Actor,
    now: Date,
    id: string = randomUUID(),
  ): PromotionVersion {
    return this.em.create(PromotionVersion, {
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

  /** Writes terms into a version row. */
  setTerms(version: PromotionVersion, terms: PromotionTerms): void {
    Object.assign(version, termsToColumns(terms));
  }

  /**
   * Takes the tenant's code lock and refuses a primary code that is a live promotion_codes row
   * (another live promotion's primary code is refused by the unique index, see `transaction`).
   */
  async reserveCode(organizationId: string, promotionId: string, code: string): Promise<void> {
    await lockTenantCodes(this.em, organizationId);
    const [taken] = (await findTakenCodes(this.em, organizationId, [code])).filter((t) => t.heldAs === "code");
    if (taken) {
      const whose = taken.promotionId === promotionId ? "one of this promotion's codes" : "a code of another live promotion of this organization";
      throw new DomainError("already_exists", [{ param: "code", code: "code_taken", message: `${code} is already ${whose}` }]);
    }
  }

  /** The promotion's ACTIVE redemptions (the ones that still apply), counted under the promotion's row lock. */
  async countActiveRedemptions(promotionId: string): Promise<bigint> {
    const [row] = await this.em.getConnection().execute<{ n: string | number }[]>(
      `select count(*) as n from redemptions where promotion_id = ? and ${APPLYING_REDEMPTION}`,
      [promotionId],
      "all",
      this.em.getTransactionContext(),
    );
    return BigInt(String(row?.n ?? 0));
  }

  /**
   * Ends up to `limit` ACTIVE redemptions of the promotion (they stop applying; they still count as
   * made) and returns them as they are now; the caller repeats until none is left, so a promotion
   * with millions of redemptions is ended (and its events written) a bounded batch at a time.
   */
  async endRedemptions(promotionId: string, reason: string, now: Date, limit: number): Promise<RedemptionRow[]> {
    const rows = await this.em.getConnection().execute<Record<string, unknown>[]>(
      `update redemptions set status = 'ENDED', end_reason = ?, ended_at = ?
        where id in (select id from redemptions where promotion_id = ? and ${APPLYING_REDEMPTION} limit ?)
        returning ${REDEMPTION_COLUMNS}`,
      [reason, now, promotionId, limit],
      "all",
      this.em.getTransactionContext(),
    );
    return rows.map(toRedemptionRow);
  }

  /** The promotion as clients see it, read inside this transaction (what its event carries). */
  async view(organizationId: string, id: string, now: Date, includeDeleted = false): Promise<PromotionView> {
    await this.em.flush();
    const view = await findPromotionView(this.em, organizationId, id, now, includeDeleted);
    if (!view) throw new Error(`promotion ${id} vanished inside its own transaction`);
    return view;
  }

  /** Writes events in this transaction: they commit with the change or not at all. */
  async append(events: readonly NewEvent[]): Promise<void> {
    await appendEvents(this.em, events);
  }

  /** Frees the promotion's extra codes for other promotions. */
  retireCodes(promotionId: string, now: Date): Promise<void> {
    return retirePromotionCodes(this.em, promotionId, now);
  }

  /** Moves terms_seq (caches compare it); the promotion row is locked, so this is exact. */
  bumpSeq(promotion: Promotion): bigint {
    promotion.termsSeq = promotion.termsSeq + 1n;
    return promotion.termsSeq;
  }
}
