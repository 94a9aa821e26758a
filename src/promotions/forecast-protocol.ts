// The messages between the forecast pool (forecast-pool.ts) and its worker threads
// (forecast-worker.ts). Everything here is structured-cloned: plain objects, bigints and Dates.
import type { FailureKind, Violation } from "../domain/errors.js";
import type { ImpactForecastResult } from "../domain/impact.js";
import type { ForecastJob } from "./dry-runs.js";

export interface ForecastWorkerData {
  databaseUrl: string;
  /** 4 bytes shared with the pool: an Int32 the pool sets to 1 to stop the running job. */
  cancelFlag: SharedArrayBuffer;
}

export type ToWorker = { type: "run"; id: number; job: ForecastJob } | { type: "close" };

/** A failure as it crosses the thread boundary (classes do not survive structured cloning). */
export type WorkerFailure =
  | { kind: "domain"; failureKind: FailureKind; details: Violation[] }
  | { kind: "unavailable"; message: string }
  | { kind: "internal"; message: string };

export type FromWorker =
  /** Started: its modules are loaded and its Postgres pool opened (or the attempt failed). */
  | { type: "ready" }
  | { type: "done"; id: number; result: ImpactForecastResult }
  | { type: "cancelled"; id: number }
  | { type: "failed"; id: number; failure: WorkerFailure };
