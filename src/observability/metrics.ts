import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { RedisClient } from "../counters/redis.js";
import type { MikroORM } from "../store/orm.js";

// Every Prometheus metric of one running app, in a registry of its own (never prom-client's global
// one: tests start several apps in one process). GET /metrics serves it (metrics-route.ts).
// Instruments are filled where things happen: RPCs by an interceptor, redemption outcomes by the
// Redeemer's onOutcome, script latency by Counters' observer. Health is read at scrape time, but
// Postgres is probed on a schedule of its own: a scrape (or a flood of them) never sends a query.

export type RpcLabels = "service" | "method" | "code";

export interface Metrics {
  readonly registry: Registry;
  /** Calls by procedure and final Connect code ("ok", "not_found", …). */
  readonly rpcCalls: Counter<RpcLabels>;
  readonly rpcSeconds: Histogram<RpcLabels>;
  /** RedeemPromotion's decisions: "admitted", "duplicate" or the refusal's ErrorDetail code. */
  readonly redemptions: Counter<"reason">;
  /** One observation per Lua script call, by script name (reserve, confirm, …). */
  readonly scriptSeconds: Histogram<"script">;
  /** Stops the Postgres probe. */
  close(): void;
}

/** How long the probe waits for Postgres to answer `select 1` before reporting it down. */
const PG_PROBE_TIMEOUT_MS = 1_000;
/** How often Postgres is probed, whether or not anyone scrapes. */
const PG_PROBE_INTERVAL_MS = 5_000;

export function createMetrics(deps: { redis: RedisClient; orm: MikroORM }): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const rpcCalls = new Counter({
    name: "promotions_rpc_calls_total",
    help: "RPCs handled, by service, method and Connect code.",
    labelNames: ["service", "method", "code"] as const,
    registers,
  });
  const rpcSeconds = new Histogram({
    name: "promotions_rpc_duration_seconds",
    help: "RPC handling time, from the first interceptor to the response (streams: to their end).",
    labelNames: ["service", "method", "code"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const redemptions = new Counter({
    name: "promotions_redemption_outcomes_total",
    help: "RedeemPromotion decisions: admitted, duplicate (answered by an earlier redemption) or the refusal code.",
    labelNames: ["reason"] as const,
    registers,
  });
  const scriptSeconds = new Histogram({
    name: "promotions_lua_script_duration_seconds",
    help: "Redis Lua script round trips, by script.",
    labelNames: ["script"] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
    registers,
  });

  const { redis, orm } = deps;
  const postgres = new PostgresProbe(orm);
  const pool = new PoolReader(orm);
  new Gauge({
    name: "promotions_redis_up",
    help: "1 while the Redis client is connected and ready, else 0 (with WORKERS > 1: of every worker).",
    registers,
    aggregator: "min",
    collect() {
      this.set(redis.status === "ready" ? 1 : 0);
    },
  });
  new Gauge({
    name: "promotions_postgres_up",
    help: `1 when Postgres answered the last select 1 (sent every ${PG_PROBE_INTERVAL_MS / 1000} s) within ${PG_PROBE_TIMEOUT_MS} ms, else 0 (with WORKERS > 1: of every worker).`,
    registers,
    aggregator: "min",
    async collect() {
      this.set((await postgres.up()) ? 1 : 0);
    },
  });
  new Gauge({
    name: "promotions_postgres_pool_connections",
    help: "Connections of the Postgres pool: total (open) and idle.",
    labelNames: ["state"] as const,
    registers,
    collect() {
      const stats = pool.stats();
      this.set({ state: "total" }, stats?.totalCount ?? 0);
      this.set({ state: "idle" }, stats?.idleCount ?? 0);
    },
  });
  new Gauge({
    name: "promotions_postgres_pool_waiting",
    help: "Queries waiting for a free connection of the Postgres pool.",
    registers,
    collect() {
      this.set(pool.stats()?.waitingCount ?? 0);
    },
  });

  return { registry, rpcCalls, rpcSeconds, redemptions, scriptSeconds, close: () => postgres.stop() };
}

/** `select 1` every PG_PROBE_INTERVAL_MS from creation on; scrapes read the last answer. */
class PostgresProbe {
  private last: Promise<boolean>;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly orm: MikroORM) {
    this.last = postgresAnswers(orm, PG_PROBE_TIMEOUT_MS);
    this.timer = setInterval(() => this.probe(), PG_PROBE_INTERVAL_MS).unref();
  }

  /** The last probe's answer (the first scrape may wait up to PG_PROBE_TIMEOUT_MS for the first one). */
  up(): Promise<boolean> {
    return this.last;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private probe(): void {
    // The previous answer stands until this one is in, so scrapes never wait for a probe.
    void postgresAnswers(this.orm, PG_PROBE_TIMEOUT_MS).then((up) => (this.last = Promise.resolve(up)));
  }
}

async function postgresAnswers(orm: MikroORM, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const probe = orm.em
    .getConnection()
    .execute("select 1", [], "all")
    .then(
      () => true,
      () => false,
    );
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface PoolStats {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
}

/**
 * The counts node-postgres' Pool keeps (MikroORM 7 runs Kysely over a pg Pool), read synchronously.
 * Reading them must not wait: a scrape also sends promotions_postgres_up's `select 1`, and a query
 * that has asked the pool for a client counts as waiting until the next tick, so an awaited read
 * saw that probe and reported 1 on an idle server.
 */
class PoolReader {
  private pool: unknown = null;

  constructor(orm: MikroORM) {
    orm.em
      .getConnection()
      .getNativeClient()
      .then(
        (pool) => (this.pool = pool),
        () => undefined,
      );
  }

  /** null until the pool is known (the first instants after start), or if it is not a pg Pool. */
  stats(): PoolStats | null {
    if (typeof this.pool !== "object" || this.pool === null) return null;
    const { totalCount, idleCount, waitingCount } = this.pool as Partial<Record<keyof PoolStats, unknown>>;
    if (typeof totalCount !== "number" || typeof idleCount !== "number" || typeof waitingCount !== "number") return null;
    return { totalCount, idleCount, waitingCount };
  }
}
