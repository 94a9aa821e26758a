// WORKERS=2: the real CLI in a child process, as `npm start` runs it with two worker processes on
// one port. Which process served a call is read from the logs (every worker's lines carry its pid),
// never from anything a client sees.
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const NODE = `${ROOT}node_modules/.bin/node`;
const LISTENING = /^promotions service listening on (http:\/\/\S+) \(.*; 2 worker processes\)$/;
const KEY = /prm_[A-Za-z0-9_-]+/;

type LogLine = Record<string, unknown> & { msg?: string; pid?: number };

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

let db: TestDatabase;
let child: ChildProcess | undefined;
let stdout = "";
let stderr = "";
let exited: Promise<Exit>;

const logs = (): LogLine[] =>
  stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogLine);
const withMsg = (msg: string | RegExp) => logs().filter((l) => (typeof msg === "string" ? l.msg === msg : msg.test(l.msg ?? "")));
/** Pids of the workers that logged an "rpc" line for ListPromotions. */
const servingPids = () => new Set(withMsg("rpc").filter((l) => l.method === "/promotions.v1.PromotionService/ListPromotions").map((l) => l.pid));

async function until<T>(what: string, probe: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline || child?.exitCode != null) throw new Error(`timed out waiting for ${what}\n${stdout}\n${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  db = await createTestDatabase("cluster");
  child = spawn(NODE, ["--import", "tsx", "src/main.ts", "serve"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      DATABASE_URL: db.url,
      REDIS_KEY_PREFIX: `test:${db.name}:`,
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "info",
      WORKERS: "2",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const running = child;
  exited = new Promise((resolve) => running.on("close", (code, signal) => resolve({ code, signal })));
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill("SIGKILL"); // only when a test failed half-way
    await exited;
  }
  await db?.drop();
});

describe("WORKERS=2 (npm start on every core)", () => {
  let url = "";
  let key = "";
  let workerPids: number[] = [];
  let killed = 0;

  // A fresh TCP connection per call (no keep-alive), so the cluster spreads calls over workers.
  const promotions = () =>
    createClient(
      PromotionService,
      createConnectTransport({
        baseUrl: url,
        httpVersion: "1.1",
        nodeOptions: { agent: false },
        interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${key}`), next(req))],
      }),
    );

  it("migrates once, starts two workers on one port, and logs one line with the URL and the workers", async () => {
    const line = await until("the listening line", () => logs().find((l) => LISTENING.test(l.msg ?? "")));
    url = LISTENING.exec(line.msg ?? "")?.[1] ?? "";
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(line).toMatchObject({ role: "primary", url, workers: 2, pid: child?.pid });
    workerPids = line.worker_pids as number[];
    expect(new Set(workerPids).size).toBe(2);
    expect(workerPids).not.toContain(child?.pid);
    expect(withMsg(/^promotions service listening on /)).toHaveLength(1);
    // Both workers listen on the one URL; the primary printed the single first-run key.
    expect(withMsg("worker listening").map((l) => [l.pid, l.url]).sort()).toEqual(workerPids.map((pid) => [pid, url]).sort());
    key = KEY.exec(stdout)?.[0] ?? "";
    expect(stdout.match(new RegExp(KEY.source, "g"))).toHaveLength(1);
  });

  it("spreads calls on separate connections over both workers", async () => {
    const client = promotions();
    for (let i = 0; i < 20; i++) await client.listPromotions({});
    await until("20 rpc lines", () => (withMsg("rpc").filter((l) => l.code === "ok").length >= 20 ? true : undefined));
    expect([...servingPids()].sort()).toEqual([...workerPids].sort());
  });

  it("GET /metrics on any worker reports the whole cluster", async () => {
    const scrape = async () => {
      const res = await fetch(`${url}/metrics`, { headers: { connection: "close" } });
      expect(res.status).toBe(200);
      return res.text();
    };
    const listCalls = (text: string) =>
      text
        .split("\n")
        .filter((l) => l.startsWith("promotions_rpc_calls_total{") && l.includes('method="ListPromotions"') && l.includes('code="ok"'))
        .reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
    // Each scrape lands on one worker (a new connection each time); every answer counts the calls of both.
    for (let i = 0; i < 4; i++) {
      const text = await scrape();
      expect(listCalls(text)).toBe(20);
      expect(text).toMatch(/^promotions_redis_up 1$/m);
      expect(text).toMatch(/^promotions_postgres_up 1$/m);
    }
  });

  it("replaces a worker that dies, says so, and keeps serving on the same port", async () => {
    const [victim, survivor] = workerPids as [number, number];
    process.kill(victim, "SIGKILL");
    killed = victim;
    const died = await until("the died line", () => withMsg(/died unexpectedly/)[0]);
    expect(died).toMatchObject({ level: "warn", worker_pid: victim, signal: "SIGKILL" });
    const replacement = await until("the replacement", () => withMsg("replacement worker listening")[0]);
    expect(replacement).toMatchObject({ url });
    const fresh = replacement.worker_pid as number;
    expect([victim, survivor]).not.toContain(fresh);
    workerPids = [survivor, fresh];

    const client = promotions();
    for (let i = 0; i < 20; i++) await client.listPromotions({});
    await until("an rpc line from the replacement", () => (servingPids().has(fresh) ? true : undefined));
  });

  it("on SIGTERM stops every worker gracefully and exits 0", async () => {
    child?.kill("SIGTERM");
    const result = await exited;
    expect(result, stderr).toEqual({ code: 0, signal: null });
    expect(stderr).toBe("");
    const stopped = withMsg("stopped");
    for (const pid of workerPids) {
      expect(withMsg("shutting down: draining in-flight calls").map((l) => l.pid)).toContain(pid);
      expect(stopped.map((l) => l.pid)).toContain(pid);
    }
    expect(stopped.map((l) => l.pid)).not.toContain(killed);
    // The primary's "stopped" comes last: after every worker's.
    expect(stopped.at(-1)).toMatchObject({ role: "primary", pid: child?.pid, exit_code: 0 });
    expect(stopped).toHaveLength(3);
  });

  it("never logs the API key", () => {
    expect(key).not.toBe("");
    for (const line of stdout.split("\n").filter((l) => l.startsWith("{"))) expect(line).not.toContain("prm_");
  });
});

describe("WORKERS=2 when it cannot start", () => {
  /** Runs `serve` to completion with the given environment. */
  async function serveOnce(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const run = spawn(NODE, ["--import", "tsx", "src/main.ts", "serve"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PORT: "0", LOG_LEVEL: "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    run.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    run.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    const code = await new Promise<number | null>((resolve) => run.on("close", resolve));
    return { code, stdout: out, stderr: err };
  }

  it("refuses WORKERS=0 with one line naming the variable", async () => {
    const result = await serveOnce({ WORKERS: "0", DATABASE_URL: db.url });
    expect(result).toMatchObject({ code: 1, stderr: 'error: WORKERS must be an integer between 1 and 64 (got "0")\n' });
  });

  it("reports an unreachable Redis once for all workers, stops them, and exits non-zero", async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as net.AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const result = await serveOnce({ WORKERS: "2", DATABASE_URL: db.url, REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: `test:${db.name}:x:` });
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^error: cannot reach Redis at 127\\.0\\.0\\.1:${port}`));
    expect(result.stdout).not.toMatch(/listening on/);
  });
});
