import type { CounterReturn } from "../store/ledger.js";
import type { CheckoutCounters, RedemptionLedger } from "./ports.js";

// A release or a reversal is committed in the ledger first, with what it gives back to the Redis
// counters (counter_returns, under the counter epoch the transaction saw); then the counters
// move, exactly once (apply_return.lua). Giving back before the commit could let a concurrent
// checkout spend what a failed commit would have to take back; after it, a crash or a Redis
// outage only leaves the move pending, and the sweeper applies it (src/counters/README.md).

/** Applies committed counter returns and marks those Redis settled; the rest stay pending for the sweeper. */
export async function settleReturns(
  counters: Pick<CheckoutCounters, "applyReturn">,
  ledger: Pick<RedemptionLedger, "markReturnsApplied">,
  returns: readonly CounterReturn[],
  now: Date,
): Promise<number> {
  const settled: string[] = [];
  for (const r of returns) {
    try {
      // "other_epoch": a newer rebuild already left it out; settled all the same. "not_yet": the
      // counters of its epoch are still to be installed; it stays pending for the sweeper.
      if ((await counters.applyReturn(r)) !== "not_yet") settled.push(r.id);
    } catch {
      // Redis unreachable: the sweeper applies it once Redis answers.
    }
  }
  await ledger.markReturnsApplied(settled, now).catch(() => undefined);
  return settled.length;
}
