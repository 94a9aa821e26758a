import { pino, type Logger } from "pino";

export type { Logger };

/** The process's log stream: buffered for speed; drainLogs() empties it before the process exits. */
const stdout = pino.destination({ dest: 1, sync: false, minLength: 0 });

/**
 * Resolves once every log line written so far is out, in order, and the stream is ended; call it
 * right before process.exit(). (flushSync — what runs at exit otherwise — can overtake a write
 * already in flight, so the last lines could arrive swapped.)
 */
export function drainLogs(): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2_000);
    stdout.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    stdout.end();
  });
}

/**
 * Structured JSON logs on stdout. API keys must never reach a log line: the redaction list is a
 * second line of defence behind never logging headers at all.
 */
export function createLogger(level: string, destination: pino.DestinationStream = stdout): Logger {
  return pino(
    {
      level,
      base: { service: "promotions" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ["authorization", "apiKey", "api_key", "key", "headers.authorization", 'headers["x-api-key"]'],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
