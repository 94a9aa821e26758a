// The real CLI (`src/main.ts serve`) in a child process on a fixed free port, as a replica runs in
// production: killed with SIGKILL, started again on the same port, several of them sharing one
// database and one Redis. Also mints API keys straight in a database the processes serve.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ApiKeyStore } from "../../src/store/api-keys.js";
import { openOrm } from "../../src/store/orm.js";
import { freePort } from "./redis-server.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const NODE = `${ROOT}node_modules/.bin/node`;

export interface ServerProcess {
  url: string;
  port: number;
  /** Pid of the running server process (undefined while stopped). */
  pid(): number | undefined;
  /** Starts the process (again) on the same port; resolves once Health/Check answers. */
  start(): Promise<void>;
  /** SIGKILL, as a crash or an OOM kill would: nothing is drained or flushed. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit (graceful shutdown). */
  stop(): Promise<void>;
  /** Exits nobody asked for (crashes), with the output tail of the process that died. */
  crashes(): string[];
  /** Everything the current and previous processes wrote to stdout and stderr. */
  output(): string;
  /** Resident set size of the running process, from /proc (Linux), in bytes. */
  rssBytes(): number | null;
  /** Open file descriptors of the running process, from /proc (Linux). */
  openFds(): number | null;
}

/**
 * A server process with `env` on top of a minimal environment (PATH, HOME): DATABASE_URL,
 * REDIS_URL and REDIS_KEY_PREFIX are the caller's; PORT is chosen here unless given.
 */
export async function startServerProcess(env: Record<string, string>, opts: { start?: boolean; nodeArgs?: string[] } = {}): Promise<ServerProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const url = `http://127.0.0.1:${port}`;
  const fullEnv = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", HOST: "127.0.0.1", LOG_LEVEL: "warn", ...env, PORT: String(port) };
  let child: ChildProcess | null = null;
  let output = "";
  const crashes: string[] = [];

  const start = async (): Promise<void> => {
    if (child) throw new Error(`server on port ${port} is already running`);
    const running = spawn(NODE, [...(opts.nodeArgs ?? []), "--import", "tsx", "src/main.ts", "serve"], { cwd: ROOT, env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
    child = running;
    const append = (chunk: string) => {
      output += chunk;
      if (output.length > 2_000_000) output = output.slice(-1_000_000);
    };
    running.stdout?.setEncoding("utf8").on("data", append);
    running.stderr?.setEncoding("utf8").on("data", append);
    running.once("exit", (code, signal) => {
      if (child === running) {
        child = null;
        crashes.push(`server on port ${port} exited by itself (code ${code}, signal ${signal}):\n${output.slice(-4_000)}`);
      }
    });
    for (let i = 0; i < 300; i++) {
      if (child !== running) throw new Error(`server on port ${port} exited during startup:\n${output.slice(-4_000)}`);
      try {
        const res = await fetch(`${url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`server on port ${port} did not come up:\n${output.slice(-4_000)}`);
  };

  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child;
    child = null; // an exit we asked for is no crash
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once("exit", () => resolve());
      running.kill(signal);
    });
  };

  const server: ServerProcess = {
    url,
    port,
    pid: () => child?.pid,
    start,
    kill: () => end("SIGKILL"),
    stop: () => end("SIGTERM"),
    crashes: () => [...crashes],
    output: () => output,
    openFds() {
      const pid = child?.pid;
      if (pid === undefined) return null;
      try {
        return readdirSync(`/proc/${pid}/fd`).length;
      } catch {
        return null;
      }
    },
    rssBytes() {
      const pid = child?.pid;
      if (pid === undefined) return null;
      try {
        const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
        return kb === undefined ? null : Number(kb) * 1024;
      } catch {
        return null;
      }
    },
  };
  if (opts.start !== false) await start();
  return server;
}

/** A new organization `slug` with one key of every scope, written straight into the database. */
export async function provisionKey(databaseUrl: string, slug: string): Promise<{ organizationId: string; key: string }> {
  const orm = await openOrm({ databaseUrl, poolMax: 1 });
  try {
    const keys = new ApiKeyStore(orm.em.fork());
    const org = await keys.ensureOrganization(slug);
    const { key } = await keys.createKey(org.id, `${slug} key`, ["read", "write", "redeem"]);
    return { organizationId: org.id, key };
  } finally {
    await orm.close();
  }
}

/** Heap used and RSS as the process reports them on GET /metrics (prom-client default metrics); null without it. */
export async function scrapeMemory(url: string): Promise<{ heapUsedBytes: number; rssBytes: number } | null> {
  try {
    const res = await fetch(`${url}/metrics`);
    if (!res.ok) return null;
    const text = await res.text();
    const read = (name: string): number | null => {
      const m = new RegExp(`^${name} ([0-9.e+]+)`, "m").exec(text);
      return m?.[1] === undefined ? null : Number(m[1]);
    };
    const heap = read("nodejs_heap_size_used_bytes");
    const rss = read("process_resident_memory_bytes");
    return heap === null || rss === null ? null : { heapUsedBytes: heap, rssBytes: rss };
  } catch {
    return null;
  }
}

/**
 * Heap used right after a full garbage collection, in bytes, asked through the inspector of a
 * process started with `--inspect=127.0.0.1:<port>` (HeapProfiler.collectGarbage, then
 * Runtime.getHeapUsage): the live set, without the sawtooth of garbage not yet collected.
 */
export async function heapAfterGc(inspectPort: number): Promise<number | null> {
  try {
    const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as { webSocketDebuggerUrl?: string }[];
    const target = targets[0]?.webSocketDebuggerUrl;
    if (!target) return null;
    const ws = new WebSocket(target);
    const replies = new Map<number, (result: unknown) => void>();
    ws.addEventListener("message", (event) => {
      const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) replies.get(msg.id)?.(msg.result);
    });
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve());
      ws.addEventListener("error", () => reject(new Error("inspector connection failed")));
    });
    const call = (id: number, method: string) =>
      new Promise<unknown>((resolve) => {
        replies.set(id, resolve);
        ws.send(JSON.stringify({ id, method }));
      });
    try {
      await call(1, "HeapProfiler.collectGarbage");
      const usage = (await call(2, "Runtime.getHeapUsage")) as { usedSize?: number };
      return usage.usedSize ?? null;
    } finally {
      ws.close();
    }
  } catch {
    return null;
  }
}
