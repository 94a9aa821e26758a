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

/** Resolves once the client can answer (or rejects after `timeoutMs`). */
export async function waitForRedis(client: RedisClient, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await client.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
