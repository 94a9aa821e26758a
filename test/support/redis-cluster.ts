// A private three-master Redis Cluster on free loopback ports (Debian's redis-server and
// redis-cli), for the suites that must hold on a cluster as well as on one Redis. Never 6379.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cluster, Redis } from "ioredis";
import { freePort } from "./redis-server.js";

const run = promisify(execFile);
const MASTERS = 3;

export interface PrivateCluster {
  /** "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3": the value of REDIS_CLUSTER_NODES. */
  nodes: string;
  ports: number[];
  /** A cluster client for the test itself (autopipelining off, like the service's). */
  connect(): Cluster;
  /** Error replies the masters sent since start, by prefix (INFO errorstats), e.g. { NOSCRIPT: 3 }. */
  errorStats(): Promise<Record<string, number>>;
  /** Kills every node and removes their directory. */
  stop(): Promise<void>;
}

/** Distinct free ports (a port freed by one freePort() call could be handed out again by the next). */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

async function ask(port: number, work: (r: Redis) => Promise<string>): Promise<string | null> {
  const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on("error", () => undefined);
  try {
    await probe.connect();
    return await work(probe);
  } catch {
    return null;
  } finally {
    probe.disconnect();
  }
}

async function until(what: string, done: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startRedisCluster(): Promise<PrivateCluster> {
  // Client ports and cluster-bus ports are both picked free: the default bus port (port + 10000)
  // can fall outside the port range for an ephemeral port.
  const all = await freePorts(MASTERS * 2);
  const ports = all.slice(0, MASTERS);
  const busPorts = all.slice(MASTERS);
  const dir = mkdtempSync(join(tmpdir(), "prm-redis-cluster-"));
  const children: ChildProcess[] = [];

  const stop = async (): Promise<void> => {
    await Promise.all(
      children.splice(0).map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGKILL");
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    ports.forEach((port, i) => {
      const child = spawn(
        "redis-server",
        [
          "--port", String(port), "--cluster-port", String(busPorts[i]), "--bind", "127.0.0.1",
          "--cluster-enabled", "yes", "--cluster-config-file", join(dir, `nodes-${port}.conf`), "--cluster-node-timeout", "5000",
          "--save", "", "--appendonly", "no", "--dir", dir,
        ],
        { stdio: "ignore" },
      );
      children.push(child);
    });
    for (const port of ports) await until(`node ${port} did not answer PING`, async () => (await ask(port, (r) => r.ping())) === "PONG");

    await run("redis-cli", ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "0", "--cluster-yes"], { timeout: 20_000 });
    for (const port of ports) {
      await until(`node ${port} did not reach cluster_state:ok`, async () => /cluster_state:ok/.test((await ask(port, (r) => r.cluster("INFO"))) ?? ""));
    }
    // Error counts start at zero once the cluster is up (creating it leaves some behind).
    for (const port of ports) await ask(port, async (r) => String(await r.config("RESETSTAT")));
  } catch (error) {
    await stop();
    throw error;
  }

  const startupNodes = ports.map((port) => ({ host: "127.0.0.1", port }));
  return {
    nodes: ports.map((p) => `127.0.0.1:${p}`).join(","),
    ports,
    connect: () => new Cluster(startupNodes, { enableAutoPipelining: false, redisOptions: { maxRetriesPerRequest: 1 } }),
    async errorStats() {
      const out: Record<string, number> = {};
      for (const port of ports) {
        const info = (await ask(port, (r) => r.info("errorstats"))) ?? "";
        for (const [, prefix = "", count = "0"] of info.matchAll(/^errorstat_([^:]+):count=(\d+)/gm)) out[prefix] = (out[prefix] ?? 0) + Number(count);
      }
      return out;
    },
    stop,
  };
}
