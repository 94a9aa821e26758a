import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import * as pb from "../../../gen/promotions/v1/promotion_pb.js";
import type { PromotionService } from "../../../gen/promotions/v1/promotion_service_pb.js";
import { shorthandPhases, type TermsPatch } from "../../domain/editing.js";
import { DomainError, type Violation } from "../../domain/errors.js";
import { parseFilters, PROMOTION_FILTER_FIELDS, type FilterClause } from "../../domain/filter.js";
import * as d from "../../domain/terms.js";
import { validateInvoice } from "../../domain/billing-validation.js";
import { evaluateEligibility, summarizeEffects } from "../../domain/pipeline.js";
import { assertValid, checkIntRange, checkPageLimit, checkUuid } from "../../domain/checks.js";
import { candidateFrom, loadBillingContext } from "../../store/pricing-context.js";
import { findPromotionView, queryPromotionViews } from "../../store/promotion-views.js";
import { PromotionStore } from "../../store/promotion-store.js";
import { CodeStore } from "../../store/code-store.js";
import type { PromotionChangeHook } from "../../store/change-hook.js";
import { checkCodePageLimit, validateUpdateCode } from "../../domain/codes.js";
import { requestScope } from "../request-scope.js";
import { codeToProto, createCodesFromProto, updateCodeFromProto } from "../convert/code.js";
import { ConversionProblems, conditionsFromProto, effectFromProto, phasesFromProto, promotionToProto } from "../convert/promotion.js";
import { checkToProto, invoiceFromProto } from "../convert/billing.js";
import { decodeTimeIdCursor, timeIdPage } from "../cursor.js";

// promotions.v1.PromotionService: maps messages to domain values, calls the store, maps back.

const CURSOR_KIND = "promotions";
const CODES_CURSOR_KIND = "promotion_codes";

/** A request's promotion id, refused unless it is a UUID (so Postgres never sees garbage). */
export function promotionId(id: string, param = "id"): string {
  const out: Violation[] = [];
  checkUuid(out, id, param);
  assertValid(out);
  return id;
}

function storeFor(ctx: HandlerContext, onChanged: PromotionChangeHook) {
  const { em, actor, clock } = requestScope(ctx);
  return { store: new PromotionStore(em, clock, { onChanged }), codes: new CodeStore(em, clock, { onChanged }), actor, em, clock };
}

/** `onChanged` runs after a change to a promotion or its codes commits (cache invalidation). */
export function promotionService(onChanged: PromotionChangeHook): ServiceImpl<typeof PromotionService> {
  return {
    async createPromotion(req, ctx) {
      const { store, actor } = storeFor(ctx, onChanged);
      const problems = new ConversionProblems();
      const effectsShorthand = req.effects.length > 0;
      if (effectsShorthand && req.phases.length > 0) {
        problems.violations.push({ param: "effects", code: "not_allowed", message: "give either effects (a single Default phase) or phases, not both" });
      }
      const terms: d.PromotionTerms = {
        name: req.name,
        description: req.description,
        publicDescription: req.publicDescription,
        code: req.code,
        archetype: problems.enumValue(pb.Archetype, req.archetype, d.ARCHETYPES, "STANDARD", "archetype"),
        visibility: problems.enumValue(pb.Visibility, req.visibility, d.VISIBILITIES, "PRIVATE", "visibility"),
        stackable: req.stackable,
        priority: req.priority,
        applicationTiming: problems.enumValue(pb.ApplicationTiming, req.applicationTiming, d.APPLICATION_TIMINGS, "IMMEDIATE", "application_timing"),
        conditionMode: problems.enumValue(pb.ConditionMode, req.conditionMode, d.CONDITION_MODES, "ALL", "condition_mode"),
        conditions: conditionsFromProto(req.conditions, problems),
        isPhased: req.isPhased,
        phases: effectsShorthand ? shorthandPhases(req.effects.map(effectFromProto)) : phasesFromProto(req.phases, problems),
        currency: req.currency,
        maxBudget: req.maxBudget ?? null,
        budgetBehavior: problems.enumValue(pb.BudgetBehavior, req.budgetBehavior, d.BUDGET_BEHAVIORS, "CAP", "budget_behavior"),
        maxRedemptions: req.maxRedemptions ?? null,
        maxRedemptionsPerCustomer: req.maxRedemptionsPerCustomer ?? null,
        validFrom: problems.date(req.validFrom, "valid_from"),
        validTo: problems.date(req.validTo, "valid_to"),
        requiresContinuousCoverage: req.requiresContinuousCoverage,
        metadata: { ...req.metadata },
      };
      const view = await store.create(actor, terms, { effectsShorthand, inputViolations: problems.violations });
      return { promotion: promotionToProto(view) };
    },

    async getPromotion(req, ctx) {
      const { store, actor } = storeFor(ctx, onChanged);
      return { promotion: promotionToProto(await store.get(actor.organizationId, promotionId(req.id))) };
    },

    async listPromotions(req, ctx) {
      const { em, actor, clock } = storeFor(ctx, onChanged);
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
      const { shown, nextCursor } = timeIdPage(CURSOR_KIND, page, limit);
      return { promotions: shown.map(promotionToProto), nextCursor };
    },

    async updatePromotion(req, ctx) {
      const { store, actor } = storeFor(ctx, onChanged);
      const id = promotionId(req.id);
      const problems = new ConversionProblems();
      const patch: TermsPatch = {};
      if (req.name !== undefined) patch.name = req.name;
      if (req.description !== undefined) patch.description = req.description;
      if (req.publicDescription !== undefined) patch.publicDescription = req.publicDescription;
      if (req.code !== undefined) patch.code = req.code;
      if (req.archetype !== undefined) patch.archetype = problems.enumValue(pb.Archetype, req.archetype, d.ARCHETYPES, "STANDARD", "archetype");
      if (req.visibility !== undefined) patch.visibility = problems.enumValue(pb.Visibility, req.visibility, d.VISIBILITIES, "PRIVATE", "visibility");
      if (req.stackable !== undefined) patch.stackable = req.stackable;
      if (req.priority !== undefined) patch.priority = req.priority;
      if (req.applicationTiming !== undefined) {
        patch.applicationTiming = problems.enumValue(pb.ApplicationTiming, req.applicationTiming, d.APPLICATION_TIMINGS, "IMMEDIATE", "application_timing");
      }
      if (req.conditionMode !== undefined) patch.conditionMode = problems.enumValue(pb.ConditionMode, req.conditionMode, d.CONDITION_MODES, "ALL", "condition_mode");
      if (req.conditions !== undefined) patch.conditions = conditionsFromProto(req.conditions.conditions, problems);
      if (req.isPhased !== undefined) patch.isPhased = req.isPhased;
      if (req.phases !== undefined) patch.phases = phasesFromProto(req.phases.phases, problems);
      if (req.currency !== undefined) patch.currency = req.currency;
      // 0 removes a limit: limits are otherwise always positive.
      if (req.maxBudget !== undefined) patch.maxBudget = req.maxBudget === 0n ? null : req.maxBudget;
      if (req.budgetBehavior !== undefined) patch.budgetBehavior = problems.enumValue(pb.BudgetBehavior, req.budgetBehavior, d.BUDGET_BEHAVIORS, "CAP", "budget_behavior");
      if (req.maxRedemptions !== undefined) patch.maxRedemptions = req.maxRedemptions === 0n ? null : req.maxRedemptions;
      if (req.maxRedemptionsPerCustomer !== undefined) {
        patch.maxRedemptionsPerCustomer = req.maxRedemptionsPerCustomer === 0n ? null : req.maxRedemptionsPerCustomer;
      }
      if (req.validFrom !== undefined) patch.validFrom = problems.date(req.validFrom, "valid_from");
      if (req.validTo !== undefined) patch.validTo = problems.date(req.validTo, "valid_to");
      if (req.requiresContinuousCoverage !== undefined) patch.requiresContinuousCoverage = req.requiresContinuousCoverage;
      if (req.metadata !== undefined) patch.metadata = { ...req.metadata.entries };
      const effectiveAt = problems.date(req.effectiveAt, "effective_at");
      const expectedVersion = req.expectedVersion === undefined ? null : Number(req.expectedVersion);
      try {
        const view = await store.update(actor, id, patch, { expectedVersion, effectiveAt, saveAsDraft: req.saveAsDraft }, problems.violations);
        return { promotion: promotionToProto(view) };
      } catch (error) {
        throw error instanceof DomainError ? inUpdateRequestPaths(error) : error;
      }
    },

    async activatePromotion(req, ctx) {
      const { store, actor } = storeFor(ctx, onChanged);
      return { promotion: promotionToProto(await store.activate(actor, promotionId(req.id))) };
    },

    async deactivatePromotion(req, ctx) {
      const { store, actor } = storeFor(ctx, onChanged);
      return { promotion: promotionToProto(await store.deactivate(actor, promotionId(req.id))) };
    },

    async copyPromotion(req, ctx) {
      const { store, actor } = storeFor(ctx, onChanged);
      const problems = new ConversionProblems();
      const overrides = {
        name: req.name,
        code: req.code,
        validFrom: problems.date(req.validFrom, "valid_from"),
        validTo: problems.date(req.validTo, "valid_to"),
      };
      assertValid(problems.violations);
      return { promotion: promotionToProto(await store.copy(actor, promotionId(req.id), overrides)) };
    },

    async deletePromotion(req, ctx) {
      const { store, actor } = storeFor(ctx, onChanged);
      return { promotion: promotionToProto(await store.softDelete(actor, promotionId(req.id))) };
    },

    async previewPromotionEligibility(req, ctx) {
      const { em, actor, clock } = storeFor(ctx, onChanged);
      const id = promotionId(req.promotionId, "promotion_id");
      const problems = new ConversionProblems();
      const at = problems.date(req.at, "at") ?? clock();
      const invoice = req.invoice ? invoiceFromProto(req.invoice) : null;
      const out: Violation[] = invoice ? validateInvoice(invoice) : [];
      checkIntRange(out, req.cyclesUsed, "cycles_used", 0, 10_000);
      assertValid([...problems.violations, ...out]);
      const view = await findPromotionView(em, actor.organizationId, id, clock());
      if (!view) throw DomainError.of("not_found", "promotion_not_found", `promotion ${id} does not exist`, "id");
      const context = await loadBillingContext(em, actor.organizationId, {
        customerId: req.customerId,
        subscriptionId: req.subscriptionId,
        invoice,
        periodStart: null,
        periodEnd: null,
        at,
      });
      const verdict = evaluateEligibility(context, {
        promotion: candidateFrom(view),
        cyclesUsed: req.cyclesUsed,
        redeemedAt: null,
        allowDraft: false,
        code: req.code === "" ? null : req.code,
        alreadyRedeemed: false,
      });
      return {
        promotionId: id,
        promotionName: view.terms.name,
        eligible: verdict.eligible,
        reason: verdict.reason,
        checks: verdict.checks.map(checkToProto),
        effectSummary: summarizeEffects(view.terms),
      };
    },

    async createPromotionCodes(req, ctx) {
      const { codes, actor } = storeFor(ctx, onChanged);
      const problems = new ConversionProblems();
      checkUuid(problems.violations, req.promotionId, "promotion_id");
      const input = createCodesFromProto(req, problems);
      const created = await codes.create(actor, req.promotionId, input, problems.violations);
      return { createdCount: created.createdCount, codeValues: created.codeValues, codes: created.codes.map(codeToProto) };
    },

    async listPromotionCodes(req, ctx) {
      const { codes, actor } = storeFor(ctx, onChanged);
      const out: Violation[] = [];
      checkUuid(out, req.promotionId, "promotion_id");
      const limit = checkCodePageLimit(out, req.limit);
      assertValid(out);
      const after = decodeTimeIdCursor(CODES_CURSOR_KIND, req.cursor);
      const page = await codes.list(actor.organizationId, req.promotionId, { active: req.active ?? null, after, limit: limit + 1 });
      const { shown, nextCursor } = timeIdPage(CODES_CURSOR_KIND, page, limit);
      return { codes: shown.map(codeToProto), nextCursor };
    },

    async updatePromotionCode(req, ctx) {
      const { codes, actor } = storeFor(ctx, onChanged);
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
