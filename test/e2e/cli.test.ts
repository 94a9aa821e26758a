// The operator's contract (DESIGN §7), exercised the way an operator meets it: the real CLI in a
// child process (`node --import tsx src/main.ts …`, what `npm start` / `npm run keys` run), with
// nothing but PATH, HOME and the documented variables in its environment.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { ApiKeyStore } from "../../src/store/api-keys.js";
import { openOrm } from "../../src/store/orm.js";
import { client, startTestApp, type TestApp } from "../support/app.js";
import { ADMIN_URL, createTestDatabase, type TestDatabase } from "../support/database.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const NODE = `${ROOT}node_modules/.bin/node`;

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

function spawnCli(args: string[], env: Record<string, string>): { child: ChildProcess; result: Promise<CliResult>; stdout(): string } {
  const child = spawn(NODE, ["--import", "tsx", "src/main.ts", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, result, stdout: () => stdout };
}

/** Runs a CLI command to completion. */
function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return spawnCli(args, env).result;
}

/** JSON log lines of some output; anything else (the first-run block, blank lines) is skipped. */
function logLines(output: string): Record<string, unknown>[] {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const LISTENING = /^promotions service listening on (http:\/\/\S+) /;

interface Serving {
  url: string;
  listening: Record<string, unknown>;
  stdout(): string;
  /** Sends SIGTERM and waits for the process to end. */
  stop(): Promise<CliResult>;
}

/** Starts `serve` and resolves once it has logged the URL it listens on. */
async function serve(env: Record<string, string>): Promise<Serving> {
  const run = spawnCli(["serve"], { PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", ...env });
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const look = () => {
      const line = logLines(run.stdout()).find((l) => typeof l.msg === "string" && LISTENING.test(l.msg));
      if (line) resolve(line);
    };
    run.child.stdout?.on("data", look);
    void run.result.then((r) => reject(new Error(`serve exited (${r.code ?? r.signal}) before listening:\n${r.stdout}\n${r.stderr}`)));
  });
  const url = LISTENING.exec(String(listening.msg))?.[1] ?? "";
  return {
    url,
    listening,
    stdout: run.stdout,
    stop: () => {
      run.child.kill("SIGTERM");
      return run.result;
    },
  };
}

async function withAdmin<T>(fn: (execute: (sql: string, params?: unknown[]) => Promise<unknown>) => Promise<T>): Promise<T> {
  const admin = await openOrm({ databaseUrl: ADMIN_URL, poolMax: 1 });
  try {
    const conn = admin.em.getConnection();
    return await fn((sql, params = []) => conn.execute(sql, params));
  } finally {
    await admin.close();
  }
}

const databaseExists = (name: string) =>
  withAdmin(async (execute) => ((await execute("select 1 from pg_database where datname = ?", [name])) as unknown[]).length === 1);

const dropDatabase = (name: string) => withAdmin((execute) => execute(`drop database if exists "${name}" with (force)`));

/** A database name nobody has created yet, and its URL. */
function freshDatabase(label: string): { name: string; url: string } {
  const name = `promotions_test_cli_${label}_${randomBytes(4).toString("hex")}`;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

/** A port nothing listens on: bound once by us, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const KEY = /prm_[A-Za-z0-9_-]+/g;

afterAll(() => {
  // Only reached with children left when a test failed half-way.
  for (const child of children) child.kill("SIGKILL");
});

describe("serve (npm start)", () => {
  // One operator's story, in order: a first start on an empty machine, a stop, a second start.
  const db = freshDatabase("serve");
  const env = { DATABASE_URL: db.url };
  const outputs: CliResult[] = [];
  let running: Serving | undefined;
  let firstKey = "";

  afterAll(async () => {
    await running?.stop();
    await dropDatabase(db.name);
  });

  it("creates its missing database, migrates it, and logs the URL and protocols on one JSON line", async () => {
    expect(await databaseExists(db.name)).toBe(false);
    running = await serve(env);
    expect(await databaseExists(db.name)).toBe(true);
    expect(running.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(running.listening).toMatchObject({ level: "info", url: running.url, protocols: ["connect", "grpc", "grpc-web"] });
  });

  it("prints a first-run key on stdout, outside the logs, that works for Connect calls with every scope", async () => {
    if (!running) throw new Error("serve is not running (previous test failed)");
    const block = running
      .stdout()
      .split("\n")
      .filter((line) => !line.startsWith("{"))
      .join("\n");
    expect(block).toContain('First run: created organization "default"');
    const keys = block.match(KEY) ?? [];
    expect(keys).toHaveLength(1);
    firstKey = keys[0] ?? "";

    const promotions = client(PromotionService, running.url, firstKey);
    const created = await promotions.createPromotion({
      name: "First-run smoke test",
      effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }],
    });
    const listed = await promotions.listPromotions({});
    expect(listed.promotions.map((p) => p.id)).toContain(created.promotion?.id);
    // The third scope, redeem, has no RPC here yet: read it off the stored key instead.
    const orm = await openOrm({ databaseUrl: db.url, poolMax: 1 });
    try {
      const store = new ApiKeyStore(orm.em.fork());
      const org = await store.findOrganization("default");
      const stored = org ? await store.listKeys(org.id) : [];
      expect(stored).toEqual([expect.objectContaining({ prefix: firstKey.slice(0, 12), scopes: ["read", "write", "redeem"], revokedAt: null })]);
    } finally {
      await orm.close();
    }
    // A key the service never issued is refused, and (see below) never echoed into the logs.
    const stranger = client(PromotionService, running.url, `prm_${randomBytes(32).toString("base64url")}`);
    await expect(stranger.listPromotions({})).rejects.toMatchObject({ code: Code.Unauthenticated });
  });

  it("stops on SIGTERM with exit code 0 and a 'stopped' log line", async () => {
    if (!running) throw new Error("serve is not running (previous test failed)");
    const result = await running.stop();
    running = undefined;
    outputs.push(result);
    expect(result).toMatchObject({ code: 0, signal: null });
    const messages = logLines(result.stdout).map((l) => l.msg);
    // The buffered log stream is flushed before exit, so the lines arrive in order.
    expect(messages.slice(-2)).toEqual(["shutting down: draining in-flight calls", "stopped"]);
  });

  it("prints no key on a second start, and the first-run key still works", async () => {
    const second = await serve(env);
    running = second;
    const listed = await client(PromotionService, second.url, firstKey).listPromotions({});
    expect(listed.promotions).toHaveLength(1);
    const result = await second.stop();
    running = undefined;
    outputs.push(result);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("First run");
    expect(result.stdout).not.toMatch(KEY);
  });

  it("never writes an API key to stdout or stderr except the single first-run block", () => {
    expect(outputs).toHaveLength(2);
    const everything = outputs.map((o) => o.stdout + o.stderr).join("\n");
    expect(everything.match(KEY)).toEqual([firstKey]);
    for (const { stdout, stderr } of outputs) {
      expect(stderr).not.toMatch(KEY);
      const logs = stdout.split("\n").filter((line) => line.startsWith("{"));
      expect(logs.length).toBeGreaterThan(2);
      for (const line of logs) expect(line).not.toContain("prm_");
    }
    // The block is the only non-JSON output: every other line is a log line.
    const [first] = outputs;
    const rest = (first?.stdout ?? "").split("\n").filter((line) => line.trim() !== "" && !line.startsWith("{"));
    expect(rest.filter((line) => line.includes("prm_"))).toEqual([`  ${firstKey}`]);
    expect(rest).toHaveLength(3);
  });
});

// Each test makes keys of its own, so they run side by side (each spawn costs ~2 s of startup).
describe.concurrent("keys (npm run keys)", () => {
  let t: TestApp;
  let env: Record<string, string>;
  beforeAll(async () => {
    t = await startTestApp("cli_keys");
    env = { DATABASE_URL: t.db.url };
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** `keys create`, returning the id from the first line and the key from the last. */
  async function createKey(org: string, scopes: string): Promise<{ id: string; key: string; result: CliResult }> {
    const result = await runCli(["keys", "create", "--org", org, "--scopes", scopes], env);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    const lines = result.stdout.trimEnd().split("\n");
    const id = /created key ([0-9a-f-]{36}) /.exec(lines[0] ?? "")?.[1] ?? "";
    return { id, key: lines.at(-1) ?? "", result };
  }

  it("keys create --org acme --scopes read prints the key alone on the last line; it can read but not write", async ({ expect }) => {
    const { id, key, result } = await createKey("acme", "read");
    expect(id).not.toBe("");
    expect(key).toMatch(/^prm_[A-Za-z0-9_-]{20,}$/);
    expect(result.stdout.match(KEY)).toEqual([key]); // nowhere else
    expect(result.stdout).toMatch(/with scopes read\n/);

    const promotions = client(PromotionService, t.url, key);
    await expect(promotions.listPromotions({})).resolves.toMatchObject({ promotions: [] });
    const denied = await promotions.createPromotion({ name: "not allowed" }).catch((e: unknown) => ConnectError.from(e));
    expect(denied).toMatchObject({ code: Code.PermissionDenied });
  });

  it("keys list --org acme lists each key by id, prefix and scopes, never the full key", async ({ expect }) => {
    const { id, key } = await createKey("acme", "read,redeem");
    const result = await runCli(["keys", "list", "--org", "acme"], env);
    expect(result.code).toBe(0);
    const line = result.stdout.split("\n").find((l) => l.startsWith(id));
    expect(line).toBeDefined();
    expect(line).toContain(key.slice(0, 12));
    expect(line).toMatch(/read,redeem\s+active/);
    expect(result.stdout).not.toContain(key);
    expect(result.stdout.match(KEY)?.every((shown) => shown.length <= 12)).toBe(true);
  });

  it("keys revoke <id> makes the key UNAUTHENTICATED from the next call, and list shows it revoked", async ({ expect }) => {
    const { id, key } = await createKey("acme", "read");
    const promotions = client(PromotionService, t.url, key);
    await promotions.listPromotions({});

    const revoked = await runCli(["keys", "revoke", id], env);
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked key ${id}\n` });
    await expect(promotions.listPromotions({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    const list = await runCli(["keys", "list", "--org", "acme"], env);
    expect(list.stdout.split("\n").find((l) => l.startsWith(id))).toMatch(/\brevoked \d{4}-\d\d-\d\dT/);
  });

  it("keys create --scopes bogus exits non-zero naming the scope, and creates nothing", async ({ expect }) => {
    const result = await runCli(["keys", "create", "--org", "initech", "--scopes", "read,bogus"], env);
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toMatch(/^error: .*unknown scope "bogus"/);
    expect(result.stderr).toContain("read, write, redeem");
    expect(result.stdout).not.toMatch(KEY);
    // Refused before anything was written: not even the organization exists.
    expect(await new ApiKeyStore(t.app.orm.em.fork()).findOrganization("initech")).toBeNull();
  });
});

describe("when PostgreSQL is unreachable", () => {
  it.concurrent.for([{ command: "serve" }, { command: "migrate" }, { command: "keys list --org acme" }])(
    "$command exits non-zero with one line saying it cannot reach PostgreSQL, and no stack trace",
    async ({ command }, { expect }) => {
      const port = await closedPort();
      const result = await runCli(command.split(" "), { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/promotions`, PORT: "0" });
      expect(result.code).not.toBe(0);
      expect(result.code).not.toBeNull();
      expect(result.stdout).toBe("");
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^error: cannot reach PostgreSQL/);
      expect(lines[0]).toContain(`127.0.0.1:${port}`);
      // Plain words, not the driver's error code.
      expect(lines[0]).toContain("connection refused");
      expect(lines[0]).not.toMatch(/ECONNREFUSED/);
      expect(lines[0]).toContain("DATABASE_URL");
      expect(result.stderr).not.toContain("    at ");
    },
  );

  it("serve names PostgreSQL and DATABASE_URL when the login is refused (an unknown role)", async () => {
    const url = new URL(ADMIN_URL);
    url.username = `nosuchrole_${randomBytes(3).toString("hex")}`;
    url.pathname = "/promotions";
    const result = await runCli(["serve"], { DATABASE_URL: url.toString(), PORT: "0" });
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: PostgreSQL at 127\.0\.0\.1:\d+ refused the login/);
    expect(lines[0]).toContain(`role "${url.username}" does not exist`);
    expect(lines[0]).toContain("DATABASE_URL");
  });
});

describe("when Redis refuses connections", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase("cli_redis");
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("serve fails within 3 s with one line naming Redis, its address and 'connection refused'", async () => {
    const port = await closedPort();
    const env = { DATABASE_URL: db.url, PORT: "0", REDIS_URL: `redis://127.0.0.1:${port}` };
    // What loading the service costs on this machine right now (a run that fails at once, on a
    // PostgreSQL that refuses), so only the time spent on Redis is held to the 3 s.
    let started = Date.now();
    expect((await runCli(["serve"], { ...env, DATABASE_URL: `postgres://postgres@127.0.0.1:${await closedPort()}/x` })).code).toBe(1);
    const baseline = Date.now() - started;
    started = Date.now();
    const result = await runCli(["serve"], env);
    const elapsed = Date.now() - started;
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^error: cannot reach Redis at 127\\.0\\.0\\.1:${port}: connection refused; `));
    expect(lines[0]).toContain("REDIS_URL");
    expect(lines[0]).not.toMatch(/ECONNREFUSED|maxRetriesPerRequest|max retries/);
    expect(elapsed - baseline).toBeLessThan(3_000);
  });
});

describe("migrate (npm run migrate)", () => {
  const db = freshDatabase("migrate");
  afterAll(async () => {
    await dropDatabase(db.name);
  });

  it("creates the database and applies the migrations; a second run says it is up to date", async () => {
    const first = await runCli(["migrate"], { DATABASE_URL: db.url });
    expect(first, first.stderr).toMatchObject({ code: 0 });
    expect(first.stdout).toMatch(/^applied Migration\d+_\w+/);
    expect(await databaseExists(db.name)).toBe(true);

    const second = await runCli(["migrate"], { DATABASE_URL: db.url });
    expect(second).toMatchObject({ code: 0, stdout: "database is up to date\n", stderr: "" });
  });
});
