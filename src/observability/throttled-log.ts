import type { Logger } from "pino";

// A limit being hit is worth one log line, not one per refused connection or call: an attack
// would otherwise be amplified into the log. Each notice logs at most once per interval and says
// how many times it happened since the line before.

export type Notice = (fields?: Record<string, unknown>) => void;

/** A warning (or `level`) `msg` logged at most once per `everyMs`, with `occurrences` since the previous line. */
export function throttledNotice(logger: Logger, msg: string, opts: { everyMs?: number; level?: "warn" | "info" } = {}): Notice {
  const everyMs = opts.everyMs ?? 10_000;
  const level = opts.level ?? "warn";
  let last = -Infinity;
  let occurrences = 0;
  return (fields = {}) => {
    occurrences++;
    const now = performance.now();
    if (now - last < everyMs) return;
    logger[level]({ ...fields, occurrences }, msg);
    last = now;
    occurrences = 0;
  };
}
