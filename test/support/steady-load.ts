// Load that runs until stopped, at a fixed number of calls in flight, for soaks and fault scenarios:
// each call is retried on a retryable failure (the operation picks its replica and keeps its
// idempotency key per attempt), every call is timed, and the recovery after a fault is read from
// when calls stopped failing.
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";

/** One unit of work: `run(attempt)` is called again with attempt + 1 after a retryable failure. */
export interface Operation {
  name: string;
  run(attempt: number): Promise<void>;
}

export interface OperationStats {
  /** Calls answered with success. */
  ok: number;
  /** Refusals (RESOURCE_EXHAUSTED / FAILED_PRECONDITION with an ErrorDetail), by ErrorDetail.code. */
  refused: Record<string, number>;
  /** Attempts that failed with a retryable code and were tried again. */
  retried: number;
  /** Anything else: must stay empty. */
  unexpected: string[];
  /** Sum of the answered calls' latencies (last attempt), ms. */
  totalMs: number;
}

/** One attempt: when it started and ended (performance.now() ms) and whether it was answered. */
export interface Attempt {
  start: number;
  end: number;
  answered: boolean;
}

export interface SteadyLoad {
  /** Stops issuing new work; resolves once the work in flight (retries included) is done. */
  stop(): Promise<Record<string, OperationStats>>;
  stats(): Record<string, OperationStats>;
  /** Every attempt so far, in order of ending (only with `record: true`). */
  attempts(): readonly Attempt[];
}

export const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Aborted, Code.Canceled, Code.Unknown]);

export function startSteadyLoad(opts: { inFlight: number; next: (i: number) => Operation; maxRetries?: number; record?: boolean }): SteadyLoad {
  const maxRetries = opts.maxRetries ?? 600;
  const stats: Record<string, OperationStats> = {};
  const attempts: Attempt[] = [];
  let stopping = false;
  let i = 0;
  const of = (name: string): OperationStats => (stats[name] ??= { ok: 0, refused: {}, retried: 0, unexpected: [], totalMs: 0 });
  const note = (start: number, answered: boolean) => {
    if (opts.record) attempts.push({ start, end: performance.now(), answered });
  };

  const worker = async (): Promise<void> => {
    while (!stopping) {
      const op = opts.next(i++);
      const s = of(op.name);
      for (let attempt = 0; ; attempt++) {
        const start = performance.now();
        try {
          await op.run(attempt);
          note(start, true);
          s.ok++;
          s.totalMs += performance.now() - start;
          break;
        } catch (error) {
          const e = ConnectError.from(error);
          const detail = e.findDetails(ErrorDetailSchema)[0];
          if ((e.code === Code.ResourceExhausted || e.code === Code.FailedPrecondition) && detail) {
            note(start, true);
            s.refused[detail.code] = (s.refused[detail.code] ?? 0) + 1;
            s.totalMs += performance.now() - start;
            break;
          }
          note(start, false);
          if (RETRYABLE.has(e.code) && attempt < maxRetries) {
            s.retried++;
            await new Promise((r) => setTimeout(r, 20 + Math.min(attempt, 10) * 20));
            continue;
          }
          s.unexpected.push(`${op.name} ${Code[e.code]}: ${e.rawMessage}`);
          break;
        }
      }
    }
  };
  const workers = Promise.all(Array.from({ length: opts.inFlight }, worker));
  return {
    async stop() {
      stopping = true;
      await workers;
      return stats;
    },
    stats: () => stats,
    attempts: () => attempts,
  };
}

export interface Recovery {
  /** ms from the fault until the first call answered after the last failed attempt. */
  recoveryMs: number;
  /** Attempts that failed (retryable) after the fault. */
  failedAttempts: number;
  /** Longest stretch in that time with no call answered at all (what a client retrying across replicas waits). */
  longestGapMs: number;
}

/** Recovery after a fault at `faultAt`, counting attempts that ended in [faultAt, until). */
export function recoveryAfter(attempts: readonly Attempt[], faultAt: number, until = Infinity): Recovery {
  const window = attempts.filter((a) => a.end >= faultAt && a.end < until);
  const failed = window.filter((a) => !a.answered);
  const lastFail = failed.reduce((t, a) => Math.max(t, a.end), faultAt);
  const firstOk = window.find((a) => a.answered && (failed.length === 0 || a.start >= lastFail));
  const recoveredAt = firstOk ? firstOk.end : Infinity;
  let longestGapMs = 0;
  let previous = faultAt;
  for (const a of window) {
    if (!a.answered || a.end > recoveredAt) continue;
    longestGapMs = Math.max(longestGapMs, a.end - previous);
    previous = a.end;
  }
  return { recoveryMs: recoveredAt - faultAt, failedAttempts: failed.length, longestGapMs: Math.round(longestGapMs) };
}

/** Waits until calls have answered without a failure for `quietMs` (and at least 20 were answered) after `faultAt`. */
export async function awaitRecovery(load: SteadyLoad, faultAt: number, quietMs = 1_000, timeoutMs = 60_000): Promise<Recovery> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const attempts = load.attempts();
    const after = attempts.filter((a) => a.end >= faultAt);
    const lastFail = after.reduce((t, a) => (a.answered ? t : Math.max(t, a.end)), faultAt);
    const answeredSince = after.filter((a) => a.answered && a.start > lastFail).length;
    if (answeredSince >= 20 && performance.now() - lastFail >= quietMs) return recoveryAfter(attempts, faultAt);
    if (performance.now() > deadline) throw new Error(`no recovery within ${timeoutMs} ms of the fault (${answeredSince} answered since the last failure)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Per operation: calls per second and mean latency, for printing. */
export function throughput(stats: Record<string, OperationStats>, seconds: number): Record<string, { perSecond: number; meanMs: number; ok: number; refused: number; retried: number }> {
  const out: Record<string, { perSecond: number; meanMs: number; ok: number; refused: number; retried: number }> = {};
  for (const [name, s] of Object.entries(stats)) {
    const refused = Object.values(s.refused).reduce((a, b) => a + b, 0);
    const answered = s.ok + refused;
    out[name] = { perSecond: Math.round(answered / seconds), meanMs: answered ? Math.round((s.totalMs / answered) * 10) / 10 : 0, ok: s.ok, refused, retried: s.retried };
  }
  return out;
}
