import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { RedemptionStatus, type Redemption, type RedemptionService } from "../../../gen/promotions/v1/redemption_service_pb.js";
import { DomainError, type Violation } from "../../domain/errors.js";
import { checkRedemptionListScope, validateRedeemRequest } from "../../domain/redemption.js";
import { assertValid, checkPageLimit } from "../../domain/checks.js";
import type { RedeemInput, Redeemer } from "../../counters/redeemer.js";
import { Ledger, type RedemptionRow } from "../../store/ledger.js";
import { checkToProto, invoiceFromProto } from "../convert/billing.js";
import { decodeTimeIdCursor, timeIdPage } from "../cursor.js";
import { promotionId } from "./promotion-service.js";
import { requestScope } from "../request-scope.js";

// promotions.v1.RedemptionService: maps messages, calls the Redeemer (src/counters/redeemer.ts).

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

function redeemInput(req: RedeemFields): RedeemInput {
  const input: RedeemInput = {
    code: req.code.trim(),
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

export function redemptionToProto(r: RedemptionRow): Redemption {
  return {
    $typeName: "promotions.v1.Redemption",
    id: r.id,
    promotionId: r.promotionId,
    version: r.version,
    promotionVersionId: r.promotionVersionId,
    code: r.code ?? "",
    customerId: r.customerId,
    subscriptionId: r.subscriptionId ?? "",
    status: r.status === "RELEASED" ? RedemptionStatus.RELEASED : RedemptionStatus.ACTIVE,
    idempotencyKey: r.idempotencyKey ?? "",
    cyclesUsed: r.cyclesUsed,
    metadata: r.metadata,
    createdAt: timestampFromDate(r.createdAt),
    releasedAt: r.releasedAt ? timestampFromDate(r.releasedAt) : undefined,
  };
}

export function redemptionService(redeemer: Redeemer): ServiceImpl<typeof RedemptionService> {
  return {
    async validateCode(req, ctx) {
      const { em, actor } = requestScope(ctx);
      const v = await redeemer.validate(em, actor.organizationId, redeemInput(req));
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
      const { em, actor } = requestScope(ctx);
      const row = await redeemer.redeem(em, actor.organizationId, redeemInput(req));
      return { redemption: redemptionToProto(row) };
    },

    async releaseRedemption(req, ctx) {
      const { em, actor } = requestScope(ctx);
      const row = await redeemer.release(em, actor.organizationId, promotionId(req.id));
      return { redemption: redemptionToProto(row) };
    },

    async getRedemption(req, ctx) {
      const { em, actor } = requestScope(ctx);
      const id = promotionId(req.id);
      const row = await new Ledger(em).findRedemption(actor.organizationId, id);
      if (!row) throw DomainError.of("not_found", "redemption_not_found", `redemption ${id} does not exist`, "id");
      return { redemption: redemptionToProto(row) };
    },

    async listRedemptions(req, ctx) {
      const { em, actor } = requestScope(ctx);
      const out: Violation[] = [];
      checkRedemptionListScope(out, req);
      const limit = checkPageLimit(out, req.limit);
      assertValid(out);
      const after = decodeTimeIdCursor(CURSOR_KIND, req.cursor);
      const rows = await new Ledger(em).listRedemptions({
        organizationId: actor.organizationId,
        promotionId: req.promotionId === "" ? null : promotionId(req.promotionId, "promotion_id"),
        customerId: req.customerId === "" ? null : req.customerId,
        after,
        limit: limit + 1,
      });
      const { shown, nextCursor } = timeIdPage(CURSOR_KIND, rows, limit);
      return { redemptions: shown.map(redemptionToProto), nextCursor };
    },
  };
}
