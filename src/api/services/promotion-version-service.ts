import type { ServiceImpl } from "@connectrpc/connect";
import * as pb from "../../../gen/promotions/v1/promotion_pb.js";
import type { PromotionVersionService } from "../../../gen/promotions/v1/promotion_version_service_pb.js";
import { DomainError, type Violation } from "../../domain/errors.js";
import { VERSION_STATUSES, type VersionStatus } from "../../domain/terms.js";
import { assertValid, checkPageLimit, requireUuid } from "../../domain/checks.js";
import { Promotions } from "../../promotions/promotions.js";
import { ConversionProblems, termsMessage, versionToProto } from "../convert/promotion.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import { requestScope } from "../request-scope.js";

// promotions.v1.PromotionVersionService: the edit-as-publish history of a promotion (src/promotions/promotions.ts).

const CURSOR_KIND = "promotion_versions";

export function promotionVersionService(): ServiceImpl<typeof PromotionVersionService> {
  return {
    async listPromotionVersions(req, ctx) {
      const { em, actor, clock } = requestScope(ctx);
      const out: Violation[] = [];
      const limit = checkPageLimit(out, req.limit);
      const problems = new ConversionProblems();
      const statuses: VersionStatus[] = req.status.map((s, i) =>
        problems.enumValue(pb.VersionStatus, s, VERSION_STATUSES, "DRAFT", `status[${i}]`),
      );
      if (req.status.some((s) => s === pb.VersionStatus.UNSPECIFIED)) {
        out.push({ param: "status", code: "invalid_enum", message: "status may not contain VERSION_STATUS_UNSPECIFIED" });
      }
      assertValid([...out, ...problems.violations]);
      const beforeVersion = req.cursor === "" ? null : versionFrom(decodeCursor(CURSOR_KIND, req.cursor));
      const records = await new Promotions(em, clock).listVersions(actor.organizationId, requireUuid(req.id), {
        statuses,
        beforeVersion,
        limit: limit + 1,
      });
      const more = records.length > limit;
      const shown = more ? records.slice(0, limit) : records;
      const last = shown.at(-1);
      return {
        versions: shown.map(versionToProto),
        nextCursor: more && last ? encodeCursor(CURSOR_KIND, [String(last.version)]) : "",
      };
    },

    async getPromotionVersion(req, ctx) {
      const { em, actor, clock } = requestScope(ctx);
      if (req.version < 1n || req.version > 2_147_483_647n) {
        throw DomainError.of("invalid_argument", "out_of_range", `version must be between 1 and 2147483647 (got ${req.version})`, "version");
      }
      const record = await new Promotions(em, clock).getVersion(actor.organizationId, requireUuid(req.id), Number(req.version));
      return { version: versionToProto(record), terms: termsMessage(record.terms) };
    },
  };
}

function versionFrom(position: readonly string[]): number {
  const value = Number(position[0]);
  if (position.length !== 1 || !Number.isInteger(value) || value < 1) {
    throw DomainError.of("invalid_argument", "invalid_cursor", "cursor is not one this service issued", "cursor");
  }
  return value;
}
