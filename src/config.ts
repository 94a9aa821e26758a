// Environment, read and validated once into a frozen, typed object. Every other module takes
// what it needs from here; nothing else reads process.env.
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

export const GRPC_LANES = ["grpc-js", "connect"] as const;
export type GrpcLane = (typeof GRPC_LANES)[number];

export interface Config {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  /** host:port pairs of a Redis Cluster; when non-empty it is used instead of redisUrl. */
  readonly redisClusterNodes: readonly string[];
  /** Put in front of every Redis key (one Redis can serve several deployments or test files). */
  readonly redisKeyPrefix: string;
  /** How often overdue reservations are settled. */
  readonly sweepIntervalMs: number;
  /** How long a Redis reservation may wait for its ledger row before the sweeper settles it. */
  readonly reservationTtlMs: number;
  readonly host: string;
  readonly port: number;
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  readonly corsOrigins: readonly string[];
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  /**
   * GRPC_LANE: who answers gRPC (application/grpc) on plaintext HTTP/2 connections. `grpc-js`
   * (default): a @grpc/grpc-js server, several times cheaper per call (src/server/grpc-lane.ts);
   * `connect`: connect-node, like Connect and gRPC-Web (for comparison and tests).
   */
  readonly grpcLane: GrpcLane;
  /** Largest request body accepted, in bytes. */
  readonly maxBodyBytes: number;
  /** How long shutdown waits for in-flight calls before closing connections. */
  readonly shutdownGraceMs: number;
  /** How long a verified API key is trusted without asking Postgres again (0 = always ask). */
  readonly authCacheTtlMs: number;
  /** AUTH_FAILURES_PER_MINUTE / AUTH_FAILURE_BURST: lookups of keys not known valid, per client address (0 = no limit). */
  readonly authFailuresPerMinute: number;
  readonly authFailureBurst: number;
  /** METRICS_TOKEN: when set, GET /metrics needs `authorization: Bearer <token>`. */
  readonly metricsToken: string | null;
  /** What one connection, stream or request may hold (src/server/). */
  readonly transport: TransportLimits;
  /**
   * OTEL_EXPORTER_OTLP_ENDPOINT: base URL of an OTLP/HTTP collector (e.g. http://127.0.0.1:4318);
   * spans go to <endpoint>/v1/traces. Unset: no tracer provider is registered and tracing is a no-op.
   */
  readonly otlpEndpoint: string | null;
  /** OTEL_SERVICE_NAME: the service.name of exported spans. */
  readonly otelServiceName: string;
  /** Server processes sharing the port (node:cluster); 1 = a single process, no cluster. */
  readonly workers: number;
  /** Per-API-key abuse limits of ValidateCode and RedeemPromotion (src/api/rate-limit.ts). */
  readonly rateLimits: RateLimits;
  /** EVENTS_POLL_MS: how often StreamEvents and the webhook dispatcher look for new events. */
  readonly eventsPollMs: number;
  /** Webhook delivery (src/events/). */
  readonly webhooks: WebhookConfig;
  /** Where SimulatePromotionImpact runs (src/promotions/forecast-pool.ts). */
  readonly forecasts: ForecastConfig;
}

/** The worker threads impact forecasts run on, off the event loop. */
export interface ForecastConfig {
  /** FORECAST_WORKERS: worker threads, one forecast each at a time; default min(2, cores - 1), at least 1. */
  readonly workers: number;
  /** FORECAST_QUEUE_LIMIT: forecasts that may wait for a worker; one more is refused RESOURCE_EXHAUSTED (0 = none wait). */
  readonly queueLimit: number;
}

/** How webhooks are delivered. */
export interface WebhookConfig {
  /**
   * WEBHOOK_ALLOW_PRIVATE_NETWORKS=true: endpoints may resolve to loopback, private and link-local
   * addresses, and use http on loopback (development and tests). Off: refused, at creation and
   * again before every attempt.
   */
  readonly allowPrivateNetworks: boolean;
  /** WEBHOOK_DNS_SERVERS: `ip[:port],…` resolving endpoint hosts; empty = the system's resolvers. */
  readonly dnsServers: readonly string[];
  /** WEBHOOK_RETRY_BASE_SECONDS: first retry delay; each next one doubles (with jitter), up to 3 h. */
  readonly retryBaseSeconds: number;
  /** WEBHOOK_MAX_ATTEMPTS: attempts per delivery before it fails (17 at base 10 s ≈ a day). */
  readonly maxAttempts: number;
  /** WEBHOOK_CONCURRENCY: deliveries one process sends at once. */
  readonly concurrency: number;
}

/** Limits of the listener: how many connections, how many streams on one, and how long each may idle. */
export interface TransportLimits {
  /** MAX_CONNECTIONS: open connections per process; at the limit the longest-idle one is closed for a new one. */
  readonly maxConnections: number;
  /** HTTP2_MAX_CONCURRENT_STREAMS: advertised to every HTTP/2 client; streams beyond it are refused. */
  readonly http2MaxConcurrentStreams: number;
  /** REQUEST_HEADERS_TIMEOUT_MS: a connection must send its first request (HTTP/2: preface and first frame; HTTP/1.1: a request's headers) within this time. */
  readonly requestHeadersTimeoutMs: number;
  /** BODY_TIMEOUT_MS: a request's body must have arrived whole within this time of its headers. */
  readonly bodyTimeoutMs: number;
  /** IDLE_CONNECTION_TIMEOUT_MS: a connection with no call in flight for this long is closed (HTTP/2: GOAWAY). */
  readonly idleConnectionTimeoutMs: number;
}

/** Token buckets per API key; a rate or burst of 0 turns that limit off. */
export interface RateLimits {
  /** RATE_LIMIT_PER_SECOND: limited calls per second, per key. */
  readonly perSecond: number;
  /** RATE_LIMIT_BURST: calls a key may make at once after being idle. */
  readonly burst: number;
  /** CODE_GUESS_PER_MINUTE: unknown codes a key may look up per minute. */
  readonly codeGuessesPerMinute: number;
  /** CODE_GUESS_BURST: unknown codes a key may look up at once. */
  readonly codeGuessBurst: number;
}

const MAX_WORKERS = 64;
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Reads the configuration from an environment (process.env by default); throws ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer between ${min} and ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  };
  const list = (name: string): string[] =>
    (env[name] ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);

  const grpcLane = (env.GRPC_LANE || "grpc-js").toLowerCase();
  if (!(GRPC_LANES as readonly string[]).includes(grpcLane)) {
    problems.push(`GRPC_LANE must be one of ${GRPC_LANES.join(", ")} (got "${env.GRPC_LANE}")`);
  }

  const logLevel = (env.LOG_LEVEL ?? "info").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")} (got "${env.LOG_LEVEL}")`);
  }
  const certFile = env.TLS_CERT ?? "";
  const keyFile = env.TLS_KEY ?? "";
  if ((certFile === "") !== (keyFile === "")) {
    problems.push("TLS_CERT and TLS_KEY must be set together");
  }
  const databaseUrl = env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/promotions";
  if (!/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push(`DATABASE_URL must be a postgres:// URL (got "${databaseUrl.replace(/\/\/[^@]*@/, "//***@")}")`);
  }

  const redisKeyPrefix = env.REDIS_KEY_PREFIX ?? "prm:";
  if (/[{}]/.test(redisKeyPrefix)) problems.push(`REDIS_KEY_PREFIX must not contain braces (got "${redisKeyPrefix}")`);

  const otlpEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT || null;
  if (otlpEndpoint !== null && !/^https?:\/\//.test(otlpEndpoint)) {
    problems.push(`OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL (got "${otlpEndpoint}")`);
  }

  const bool = (name: string, fallback: boolean): boolean => {
    const raw = (env[name] ?? "").trim().toLowerCase();
    if (raw === "") return fallback;
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    problems.push(`${name} must be true or false (got "${env[name]}")`);
    return fallback;
  };
  const dnsServers = list("WEBHOOK_DNS_SERVERS");
  for (const server of dnsServers) {
    if (!/^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?|\[[0-9a-f:]+\](:\d{1,5})?|[0-9a-f:]+)$/i.test(server)) {
      problems.push(`WEBHOOK_DNS_SERVERS must be ip[:port] entries separated by commas (got "${server}")`);
    }
  }
  const metricsToken = env.METRICS_TOKEN ?? "";
  if (metricsToken !== "" && !/^[\x21-\x7e]{16,512}$/.test(metricsToken)) {
    problems.push("METRICS_TOKEN must be 16 to 512 printable characters without spaces"); // never echoed: it is a secret
  }

  const rateLimitPerSecond = int("RATE_LIMIT_PER_SECOND", 5_000, 0, 10_000_000);
  const codeGuessesPerMinute = int("CODE_GUESS_PER_MINUTE", 30, 0, 1_000_000);

  const config: Config = {
    databaseUrl,
    redisUrl: env.REDIS_URL || "redis://127.0.0.1:6379",
    redisClusterNodes: list("REDIS_CLUSTER_NODES"),
    redisKeyPrefix,
    sweepIntervalMs: int("SWEEP_INTERVAL_MS", 2_000, 50, 600_000),
    reservationTtlMs: int("RESERVATION_TTL_MS", 10_000, 100, 600_000),
    host: env.HOST || "127.0.0.1",
    port: int("PORT", 8080, 0, 65535),
    logLevel: logLevel as Config["logLevel"],
    corsOrigins: list("CORS_ORIGINS"),
    tls: certFile && keyFile ? { certFile, keyFile } : null,
    grpcLane: grpcLane as GrpcLane,
    maxBodyBytes: int("MAX_BODY_BYTES", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    shutdownGraceMs: int("SHUTDOWN_GRACE_MS", 10_000, 0, 300_000),
    authCacheTtlMs: int("AUTH_CACHE_TTL_MS", 5_000, 0, 3_600_000),
    // Far more than a misconfigured client needs to notice its mistake, far fewer queries than a flood.
    authFailuresPerMinute: int("AUTH_FAILURES_PER_MINUTE", 60, 0, 1_000_000),
    authFailureBurst: int("AUTH_FAILURE_BURST", 20, 0, 1_000_000),
    metricsToken: metricsToken === "" ? null : metricsToken,
    transport: Object.freeze({
      maxConnections: int("MAX_CONNECTIONS", defaultMaxConnections(), 16, 1_000_000),
      // What Envoy and most gRPC servers advertise; a client needing more opens another connection.
      http2MaxConcurrentStreams: int("HTTP2_MAX_CONCURRENT_STREAMS", 100, 1, 10_000),
      requestHeadersTimeoutMs: int("REQUEST_HEADERS_TIMEOUT_MS", 10_000, 100, 600_000),
      // 4 MiB (MAX_BODY_BYTES) in 30 s is 140 KB/s: slower than that is an attack, not a client.
      bodyTimeoutMs: int("BODY_TIMEOUT_MS", 30_000, 100, 3_600_000),
      // Longer than the 60 s idle timeout of common load balancers, so they close first.
      idleConnectionTimeoutMs: int("IDLE_CONNECTION_TIMEOUT_MS", 120_000, 100, 86_400_000),
    }),
    otlpEndpoint,
    otelServiceName: env.OTEL_SERVICE_NAME || "promotions",
    // Every core in production; one process elsewhere (tests, a laptop), where a cluster only
    // multiplies connections to Postgres and Redis.
    workers: int("WORKERS", env.NODE_ENV === "production" ? Math.min(availableParallelism(), MAX_WORKERS) : 1, 1, MAX_WORKERS),
    // A guard against runaway clients, not a quota: well above what one replica serves (the
    // bench: ~2,200 validations/s on 2 cores), so real checkout traffic never meets it.
    rateLimits: Object.freeze({
      perSecond: rateLimitPerSecond,
      burst: int("RATE_LIMIT_BURST", 2 * rateLimitPerSecond, 0, 100_000_000),
      codeGuessesPerMinute,
      codeGuessBurst: int("CODE_GUESS_BURST", codeGuessesPerMinute, 0, 1_000_000),
    }),
    eventsPollMs: int("EVENTS_POLL_MS", 250, 10, 60_000),
    webhooks: Object.freeze({
      allowPrivateNetworks: bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", false),
      dnsServers: Object.freeze(dnsServers),
      retryBaseSeconds: int("WEBHOOK_RETRY_BASE_SECONDS", 10, 1, 3_600),
      maxAttempts: int("WEBHOOK_MAX_ATTEMPTS", 17, 1, 100),
      concurrency: int("WEBHOOK_CONCURRENCY", 8, 1, 256),
    }),
    forecasts: Object.freeze({
      // One core stays for the event loop; more than two forecasts at once only share the cores slower.
      workers: int("FORECAST_WORKERS", Math.max(1, Math.min(2, availableParallelism() - 1)), 1, 64),
      queueLimit: int("FORECAST_QUEUE_LIMIT", 8, 0, 10_000),
    }),
  };
  if (problems.length > 0) throw new ConfigError(problems.join("; "));
  return Object.freeze(config);
}

/** The transport limits a production deployment gets when nothing is configured. */
export function defaultTransportLimits(): TransportLimits {
  return loadConfig({}).transport;
}

/** Connections that fit in the open-file limit with room for the pools, logs and files: 10,000 at most. */
function defaultMaxConnections(): number {
  const limit = openFileLimit();
  return limit === null ? 10_000 : Math.max(16, Math.min(10_000, limit - 256));
}

/** The soft limit on open files of this process (Linux), or null when it cannot be read. */
function openFileLimit(): number | null {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1];
    return line === undefined || line === "unlimited" ? null : Number(line);
  } catch {
    return null;
  }
}
