// CLI: `serve` (default), `migrate`, `keys create|list|revoke`. Parses argv and calls into the rest.
import { parseArgs } from "node:util";
import { DependencyError, ensureFirstRunKey, startApp } from "./app.js";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { DomainError } from "./domain/errors.js";
import { createLogger, flushLogs } from "./logger.js";
import { ApiKeyStore, parseScopes } from "./store/api-keys.js";
import { migrate, openOrm } from "./store/orm.js";

const USAGE = `usage:
  main.ts serve                                   start the service (migrates first)
  main.ts migrate                                 create the database if missing and apply migrations
  main.ts keys create --org <slug> [--scopes read,write,redeem] [--name <name>]
  main.ts keys list --org <slug>
  main.ts keys revoke <key-id>`;

async function serve(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel);
  const started = performance.now();
  const app = await startApp(config, logger);
  const firstKey = await ensureFirstRunKey(app.orm);
  if (firstKey) {
    // Shown once, on stdout, never through the logger.
    process.stdout.write(
      `\nFirst run: created organization "default" and an API key with scopes read,write,redeem.\n` +
        `It is shown only this once; keep it somewhere safe:\n\n  ${firstKey}\n\n`,
    );
  }
  logger.info(
    { url: app.server.url, protocols: ["connect", "grpc", "grpc-web"], transports: config.tls ? ["h2", "http/1.1"] : ["h2c", "http/1.1"], startup_ms: Math.round(performance.now() - started) },
    `promotions service listening on ${app.server.url} (Connect, gRPC and gRPC-Web on one port)`,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: draining in-flight calls");
    app.close().then(
      () => {
        logger.info("stopped");
        flushLogs();
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ error: String(error) }, "shutdown failed");
        flushLogs();
        process.exit(1);
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
      if (!/^[0-9a-f-]{36}$/i.test(target)) throw usage(`"${target}" is not a key id (a UUID from \`keys list\`)`);
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

/** One line naming what is unreachable and how to start it, instead of a stack trace. */
function explain(error: unknown, config: Config | null): string {
  const text = error instanceof Error ? `${error.message} ${String((error as { code?: unknown }).code ?? "")}` : String(error);
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|Connection terminated|connect/i.test(text) && config) {
    const where = new URL(config.databaseUrl);
    return `cannot reach PostgreSQL at ${where.hostname}:${where.port || 5432} (${text.trim().split("\n")[0]}); start it (e.g. \`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\`) or set DATABASE_URL`;
  }
  if (/EADDRINUSE/.test(text) && config) return `port ${config.port} on ${config.host} is already in use; stop the other process or set PORT`;
  return text.split("\n")[0] ?? "unknown error";
}

async function main(argv: string[]): Promise<void> {
  const [command = "serve", ...rest] = argv;
  let config: Config | null = null;
  try {
    config = loadConfig();
    if (command === "serve") await serve(config);
    else if (command === "migrate") {
      const applied = await migrate({ databaseUrl: config.databaseUrl });
      process.stdout.write(applied.length ? `applied ${applied.join(", ")}\n` : "database is up to date\n");
    } else if (command === "keys") await keys(config, rest);
    else throw usage(`unknown command "${command}"`);
  } catch (error) {
    if (error instanceof UsageError) process.stderr.write(`error: ${error.message}\n${USAGE}\n`);
    else if (error instanceof ConfigError || error instanceof DomainError || error instanceof DependencyError) process.stderr.write(`error: ${error.message}\n`);
    else process.stderr.write(`error: ${explain(error, config)}\n`);
    process.exit(1);
  }
}

await main(process.argv.slice(2));
