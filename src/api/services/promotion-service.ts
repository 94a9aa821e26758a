import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import * as pb from "../../../gen/promotions/v1/promotion_pb.js";
import { CreatePromotionRequestSchema, UpdatePromotionRequestSchema, type PromotionService } from "../../../gen/promotions/v1/promotion_service_pb.js";
import { validatePreviewRequest } from "../../domain/billing-validation.js";
import { assertValid, checkPageLimit, checkUuid, requireUuid } from "../../domain/checks.js";
import { checkCodePageLimit, validateUpdateCode } from "../../domain/codes.js";
import { DomainError, type Violation } from "../../domain/errors.js";
import { parseFilters, PROMOTION_FILTER_FIELDS, type FilterClause } from "../../domain/filter.js";
import * as d from "../../domain/terms.js";
import type { PromotionChangeHook } from "../../promotions/change-hook.js";
import { PromotionCodes } from "../../promotions/codes.js";
import { previewEligibility } from "../../promotions/dry-runs.js";
import { Promotions, type VersionScheduler } from "../../promotions/promotions.js";
import type { PromotionCodeRecord } from "../../store/code-store.js";
import { queryPromotionViews } from "../../store/promotion-views.js";
import { checkToProto, invoiceFromProto } from "../convert/billing.js";
import { codeToProto, createCodesFromProto, updateCodeFromProto } from "../convert/code.js";
import { ConversionProblems, patchFromUpdateRequest, promotionToProto, termsFromCreateRequest } from "../convert/promotion.js";
import { decodeTimeIdCursor, encodeCursor, type TimeIdPosition } from "../cursor.js";
import { CREATED_CODES_BYTES, CREATED_VALUES_BYTES, PAGE_BYTES, checkTermsRequestSize, decodeScopedCursor, fitting, gatherRows, messageBytes, sizedPage } from "../page-size.js";
import { requestScope } from "../request-scope.js";

// promotions.v1.PromotionService: maps messages to domain values, calls the promotion use cases
// (src/promotions/), maps back.

const CURSOR_KIND = "promotions";
const CODES_CURSOR_KIND = "promotion_codes";

function useCases(ctx: HandlerContext, onChanged: PromotionChangeHook, scheduler: VersionScheduler | undefined) {
  const { em, actor, clock, requestId } = requestScope(ctx);
  return { promotions: new Promotions(em, clock, { onChanged, requestId, scheduler }), codes: new PromotionCodes(em, clock, { onChanged, requestId }), actor, em, clock };
}

/**
 * `onChanged` runs after a change to a promotion or its codes commits (cache invalidation);
 * `scheduler` enqueues the promotion.version_published of a version scheduled for later.
 */
export function promotionService(onChanged: PromotionChangeHook, scheduler?: VersionScheduler): ServiceImpl<typeof PromotionService> {
  return {
    async createPromotion(req, ctx) {
      checkTermsRequestSize(CreatePromotionRequestSchema, req);
      const { promotions, actor } = useCases(ctx, onChanged, scheduler);
      const problems = new ConversionProblems();
      const { terms, effectsShorthand } = termsFromCreateRequest(req, problems);
      const view = await promotions.create(actor, terms, { effectsShorthand, inputViolations: problems.violations });
      return { promotion: promotionToProto(view) };
    },

    async getPromotion(req, ctx) {
      const { promotions, actor } = useCases(ctx, onChanged, scheduler);
      return { promotion: promotionToProto(await promotions.get(actor.organizationId, requireUuid(req.id))) };
    },

    async listPromotions(req, ctx) {
      const { em, actor, clock } = useCases(ctx, onChanged, scheduler);
      const out: Violation[] = [];
      const limit = checkPageLimit(out, req.limit);
      assertValid(out);
      const filters: FilterClause[] = parseFilters(req.filter, PROMOTION_FILTER_FIELDS);
      if (req.status !== pb.PromotionStatus.UNSPECIFIED) {
        filters.push(sugar("status", pb.PromotionStatus[req.status], d.PROMOTION_STATUSES));
      }
      if (req.visibility !== pb.Visibility.UNSPECIFIED) {
        filters.push(sugar("visibility", pb.Visibility[req.visibility], d.VISIBILITIES));
      }
      const after = decodeTimeIdCursor(CURSOR_KIND, req.cursor) ?? undefined;
      const page = await queryPromotionViews(em, { organizationId: actor.organizationId, now: clock(), filters, after, limit: limit + 1 });
      const { messages, nextCursor } = sizedPage(CURSOR_KIND, page, limit, pb.PromotionSchema, promotionToProto);
      return { promotions: messages, nextCursor };
    },

    async updatePromotion(req, ctx) {
      checkTermsRequestSize(UpdatePromotionRequestSchema, req);
      const { promotions, actor } = useCases(ctx, onChanged, scheduler);
      const id = requireUuid(req.id);
      const problems = new ConversionProblems();
      const patch = patchFromUpdateRequest(req, problems);
      const effectiveAt = problems.date(req.effectiveAt, "effective_at");
      const expectedVersion = req.expectedVersion === undefined ? null : Number(req.expectedVersion);
      try {
        const view = await promotions.update(actor, id, patch, { expectedVersion, effectiveAt, saveAsDraft: req.saveAsDraft }, problems.violations);
        return { promotion: promotionToProto(view) };
      } catch (error) {
        throw error instanceof DomainError ? inUpdateRequestPaths(error) : error;
      }
    },

    async activatePromotion(req, ctx) {
      const { promotions, actor } = useCases(ctx, onChanged, scheduler);
      return { promotion: promotionToProto(await promotions.activate(actor, requireUuid(req.id))) };
    },

    async deactivatePromotion(req, ctx) {
      const { promotions, actor } = useCases(ctx, onChanged, scheduler);
      return { promotion: promotionToProto(await promotions.deactivate(actor, requireUuid(req.id))) };
    },

    async copyPromotion(req, ctx) {
      const { promotions, actor } = useCases(ctx, onChanged, scheduler);
      const problems = new ConversionProblems();
      const overrides = {
        name: req.name,
        code: req.code,
        validFrom: problems.date(req.validFrom, "valid_from"),
        validTo: problems.date(req.validTo, "valid_to"),
      };
      assertValid(problems.violations);
      return { promotion: promotionToProto(await promotions.copy(actor, requireUuid(req.id), overrides)) };
    },

    async deletePromotion(req, ctx) {
      const { promotions, actor } = useCases(ctx, onChanged, scheduler);
      return { promotion: promotionToProto(await promotions.softDelete(actor, requireUuid(req.id), { endRedemptions: req.endRedemptions })) };
    },

    async previewPromotionEligibility(req, ctx) {
      const { em, actor, clock } = useCases(ctx, onChanged, scheduler);
      const promotionId = requireUuid(req.promotionId, "promotion_id");
      const problems = new ConversionProblems();
      const at = problems.date(req.at, "at") ?? clock();
      const invoice = req.invoice ? invoiceFromProto(req.invoice) : null;
      assertValid([...problems.violations, ...validatePreviewRequest({ cyclesUsed: req.cyclesUsed, invoice })]);
      const preview = await previewEligibility(
        em,
        actor.organizationId,
        { promotionId, customerId: req.customerId, subscriptionId: req.subscriptionId, invoice, at, cyclesUsed: req.cyclesUsed, code: req.code },
        clock(),
      );
      return { ...preview, checks: preview.checks.map(checkToProto) };
    },

    async createPromotionCodes(req, ctx) {
      const { codes, actor } = useCases(ctx, onChanged, scheduler);
      const problems = new ConversionProblems();
      checkUuid(problems.violations, req.promotionId, "promotion_id");
      const input = createCodesFromProto(req, problems);
      const created = await codes.create(actor, req.promotionId, input, problems.violations);
      // Both lists stop where the response would outgrow a client's 4 MiB; the cursor lists the rest.
      const full = created.codes.map(codeToProto);
      const shownFull = fitting(full.map((c) => messageBytes(pb.PromotionCodeSchema, c)), CREATED_CODES_BYTES);
      const shownValues = fitting(created.codeValues.map((v) => Buffer.byteLength(v) + 3), CREATED_VALUES_BYTES);
      const lastId = created.codeIds[shownValues - 1];
      const nextCursor = shownValues < created.createdCount && lastId !== undefined ? encodeCursor(CODES_CURSOR_KIND, [created.createdAt.toISOString(), lastId, created.batchId]) : "";
      return {
        createdCount: created.createdCount,
        codeValues: created.codeValues.slice(0, shownValues),
        codes: full.slice(0, shownFull),
        nextCursor,
        replayed: created.replayed,
      };
    },

    async listPromotionCodes(req, ctx) {
      const { codes, actor } = useCases(ctx, onChanged, scheduler);
      const out: Violation[] = [];
      checkUuid(out, req.promotionId, "promotion_id");
      const limit = checkCodePageLimit(out, req.limit);
      assertValid(out);
      // A cursor from CreatePromotionCodes carries its batch: those pages hold only the codes it made.
      const { after, scope: batchId } = decodeScopedCursor(CODES_CURSOR_KIND, req.cursor);
      const cost = (c: PromotionCodeRecord) => messageBytes(pb.PromotionCodeSchema, codeToProto(c));
      const fetch = (from: TimeIdPosition | null, n: number) => codes.list(actor.organizationId, req.promotionId, { active: req.active ?? null, after: from, limit: n, batchId });
      const page = await gatherRows(fetch, after, limit + 1, cost, PAGE_BYTES);
      const { messages, nextCursor } = sizedPage(CODES_CURSOR_KIND, page, limit, pb.PromotionCodeSchema, codeToProto, batchId);
      return { codes: messages, nextCursor };
    },

    async updatePromotionCode(req, ctx) {
      const { codes, actor } = useCases(ctx, onChanged, scheduler);
      const problems = new ConversionProblems();
      const { violations, patch } = validateUpdateCode(updateCodeFromProto(req, problems));
      assertValid([...problems.violations, ...violations]);
      return { code: codeToProto(await codes.update(actor, req.id, patch)) };
    },
  };
}

function sugar(field: string, name: string | undefined, allowed: readonly string[]): FilterClause {
  if (name === undefined || !allowed.includes(name)) {
    throw DomainError.of("invalid_argument", "invalid_enum", `${field} has an unknown value`, field);
  }
  return { field, op: "eq", values: [name] };
}

/** UpdatePromotionRequest wraps lists (phases.phases[0], conditions.conditions[1], metadata.entries["k"]); name fields as sent. */
function inUpdateRequestPaths(error: DomainError): DomainError {
  if (error.kind !== "invalid_argument") return error;
  const rewrite = (param: string) =>
    param
      .replace(/^phases\[/, "phases.phases[")
      .replace(/^conditions\[/, "conditions.conditions[")
      .replace(/^metadata\[/, "metadata.entries[");
  return new DomainError(error.kind, error.details.map((v) => ({ ...v, param: rewrite(v.param), message: v.message })), { cause: error.cause });
}
