// The real service on a free port with a database of its own, plus tenants and keys to call it with.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { pino } from "pino";
import { Writable } from "node:stream";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
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
  /** A new organization with one key per requested scope set. */
  tenant(slug: string, scopes?: Scope[]): Promise<{ organizationId: string; key: string; keyId: string }>;
  stop(): Promise<void>;
}

export async function startTestApp(label: string, env: Record<string, string> = {}): Promise<TestApp> {
  const db = await createTestDatabase(label);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      done();
    },
  });
  // Each test file gets its own database and its own Redis key prefix.
  const config = loadConfig({
    DATABASE_URL: db.url,
    PORT: "0",
    LOG_LEVEL: "info",
    AUTH_CACHE_TTL_MS: "0",
    REDIS_KEY_PREFIX: `test:${db.name}:`,
    ...env,
  });
  const app = await startApp(config, pino({ level: "info" }, sink));
  return {
    app,
    db,
    url: app.server.url,
    logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    rawLogs: () => lines.join("\n"),
    async tenant(slug, scopes = ["read", "write", "redeem"]) {
      const keys = new ApiKeyStore(app.orm.em.fork());
      const org = await keys.ensureOrganization(slug);
      const { id, key } = await keys.createKey(org.id, `${slug} test key`, scopes);
      return { organizationId: org.id, key, keyId: id };
    },
    async stop() {
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
