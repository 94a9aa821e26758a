import { describe, expect, it } from "vitest";
import { thresholdsCrossed } from "../../src/domain/budget-thresholds.js";

describe("thresholdsCrossed", () => {
  it.each([
    { before: 0n, after: 4_999n, max: 10_000n, crossed: [] },
    { before: 0n, after: 5_000n, max: 10_000n, crossed: [50] },
    { before: 4_999n, after: 5_000n, max: 10_000n, crossed: [50] },
    { before: 5_000n, after: 7_999n, max: 10_000n, crossed: [] },
    { before: 5_000n, after: 8_000n, max: 10_000n, crossed: [80] },
    { before: 0n, after: 10_000n, max: 10_000n, crossed: [50, 80, 100] },
    { before: 9_000n, after: 10_000n, max: 10_000n, crossed: [100] },
    { before: 10_000n, after: 10_000n, max: 10_000n, crossed: [] },
    // A raised budget: thresholds of the new max_budget are crossed by the grants that reach them;
    // one the budget already stood at when it was raised is not crossed by anything.
    { before: 9_000n, after: 12_000n, max: 20_000n, crossed: [50] },
    { before: 10_000n, after: 12_000n, max: 20_000n, crossed: [] },
    // Percentages are exact in minor units: 50 % of 3 is 1.5, crossed at 2.
    { before: 1n, after: 2n, max: 3n, crossed: [50] },
    { before: 2n, after: 3n, max: 3n, crossed: [80, 100] },
    { before: 0n, after: 5n, max: 0n, crossed: [] },
  ])("from $before to $after of $max crosses $crossed", ({ before, after, max, crossed }) => {
    expect(thresholdsCrossed(before, after, max)).toEqual(crossed);
  });
});
