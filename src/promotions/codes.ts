import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { assertValid } from "../domain/checks.js";
import { CODE_LIMITS, generateCodes, validateCreateCodes, type CodeAttributes, type CodePatch, type CreateCodesInput } from "../domain/codes.js";
import { DomainError, notFound, type Violation } from "../domain/errors.js";
import { assertTransition } from "../domain/lifecycle.js";
import { requestHash } from "../domain/request-hash.js";
import type { TakenCode } from "../store/code-uniqueness.js";
import { CodeStore, type CodePosition, type PromotionCodeRecord } from "../store/code-store.js";
import type { Actor } from "../store/promotion-store.js";
import { sequentialUuids } from "../store/sequential-ids.js";
import { codePayload } from "../events/payloads.js";
import { notifyChanged, type ChangeNotification } from "./change-hook.js";

// A promotion's extra codes: bulk creation (explicit lists, all or nothing, or up to 100,000
// generated ones that never fail on a collision), keyset listing and per-code updates. Each change
// moves the promotion's terms_seq in its transaction and tells the change hook after commit.

export interface CreatedCodes {
  createdCount: number;
  /** Every created code, in creation order (= list order). */
  codeValues: string[];
  /** Their ids, in the same order. */
  codeIds: string[];
  /** When they were made (every code of a call shares it). */
  createdAt: Date;
  /** The call's batch: ListPromotionCodes can page through exactly these codes. */
  batchId: string;
  /** The first CODE_LIMITS.fullCodesInResponse created codes in full. */
  codes: PromotionCodeRecord[];
  /** True when an earlier call with the same idempotency key and request made them. */
  replayed: boolean;
}

/** code.created events are written this many per statement. */
const EVENTS_PER_STATEMENT = 5_000;

/** Generated codes that collide with live ones are drawn again; this many rounds is far beyond need. */
const MAX_GENERATION_ROUNDS = 8;

export interface PromotionCodesOptions extends ChangeNotification {
  /** Where generated codes come from; domain/codes.ts generateCodes unless a test needs collisions. */
  generate?: typeof generateCodes;
}

export class PromotionCodes {
  private readonly store: CodeStore;

  constructor(
    em: EntityManager,
    private readonly clock: () => Date = () => new Date(),
    private readonly options: PromotionCodesOptions = {},
  ) {
    this.store = new CodeStore(em);
  }

  /**
   * Adds codes to a DRAFT or ACTIVE promotion. Explicit codes are all-or-nothing: one taken code
   * (ALREADY_EXISTS `code_taken` at `codes[i]`) creates none. Generated codes never fail on a
   * collision; colliding ones are drawn again. With an idempotency key, a retry of the same request
   * returns the codes the first call made and creates none; another request under the same key is
   * ALREADY_EXISTS `idempotency_key_reused`, as RedeemPromotion does.
   */
  async create(actor: Actor, promotionId: string, input: CreateCodesInput, inputViolations: readonly Violation[] = []): Promise<CreatedCodes> {
    const { violations, source } = validateCreateCodes(input);
    assertValid([...inputViolations, ...violations]);
    const now = this.clock();
    const attributes: CodeAttributes = {
      maxRedemptions: input.maxRedemptions,
      minAmountMinor: input.minAmountMinor,
      firstTimeCustomersOnly: input.firstTimeCustomersOnly,
      expiresAt: input.expiresAt,
      metadata: { ...input.metadata },
    };
    const key = input.idempotencyKey;
    // The request as it was meant: codes normalised, the key itself left out.
    const hash = requestHash({ promotionId, source, attributes });
    const batchId = randomUUID();
    const nextId = sequentialUuids(now);
    const outcome = await this.store.transaction(async (tx) => {
      const status = await tx.lockPromotion(actor.organizationId, promotionId);
      if (status === null) throw notFound("promotion", promotionId, "promotion_id");
      // Every code write of the tenant holds this lock, so a retry racing the first call waits for it.
      await tx.lockTenantCodes(actor.organizationId);
      const earlier = key === "" ? null : await tx.findKeyedBatch(actor.organizationId, key);
      if (earlier !== null) {
        if (earlier.requestHash !== hash) {
          throw DomainError.of("already_exists", "idempotency_key_reused", "this idempotency_key was used for a different request", "idempotency_key");
        }
        return { kind: "replayed" as const, batchId: earlier.batchId };
      }
      assertTransition("add_codes", status);
      const insert = (codes: readonly string[]) =>
        tx.insert({ organizationId: actor.organizationId, promotionId, batchId, now, attributes }, codes.map((code) => ({ id: nextId(), code })));
      let rows: { id: string; code: string }[];
      if (source.kind === "explicit") {
        const taken = await tx.findTaken(actor.organizationId, source.codes);
        if (taken.length > 0) throw codesTaken(taken, promotionId);
        rows = await insert(source.codes);
        if (rows.length !== source.codes.length) {
          // Unreachable while every code writer holds the tenant lock; refuse rather than half-create.
          const inserted = new Set(rows.map((r) => r.code));
          const missing = source.codes.flatMap((code, index) => (inserted.has(code) ? [] : [{ index, code, promotionId: "", heldAs: "code" as const }]));
          throw codesTaken(missing, promotionId);
        }
      } else {
        rows = [];
        const tried = new Set<string>();
        for (let round = 0; rows.length < source.count; round++) {
          if (round === MAX_GENERATION_ROUNDS) {
            throw DomainError.of("resource_exhausted", "codes_exhausted", "could not generate enough unique codes with this prefix; use a longer or different prefix", "prefix");
          }
          const batch = (this.options.generate ?? generateCodes)(source.count - rows.length, source.prefix, tried);
          for (const code of batch) tried.add(code);
          rows.push(...(await insert(batch)));
        }
      }
      if (key !== "") await tx.markKeyedBatch(batchId, key, hash);
      const created = rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (let from = 0; from < created.length; from += EVENTS_PER_STATEMENT) {
        await tx.append(
          created.slice(from, from + EVENTS_PER_STATEMENT).map((r) => ({
            organizationId: actor.organizationId,
            type: "code.created" as const,
            payload: codePayload(newCode(r, promotionId, now, attributes)),
            createdAt: now,
            requestId: this.options.requestId ?? null,
          })),
        );
      }
      return { kind: "created" as const, created, termsSeq: await tx.bumpTermsSeq(promotionId) };
    });
    if (outcome.kind === "replayed") return this.replay(actor.organizationId, promotionId, outcome.batchId);
    const { created, termsSeq } = outcome;
    await notifyChanged(this.options, actor.organizationId, promotionId, termsSeq);
    return {
      createdCount: created.length,
      codeValues: created.map((r) => r.code),
      codeIds: created.map((r) => r.id),
      createdAt: now,
      batchId,
      replayed: false,
      codes: created.slice(0, CODE_LIMITS.fullCodesInResponse).map((r) => newCode(r, promotionId, now, attributes)),
    };
  }

  /** What an earlier call with the same key and request made, as the codes are now. */
  private async replay(organizationId: string, promotionId: string, batchId: string): Promise<CreatedCodes> {
    const made = await this.store.batchCodes(organizationId, batchId);
    const codes = await this.store.list(organizationId, promotionId, { active: null, after: null, limit: CODE_LIMITS.fullCodesInResponse, batchId });
    return {
      createdCount: made.length,
      codeValues: made.map((r) => r.code),
      codeIds: made.map((r) => r.id),
      createdAt: made[0]?.createdAt ?? new Date(0),
      batchId,
      replayed: true,
      codes,
    };
  }

  /** A page of a promotion's codes (of one CreatePromotionCodes call, when `batchId` is given), oldest first, after `after`. A deleted promotion has none (NOT_FOUND). */
  async list(
    organizationId: string,
    promotionId: string,
    q: { active: boolean | null; after: CodePosition | null; limit: number; batchId?: string | null },
  ): Promise<PromotionCodeRecord[]> {
    if (!(await this.store.promotionExists(organizationId, promotionId))) throw notFound("promotion", promotionId, "promotion_id");
    return this.store.list(organizationId, promotionId, q);
  }

  /** One code of the tenant, or NOT_FOUND (also when its promotion is deleted). */
  async get(organizationId: string, id: string): Promise<PromotionCodeRecord> {
    const found = await this.store.find(organizationId, id);
    if (!found) throw notFound("code", id);
    return found;
  }

  /** Changes the fields the patch sets; the code of an archived promotion cannot change (FAILED_PRECONDITION). */
  async update(actor: Actor, id: string, patch: CodePatch): Promise<PromotionCodeRecord> {
    const { promotionId, termsSeq } = await this.store.transaction(async (tx) => {
      const code = await tx.findCode(actor.organizationId, id);
      if (!code) throw notFound("code", id);
      const promotionId = code.promotionId;
      const status = await tx.lockPromotion(actor.organizationId, promotionId);
      if (status === null) throw notFound("code", id);
      assertTransition("change_codes", status);
      await tx.lockTenantCodes(actor.organizationId);
      if (patch.active !== undefined) code.active = patch.active;
      if (patch.maxRedemptions !== undefined) code.maxRedemptions = patch.maxRedemptions;
      if (patch.minAmountMinor !== undefined) code.minAmountMinor = patch.minAmountMinor;
      if (patch.firstTimeCustomersOnly !== undefined) code.firstTimeCustomersOnly = patch.firstTimeCustomersOnly;
      if (patch.expiresAt !== undefined) code.expiresAt = patch.expiresAt;
      if (patch.metadata !== undefined) code.metadata = { ...patch.metadata };
      const now = this.clock();
      code.updatedAt = now;
      await tx.flush();
      const record = await tx.record(actor.organizationId, id);
      if (record) await tx.append([{ organizationId: actor.organizationId, type: "code.updated", payload: codePayload(record), createdAt: now, requestId: this.options.requestId ?? null }]);
      return { promotionId, termsSeq: await tx.bumpTermsSeq(promotionId) };
    });
    await notifyChanged(this.options, actor.organizationId, promotionId, termsSeq);
    return this.get(actor.organizationId, id);
  }
}

/** A code as this call created it. */
function newCode(r: { id: string; code: string }, promotionId: string, now: Date, attributes: CodeAttributes): PromotionCodeRecord {
  return { id: r.id, promotionId, code: r.code, active: true, redemptionCount: 0n, createdAt: now, ...attributes, metadata: { ...attributes.metadata } };
}

function codesTaken(taken: readonly TakenCode[], promotionId: string): DomainError {
  return new DomainError(
    "already_exists",
    taken.map((t) => ({
      param: `codes[${t.index}]`,
      code: "code_taken",
      message:
        t.promotionId === promotionId
          ? `${t.code} is already ${t.heldAs === "primary" ? "the primary code" : "a code"} of this promotion`
          : `${t.code} is already used by another live promotion of this organization`,
    })),
  );
}
