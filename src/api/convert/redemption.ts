import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { RedemptionKind, RedemptionStatus, type Redemption } from "../../../gen/promotions/v1/redemption_service_pb.js";
import type { RedemptionRow } from "../../store/ledger.js";

// A ledger redemption as the API shows it (RedemptionService answers and redemption.* events).

const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);

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
    status: RedemptionStatus[r.status],
    kind: RedemptionKind[r.kind],
    idempotencyKey: r.idempotencyKey ?? "",
    cyclesUsed: r.cyclesUsed,
    cyclesRemaining: r.cyclesTotal === null ? undefined : Math.max(r.cyclesTotal - r.cyclesUsed, 0),
    metadata: r.metadata,
    createdAt: timestampFromDate(r.createdAt),
    releasedAt: ts(r.releasedAt),
    completedAt: ts(r.completedAt),
    endedAt: ts(r.endedAt),
    endReason: r.endReason ?? "",
  };
}
