import { ConnectionException } from "@mikro-orm/core";

// Postgres being unreachable (down, restarting, dropping connections) is an outage to retry
// through, not a bug: callers answer UNAVAILABLE instead of INTERNAL. The pool reconnects by itself.

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);
const DROPPED = /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|connect ECONNREFUSED|read ECONNRESET/i;

/** True when `error`, or an error in its cause chain, says the database could not be reached or dropped the connection. */
export function isDatabaseUnreachable(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; e instanceof Error && depth < 5; depth++, e = e.cause) {
    if (e instanceof ConnectionException) return true;
    const { code, sqlState } = e as { code?: unknown; sqlState?: unknown };
    // SQLSTATE class 08 (connection exception); 57P01-57P03: admin shutdown, crash shutdown, cannot connect now.
    for (const c of [code, sqlState]) if (typeof c === "string" && (NETWORK_CODES.has(c) || /^08|^57P0[123]$/.test(c))) return true;
    if (DROPPED.test(e.message)) return true;
  }
  return false;
}
