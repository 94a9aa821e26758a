// GET /metrics on the service's own port: the Prometheus text of the registry (or, in a cluster
// worker, of every worker). With METRICS_TOKEN set it needs `authorization: Bearer <token>`;
// without, it is open like health (keep the port off the internet then).
import { createHash, timingSafeEqual } from "node:crypto";
import type { HttpRequest, HttpResponse, HttpRoute } from "../server/http.js";

/** The `extraHttpRoutes` handler: answers GET /metrics from the registry, leaves everything else. */
export function metricsRoute(contentType: string, collect: () => Promise<string>, token: string | null = null): HttpRoute {
  const expected = token === null ? null : digest(token);
  return (req: HttpRequest, res: HttpResponse) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") return false;
    if (expected !== null && !authorized(req.headers.authorization, expected)) {
      res.statusCode = 401;
      res.setHeader("www-authenticate", 'Bearer realm="metrics"');
      res.setHeader("content-type", "text/plain");
      res.end("GET /metrics needs authorization: Bearer <METRICS_TOKEN>\n");
      return true;
    }
    collect().then(
      (text) => {
        res.statusCode = 200;
        res.setHeader("content-type", contentType);
        res.end(text);
      },
      (error: unknown) => {
        res.statusCode = 500;
        res.setHeader("content-type", "text/plain");
        res.end(`metrics collection failed: ${error instanceof Error ? error.message : String(error)}\n`);
      },
    );
    return true;
  };
}

/** Compares digests, so neither the token's length nor its prefix can be learnt from timing. */
function authorized(header: string | undefined, expected: Buffer): boolean {
  const presented = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
  return presented !== undefined && timingSafeEqual(digest(presented), expected);
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
