// The real service on a free port with a database of its own, plus tenants and keys to call it with.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { pino } from "pino";
import { Writable } from "node:stream";
import { startApp, type App } from "../../src/app.js";
import { GRPC_LANES, loadConfig, type GrpcLane } from "../../src/config.js";
import { ApiKeyStore, type Scope } from "../../src/store/api-keys.js";
import { createTestDatabase, type TestDatabase } from "./database.js";

export interface TestApp {
  app: App;
  db: TestDatabase;
  url: string;
  /** Every log line the server wrote, parsed. */
  logs(): Record<string, unknown>[];
  /** Raw log text, for greps (e.g. that no key ever appears). */
  rawLogs(): string;
  /** The gRPC lane this server runs (GRPC_LANE; grpc-js unless `env` or TEST_GRPC_LANE say otherwise). */
  lane: GrpcLane;
  /**
   * Another server on the same database and Redis prefix (a replica), with `env` on top of this
   * one's: e.g. `{ GRPC_LANE: "connect" }` to drive both lanes against the same data. Stopped by stop().
   */
  replica(env: Record<string, string>): Promise<Replica>;
  /** The lanes that answered RPCs, from the log lines (`lane` field), each once. */
  lanesServed(): string[];
  /** A new organization with one key per requested scope set. */
  tenant(slug: string, scopes?: Scope[]): Promise<{ organizationId: string; key: string; keyId: string }>;
  stop(): Promise<void>;
}

/** A second server on a TestApp's data (TestApp.replica). */
export interface Replica {
  app: App;
  url: string;
  lane: GrpcLane;
  logs(): Record<string, unknown>[];
  lanesServed(): string[];
}

/** Both gRPC lanes (GRPC_LANE values), for describe.each. */
export const LANES: readonly GrpcLane[] = GRPC_LANES;

function logSink(): { sink: Writable; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      done();
    },
  });
  return { sink, lines };
}

const parsed = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
const lanesIn = (logs: Record<string, unknown>[]) => [...new Set(logs.filter((l) => l.msg === "rpc").map((l) => String(l.lane)))].sort();

export async function startTestApp(label: string, env: Record<string, string> = {}): Promise<TestApp> {
  const db = await createTestDatabase(label);
  const { sink, lines } = logSink();
  // Each test file gets its own database and its own Redis key prefix.
  const base = {
    DATABASE_URL: db.url,
    PORT: "0",
    LOG_LEVEL: "info",
    AUTH_CACHE_TTL_MS: "0",
    REDIS_KEY_PREFIX: `test:${db.name}:`,
    // TEST_GRPC_LANE=grpc-js runs a suite's gRPC calls on the grpc-js lane where the test names none.
    ...(process.env.TEST_GRPC_LANE ? { GRPC_LANE: process.env.TEST_GRPC_LANE } : {}),
    ...env,
  };
  const config = loadConfig(base);
  const app = await startApp(config, pino({ level: "info" }, sink));
  const replicas: App[] = [];
  return {
    app,
    db,
    url: app.server.url,
    lane: config.grpcLane,
    logs: () => parsed(lines),
    rawLogs: () => lines.join("\n"),
    lanesServed: () => lanesIn(parsed(lines)),
    async replica(extra) {
      const own = logSink();
      const replicaConfig = loadConfig({ ...base, ...extra });
      const replica = await startApp(replicaConfig, pino({ level: "info" }, own.sink));
      replicas.push(replica);
      return { app: replica, url: replica.server.url, lane: replicaConfig.grpcLane, logs: () => parsed(own.lines), lanesServed: () => lanesIn(parsed(own.lines)) };
    },
    async tenant(slug, scopes = ["read", "write", "redeem"]) {
      const keys = new ApiKeyStore(app.orm.em.fork());
      const org = await keys.ensureOrganization(slug);
      const { id, key } = await keys.createKey(org.id, `${slug} test key`, scopes);
      return { organizationId: org.id, key, keyId: id };
    },
    async stop() {
      await Promise.all(replicas.map((r) => r.close()));
      await app.close();
      await db.drop();
    },
  };
}

export type Protocol = "connect-json" | "connect-binary" | "grpc" | "grpc-web";

/** A transport of the given protocol that sends `key` on every call (or no key when null). */
export function transport(url: string, protocol: Protocol, key: string | null): Transport {
  const interceptors = key === null ? [] : [authHeader(key)];
  switch (protocol) {
    case "connect-json":
      return createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false, interceptors });
    case "connect-binary":
      return createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, interceptors });
    case "grpc":
      return createGrpcTransport({ baseUrl: url, interceptors });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors });
  }
}

const authHeader =
  (key: string): Interceptor =>
  (next) =>
  async (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };

export function client<S extends DescService>(service: S, url: string, key: string | null, protocol: Protocol = "connect-json"): Client<S> {
  return createClient(service, transport(url, protocol, key));
}
