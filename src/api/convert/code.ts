import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as pb from "../../../gen/promotions/v1/promotion_pb.js";
import type {
  CreatePromotionCodesRequest,
  UpdatePromotionCodeRequest,
} from "../../../gen/promotions/v1/promotion_service_pb.js";
import type { CreateCodesInput, UpdateCodeInput } from "../../domain/codes.js";
import type { PromotionCodeRecord } from "../../store/code-store.js";
import type { ConversionProblems } from "./promotion.js";

// PromotionCode messages <-> domain values; decisions (limits, exclusivity) live in domain/codes.ts.

export function createCodesFromProto(req: CreatePromotionCodesRequest, problems: ConversionProblems): CreateCodesInput {
  return {
    codes: req.codes,
    count: req.count,
    prefix: req.prefix,
    idempotencyKey: req.idempotencyKey,
    maxRedemptions: req.maxRedemptions ?? null,
    minAmountMinor: req.minAmountMinor ?? null,
    firstTimeCustomersOnly: req.firstTimeCustomersOnly,
    expiresAt: problems.date(req.expiresAt, "expires_at"),
    metadata: { ...req.metadata },
  };
}

export function updateCodeFromProto(req: UpdatePromotionCodeRequest, problems: ConversionProblems): UpdateCodeInput {
  return {
    id: req.id,
    active: req.active,
    maxRedemptions: req.maxRedemptions,
    minAmountMinor: req.minAmountMinor,
    firstTimeCustomersOnly: req.firstTimeCustomersOnly,
    expiresAt: problems.date(req.expiresAt, "expires_at"),
    clearExpiresAt: req.clearExpiresAt,
    metadata: req.metadata === undefined ? undefined : { ...req.metadata.entries },
  };
}

export function codeToProto(c: PromotionCodeRecord): pb.PromotionCode {
  return create(pb.PromotionCodeSchema, {
    id: c.id,
    promotionId: c.promotionId,
    code: c.code,
    active: c.active,
    maxRedemptions: c.maxRedemptions ?? undefined,
    minAmountMinor: c.minAmountMinor ?? undefined,
    firstTimeCustomersOnly: c.firstTimeCustomersOnly,
    expiresAt: c.expiresAt === null ? undefined : timestampFromDate(c.expiresAt),
    redemptionCount: c.redemptionCount,
    metadata: c.metadata,
    createdAt: timestampFromDate(c.createdAt),
  });
}
