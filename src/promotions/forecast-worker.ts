// The worker thread of the forecast pool (forecast-pool.ts): it has its own Postgres pool and runs
// forecastSubscriptions, the same code the main thread would, so a 100,000-subscription forecast
// spends neither the server's event loop nor its heap. One job at a time; the pool never sends
// another before this one answered.
import { parentPort, workerData } from "node:worker_threads";
import { DomainError } from "../domain/errors.js";
import { openOrm, type MikroORM } from "../store/orm.js";
import { isDatabaseUnreachable } from "../store/unreachable.js";
import { forecastSubscriptions } from "./dry-runs.js";
import type { ForecastWorkerData, FromWorker, ToWorker, WorkerFailure } from "./forecast-protocol.js";

const port = parentPort;
if (!port) throw new Error("forecast-worker.ts runs only as a worker thread (src/promotions/forecast-pool.ts starts it)");
const data = workerData as ForecastWorkerData;
// Set to 1 by the pool when the caller's deadline passes or it cancels; read before every subscription.
const flag = new Int32Array(data.cancelFlag);
const CANCELLED = new Error("forecast cancelled");
const cancel = {
  throwIfAborted(): void {
    if (Atomics.load(flag, 0) !== 0) throw CANCELLED;
  },
};
// Two connections: the subscriptions query and its customers query never overlap, one is spare.
// Opened by the first job; when Postgres was unreachable then, the next job tries again.
let opened: Promise<MikroORM> | null = null;
const orm = (): Promise<MikroORM> =>
  (opened ??= openOrm({ databaseUrl: data.databaseUrl, poolMax: 2 }).catch((error: unknown) => {
    opened = null;
    throw error;
  }));

// Opened at start, so the first forecast does not wait for it; the pool learns when it may expect
// a cancelled job to stop promptly.
void orm()
  .catch(() => undefined)
  .then(() => port.postMessage({ type: "ready" } satisfies FromWorker));

/**
 * Rows per read: a read (query and mapping) is the one stretch in which the cancel flag is not
 * looked at, so it is kept short enough to end well inside the pool's grace period.
 */
const BATCH = 250;

function failure(error: unknown): WorkerFailure {
  if (error instanceof DomainError) return { kind: "domain", failureKind: error.kind, details: [...error.details] };
  if (isDatabaseUnreachable(error)) return { kind: "unavailable", message: "the database is unreachable" };
  return { kind: "internal", message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
}

port.on("message", (message: ToWorker) => {
  if (message.type === "close") {
    port.close();
    void opened?.then((o) => o.close(true)).catch(() => undefined);
    return;
  }
  void (async () => {
    let reply: FromWorker;
    try {
      const db = await orm();
      cancel.throwIfAborted(); // cancelled while this worker was starting: read nothing
      const result = await forecastSubscriptions(db.em.fork(), message.job, cancel, BATCH);
      reply = { type: "done", id: message.id, result };
    } catch (error) {
      reply = error === CANCELLED ? { type: "cancelled", id: message.id } : { type: "failed", id: message.id, failure: failure(error) };
    }
    port.postMessage(reply);
  })();
});
