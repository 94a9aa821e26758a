// A SIGTERM or SIGINT that arrives while `serve` is still starting (loading, migrating, connecting).
// Without a listener Node would die of it (exit 143 and no "stopped" line); this one remembers it,
// and serve stops the moment the service is up, or the start-up failure ends the process first.

export interface EarlyStop {
  /** The first signal caught, or null. */
  readonly signal: NodeJS.Signals | null;
  /** Stops listening; the caller installs its own handlers. */
  dispose(): void;
}

export function catchEarlyStop(): EarlyStop {
  let caught: NodeJS.Signals | null = null;
  const record = (signal: NodeJS.Signals): void => {
    caught ??= signal;
  };
  process.on("SIGTERM", record);
  process.on("SIGINT", record);
  return {
    get signal() {
      return caught;
    },
    dispose() {
      process.off("SIGTERM", record);
      process.off("SIGINT", record);
    },
  };
}
