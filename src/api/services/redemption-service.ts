import type { ServiceImpl } from "@connectrpc/connect";
import { RedemptionSchema, RedemptionStatus, type RedemptionService } from "../../../gen/promotions/v1/redemption_service_pb.js";
import type { Checkout } from "../../checkout/checkout.js";
import { assertValid, checkPageLimit, requireUuid } from "../../domain/checks.js";
import { notFound, type Violation } from "../../domain/errors.js";
import { checkRedemptionListScope, REDEMPTION_STATUSES, validateRedeemRequest, type RedeemRequest } from "../../domain/redemption.js";
import { normalizeCode } from "../../domain/terms.js";
import { Ledger } from "../../store/ledger.js";
import { redemptionToProto } from "../convert/redemption.js";
import { checkToProto, invoiceFromProto } from "../convert/billing.js";
import { ConversionProblems } from "../convert/promotion.js";
import { decodeTimeIdCursor } from "../cursor.js";
import { sizedPage } from "../page-size.js";
import { requestScope } from "../request-scope.js";

// promotions.v1.RedemptionService: maps messages, calls the checkout use cases (src/checkout/redeemer.ts).

const CURSOR_KIND = "redemptions";

interface RedeemFields {
  code: string;
  promotionId: string;
  customerId: string;
  subscriptionId: string;
  invoice?: Parameters<typeof invoiceFromProto>[0];
  idempotencyKey?: string;
  metadata?: Record<string, string>;
}

function redeemRequest(req: RedeemFields): RedeemRequest {
  const input: RedeemRequest = {
    code: normalizeCode(req.code),
    promotionId: req.promotionId,
    customerId: req.customerId,
    subscriptionId: req.subscriptionId,
    invoice: req.invoice ? invoiceFromProto(req.invoice) : null,
    idempotencyKey: req.idempotencyKey ?? "",
    metadata: req.metadata ?? {},
  };
  assertValid(validateRedeemRequest(input));
  return input;
}

export { redemptionToProto };

export function redemptionService(checkout: Checkout): ServiceImpl<typeof RedemptionService> {
  const { redeemer } = checkout;
  return {
    async validateCode(req, ctx) {
      const { forkEm, actor, requestId } = requestScope(ctx);
      const v = await redeemer.validate(checkout.stores(forkEm, requestId), actor.organizationId, redeemRequest(req));
      return {
        valid: v.valid,
        reason: v.reason,
        message: v.message,
        promotionId: v.promotionId,
        publicDescription: v.publicDescription,
        effectSummary: v.effectSummary,
        checks: v.checks.map(checkToProto),
        remainingRedemptions: v.remainingRedemptions ?? undefined,
      };
    },

    async redeemPromotion(req, ctx) {
      const { forkEm, actor, requestId } = requestScope(ctx);
      const row = await redeemer.redeem(checkout.stores(forkEm, requestId), actor.organizationId, redeemRequest(req));
      return { redemption: redemptionToProto(row) };
    },

    async releaseRedemption(req, ctx) {
      const { forkEm, actor, requestId } = requestScope(ctx);
      const row = await redeemer.release(checkout.stores(forkEm, requestId), actor.organizationId, requireUuid(req.id));
      return { redemption: redemptionToProto(row) };
    },

    async getRedemption(req, ctx) {
      const { em, actor, requestId } = requestScope(ctx);
      const id = requireUuid(req.id);
      const row = await new Ledger(em).findRedemption(actor.organizationId, id);
      if (!row) throw notFound("redemption", id);
      return { redemption: redemptionToProto(row) };
    },

    async listRedemptions(req, ctx) {
      const { em, actor, requestId } = requestScope(ctx);
      const out: Violation[] = [];
      checkRedemptionListScope(out, req);
      const limit = checkPageLimit(out, req.limit);
      assertValid(out);
      const problems = new ConversionProblems();
      const statuses = req.status.map((s, i) => problems.enumValue(RedemptionStatus, s, REDEMPTION_STATUSES, "ACTIVE", `status[${i}]`));
      if (req.status.some((s) => s === RedemptionStatus.UNSPECIFIED)) {
        problems.violations.push({ param: "status", code: "invalid_enum", message: "status may not contain REDEMPTION_STATUS_UNSPECIFIED" });
      }
      assertValid(problems.violations);
      const after = decodeTimeIdCursor(CURSOR_KIND, req.cursor);
      const rows = await new Ledger(em).listRedemptions({
        organizationId: actor.organizationId,
        promotionId: req.promotionId === "" ? null : requireUuid(req.promotionId, "promotion_id"),
        customerId: req.customerId === "" ? null : req.customerId,
        statuses,
        after,
        limit: limit + 1,
      });
      const { messages, nextCursor } = sizedPage(CURSOR_KIND, rows, limit, RedemptionSchema, redemptionToProto);
      return { redemptions: messages, nextCursor };
    },
  };
}
