import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { migrate } from "../../src/store/orm.js";
import { client, startTestApp, type TestApp } from "../support/app.js";
import { startPrivatePostgres, type PrivatePostgres } from "../support/postgres-server.js";

// What an unauthenticated caller can make the service ask Postgres. The server runs on a private
// PostgreSQL that logs every statement (log_statement = all), so the test counts the queries an
// attack caused instead of trusting the code: random API keys, one unknown key again and again,
// and /metrics scraped in a loop.

const PER_MINUTE = 60;
const BURST = 20;
const METRICS_TOKEN = "scrape-token-for-tests";

let pg: PrivatePostgres;
let t: TestApp;

beforeAll(async () => {
  pg = await startPrivatePostgres({ log_statement: "all" });
  const databaseUrl = pg.url("promotions_auth_abuse");
  await migrate({ databaseUrl });
  t = await startTestApp("auth_abuse", {
    DATABASE_URL: databaseUrl,
    AUTH_CACHE_TTL_MS: "5000",
    AUTH_FAILURES_PER_MINUTE: String(PER_MINUTE),
    AUTH_FAILURE_BURST: String(BURST),
    METRICS_TOKEN,
  });
});

afterAll(async () => {
  await t?.stop();
  await pg?.dispose();
});

/** Statements Postgres logged so far that match `pattern`. */
function statements(pattern: RegExp): number {
  return pg.log().split("\n").filter((line) => /LOG: {2}(statement|execute [^:]*):/.test(line) && pattern.test(line)).length;
}
const KEY_LOOKUPS = /from "api_keys"/;
const PROBES = /: select 1$/;

/** Waits until Postgres has written what it ran (its log is written as it goes, but not atomically with the answer). */
async function settledCount(pattern: RegExp): Promise<number> {
  let last = -1;
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const n = statements(pattern);
    if (n === last) return n;
    last = n;
  }
}

const randomKey = () => `prm_${randomBytes(32).toString("base64url")}`;

async function codeOf(work: Promise<unknown>): Promise<{ code: Code; detail: string | undefined }> {
  try {
    await work;
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: e.code, detail: e.findDetails(ErrorDetailSchema)[0]?.code };
  }
  throw new Error("expected a refusal");
}

describe("unknown API keys", () => {
  it("ask Postgres at most the client address's budget, however many random keys it sends", async () => {
    const before = await settledCount(KEY_LOOKUPS);
    const started = performance.now();
    const outcomes = await Promise.all(Array.from({ length: 300 }, () => codeOf(client(PromotionService, t.url, randomKey(), "grpc").listPromotions({}))));
    const elapsedS = (performance.now() - started) / 1000;
    const asked = (await settledCount(KEY_LOOKUPS)) - before;
    expect(asked).toBeGreaterThan(0);
    expect(asked).toBeLessThanOrEqual(BURST + (PER_MINUTE / 60) * elapsedS + 1);
    const unauthenticated = outcomes.filter((o) => o.code === Code.Unauthenticated && o.detail === "invalid_api_key").length;
    const limited = outcomes.filter((o) => o.code === Code.ResourceExhausted && o.detail === "too_many_invalid_keys").length;
    expect(unauthenticated + limited).toBe(300);
    expect(limited).toBeGreaterThan(0);
    // One warning line for the address, not one per refusal.
    const warned = t.logs().filter((l) => typeof l.msg === "string" && l.msg.startsWith("unknown API keys"));
    expect(warned.length).toBeGreaterThanOrEqual(1);
    expect(warned.length).toBeLessThanOrEqual(2);
  });

  it("keep answering keys that worked before, from that same address; a new key waits for the address's next token", async () => {
    await new Promise((r) => setTimeout(r, 1_100)); // one token back in the address's budget
    const tenant = await t.tenant("abuse-co");
    expect((await client(PromotionService, t.url, tenant.key).listPromotions({})).promotions).toEqual([]);
    for (let i = 0; i < 50; i++) await codeOf(client(PromotionService, t.url, randomKey()).listPromotions({}));
    expect((await client(PromotionService, t.url, tenant.key).listPromotions({})).promotions).toEqual([]);

    const late = await t.tenant("abuse-co");
    let retryMs = 0;
    try {
      await client(PromotionService, t.url, late.key).listPromotions({});
    } catch (error) {
      const e = ConnectError.from(error);
      expect(e.findDetails(ErrorDetailSchema)[0]?.code).toBe("too_many_invalid_keys");
      retryMs = Number(e.metadata.get("retry-after-ms"));
    }
    expect(retryMs).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, retryMs));
    expect((await client(PromotionService, t.url, late.key).listPromotions({})).promotions).toEqual([]);
  });

  it("ask Postgres once for one unknown key sent again and again", async () => {
    await new Promise((r) => setTimeout(r, 1_100)); // a token of the address's budget has come back
    const key = randomKey();
    const before = await settledCount(KEY_LOOKUPS);
    for (let i = 0; i < 100; i++) {
      const refused = await codeOf(client(PromotionService, t.url, key).listPromotions({}));
      expect(refused).toEqual({ code: Code.Unauthenticated, detail: "invalid_api_key" });
    }
    expect((await settledCount(KEY_LOOKUPS)) - before).toBe(1);
  });
});

describe("GET /metrics", () => {
  const scrape = (token?: string) => fetch(`${t.url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  it("answers 401 without the METRICS_TOKEN, and the metrics with it", async () => {
    const anonymous = await scrape();
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await anonymous.text()).not.toContain("promotions_");
    expect((await scrape("wrong")).status).toBe(401);
    const allowed = await scrape(METRICS_TOKEN);
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toMatch(/^promotions_postgres_up 1$/m);
  });

  it("does not ask Postgres per scrape", async () => {
    const before = await settledCount(PROBES);
    const started = performance.now();
    for (let i = 0; i < 50; i++) expect((await scrape(METRICS_TOKEN)).status).toBe(200);
    await Promise.all(Array.from({ length: 50 }, () => scrape()));
    const elapsedS = (performance.now() - started) / 1000;
    const probes = (await settledCount(PROBES)) - before;
    // The probe runs on its own schedule (every 5 s), whatever the scrapes.
    expect(probes).toBeLessThanOrEqual(Math.ceil(elapsedS / 5) + 1);
  });
});
