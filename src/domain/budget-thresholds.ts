// The budget thresholds promotion.budget_threshold announces (DESIGN §9), as percent of max_budget.

export const BUDGET_THRESHOLDS = [50, 80, 100] as const;

/** The thresholds a grant that moved the budget used from `before` to `after` crossed (each is crossed by exactly one grant while max_budget stands). */
export function thresholdsCrossed(before: bigint, after: bigint, maxBudget: bigint): number[] {
  if (maxBudget <= 0n) return [];
  return BUDGET_THRESHOLDS.filter((t) => before * 100n < BigInt(t) * maxBudget && after * 100n >= BigInt(t) * maxBudget);
}
