import { describe, expect, it } from "vitest";
import { formatSoak, runSoak, soakViolations } from "../support/soak.js";

// 30 s of the soak (`npm run soak` runs it for minutes): the real server in its own process under
// a steady mix of CRUD, SimulatePromotion, ValidateCode, RedeemPromotion, ReleaseRedemption and
// ApplyPromotions. Nothing fails but the expected refusals, the heap's floor grows less than 30%
// after warm-up, and ledger = counters for every promotion that moved.

describe("soak (30 s)", () => {
  it("a steady mixed workload: only expected refusals, flat heap, ledger = counters", async () => {
    const report = await runSoak({ seconds: 30, inFlight: 16 });
    console.log(formatSoak(report));
    expect(soakViolations(report)).toEqual([]);
    for (const op of ["crud (create, update, get, delete)", "list", "simulate", "validate", "redeem open", "redeem capped", "release", "apply"]) {
      expect(report.stats[op]?.ok ?? 0).toBeGreaterThan(0);
    }
    expect(report.promotions.find((p) => p.name === "SOAK-CAPPED")?.facts.ledger).toBeGreaterThan(0);
  }, 90_000);
});
