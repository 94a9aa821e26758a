// A private PostgreSQL (initdb + pg_ctl in a temp dir, free loopback port), for tests that stop and
// restart Postgres — never the shared one on 5432. initdb refuses to run as root, so as root every
// binary runs as the `postgres` user (runuser) in a directory that user owns.
import { execFile, execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./redis-server.js";

export interface PrivatePostgres {
  port: number;
  /** URL of database `name` (default `postgres`) as the superuser, no password (trust). */
  url(name?: string): string;
  /** `pg_ctl stop -m fast`: every session is ended; the data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it for good and removes its directory. */
  dispose(): Promise<void>;
  /** The server's log so far (with `log_statement: "all"`, every statement it ran). */
  log(): string;
}

/** The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin), or PG_BIN. */
function binDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "initdb"))) : [];
  const newest = majors.sort((a, b) => Number(b) - Number(a))[0];
  if (newest) return join(root, newest, "bin");
  return execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
}

/** `settings` are extra `-c name=value` server settings (e.g. `{ log_statement: "all" }`). */
export async function startPrivatePostgres(settings: Record<string, string> = {}): Promise<PrivatePostgres> {
  const bin = binDir();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "prm-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  // Asynchronous, so a test's load keeps running while Postgres stops and starts.
  const run = (tool: string, args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const [cmd, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", join(bin, tool), ...args]] : [join(bin, tool), args];
      execFile(cmd, argv, { cwd: dir, encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`${tool} ${args.join(" ")} failed: ${stderr || stdout || error.message}`));
        else resolve();
      });
    });
  const options = [`-p ${port}`, `-k ${dir}`, "-c listen_addresses=127.0.0.1", "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=300", ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)].join(" ");

  await run("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const start = (): Promise<void> => run("pg_ctl", ["-D", data, "-l", join(dir, "log"), "-w", "-t", "60", "-o", options, "start"]);
  const stop = (): Promise<void> => run("pg_ctl", ["-D", data, "-w", "-m", "fast", "stop"]);
  await start();
  return {
    port,
    url: (name = "postgres") => `postgres://postgres@127.0.0.1:${port}/${name}`,
    stop,
    start,
    log: () => {
      try {
        return readFileSync(join(dir, "log"), "utf8");
      } catch {
        return "";
      }
    },
    async dispose() {
      try {
        await run("pg_ctl", ["-D", data, "-w", "-m", "immediate", "stop"]);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
