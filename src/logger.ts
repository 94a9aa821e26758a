import { pino, type Logger } from "pino";

export type { Logger };

/**
 * Structured JSON logs on stdout. API keys must never reach a log line: the redaction list is a
 * second line of defence behind never logging headers at all.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
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
