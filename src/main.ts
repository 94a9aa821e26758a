// CLI: `serve` (default), `migrate`, `keys create|list|revoke`. Parses argv and calls into the rest
// (src/commands.ts), which is imported only once a command needs it: loading the service takes
// seconds, and --help, or a signal sent meanwhile, should not wait for that.
import cluster from "node:cluster";
import { loadConfig, type Config } from "./config.js";
import { catchEarlyStop } from "./early-stop.js";

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

async function main(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const [command = "serve", ...rest] = argv;
  if (!["serve", "migrate", "keys"].includes(command) || ((command === "serve" || command === "migrate") && rest.length > 0)) {
    const problem = rest.length > 0 && command !== "keys" ? `${command} takes no arguments (got ${rest.join(" ")}); it is configured through environment variables, e.g. PORT=9090 npm start` : `unknown command "${command}"`;
    process.stderr.write(`error: ${problem}\n${USAGE}\n`);
    process.exit(1);
  }
  const early = command === "serve" ? catchEarlyStop() : null;
  let config: Config | null = null;
  const commands = await import("./commands.js");
  try {
    config = loadConfig();
    if (early !== null) await commands.serve(config, early);
    else if (command === "migrate") await commands.migrateCommand(config);
    else await commands.keys(config, rest);
  } catch (error) {
    if (error instanceof commands.UsageError) process.stderr.write(`error: ${error.message}\n${USAGE}\n`);
    else {
      const message = commands.describeFailure(error, config);
      // A cluster worker leaves the reporting to the primary, so N workers failing print one line.
      if (cluster.isWorker) await commands.reportStartupFailure(message);
      else process.stderr.write(`error: ${message}\n`);
    }
    process.exit(1);
  }
}

await main(process.argv.slice(2));
