import { describe, expect, it } from "vitest";
import type { SubscriptionStatus } from "../../src/domain/billing.js";
import { coverageCheck, phaseAt, phaseCheck, phaseLength, timingCheck } from "../../src/domain/phases.js";
import { candidate, context, pct, PERIOD_END, PERIOD_START, phase, promotion, subscription, terms } from "./support/pricing.js";

const welcome = phase("Welcome", [pct(5000)], "ONCE");
const intro = phase("Intro", [pct(2000)], "REPEATING", 3);
const loyal = phase("Loyal", [pct(1000)], "FOREVER");
const ladder = [welcome, intro, loyal];

describe("phaseLength", () => {
  it.each([
    ["ONCE lasts 1 billing period", phase("p", [], "ONCE"), 1],
    ["REPEATING lasts its cycles", phase("p", [], "REPEATING", 12), 12],
    ["FOREVER never ends", phase("p", [], "FOREVER"), null],
    ["REPEATING without cycles (invalid terms) grants nothing", phase("p", [], "REPEATING", null), 0],
  ])("%s", (_name, p, expected) => {
    expect(phaseLength(p)).toBe(expected);
  });
});

describe("phaseAt: ONCE → REPEATING(3) → FOREVER", () => {
  it.each([
    [0, "Welcome", 1, 1],
    [1, "Intro", 1, 3],
    [2, "Intro", 2, 3],
    [3, "Intro", 3, 3],
    [4, "Loyal", 1, null],
    [5, "Loyal", 2, null],
    [1000, "Loyal", 997, null],
  ])("after %s used billing periods, phase %s is in force (period %s of %s)", (used, name, cycleInPhase, cyclesInPhase) => {
    expect(phaseAt(ladder, used)).toMatchObject({ phase: { name }, cycleInPhase, cyclesInPhase });
  });
});

describe("phaseAt: durations that end", () => {
  it.each([
    ["ONCE applies to the first period only", [welcome], [true, false, false]],
    ["REPEATING(3) applies to three periods", [intro], [true, true, true, false]],
    ["ONCE then REPEATING(3) ends after four", [welcome, intro], [true, true, true, true, false, false]],
    ["FOREVER never ends", [loyal], [true, true, true, true, true]],
  ])("%s", (_name, phases, inForce) => {
    expect(inForce.map((_, used) => phaseAt(phases, used) !== null)).toEqual(inForce);
  });

  it("refuses a negative or fractional cycle count", () => {
    expect(() => phaseAt(ladder, -1)).toThrow(RangeError);
    expect(() => phaseAt(ladder, 1.5)).toThrow(RangeError);
  });
});

describe("phaseCheck", () => {
  it("names the phase and the period within it", () => {
    expect(phaseCheck(ladder, 2).check).toEqual({ check: "phase", passed: true, detail: "phase Intro in force: billing period 2 of 3" });
    expect(phaseCheck(ladder, 4).check.detail).toBe("phase Loyal in force: billing period 1 (forever)");
  });

  it("fails once the duration has ended", () => {
    expect(phaseCheck([welcome, intro], 4)).toEqual({
      inForce: null,
      check: { check: "phase", passed: false, detail: "duration ended: all 4 billing periods of the promotion are used" },
    });
  });
});

describe("coverageCheck", () => {
  const covered = terms([pct(1000)], { requiresContinuousCoverage: true });
  it.each<[SubscriptionStatus, boolean]>([
    ["ACTIVE", true],
    ["TRIALING", true],
    ["PAST_DUE", false],
    ["PAUSED", false],
    ["CANCELED", false],
  ])("a %s subscription keeps coverage: %s", (status, passed) => {
    expect(coverageCheck(covered, { subscription: subscription({ status }), periodStart: PERIOD_START }, null)).toMatchObject({ check: "continuous_coverage", passed });
  });

  it("says which subscription lapsed and how", () => {
    expect(coverageCheck(covered, { subscription: subscription({ status: "PAST_DUE" }), periodStart: PERIOD_START }, null)?.detail).toBe("coverage lapsed: subscription sub_1 is PAST_DUE");
  });

  it("is not a check at all when the promotion does not require coverage", () => {
    expect(coverageCheck(terms([pct(1000)]), { subscription: subscription({ status: "CANCELED" }), periodStart: PERIOD_START }, null)).toBeNull();
  });

  it("passes an inline invoice, which has no subscription to lapse", () => {
    expect(coverageCheck(covered, { subscription: null, periodStart: PERIOD_START }, null)?.passed).toBe(true);
  });

  it("breaks on a gap: this period does not start where the last one it applied to ended", () => {
    const lastEnd = new Date(PERIOD_START.getTime() - 86_400_000);
    expect(coverageCheck(covered, { subscription: subscription(), periodStart: PERIOD_START }, lastEnd)).toEqual({
      check: "continuous_coverage",
      passed: false,
      detail: `coverage gap: this billing period starts ${PERIOD_START.toISOString()}, the last one it applied to ended ${lastEnd.toISOString()}`,
    });
    expect(coverageCheck(covered, { subscription: subscription(), periodStart: PERIOD_START }, PERIOD_START)?.passed).toBe(true);
  });
});

describe("timingCheck", () => {
  const next = promotion("p", terms([pct(1000)], { applicationTiming: "NEXT_PERIOD" }));
  const ctx = context();
  const at = (ms: number) => new Date(ms);
  it.each([
    ["redeemed at the start of this period: starts next period", at(PERIOD_START.getTime()), false],
    ["redeemed during this period: starts next period", new Date("2026-06-10T00:00:00Z"), false],
    ["redeemed in the last millisecond of this period: starts next period", at(PERIOD_END.getTime() - 1), false],
    ["redeemed a millisecond before this period: applies", at(PERIOD_START.getTime() - 1), true],
    ["redeemed in an earlier period: applies", new Date("2026-04-20T00:00:00Z"), true],
    ["applied automatically (no redemption): applies", null, true],
  ])("%s", (_name, redeemedAt, passed) => {
    expect(timingCheck(next.terms, candidate(next, { redeemedAt }), ctx)).toMatchObject({ check: "application_timing", passed });
  });

  it("is not a check for IMMEDIATE promotions, even redeemed mid-period", () => {
    const now = promotion("p", terms([pct(1000)]));
    expect(timingCheck(now.terms, candidate(now, { redeemedAt: new Date("2026-06-10T00:00:00Z") }), ctx)).toBeNull();
  });
});
