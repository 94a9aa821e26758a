// GET /metrics on the service's own port: the Prometheus text of the registry (or, in a cluster
// worker, of every worker). Needs no API key, like health.
import type { HttpRequest, HttpResponse, HttpRoute } from "../server/http.js";

/** The `extraHttpRoutes` handler: answers GET /metrics from the registry, leaves everything else. */
export function metricsRoute(contentType: string, collect: () => Promise<string>): HttpRoute {
  return (req: HttpRequest, res: HttpResponse) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") return false;
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
