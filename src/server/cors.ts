// CORS for browser callers: allowed origins get the Connect and gRPC-Web headers they need (and
// the error headers exposed); preflights from any other origin are refused with 403.
import { cors } from "@connectrpc/connect";
import type { HttpRequest, HttpResponse } from "./http.js";

/** Returns the Access-Control-Allow-Origin value for an origin, or undefined when not allowed. */
export function corsPolicy(origins: readonly string[]): (origin: string) => string | undefined {
  const exact = new Set(origins);
  const any = exact.has("*");
  return (origin) => (exact.has(origin) ? origin : any ? "*" : undefined);
}

const ALLOW_METHODS = [...cors.allowedMethods].join(", ");
const ALLOW_HEADERS = [...cors.allowedHeaders, "authorization", "x-api-key", "x-request-id"].join(", ");
const EXPOSE_HEADERS = [...cors.exposedHeaders, "x-request-id", "retry-after-ms"].join(", ");

/** Sets CORS headers; returns true when it answered the request itself (a preflight). */
export function applyCors(req: HttpRequest, res: HttpResponse, allowOrigin: (origin: string) => string | undefined): boolean {
  const origin = req.headers.origin;
  if (typeof origin !== "string") return false; // not a browser's cross-origin request
  const allowed = allowOrigin(origin);
  const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
  res.setHeader("vary", "Origin");
  if (preflight) {
    if (allowed === undefined) {
      res.statusCode = 403;
      res.setHeader("content-type", "text/plain");
      res.end("origin not allowed\n");
      return true;
    }
    res.statusCode = 204;
    res.setHeader("access-control-allow-origin", allowed);
    res.setHeader("access-control-allow-methods", ALLOW_METHODS);
    res.setHeader("access-control-allow-headers", ALLOW_HEADERS);
    res.setHeader("access-control-max-age", "7200");
    res.end();
    return true;
  }
  if (allowed !== undefined) {
    res.setHeader("access-control-allow-origin", allowed);
    res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
  }
  return false;
}
