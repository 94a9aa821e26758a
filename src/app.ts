import { readFileSync } from "node:fs";
import { createContextValues, type Interceptor } from "@connectrpc/connect";
import { createCheckout } from "./checkout/checkout.js";
import { Sweeper } from "./checkout/sweeper.js";
import { Counters } from "./counters/counters.js";
import { createRedis, waitForRedis, type RedisClient } from "./counters/redis.js";
import { authInterceptor, keyVerifier } from "./api/interceptors/auth.js";
import { entityManagerKey } from "./api/context-keys.js";
import { loggingInterceptor } from "./api/interceptors/logging.js";
import { nulGuardInterceptor } from "./api/interceptors/nul-guard.js";
import { strictInputInterceptor } from "./api/interceptors/strict-input.js";
import { metricsInterceptor } from "./api/interceptors/metrics.js";
import { routes } from "./api/routes.js";
import { metricsRoute } from "./observability/metrics-route.js";
import { tracingInterceptor } from "./api/interceptors/tracing.js";
import { rateLimitInterceptor } from "./api/interceptors/rate-limit.js";
import { RateLimiter } from "./counters/rate-limiter.js";
import type { Config } from "./config.js";
import { plainRedisReason } from "./dependency-errors.js";
import type { Logger } from "./observability/logger.js";
import { createMetrics } from "./observability/metrics.js";
import { metricsSource } from "./observability/cluster-metrics.js";
import { PUBLIC_SERVICES, startServer, type RunningServer } from "./server/server.js";
import { ApiKeyStore } from "./store/api-keys.js";
import { openOrm, type MikroORM } from "./store/orm.js";
import { startTracing } from "./observability/tracing.js";
import { startEvents, type EventsRuntime } from "./events/runtime.js";
import { throttledNotice } from "./observability/throttled-log.js";
import { ForecastPool } from "./promotions/forecast-pool.js";

// Wires configuration, storage and transport into a running service. main.ts adds the process
// concerns (signals, exit codes, migrations); tests call startApp directly on a free port.

export interface App {
  server: RunningServer;
  orm: MikroORM;
  redis: RedisClient;
  counters: Counters;
  /** The worker threads SimulatePromotionImpact runs on. */
  forecasts: ForecastPool;
  /** Graceful stop: drain calls, then close the pool. */
  close(): Promise<void>;
}

/** A dependency the service cannot start without is unreachable; the message says how to fix it. */
export class DependencyError extends Error {
  override name = "DependencyError";
}

async function connectRedis(config: Config): Promise<RedisClient> {
  const redis = createRedis({ url: config.redisUrl, clusterNodes: config.redisClusterNodes });
  redis.on("error", () => undefined); // reported per call as UNAVAILABLE; reconnects by itself
  try {
    await waitForRedis(redis, 3_000);
  } catch (error) {
    redis.disconnect();
    const where = config.redisClusterNodes.length > 0 ? `the Redis Cluster at ${config.redisClusterNodes.join(",")}` : `Redis at ${new URL(config.redisUrl).host}`;
    throw new DependencyError(
      `cannot reach ${where}: ${plainRedisReason(error)}; start it (e.g. \`redis-server --daemonize yes --port 6379 --save ""\`) or set ${config.redisClusterNodes.length > 0 ? "REDIS_CLUSTER_NODES" : "REDIS_URL"}`,
    );
  }
  return redis;
}

/** Starts the service on a migrated database (`main.ts serve` migrates first). */
export async function startApp(config: Config, logger: Logger): Promise<App> {
  const orm = await openOrm({
    databaseUrl: config.databaseUrl,
    onReclaimed: throttledNotice(logger, "gave back a Postgres pool client whose connection ended while a failed COMMIT or ROLLBACK held it"),
  });
  let redis: RedisClient;
  try {
    redis = await connectRedis(config);
  } catch (error) {
    await orm.close();
    throw error;
  }
  const metrics = createMetrics({ redis, orm });
  let events: EventsRuntime;
  try {
    events = await startEvents(orm, config, logger, metrics.registry);
  } catch (error) {
    redis.disconnect();
    await orm.close();
    throw error;
  }
  const counters = new Counters(redis, config.redisKeyPrefix, (script, seconds) => metrics.scriptSeconds.observe({ script }, seconds));
  const checkout = createCheckout({
    orm,
    counters,
    reservationTtlMs: config.reservationTtlMs,
    onRedemption: (reason) => metrics.redemptions.inc({ reason }),
  });
  const sweeper = new Sweeper(orm, counters, logger, config.sweepIntervalMs);
  const onChanged = checkout.onChanged;
  // Threads start on the first forecast; until then the pool costs nothing.
  const forecasts = new ForecastPool({ databaseUrl: config.databaseUrl, ...config.forecasts, logger });

  const addressLimited = throttledNotice(logger, "unknown API keys from one client address are over its budget; refusing them without asking Postgres");
  const verify = keyVerifier((key) => new ApiKeyStore(orm.em.fork()).verify(key), {
    ttlMs: config.authCacheTtlMs,
    perAddressPerMinute: config.authFailuresPerMinute,
    perAddressBurst: config.authFailureBurst,
    onAddressLimited: (address) => addressLimited({ address }),
  });
  // Registered only when OTEL_EXPORTER_OTLP_ENDPOINT is set; close() flushes what is buffered.
  const tracing = startTracing({ endpoint: config.otlpEndpoint, serviceName: config.otelServiceName });
  // Order matters: logging sees the final code of everything below it, including auth refusals;
  // tracing and metrics sit outside it, so they see the code the client gets and time all of it.
  const interceptors: Interceptor[] = [
    ...(tracing ? [tracingInterceptor()] : []),
    metricsInterceptor(metrics),
    loggingInterceptor(logger),
    authInterceptor(verify, PUBLIC_SERVICES),
    nulGuardInterceptor(),
    strictInputInterceptor(),
    rateLimitInterceptor(new RateLimiter(redis, config.redisKeyPrefix, config.rateLimits), logger),
  ];
  // Handlers reach their EntityManager through ctx.values; one is forked only when a handler asks.
  const fork = () => orm.em.fork();
  const contextValues = () => createContextValues().set(entityManagerKey, fork);
  try {
    const server = await startServer({
      host: config.host,
      port: config.port,
      tls: config.tls ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } : undefined,
      grpcLane: config.grpcLane,
      corsOrigins: config.corsOrigins,
      maxBodyBytes: config.maxBodyBytes,
      shutdownGraceMs: config.shutdownGraceMs,
      limits: config.transport,
      routes: routes({ checkout, onChanged, events, eventsPollMs: config.eventsPollMs, forecasts }),
      interceptors,
      contextValues,
      extraHttpRoutes: metricsRoute(metrics.registry.contentType, metricsSource(metrics.registry), config.metricsToken),
      logger,
    });
    sweeper.start();
    return {
      server,
      orm,
      redis,
      counters,
      forecasts,
      async close() {
        events.endStreams();
        await server.close();
        await forecasts.close();
        metrics.close();
        await sweeper.stop();
        await events.close(config.shutdownGraceMs);
        await counters.flushConfirms();
        redis.disconnect();
        await orm.close();
        await tracing?.shutdown();
      },
    };
  } catch (error) {
    await forecasts.close();
    await events.close(0);
    metrics.close();
    redis.disconnect();
    await orm.close();
    await tracing?.shutdown();
    throw error;
  }
}

/** On a first run (no usable key anywhere) creates the `default` organization and one key with every scope. */
export async function ensureFirstRunKey(orm: MikroORM): Promise<string | null> {
  const keys = new ApiKeyStore(orm.em.fork());
  if (await keys.hasActiveKey()) return null;
  const org = await keys.ensureOrganization("default", "Default organization");
  const { key } = await keys.createKey(org.id, "first-run key", ["read", "write", "redeem"]);
  return key;
}
