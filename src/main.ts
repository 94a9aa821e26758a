// CLI: `serve` (default), `migrate`, `keys create|list|revoke`. Parses argv and calls into the rest.
import cluster from "node:cluster";
import { parseArgs } from "node:util";
import { DependencyError, ensureFirstRunKey, startApp, type App } from "./app.js";
import { ClusterStartError, reportListening, reportStartupFailure, runCluster } from "./cluster.js";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { explainPostgres } from "./dependency-errors.js";
import { DomainError } from "./domain/errors.js";
import { createLogger, drainLogs, type Logger } from "./observability/logger.js";
import { ApiKeyStore, parseScopes } from "./store/api-keys.js";
import { migrate, openOrm } from "./store/orm.js";
import { isUuid } from "./domain/checks.js";

const USAGE = `usage:
  npm start [-- serve]                            start the service (creates the database, migrates, serves)
  npm run migrate                                 create the database if missing and apply migrations
  npm run keys -- create --org <slug> [--scopes read,write,redeem] [--name <name>]
                                                  create an API key; the key is alone on the last line
  npm run keys -- list --org <slug>               list an organization's keys (never the keys themselves)
  npm run keys -- revoke <key-id>                 revoke a key (an id from \`keys list\`)

  (the same commands as node --import tsx src/main.ts serve|migrate|keys …)

environment (every variable is optional):
  DATABASE_URL   PostgreSQL (default postgres://postgres@127.0.0.1:5432/promotions)
  REDIS_URL      Redis (default redis://127.0.0.1:6379); REDIS_CLUSTER_NODES=host:port,… for a cluster
  HOST, PORT     where to listen (default 127.0.0.1 and 8080)
  LOG_LEVEL      fatal, error, warn, info (default), debug, trace or silent
  README.md lists the rest (TLS_CERT/TLS_KEY, CORS_ORIGINS, WORKERS, rate limits, …)

stop the server with SIGTERM or SIGINT (Ctrl-C): it finishes the calls in flight and exits 0.`;

/** --help or -h anywhere (before a bare --), or `help` as the command. */
function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  const flags = end < 0 ? argv : argv.slice(0, end);
  return flags.includes("--help") || flags.includes("-h") || argv[0] === "help";
}

async function serve(config: Config): Promise<void> {
  if (config.workers > 1) return cluster.isPrimary ? servePrimary(config) : serveWorker(config);
  const logger = createLogger(config.logLevel);
  const started = performance.now();
  await migrate({ databaseUrl: config.databaseUrl });
  const app = await startApp(config, logger);
  const firstKey = await ensureFirstRunKey(app.orm);
  if (firstKey) printFirstRunKey(firstKey);
  announce(logger, config, app.server.url, started);
  stopOnSignals(app, logger);
}

/** WORKERS > 1, primary: the once-only work, then the workers (src/cluster.ts). Serves no calls itself. */
async function servePrimary(config: Config): Promise<void> {
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
  await runCluster(config, logger, {
    onListening(url, pids) {
      if (firstKey) printFirstRunKey(firstKey);
      announce(logger, config, url, started, { workers: pids.length, worker_pids: pids });
    },
  });
}

/** WORKERS > 1, worker: a whole server on the cluster's shared port; every log line names its pid. */
async function serveWorker(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel).child({ pid: process.pid, worker: cluster.worker?.id ?? 0 });
  const app = await startApp(config, logger);
  logger.info({ url: app.server.url }, "worker listening");
  reportListening(app.server.url);
  stopOnSignals(app, logger);
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

/** SIGTERM/SIGINT: drain in-flight calls, close the pools, exit 0. */
function stopOnSignals(app: App, logger: Logger): void {
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
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

async function keys(config: Config, args: string[]): Promise<void> {
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

class UsageError extends Error {}
const usage = (message: string) => new UsageError(message);

/** One line naming what is unreachable (or refused) and how to fix it, instead of a stack trace. */
function explain(error: unknown, config: Config | null): string {
  const text = error instanceof Error ? `${error.message} ${String((error as { code?: unknown }).code ?? "")}` : String(error);
  const postgres = config ? explainPostgres(error, config.databaseUrl) : null;
  if (postgres !== null) return postgres;
  if (/EADDRINUSE/.test(text) && config) return `port ${config.port} on ${config.host} is already in use; stop the other process or set PORT`;
  return text.split("\n")[0] ?? "unknown error";
}

async function main(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const [command = "serve", ...rest] = argv;
  let config: Config | null = null;
  try {
    if ((command === "serve" || command === "migrate") && rest.length > 0) {
      throw usage(`${command} takes no arguments (got ${rest.join(" ")}); it is configured through environment variables, e.g. PORT=9090 npm start`);
    }
    config = loadConfig();
    if (command === "serve") await serve(config);
    else if (command === "migrate") {
      const applied = await migrate({ databaseUrl: config.databaseUrl });
      process.stdout.write(applied.length ? `applied ${applied.join(", ")}\n` : "database is up to date\n");
    } else if (command === "keys") await keys(config, rest);
    else throw usage(`unknown command "${command}"`);
  } catch (error) {
    if (error instanceof UsageError) process.stderr.write(`error: ${error.message}\n${USAGE}\n`);
    else {
      const known = error instanceof ConfigError || error instanceof DomainError || error instanceof DependencyError || error instanceof ClusterStartError;
      const message = known ? error.message : explain(error, config);
      // A cluster worker leaves the reporting to the primary, so N workers failing print one line.
      if (cluster.isWorker) await reportStartupFailure(message);
      else process.stderr.write(`error: ${message}\n`);
    }
    process.exit(1);
  }
}

await main(process.argv.slice(2));
