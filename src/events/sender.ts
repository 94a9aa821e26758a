import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import type { Destination } from "./addresses.js";

// One HTTP attempt of a webhook delivery: POST to the address that passed the destination check
// (the socket's DNS lookup is pinned to it, while Host and TLS SNI/certificate checks keep the
// URL's host), no redirects followed, ATTEMPT_TIMEOUT_MS for the whole exchange, the answer read
// (up to a bound) and dropped.

export const ATTEMPT_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 64 * 1024;
const USER_AGENT = "promotions-webhooks/1";

/** How an attempt ended, as the delivery log and the metrics name it. */
export type AttemptOutcome = "succeeded" | "http_error" | "timeout" | "network_error" | "dns_failed" | "address_refused";

export interface AttemptResult {
  outcome: AttemptOutcome;
  /** The receiver's status code; null when none came. */
  statusCode: number | null;
  latencyMs: number;
  /** Why it failed; null when it succeeded. Never the body, headers or a secret. */
  error: string | null;
}

/** A DNS lookup that always answers the pinned address, in whichever form the socket asks for. */
function pinned(address: string, family: 4 | 6): LookupFunction {
  return (_hostname, options, callback) => {
    if (typeof options === "object" && options !== null && "all" in options && options.all === true) {
      (callback as (err: null, addresses: { address: string; family: number }[]) => void)(null, [{ address, family }]);
    } else {
      callback(null, address, family);
    }
  };
}

function networkError(error: unknown): string {
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "";
  const known: Record<string, string> = {
    ECONNREFUSED: "connection_refused",
    ECONNRESET: "connection_reset",
    EHOSTUNREACH: "host_unreachable",
    ENETUNREACH: "network_unreachable",
    EPIPE: "connection_reset",
  };
  if (known[code]) return known[code];
  if (code.startsWith("ERR_TLS") || code.includes("CERT") || code.startsWith("SSL")) return `tls_error: ${code}`;
  return code ? `network_error: ${code}` : "network_error";
}

/** Sends `body` to `url` via the checked `destination`; never throws. */
export function sendAttempt(url: URL, destination: Destination, headers: Record<string, string>, body: string, timeoutMs = ATTEMPT_TIMEOUT_MS): Promise<AttemptResult> {
  if (!destination.ok) return Promise.resolve({ outcome: destination.reason, statusCode: null, latencyMs: 0, error: `${destination.reason}: ${destination.message}`.slice(0, 300) });
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const send = url.protocol === "https:" ? https.request : http.request;
    const req = send(
      url,
      {
        method: "POST",
        agent: false,
        lookup: pinned(destination.address, destination.family),
        headers: { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body), "user-agent": USER_AGENT },
      },
      (res) => {
        let received = 0;
        res.on("data", (chunk: Buffer) => {
          received += chunk.length;
          if (received > MAX_RESPONSE_BYTES) res.destroy();
        });
        const done = () => {
          const status = res.statusCode ?? 0;
          const ok = status >= 200 && status < 300;
          finish({ outcome: ok ? "succeeded" : "http_error", statusCode: status, latencyMs: elapsed(), error: ok ? null : `http_status: ${status}` });
        };
        res.on("end", done);
        res.on("close", done);
        res.on("error", done);
      },
    );
    const timer = setTimeout(() => {
      finish({ outcome: "timeout", statusCode: null, latencyMs: elapsed(), error: `timeout: no complete answer within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on("error", (error) => finish({ outcome: "network_error", statusCode: null, latencyMs: elapsed(), error: networkError(error) }));
    req.end(body);
  });
}
