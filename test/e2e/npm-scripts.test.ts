// The npm scripts as an operator types them: `npm start &` in a shell, stopped with a signal sent
// to the PID `$!` gives; `npm start -- --help` and `npm run keys -- --help`. Each runs the machine's
// npm, which puts node_modules/.bin (Node 24) first on PATH, exactly as the README's commands do.
import { spawn } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/redis-server.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a bash script in the repository with a minimal environment plus `env`. */
function bash(script: string, env: Record<string, string>, onStdout?: (text: string) => void): Promise<Run> {
  // A process group of its own, so a failed test can take the shell and all it started with it.
  const child = spawn("bash", ["-c", script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  if (child.pid !== undefined) groups.add(child.pid);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    onStdout?.(stdout);
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const groups = new Set<number>();
afterAll(() => {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone, as it should be
    }
  }
});

/** True while something accepts connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    return res.ok;
  } catch {
    return false;
  }
}

describe("npm start in a shell, stopped through $!", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase("npm_start");
  });
  afterAll(async () => {
    await db?.drop();
  });

  it.each(["SIGTERM", "SIGINT"] as const)("%s to $! stops the server cleanly: exit 0, and nothing is left listening on the port", async (signal) => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let announce: (pid: number) => void = () => undefined;
    const pid = new Promise<number>((resolve) => (announce = resolve));
    // The shell starts npm in the background, tells us $!, and reports how that process exited.
    const run = bash(
      `npm start > "$LOG" 2>&1 &\nnpm_pid=$!\necho "pid=$npm_pid"\nwait $npm_pid\necho "exit=$?"`,
      { DATABASE_URL: db.url, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warn", REDIS_KEY_PREFIX: `test:${db.name}:`, LOG: "/dev/null" },
      (out) => {
        const found = /^pid=(\d+)$/m.exec(out)?.[1];
        if (found !== undefined) announce(Number(found));
      },
    );
    const npmPid = await pid;
    await expect.poll(() => healthy(url), { timeout: 30_000, interval: 200 }).toBe(true);

    process.kill(npmPid, signal);
    const result = await run;
    expect(result.stdout).toMatch(/^exit=0$/m);
    expect(await listening(port)).toBe(false);
  }, 60_000);

  it("a SIGTERM while it is still starting (loading, migrating) also ends in exit 0 with nothing listening", async () => {
    const port = await freePort();
    const run = bash(`npm start > "$LOG" 2>&1 &\nnpm_pid=$!\nsleep 0.7\nkill -TERM $npm_pid\nwait $npm_pid\necho "exit=$?"`, {
      DATABASE_URL: db.url,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      REDIS_KEY_PREFIX: `test:${db.name}:`,
      LOG: "/dev/null",
    });
    const result = await run;
    expect(result.stdout).toMatch(/^exit=0$/m);
    expect(await listening(port)).toBe(false);
  }, 60_000);
});

describe("--help", () => {
  // A database nobody listens on: help must not try to reach it.
  const unreachable = async () => ({ DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/promotions`, PORT: String(await freePort()) });

  it("npm start -- --help prints usage and exits 0 without starting anything", async () => {
    const env = await unreachable();
    const result = await bash("npm start --silent -- --help", env);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(result.stdout).toMatch(/^usage:/m);
    expect(result.stdout).toContain("serve");
    expect(result.stdout).toContain("DATABASE_URL");
    expect(await listening(Number(env.PORT))).toBe(false);
  });

  it("npm run keys -- --help prints the keys usage and exits 0", async () => {
    const result = await bash("npm run keys --silent -- --help", await unreachable());
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(result.stdout).toMatch(/^usage:/m);
    expect(result.stdout).toContain("npm run keys -- create --org <slug>");
    expect(result.stdout).toContain("npm run keys -- revoke <key-id>");
    expect(result.stderr).toBe("");
  });
});
