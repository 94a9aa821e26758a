// What the CLI's commands do: serve (one process or a cluster), migrate, keys. main.ts parses argv
// and imports this module only when a command needs it, so `--help` answers at once and a signal
// sent while the service starts is caught.
import cluster from "node:cluster";
import { parseArgs } from "node:util";
import { DependencyError, ensureFirstRunKey, startApp, type App } from "./app.js";
import { ClusterStartError, reportListening, reportStartupFailure, runCluster } from "./cluster.js";
import { ConfigError, type Config } from "./config.js";
import { explainPostgres } from "./dependency-errors.js";
import { isUuid } from "./domain/checks.js";
import { DomainError } from "./domain/errors.js";
import type { EarlyStop } from "./early-stop.js";
import { createLogger, drainLogs, type Logger } from "./observability/logger.js";
import { ApiKeyStore, parseScopes } from "./store/api-keys.js";
import { migrate, openOrm } from "./store/orm.js";

/** `serve`: migrate, start, announce; stops on SIGTERM/SIGINT, including one `early` caught while starting. */
export async function serve(config: Config, early: EarlyStop): Promise<void> {
  if (config.workers > 1) return cluster.isPrimary ? servePrimary(config, early) : serveWorker(config, early);
  const logger = createLogger(config.logLevel);
  const started = performance.now();
  await migrate({ databaseUrl: config.databaseUrl });
  const app = await startApp(config, logger);
  const firstKey = await ensureFirstRunKey(app.orm);
  if (firstKey) printFirstRunKey(firstKey);
  announce(logger, config, app.server.url, started);
  stopOnSignals(app, logger, early);
}

/** WORKERS > 1, primary: the once-only work, then the workers (src/cluster.ts). Serves no calls itself. */
async function servePrimary(config: Config, early: EarlyStop): Promise<void> {
  const logger = createLogger(config.logLevel).child({ pid: process.pid, role: "primary" });
  const started = performance.now();
  await migrate({ databaseUrl: config.databaseUrl });
  const orm = await openOrm({ databaseUrl: config.databaseUrl, poolMax: 1 });
  let firstKey: string | null;
  try {
    firstKey = await ensureFirstRunKey(orm);
  } finally {
    await orm.close();
  }
  // From here on src/cluster.ts handles the signals; one that came while migrating stops us now.
  early.dispose();
  if (early.signal !== null) {
    logger.info({ signal: early.signal }, "stopped before starting the workers");
    await drainLogs();
    process.exit(0);
  }
  await runCluster(config, logger, {
    onListening(url, pids) {
      if (firstKey) printFirstRunKey(firstKey);
      announce(logger, config, url, started, { workers: pids.length, worker_pids: pids });
    },
  });
}

/** WORKERS > 1, worker: a whole server on the cluster's shared port; every log line names its pid. */
async function serveWorker(config: Config, early: EarlyStop): Promise<void> {
  const logger = createLogger(config.logLevel).child({ pid: process.pid, worker: cluster.worker?.id ?? 0 });
  const app = await startApp(config, logger);
  logger.info({ url: app.server.url }, "worker listening");
  reportListening(app.server.url);
  stopOnSignals(app, logger, early);
}

function printFirstRunKey(key: string): void {
  // Shown once, on stdout, never through the logger.
  process.stdout.write(
    `\nFirst run: created organization "default" and an API key with scopes read,write,redeem.\n` +
      `It is shown only this once; keep it somewhere safe:\n\n  ${key}\n\n`,
  );
}

function announce(logger: Logger, config: Config, url: string, started: number, cluster?: { workers: number; worker_pids: number[] }): void {
  const processes = cluster ? `; ${cluster.workers} worker processes` : "";
  logger.info(
    { url, protocols: ["connect", "grpc", "grpc-web"], transports: config.tls ? ["h2", "http/1.1"] : ["h2c", "http/1.1"], ...cluster, startup_ms: Math.round(performance.now() - started) },
    `promotions service listening on ${url} (Connect, gRPC and gRPC-Web on one port${processes})`,
  );
}

/** SIGTERM/SIGINT: drain in-flight calls, close the pools, exit 0 (at once for one that came while starting). */
function stopOnSignals(app: App, logger: Logger, early: EarlyStop): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: draining in-flight calls");
    app.close().then(
      () => {
        logger.info("stopped");
        void drainLogs().then(() => process.exit(0));
      },
      (error: unknown) => {
        logger.error({ error: String(error) }, "shutdown failed");
        void drainLogs().then(() => process.exit(1));
      },
    );
  };
  early.dispose();
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  if (early.signal !== null) stop(early.signal);
}

/** `keys create|list|revoke`. */
export async function keys(config: Config, args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { org: { type: "string" }, scopes: { type: "string", default: "read,write,redeem" }, name: { type: "string" } },
  });
  const [action, target] = positionals;
  await migrate({ databaseUrl: config.databaseUrl });
  const orm = await openOrm({ databaseUrl: config.databaseUrl, poolMax: 2 });
  try {
    const store = new ApiKeyStore(orm.em.fork());
    if (action === "create") {
      if (!values.org) throw usage("keys create needs --org <slug>");
      const scopes = parseScopes(values.scopes);
      const org = await store.ensureOrganization(values.org);
      const created = await store.createKey(org.id, values.name ?? `${values.org} key`, scopes);
      process.stdout.write(`created key ${created.id} for organization ${org.slug} (${org.id}) with scopes ${scopes.join(",")}\n`);
      process.stdout.write(`${created.key}\n`);
    } else if (action === "list") {
      if (!values.org) throw usage("keys list needs --org <slug>");
      const org = await store.findOrganization(values.org);
      if (!org) throw usage(`no organization "${values.org}"`);
      for (const k of await store.listKeys(org.id)) {
        const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : "active";
        process.stdout.write(`${k.id}  ${k.prefix}…  ${k.scopes.join(",").padEnd(17)}  ${state.padEnd(32)}  ${k.name}\n`);
      }
    } else if (action === "revoke") {
      if (!target) throw usage("keys revoke needs a key id");
      if (!isUuid(target)) throw usage(`"${target}" is not a key id (a UUID from \`keys list\`)`);
      if (!(await store.revokeKey(target))) throw usage(`no key with id ${target}`);
      process.stdout.write(`revoked key ${target}\n`);
    } else {
      throw usage(`unknown keys action "${action ?? ""}"`);
    }
  } finally {
    await orm.close();
  }
}

/** A command line that asks for something that does not exist; main.ts prints it with the usage. */
export class UsageError extends Error {}
const usage = (message: string) => new UsageError(message);

/** `migrate`: create the database if missing and apply migrations; says what it did. */
export async function migrateCommand(config: Config): Promise<void> {
  const applied = await migrate({ databaseUrl: config.databaseUrl });
  process.stdout.write(applied.length ? `applied ${applied.join(", ")}\n` : "database is up to date\n");
}

/** The one line a failed command prints: what went wrong, and for a dependency, how to fix it. */
export function describeFailure(error: unknown, config: Config | null): string {
  const known = error instanceof ConfigError || error instanceof DomainError || error instanceof DependencyError || error instanceof ClusterStartError;
  return known ? error.message : explain(error, config);
}

/** In a cluster worker: the primary reports start-up failures, once for all workers. */
export { reportStartupFailure };

/** One line naming what is unreachable (or refused) and how to fix it, instead of a stack trace. */
function explain(error: unknown, config: Config | null): string {
  const text = error instanceof Error ? `${error.message} ${String((error as { code?: unknown }).code ?? "")}` : String(error);
  const postgres = config ? explainPostgres(error, config.databaseUrl) : null;
  if (postgres !== null) return postgres;
  if (/EADDRINUSE/.test(text) && config) return `port ${config.port} on ${config.host} is already in use; stop the other process or set PORT`;
  return text.split("\n")[0] ?? "unknown error";
}
