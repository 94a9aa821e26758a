import { Cluster, Redis } from "ioredis";

// The Redis connection of the hot path. Autopipelining stays off: each checkout call is one script
// round trip, and batching them behind other calls would only add latency. Calls fail fast while
// Redis is unreachable (the client sees UNAVAILABLE and retries) instead of queueing without end.

export type RedisClient = Redis | Cluster;

export interface RedisOptions {
  url: string;
  /** host:port pairs; when non-empty a Redis Cluster client is made instead. */
  clusterNodes: readonly string[];
}

const COMMON = {
  enableAutoPipelining: false,
  maxRetriesPerRequest: 1,
  connectTimeout: 2_000,
  commandTimeout: 2_000,
  lazyConnect: false,
} as const;

export function createRedis(opts: RedisOptions): RedisClient {
  if (opts.clusterNodes.length > 0) {
    const nodes = opts.clusterNodes.map((hp) => {
      const [host = "127.0.0.1", port = "6379"] = hp.split(":");
      return { host, port: Number(port) };
    });
    // No offline queue: a cluster client queues calls while it is not connected and never fails
    // them (commandTimeout only covers calls sent to a node), so a checkout or waitForRedis would
    // hang for as long as the cluster is unreachable.
    return new Cluster(nodes, { enableAutoPipelining: false, enableOfflineQueue: false, redisOptions: COMMON, clusterRetryStrategy: (n) => Math.min(n * 100, 2_000) });
  }
  return new Redis(opts.url, { ...COMMON, retryStrategy: (n) => Math.min(n * 100, 2_000) });
}

/** How long a refused connection is retried at start-up: enough for a Redis that is still coming up. */
const REFUSED_GRACE_MS = 1_000;

/**
 * Resolves once the client can answer. Rejects with the connection's own error (ECONNREFUSED,
 * ENOTFOUND, …) rather than the client's "max retries" one: after REFUSED_GRACE_MS when nothing
 * accepts connections or the host does not exist, else after `timeoutMs`.
 */
export async function waitForRedis(client: RedisClient, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let connectionError: unknown;
  const onError = (error: unknown): void => {
    connectionError = error;
  };
  client.on("error", onError);
  try {
    for (;;) {
      try {
        await beforeDeadline(client.ping(), deadline);
        return;
      } catch (error) {
        const cause = connectionError ?? error;
        const definitive = /ECONNREFUSED|ENOTFOUND/.test(String((cause as { code?: unknown }).code ?? ""));
        if (Date.now() >= deadline || (definitive && Date.now() - started >= REFUSED_GRACE_MS)) throw cause;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    client.off("error", onError);
  }
}

function beforeDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("no answer in time")), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
