import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { allocate, clamp, divideHalfEven, formatMoney, max, min, percentOf, sum } from "../../src/domain/money.js";

// ---- Exact rational references, written differently from the module on purpose. ----

/** n/d rounded half-to-even by comparing the distance of each nearby integer to the exact value. */
function referenceHalfEven(n: bigint, d: bigint): bigint {
  const q = n / d;
  let best = q - 1n;
  for (const r of [q, q + 1n]) {
    const distance = abs(n - r * d);
    const bestDistance = abs(n - best * d);
    if (distance < bestDistance || (distance === bestDistance && r % 2n === 0n)) best = r;
  }
  return best;
}

/** Largest remainder by repeatedly handing one unit to the part furthest below its exact quota. */
function referenceAllocate(total: bigint, weights: readonly bigint[]): bigint[] {
  const s = weights.reduce((a, b) => a + b, 0n);
  const parts = weights.map((w) => (total * w) / s);
  let left = total - parts.reduce((a, b) => a + b, 0n);
  const given = weights.map(() => false);
  while (left > 0n) {
    let pick = -1;
    let deficit = -1n;
    // deficit_i = quota_i - part_i, scaled by s: total*w_i - part_i*s.
    weights.forEach((w, i) => {
      const d = total * w - (parts[i] ?? 0n) * s;
      if (!given[i] && d > deficit) {
        deficit = d;
        pick = i;
      }
    });
    parts[pick] = (parts[pick] ?? 0n) + 1n;
    given[pick] = true;
    left -= 1n;
  }
  return parts;
}

function abs(x: bigint): bigint {
  return x < 0n ? -x : x;
}

describe("percentOf", () => {
  it.each([
    [100n, 1250, 12n, "12.5% of 100 is 12 (12.5 rounds to the even 12)"],
    [300n, 1250, 38n, "12.5% of 300 is 38 (37.5 rounds to the even 38)"],
    [500n, 1250, 62n, "12.5% of 500 is 62 (62.5 rounds down to even)"],
    [700n, 1250, 88n, "12.5% of 700 is 88 (87.5 rounds up to even)"],
    [10_000n, 1000, 1_000n, "10% of 10,000 is exact"],
    [999n, 3333, 333n, "33.33% of 999 is 332.9667, rounds to 333"],
    [1n, 5000, 0n, "50% of 1 is 0.5, rounds to the even 0"],
    [3n, 5000, 2n, "50% of 3 is 1.5, rounds to the even 2"],
    [12_345n, 10_000, 12_345n, "100% is the whole amount"],
    [12_345n, 0, 0n, "0% is nothing"],
    [0n, 2000, 0n, "any percentage of nothing is nothing"],
    [-300n, 1250, -38n, "rounding is symmetric for negative amounts"],
    [10n ** 15n, 9999, 999_900_000_000_000n, "large amounts stay exact"],
  ])("percentOf(%s, %s) = %s: %s", (amount, bps, expected) => {
    expect(percentOf(amount, bps)).toBe(expected);
  });

  it("refuses a fractional percentage rather than guess", () => {
    expect(() => percentOf(100n, 12.5)).toThrow(RangeError);
  });

  it("agrees with an exact rational reference for every amount and percentage", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }), fc.integer({ min: 0, max: 10_000 }), (amount, bps) => {
        const got = percentOf(amount, bps);
        expect(typeof got).toBe("bigint");
        expect(got).toBe(referenceHalfEven(amount * BigInt(bps), 10_000n));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("divideHalfEven", () => {
  it.each([
    [5n, 2n, 2n],
    [7n, 2n, 4n],
    [-5n, 2n, -2n],
    [-7n, 2n, -4n],
    [10n, 4n, 2n],
    [11n, 4n, 3n],
    [9n, 4n, 2n],
  ])("%s / %s rounds half-to-even to %s", (n, d, expected) => {
    expect(divideHalfEven(n, d)).toBe(expected);
  });

  it("refuses a zero or negative denominator", () => {
    expect(() => divideHalfEven(1n, 0n)).toThrow(RangeError);
    expect(() => divideHalfEven(1n, -2n)).toThrow(RangeError);
  });
});

describe("allocate", () => {
  it.each([
    ["splits 1,000 over 3,333 / 3,333 / 3,334 as 333 / 333 / 334", 1_000n, [3_333n, 3_333n, 3_334n], [333n, 333n, 334n]],
    ["gives a leftover unit to the lower index on equal remainders", 1n, [1n, 1n], [1n, 0n]],
    ["gives leftovers to the largest remainders", 10n, [1n, 1n, 1n], [4n, 3n, 3n]],
    ["gives zero weights nothing", 5n, [0n, 10n, 0n], [0n, 5n, 0n]],
    ["splits exactly in proportion when it can", 600n, [100n, 200n, 300n], [100n, 200n, 300n]],
    ["gives each part its whole weight when the total is the sum", 6n, [1n, 2n, 3n], [1n, 2n, 3n]],
    ["returns nothing for no weights and a zero total", 0n, [], []],
    ["gives all zeros for a zero total", 0n, [0n, 0n], [0n, 0n]],
    ["allocates a negative total as the negation of the positive one", -10n, [1n, 1n, 1n], [-4n, -3n, -3n]],
  ])("%s", (_name, total, weights, expected) => {
    expect(allocate(total, weights)).toEqual(expected);
  });

  it("refuses to spread a non-zero total over weights that sum to zero", () => {
    expect(() => allocate(1n, [0n, 0n])).toThrow(RangeError);
  });

  it("refuses negative weights", () => {
    expect(() => allocate(1n, [2n, -1n])).toThrow(RangeError);
  });

  const weightsArb = fc.array(fc.bigInt({ min: 0n, max: 10n ** 9n }), { minLength: 1, maxLength: 12 }).filter((ws) => sum(ws) > 0n);

  it("always sums exactly to the total, within one unit of each exact share, and agrees with the reference", () => {
    fc.assert(
      fc.property(weightsArb, fc.bigInt({ min: 0n, max: 10n ** 12n }), (weights, total) => {
        const parts = allocate(total, weights);
        const s = sum(weights);
        expect(sum(parts)).toBe(total);
        parts.forEach((part, i) => {
          const w = weights[i] ?? 0n;
          expect(typeof part).toBe("bigint");
          // |part - total*w/s| < 1  <=>  |part*s - total*w| < s
          expect(abs(part * s - total * w) < s).toBe(true);
          if (w === 0n) expect(part).toBe(0n);
        });
        expect(parts).toEqual(referenceAllocate(total, weights));
      }),
      { numRuns: 1000 },
    );
  });

  it("never gives a part more than its weight when the total does not exceed the weights", () => {
    fc.assert(
      fc.property(weightsArb, fc.bigInt({ min: 0n, max: 10n ** 12n }), (weights, raw) => {
        const total = raw % (sum(weights) + 1n);
        allocate(total, weights).forEach((part, i) => expect(part <= (weights[i] ?? 0n)).toBe(true));
      }),
      { numRuns: 1000 },
    );
  });
});

describe("formatMoney", () => {
  it.each([
    [123_456n, "USD", "1,234.56 USD"],
    [4_000n, "USD", "40.00 USD"],
    [5n, "USD", "0.05 USD"],
    [0n, "EUR", "0.00 EUR"],
    [-5n, "USD", "-0.05 USD"],
    [-123_456n, "GBP", "-1,234.56 GBP"],
    [100_000_000n, "USD", "1,000,000.00 USD"],
    [500n, "JPY", "500 JPY"],
    [1_234_567n, "JPY", "1,234,567 JPY"],
    [1_234_567n, "KWD", "1,234.567 KWD"],
    [12_345n, "CLF", "1.2345 CLF"],
    [1_234n, "", "1,234 minor units"],
    [1_234n, "ABC", "1,234 minor units of ABC"],
  ])("formats %s %s as %s", (amount, currency, expected) => {
    expect(formatMoney(amount, currency)).toBe(expected);
  });
});

describe("min, max, clamp", () => {
  it.each([
    [1n, 2n, 1n, 2n],
    [5n, -5n, -5n, 5n],
    [3n, 3n, 3n, 3n],
  ])("min/max of %s and %s are %s and %s", (a, b, lo, hi) => {
    expect(min(a, b)).toBe(lo);
    expect(max(a, b)).toBe(hi);
  });

  it.each([
    [-1n, 0n, 10n, 0n],
    [5n, 0n, 10n, 5n],
    [11n, 0n, 10n, 10n],
  ])("clamp(%s, %s, %s) is %s", (amount, low, high, expected) => {
    expect(clamp(amount, low, high)).toBe(expected);
  });
});
