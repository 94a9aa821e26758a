import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { client, startTestApp, type Protocol, type Replica, type TestApp } from "../support/app.js";

// GET /metrics through the real server: Prometheus text on the service's port, no API key, and
// counters that move with the calls made (RPCs by code, redemption outcomes, Lua latency, health).

let t: TestApp;
let tenant: { organizationId: string; key: string; keyId: string };
const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];
const REDEEM = { service: "promotions.v1.RedemptionService", method: "RedeemPromotion" };
const VALIDATE = { service: "promotions.v1.RedemptionService", method: "ValidateCode" };

/** gRPC is counted on both lanes: t's (grpc-js) and a connect-lane replica's, each in its own registry. */
let connectLane: Replica;

beforeAll(async () => {
  t = await startTestApp("metrics", { GRPC_LANE: "grpc-js" });
  connectLane = await t.replica({ GRPC_LANE: "connect" });
  tenant = await t.tenant("metrics-co");
});

afterAll(async () => {
  await t?.stop();
});

async function scrape(url = t.url): Promise<{ status: number; contentType: string | null; text: string }> {
  const res = await fetch(`${url}/metrics`);
  return { status: res.status, contentType: res.headers.get("content-type"), text: await res.text() };
}

/** The value of the sample `name` whose labels include `labels`; 0 when there is none yet. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return 0;
}

async function refused(work: Promise<unknown>): Promise<Code> {
  try {
    await work;
  } catch (error) {
    return ConnectError.from(error).code;
  }
  throw new Error("expected a refusal");
}

describe("GET /metrics", () => {
  it("serves Prometheus text without an API key", async () => {
    const { status, contentType, text } = await scrape();
    expect(status).toBe(200);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toContain("# TYPE promotions_rpc_calls_total counter");
    expect(text).toContain("# TYPE promotions_lua_script_duration_seconds histogram");
  });

  it.each<[string, () => string, Protocol]>([
    ["Connect", () => t.url, "connect-json"],
    ["gRPC on the grpc-js lane", () => t.url, "grpc"],
    ["gRPC on the connect lane", () => connectLane.url, "grpc"],
  ])("counts RPCs by code, redemption outcomes by reason and Lua calls by script (%s)", async (name, urlOf, protocol) => {
    const url = urlOf();
    const code = `METER-${name.replace(/\W+/g, "-").toUpperCase()}`;
    const promotions = client(PromotionService, t.url, tenant.key);
    const redemptions = client(RedemptionService, url, tenant.key, protocol);
    const created = (await promotions.createPromotion({ name: "Metered", code, effects: TEN_PERCENT, maxRedemptionsPerCustomer: 1n })).promotion as Promotion;
    await promotions.activatePromotion({ id: created.id });

    const before = (await scrape(url)).text;
    await redemptions.redeemPromotion({ code, customerId: "m1" });
    expect(await refused(redemptions.redeemPromotion({ code, customerId: "m1" }))).toBe(Code.ResourceExhausted);
    expect(await refused(redemptions.redeemPromotion({ code: "NO-SUCH-CODE", customerId: "m2" }))).toBe(Code.NotFound);
    expect((await redemptions.validateCode({ code, customerId: "m3" })).valid).toBe(true);
    expect(await refused(redemptions.redeemPromotion({ code, customerId: "" }))).toBe(Code.InvalidArgument);
    expect(await refused(client(RedemptionService, url, null, protocol).validateCode({ code, customerId: "m4" }))).toBe(Code.Unauthenticated);
    const after = (await scrape(url)).text;

    const moved = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    expect(moved("promotions_rpc_calls_total", { ...REDEEM, code: "ok" })).toBe(1);
    expect(moved("promotions_rpc_calls_total", { ...REDEEM, code: "resource_exhausted" })).toBe(1);
    expect(moved("promotions_rpc_calls_total", { ...REDEEM, code: "not_found" })).toBe(1);
    expect(moved("promotions_rpc_calls_total", { ...REDEEM, code: "invalid_argument" })).toBe(1);
    expect(moved("promotions_rpc_calls_total", { ...VALIDATE, code: "ok" })).toBe(1);
    expect(moved("promotions_rpc_calls_total", { ...VALIDATE, code: "unauthenticated" })).toBe(1);
    expect(moved("promotions_rpc_duration_seconds_count", { ...REDEEM, code: "ok" })).toBe(1);
    expect(sample(after, "promotions_rpc_duration_seconds_bucket", { ...REDEEM, code: "ok", le: "+Inf" })).toBeGreaterThanOrEqual(1);

    expect(moved("promotions_redemption_outcomes_total", { reason: "admitted" })).toBe(1);
    expect(moved("promotions_redemption_outcomes_total", { reason: "customer_limit_reached" })).toBe(1);
    expect(moved("promotions_redemption_outcomes_total", { reason: "code_not_found" })).toBe(1);

    // Two reserve calls for the redeems that reached Redis, one (mode "check") for ValidateCode.
    expect(moved("promotions_lua_script_duration_seconds_count", { script: "reserve" })).toBeGreaterThanOrEqual(3);
    expect(sample(after, "promotions_lua_script_duration_seconds_sum", { script: "reserve" })).toBeGreaterThan(0);
  });

  it("counts an idempotent replay as a duplicate, not a second admission", async () => {
    const promotions = client(PromotionService, t.url, tenant.key);
    const redemptions = client(RedemptionService, t.url, tenant.key);
    const created = (await promotions.createPromotion({ name: "Replayed", code: "REPLAY", effects: TEN_PERCENT })).promotion as Promotion;
    await promotions.activatePromotion({ id: created.id });
    const before = (await scrape()).text;
    const first = await redemptions.redeemPromotion({ code: "REPLAY", customerId: "r1", idempotencyKey: "order-1" });
    const again = await redemptions.redeemPromotion({ code: "REPLAY", customerId: "r1", idempotencyKey: "order-1" });
    expect(again.redemption?.id).toBe(first.redemption?.id);
    const after = (await scrape()).text;
    const moved = (reason: string) => sample(after, "promotions_redemption_outcomes_total", { reason }) - sample(before, "promotions_redemption_outcomes_total", { reason });
    expect(moved("admitted")).toBe(1);
    expect(moved("duplicate")).toBe(1);
  });

  it("reports Redis and Postgres up, the Postgres pool and the process", async () => {
    const { text } = await scrape();
    expect(sample(text, "promotions_redis_up")).toBe(1);
    expect(sample(text, "promotions_postgres_up")).toBe(1);
    expect(sample(text, "promotions_postgres_pool_connections", { state: "total" })).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^promotions_postgres_pool_connections\{state="idle"\} \d+$/m);
    expect(text).toMatch(/^promotions_postgres_pool_waiting \d+$/m);
    expect(sample(text, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(text).toContain("# TYPE nodejs_eventloop_lag_seconds gauge");
  });

  it("reads promotions_postgres_pool_waiting 0 on an idle server, scrape after scrape", async () => {
    // Nothing else runs: any query waiting for a connection would be the scrape's own probe.
    const waiting: number[] = [];
    for (let i = 0; i < 10; i++) {
      const { text } = await scrape();
      expect(text).toMatch(/^promotions_postgres_pool_waiting \d+$/m);
      waiting.push(sample(text, "promotions_postgres_pool_waiting"));
    }
    expect(waiting).toEqual(Array<number>(10).fill(0));
  });

  it("answers other paths and methods as before (not found for plain HTTP)", async () => {
    expect((await fetch(`${t.url}/metrics`, { method: "POST" })).status).not.toBe(200);
    expect((await fetch(`${t.url}/metricsx`)).status).toBe(404);
  });
});
