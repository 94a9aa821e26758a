import { isKnownCurrency, minorUnits } from "./currency.js";

// The one money module. Amounts are integer minor units as bigint; no amount ever passes through a
// Number, so nothing here can lose a cent to binary floating point. Percentages are integer basis
// points (2050 = 20.50%), which keeps percentage maths an exact rational computation.

const BPS_PER_WHOLE = 10_000n;

/** `numerator / denominator` rounded half-to-even; the denominator must be positive. */
export function divideHalfEven(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new RangeError(`denominator must be positive (got ${denominator})`);
  // Work on the magnitude so the rounding is symmetric around zero, then put the sign back.
  const negative = numerator < 0n;
  const n = negative ? -numerator : numerator;
  const quotient = n / denominator;
  const twiceRemainder = (n % denominator) * 2n;
  let rounded = quotient;
  if (twiceRemainder > denominator || (twiceRemainder === denominator && quotient % 2n === 1n)) rounded += 1n;
  return negative ? -rounded : rounded;
}

/** `percentBps` basis points of `amount`, rounded half-to-even to the minor unit (12.5% of 300 is 38). */
export function percentOf(amount: bigint, percentBps: number): bigint {
  if (!Number.isSafeInteger(percentBps)) throw new RangeError(`percentBps must be an integer (got ${percentBps})`);
  return divideHalfEven(amount * BigInt(percentBps), BPS_PER_WHOLE);
}

/**
 * Splits `total` over `weights` by largest remainder, so the parts add up to `total` exactly.
 * Each part is the floor of its exact share; the minor units left over go one each to the largest
 * fractional remainders, ties to the lower index. Zero weights get zero, and when
 * total ≤ sum(weights) no part exceeds its weight (a line is never discounted below zero).
 */
export function allocate(total: bigint, weights: readonly bigint[]): bigint[] {
  if (total < 0n) return allocate(-total, weights).map((part) => -part);
  let sum = 0n;
  for (const w of weights) {
    if (w < 0n) throw new RangeError(`weights must not be negative (got ${w})`);
    sum += w;
  }
  if (sum === 0n) {
    if (total === 0n) return weights.map(() => 0n);
    throw new RangeError(`cannot allocate ${total} over weights that sum to zero`);
  }
  const parts = weights.map((w) => (total * w) / sum);
  const remainders = weights.map((w) => (total * w) % sum);
  let leftover = total - parts.reduce((a, b) => a + b, 0n);
  // Indexes by remainder desc, index asc. Only non-zero remainders can be picked (leftover is
  // less than their count), so a zero weight never receives a unit.
  const order = weights.map((_, i) => i).sort((a, b) => compareBigint(remainders[b] ?? 0n, remainders[a] ?? 0n) || a - b);
  for (const i of order) {
    if (leftover === 0n) break;
    parts[i] = (parts[i] ?? 0n) + 1n;
    leftover -= 1n;
  }
  return parts;
}

/** -1, 0 or 1 as `a` is below, equal to or above `b`; for sort comparators. */
export function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The smaller amount. */
export function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

/** The larger amount. */
export function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** `amount` limited to [low, high]. */
export function clamp(amount: bigint, low: bigint, high: bigint): bigint {
  return min(max(amount, low), high);
}

/** The sum of the amounts. */
export function sum(amounts: readonly bigint[]): bigint {
  let total = 0n;
  for (const a of amounts) total += a;
  return total;
}

/**
 * An amount for people to read: "1,234.56 USD", "500 JPY", "-0.05 EUR". A code the currency list
 * does not know (or "") has no known exponent, so the raw minor units are shown rather than guessed.
 */
export function formatMoney(amount: bigint, currency: string): string {
  const negative = amount < 0n;
  if (!isKnownCurrency(currency)) {
    const suffix = currency === "" ? "" : ` of ${currency}`;
    return `${negative ? "-" : ""}${group((negative ? -amount : amount).toString())} minor units${suffix}`;
  }
  const digits = minorUnits(currency);
  const text = (negative ? -amount : amount).toString().padStart(digits + 1, "0");
  const whole = group(text.slice(0, text.length - digits));
  const fraction = digits > 0 ? `.${text.slice(text.length - digits)}` : "";
  return `${negative ? "-" : ""}${whole}${fraction} ${currency}`;
}

/** Inserts thousands separators into a string of digits. */
function group(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
