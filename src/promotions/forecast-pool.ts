// Impact forecasts run on worker threads, never on the server's event loop: pricing 100,000
// subscriptions over 12 periods is seconds of CPU, and health checks, checkout calls and every other
// call on this process must not wait behind it. A small fixed pool (FORECAST_WORKERS) takes one
// forecast per worker; up to FORECAST_QUEUE_LIMIT more wait in order, and one beyond that is refused
// RESOURCE_EXHAUSTED (forecast_queue_full) at once rather than queued without bound.
//
// A caller's deadline or cancellation stops its forecast: a waiting one leaves the queue, a running
// one is told through a flag in shared memory that the worker reads before every subscription (so
// it stops within a subscription, and reads no further batch from Postgres). A worker that has not
// confirmed within cancelGraceMs (stuck in a query, starved of CPU) is terminated — which drops its
// connections, ending its reads — and a replacement is started at once.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { DomainError } from "../domain/errors.js";
import type { ImpactForecastResult } from "../domain/impact.js";
import type { Logger } from "../observability/logger.js";
import type { ForecastJob } from "./dry-runs.js";
import type { ForecastWorkerData, FromWorker, ToWorker, WorkerFailure } from "./forecast-protocol.js";

export interface ForecastPoolOptions {
  databaseUrl: string;
  /** Worker threads, each running one forecast at a time (FORECAST_WORKERS). */
  workers: number;
  /** Forecasts that may wait for a worker; one more is refused (FORECAST_QUEUE_LIMIT; 0 = none wait). */
  queueLimit: number;
  /** How long a running forecast may take to notice it was cancelled before its worker is terminated. */
  cancelGraceMs?: number;
  logger?: Logger;
}

/** What a pool is doing right now (for tests and logs). */
export interface ForecastPoolState {
  /** Forecasts on a worker, including cancelled ones whose worker has not stopped yet. */
  running: number;
  queued: number;
  /** Worker threads alive (started on first use). */
  threads: number;
}

interface Caller {
  job: ForecastJob;
  signal: AbortSignal;
  resolve(result: ImpactForecastResult): void;
  reject(error: unknown): void;
  onAbort(): void;
}

interface Slot {
  worker: Worker | null;
  /** The worker has loaded and opened its pool, so a cancelled job stops within cancelGraceMs. */
  ready: boolean;
  flag: Int32Array;
  data: ForecastWorkerData;
  /** The job on this worker; `caller` is null once the caller was answered (it cancelled). */
  current: { id: number; caller: Caller | null; grace: NodeJS.Timeout | null } | null;
}

const WORKER_URL = new URL("./forecast-worker.ts", import.meta.url);

/**
 * The worker loads TypeScript as this process does. The server and the bench run under
 * `node --import tsx`, and a worker inherits the process's options by default (per-process ones
 * such as --max-old-space-size included, which an explicit execArgv would refuse). A process that
 * loads TypeScript another way (vitest) gets the tsx loader added; if its options cannot be given
 * to a worker, the loader alone.
 */
function startWorker(workerData: ForecastWorkerData): Worker {
  const options = { workerData, name: "forecast" };
  if (process.execArgv.some((arg) => arg === "tsx" || /(^|[/\\=])tsx([/\\]|$)/.test(arg))) return new Worker(WORKER_URL, options);
  const loader = ["--import", pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href];
  try {
    return new Worker(WORKER_URL, { ...options, execArgv: [...process.execArgv, ...loader] });
  } catch (error) {
    if ((error as { code?: unknown }).code !== "ERR_WORKER_INVALID_EXEC_ARGV") throw error;
    return new Worker(WORKER_URL, { ...options, execArgv: loader });
  }
}

function fromFailure(f: WorkerFailure): Error {
  switch (f.kind) {
    case "domain":
      return new DomainError(f.failureKind, f.details);
    case "unavailable":
      return DomainError.of("unavailable", "database_unavailable", `${f.message}; retry`);
    case "internal":
      return new Error(`forecast worker failed: ${f.message}`);
  }
}

export class ForecastPool {
  private readonly slots: Slot[];
  private readonly queue: Caller[] = [];
  private readonly cancelGraceMs: number;
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: ForecastPoolOptions) {
    this.cancelGraceMs = opts.cancelGraceMs ?? 80;
    this.slots = Array.from({ length: Math.max(1, opts.workers) }, () => {
      const cancelFlag = new SharedArrayBuffer(4);
      return { worker: null, ready: false, flag: new Int32Array(cancelFlag), data: { databaseUrl: opts.databaseUrl, cancelFlag }, current: null };
    });
  }

  /** Runs the forecast on a worker; rejects with `signal.reason` when the caller's deadline passes or it cancels. */
  run(job: ForecastJob, signal: AbortSignal): Promise<ImpactForecastResult> {
    if (this.closed) return Promise.reject(DomainError.of("unavailable", "shutting_down", "the server is shutting down; try another replica"));
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<ImpactForecastResult>((resolve, reject) => {
      const caller: Caller = { job, signal, resolve, reject, onAbort: () => undefined };
      const free = this.slots.find((s) => s.current === null);
      if (free) return this.start(free, caller);
      if (this.queue.length >= this.opts.queueLimit) {
        const busy = this.slots.length;
        return reject(
          new DomainError(
            "resource_exhausted",
            [{ param: "", code: "forecast_queue_full", message: `${busy} forecast${busy === 1 ? " is" : "s are"} running and ${this.queue.length} waiting, the most this server takes; try again later` }],
            { retryAfterMs: 1_000 },
          ),
        );
      }
      caller.onAbort = () => {
        const at = this.queue.indexOf(caller);
        if (at >= 0) this.queue.splice(at, 1);
        reject(signal.reason);
      };
      signal.addEventListener("abort", caller.onAbort, { once: true });
      this.queue.push(caller);
    });
  }

  state(): ForecastPoolState {
    return {
      running: this.slots.filter((s) => s.current !== null).length,
      queued: this.queue.length,
      threads: this.slots.filter((s) => s.worker !== null).length,
    };
  }

  /** Refuses new forecasts, fails waiting ones UNAVAILABLE, stops running ones and ends every worker. */
  async close(): Promise<void> {
    this.closed = true;
    const shuttingDown = DomainError.of("unavailable", "shutting_down", "the server is shutting down; try another replica");
    for (const caller of this.queue.splice(0)) {
      caller.signal.removeEventListener("abort", caller.onAbort);
      caller.reject(shuttingDown);
    }
    await Promise.all(
      this.slots.map(async (slot) => {
        const worker = slot.worker;
        if (!worker) return;
        const caller = slot.current?.caller;
        if (caller) {
          caller.signal.removeEventListener("abort", caller.onAbort);
          caller.reject(shuttingDown);
        }
        if (slot.current?.grace) clearTimeout(slot.current.grace);
        slot.current = null;
        slot.worker = null;
        // An idle worker closes its Postgres pool and exits; a busy or stuck one is terminated.
        const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
        if (caller) {
          await worker.terminate();
          return;
        }
        worker.postMessage({ type: "close" } satisfies ToWorker);
        const timer = setTimeout(() => void worker.terminate(), 2_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  private start(slot: Slot, caller: Caller): void {
    const worker = slot.worker ?? this.spawn(slot);
    const id = this.nextId++;
    Atomics.store(slot.flag, 0, 0);
    slot.current = { id, caller, grace: null };
    caller.onAbort = () => this.cancel(slot, id);
    caller.signal.addEventListener("abort", caller.onAbort, { once: true });
    worker.ref();
    worker.postMessage({ type: "run", id, job: caller.job } satisfies ToWorker);
  }

  private spawn(slot: Slot): Worker {
    const worker = startWorker(slot.data);
    slot.worker = worker;
    slot.ready = false;
    worker.on("message", (message: FromWorker) => {
      if (slot.worker !== worker) return;
      if (message.type === "ready") return this.becameReady(slot);
      this.answered(slot, message);
    });
    const gone = (error: unknown) => {
      if (slot.worker !== worker) return; // terminated on purpose, already replaced
      slot.worker = null;
      if (error !== undefined) this.opts.logger?.error({ err: error }, "forecast worker failed");
      this.finish(slot, (caller) => caller.reject(new Error("forecast worker exited", { cause: error })));
    };
    worker.on("error", (error) => gone(error));
    worker.on("exit", (code) => gone(code === 0 ? undefined : new Error(`forecast worker exited with code ${code}`)));
    return worker;
  }

  /** The caller left (deadline or cancellation): answer it now, stop the worker's job, and free the slot once it stopped. */
  private cancel(slot: Slot, id: number): void {
    const current = slot.current;
    if (current?.id !== id || !current.caller) return;
    const caller = current.caller;
    current.caller = null;
    caller.reject(caller.signal.reason);
    Atomics.store(slot.flag, 0, 1);
    // A worker still starting sees the flag before its first read; terminating it would only
    // make the next forecast wait for another start.
    if (slot.ready) this.startGrace(slot, id);
  }

  private becameReady(slot: Slot): void {
    slot.ready = true;
    const current = slot.current;
    if (current && current.caller === null && current.grace === null) this.startGrace(slot, current.id);
  }

  /** Terminates the worker if the cancelled job `id` has not stopped within cancelGraceMs. */
  private startGrace(slot: Slot, id: number): void {
    const current = slot.current;
    if (!current) return;
    current.grace = setTimeout(() => {
      if (slot.current?.id !== id) return;
      const worker = slot.worker;
      slot.worker = null;
      this.opts.logger?.warn({ graceMs: this.cancelGraceMs }, "cancelled forecast did not stop in time; its worker was terminated");
      void worker?.terminate();
      this.finish(slot, () => undefined);
      // Warm a replacement now rather than make the next forecast wait for one to start.
      if (!this.closed && slot.worker === null) this.spawn(slot).unref();
    }, this.cancelGraceMs);
  }

  private answered(slot: Slot, message: Exclude<FromWorker, { type: "ready" }>): void {
    if (slot.current?.id !== message.id) return;
    this.finish(slot, (caller) => {
      if (message.type === "done") caller.resolve(message.result);
      else if (message.type === "failed") caller.reject(fromFailure(message.failure));
      else caller.reject(caller.signal.reason);
    });
  }

  /** Frees the slot (answering its caller, if it still waits) and starts the next waiting forecast. */
  private finish(slot: Slot, answer: (caller: Caller) => void): void {
    const current = slot.current;
    slot.current = null;
    if (current?.grace) clearTimeout(current.grace);
    if (current?.caller) {
      current.caller.signal.removeEventListener("abort", current.caller.onAbort);
      answer(current.caller);
    }
    slot.worker?.unref(); // an idle worker does not keep the process alive
    const next = this.queue.shift();
    if (next && !this.closed) {
      next.signal.removeEventListener("abort", next.onAbort);
      this.start(slot, next);
    }
  }
}
