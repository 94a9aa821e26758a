import cluster, { type Worker } from "node:cluster";
import { randomUUID } from "node:crypto";
import { AggregatorRegistry, type Registry } from "prom-client";

// With WORKERS > 1 a scrape reaches one worker, but must see the whole process group: the worker
// asks the primary over IPC, the primary collects every worker's registry (prom-client's
// AggregatorRegistry: counters and histograms summed, up-gauges by min) and answers. With one
// process, the app's own registry answers directly.

type Request = { kind: "metrics-request"; id: string };
type Response = { kind: "metrics-response"; id: string; text?: string; error?: string };

const TIMEOUT_MS = 5_000;

function isRequest(m: unknown): m is Request {
  return typeof m === "object" && m !== null && (m as { kind?: unknown }).kind === "metrics-request";
}
function isResponse(m: unknown): m is Response {
  return typeof m === "object" && m !== null && (m as { kind?: unknown }).kind === "metrics-response";
}

/** What GET /metrics serves: this process's registry, or in a cluster worker the whole cluster's. */
export function metricsSource(registry: Registry): () => Promise<string> {
  if (!cluster.isWorker) return () => registry.metrics();
  // Constructing one installs prom-client's worker-side listener that answers the primary.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const pending = new Map<string, (r: Response) => void>();
  process.on("message", (m: unknown) => {
    if (isResponse(m)) pending.get(m.id)?.(m);
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = randomUUID();
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error("the primary process did not answer the metrics request"));
      }, TIMEOUT_MS);
      pending.set(id, (r) => {
        clearTimeout(timer);
        pending.delete(id);
        if (r.text !== undefined) resolve(r.text);
        else reject(new Error(r.error ?? "cluster metrics failed"));
      });
      process.send?.({ kind: "metrics-request", id } satisfies Request);
    });
}

/** In the primary: answers workers' metrics requests with every worker's metrics combined. */
export function serveClusterMetrics(): (worker: Worker, message: unknown) => boolean {
  const aggregator = new AggregatorRegistry();
  return (worker, message) => {
    if (!isRequest(message)) return false;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ kind: "metrics-response", id: message.id, text } satisfies Response),
      (error: unknown) => worker.send({ kind: "metrics-response", id: message.id, error: error instanceof Error ? error.message : String(error) } satisfies Response),
    );
    return true;
  };
}
