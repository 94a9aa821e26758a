// WORKERS=N (N > 1): N server processes on one port through node:cluster. The primary serves no
// calls: main.ts has it do the once-only work (migrations, the first-run key) before calling
// runCluster, which forks the workers, announces the port once they all listen, replaces a worker
// that dies, and on SIGTERM/SIGINT stops them all gracefully. Each worker runs the same startApp
// as a single process and talks to the primary only through the messages below.
import cluster, { type Worker } from "node:cluster";
import net from "node:net";
import type { Config } from "./config.js";
import { drainLogs, type Logger } from "./observability/logger.js";
import { serveClusterMetrics } from "./observability/cluster-metrics.js";

/** What a worker tells the primary over the IPC channel. */
type WorkerMessage = { kind: "listening"; url: string } | { kind: "failed"; message: string };

function isWorkerMessage(value: unknown): value is WorkerMessage {
  if (typeof value !== "object" || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  return kind === "listening" || kind === "failed";
}

/** In a worker: tells the primary this process accepts calls on `url`. */
export function reportListening(url: string): void {
  send({ kind: "listening", url });
}

/** In a worker: hands a startup failure (one line) to the primary, which reports it once for all. */
export async function reportStartupFailure(message: string): Promise<void> {
  await new Promise<void>((resolve) => send({ kind: "failed", message }, resolve));
}

function send(message: WorkerMessage, done: () => void = () => undefined): void {
  if (!process.send || !process.connected) return done();
  process.send(message, undefined, {}, () => done());
}

export interface ClusterHooks {
  /** Every worker listens: print the first-run key and the listening line. */
  onListening(url: string, pids: number[]): void;
}

/** A worker's startup failed before the cluster was up; main.ts prints it like any startup error. */
export class ClusterStartError extends Error {
  override name = "ClusterStartError";
}

/** A worker that dies faster than this after starting was not healthy; its replacement waits. */
const HEALTHY_AFTER_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;
/** How long the workers get to stop beyond their own grace period before they are killed. */
const STOP_MARGIN_MS = 5_000;

/**
 * Forks `config.workers` workers running this same script and resolves once all of them listen.
 * Rejects with ClusterStartError when one fails to start (the others are stopped first). From then
 * on the process lives until a SIGTERM/SIGINT has stopped every worker, then exits itself.
 */
export async function runCluster(config: Config, logger: Logger, hooks: ClusterHooks): Promise<void> {
  // Every worker, replacements included, must listen on the same port. Cluster shares one
  // listening handle per address and port, and a PORT=0 handle disappears with its last worker,
  // so with PORT=0 the primary picks the port once and passes it down.
  const port = config.port === 0 ? await freePort(config.host) : config.port;
  const answerMetrics = serveClusterMetrics();
  return new Promise<void>((resolve, reject) => {
    let phase: "starting" | "running" | "stopping" = "starting";
    /** Why the start was abandoned; the promise rejects with it once every worker is gone. */
    let failure: string | null = null;
    let url = "";
    const listening = new Map<Worker, number>(); // worker -> pid, once it listens
    const startedAt = new Map<Worker, number>();
    let restartDelayMs = 0;
    let exitCode = 0;

    const alive = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());

    const fork = (): void => {
      const worker = cluster.fork({ PORT: String(port) });
      startedAt.set(worker, Date.now());
      worker.on("message", (message: unknown) => {
        if (!answerMetrics(worker, message)) onMessage(worker, message);
      });
    };

    const abortStart = (message: string): void => {
      if (failure !== null) return;
      failure = message;
      phase = "stopping";
      const rest = alive();
      if (rest.length === 0) return reject(new ClusterStartError(message));
      for (const worker of rest) worker.process.kill("SIGTERM");
    };

    const onMessage = (worker: Worker, message: unknown): void => {
      if (!isWorkerMessage(message)) return;
      if (message.kind === "failed") {
        if (phase === "starting") abortStart(message.message);
        else logger.error({ worker: worker.id, worker_pid: worker.process.pid, error: message.message }, "replacement worker failed to start");
        return;
      }
      url = message.url;
      listening.set(worker, worker.process.pid ?? 0);
      if (phase === "starting" && listening.size === config.workers) {
        phase = "running";
        hooks.onListening(url, [...listening.values()]);
        resolve();
      } else if (phase === "running") {
        logger.info({ worker: worker.id, worker_pid: worker.process.pid, url }, "replacement worker listening");
      }
    };

    cluster.on("exit", (worker, code, signal) => {
      const pid = worker.process.pid;
      const wasListening = listening.delete(worker);
      const lived = Date.now() - (startedAt.get(worker) ?? Date.now());
      startedAt.delete(worker);
      if (phase === "starting") {
        abortStart(`worker ${worker.id} (pid ${pid}) exited with ${signal ?? `code ${code}`} before it was listening`);
        return;
      }
      if (phase === "stopping") {
        if (code !== 0) exitCode = 1;
        if (alive().length > 0) return;
        if (failure !== null) return reject(new ClusterStartError(failure));
        return finish();
      }
      // Running, and nobody asked it to stop: replace it. A worker that keeps dying young (Postgres
      // gone, a bad deploy) is replaced ever more slowly instead of in a tight loop.
      restartDelayMs = wasListening && lived >= HEALTHY_AFTER_MS ? 0 : Math.min(MAX_RESTART_DELAY_MS, Math.max(250, restartDelayMs * 2));
      logger.warn(
        { worker: worker.id, worker_pid: pid, code, signal, restart_in_ms: restartDelayMs },
        `worker ${worker.id} (pid ${pid}) died unexpectedly (${signal ?? `exit code ${code}`}); starting a replacement`,
      );
      setTimeout(() => {
        if (phase === "running") fork();
      }, restartDelayMs);
    });

    const stop = (signal: NodeJS.Signals): void => {
      if (phase === "stopping") return;
      if (phase === "starting") return abortStart(`received ${signal} while starting`);
      phase = "stopping";
      const workers = alive();
      logger.info({ signal, workers: workers.length }, "shutting down: stopping workers");
      if (workers.length === 0) return finish();
      // Each worker drains like a single process does (SHUTDOWN_GRACE_MS); this bounds the rest.
      for (const worker of workers) worker.process.kill(signal);
      setTimeout(() => {
        const left = alive();
        logger.error({ worker_pids: left.map((w) => w.process.pid) }, "workers did not stop in time; killing them");
        exitCode = 1;
        for (const worker of left) worker.process.kill("SIGKILL");
      }, config.shutdownGraceMs + STOP_MARGIN_MS).unref();
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));

    const finish = (): void => {
      logger.info({ exit_code: exitCode }, "stopped");
      void drainLogs().then(() => process.exit(exitCode));
    };

    for (let i = 0; i < config.workers; i++) fork();
  });
}

/** A port nothing listens on right now, on the host the workers will bind. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
