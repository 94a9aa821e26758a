import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";
import { openOrm } from "../../src/store/orm.js";
import { client, startTestApp, type TestApp } from "../support/app.js";
import { createTestDatabase } from "../support/database.js";
import { createForecastPromotion, seedSubscriptions } from "../support/forecast-seed.js";
import { freePort } from "../support/redis-server.js";
import { provisionKey } from "../support/server-process.js";

// SimulatePromotionImpact runs on a worker thread (src/promotions/forecast-pool.ts), so a forecast
// over 100,000 subscriptions never holds the event loop the other calls are answered on; the
// caller's deadline or cancellation stops it and frees the worker, a full queue is refused at once,
// and shutdown stops a running forecast. Through real clients; speed is the bench's
// (test/bench/impact.ts: health-check p99 idle and during a forecast).

const SUBSCRIPTIONS = 100_000;
let t: TestApp;
let big: { key: string; promotionId: string };
let small: { key: string; promotionId: string };


/** Resolves once the pool has taken a forecast onto its worker (so what follows happens during it). */
async function untilRunning(running: number, queued = 0): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const s = t.app.forecasts.state();
    if (s.running === running && s.queued === queued) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the pool never reached ${running} running, ${queued} queued: ${JSON.stringify(t.app.forecasts.state())}`);
}

function codeOf(error: unknown): { code: Code; detail: string | undefined } {
  const e = ConnectError.from(error);
  return { code: e.code, detail: e.findDetails(ErrorDetailSchema)[0]?.code };
}

/** How a call ended: "ok", or the code it failed with (handled at once, so no rejection goes unhandled). */
function outcome(call: Promise<unknown>): Promise<"ok" | Code> {
  return call.then(
    () => "ok" as const,
    (e: unknown) => codeOf(e).code,
  );
}

// A loaded 2-core machine prices 100,000 subscriptions in tens of seconds; these tests wait for it.
const LONG = 600_000;

beforeAll(async () => {
  // One worker and room for one waiting forecast, so each test sees exactly what it starts.
  t = await startTestApp("forecast", { FORECAST_WORKERS: "1", FORECAST_QUEUE_LIMIT: "1" });
  const tenant = await t.tenant("forecast-big");
  await seedSubscriptions(t.app.orm.em.fork().getConnection(), tenant.organizationId, SUBSCRIPTIONS);
  big = { key: tenant.key, promotionId: await createForecastPromotion(t.url, tenant.key) };
  const few = await t.tenant("forecast-small");
  await seedSubscriptions(t.app.orm.em.fork().getConnection(), few.organizationId, 30);
  small = { key: few.key, promotionId: await createForecastPromotion(t.url, few.key) };
}, 180_000);

/** Server processes this file started; killed at the end even when a test gave up on one. */
const servers = new Set<ChildProcess>();

afterAll(async () => {
  for (const child of servers) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await t?.stop();
});

/** A next forecast runs to the end: the worker was freed. */
async function expectWorkerFree(): Promise<void> {
  for (let i = 0; i < 200 && t.app.forecasts.state().running > 0; i++) await new Promise((r) => setTimeout(r, 25));
  expect(t.app.forecasts.state()).toMatchObject({ running: 0, queued: 0 });
  const next = await client(SimulationService, t.url, small.key, "grpc").simulatePromotionImpact({ promotionId: small.promotionId, periods: 3 }, { timeoutMs: 60_000 });
  expect(next.evaluatedSubscriptions).toBe(30n);
}

describe("SimulatePromotionImpact off the event loop", () => {
  it("answers health checks and GetPromotion on other connections while a 100,000-subscription forecast runs", async () => {
    const forecast = client(SimulationService, t.url, big.key, "grpc").simulatePromotionImpact({ promotionId: big.promotionId, periods: 12 }, { timeoutMs: 600_000 });
    let finished = false;
    void forecast.then(
      () => (finished = true),
      () => (finished = true),
    );
    await untilRunning(1);
    // Each client has a transport, hence an HTTP/2 connection, of its own.
    const health = client(Health, t.url, null, "grpc");
    const promotions = client(PromotionService, t.url, big.key, "connect-binary");
    let checks = 0;
    let reads = 0;
    while (!finished) {
      const [h, g] = await Promise.all([health.check({}), promotions.getPromotion({ id: big.promotionId })]);
      expect(h.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      expect(g.promotion?.id).toBe(big.promotionId);
      if (finished) break;
      checks++;
      reads++;
    }
    const r = await forecast;
    expect(r.evaluatedSubscriptions).toBe(BigInt(SUBSCRIPTIONS));
    expect(r.eligibleSubscriptions).toBe(BigInt(Math.floor(SUBSCRIPTIONS / 3)));
    // Answered during the forecast, each in turn; how fast is the bench's question.
    expect(checks).toBeGreaterThanOrEqual(50);
    expect(reads).toBe(checks);
    expect(t.app.forecasts.state()).toEqual({ running: 0, queued: 0, threads: 1 });
  }, LONG);

  it("ends a forecast whose deadline passes with DEADLINE_EXCEEDED and frees the worker", async () => {
    const simulation = client(SimulationService, t.url, big.key, "grpc");
    const ended = outcome(simulation.simulatePromotionImpact({ promotionId: big.promotionId, periods: 12 }, { timeoutMs: 1_500 }));
    await untilRunning(1);
    expect(await ended).toBe(Code.DeadlineExceeded);
    await expectWorkerFree();
  }, LONG);

  it("stops a forecast its caller cancels and frees the worker", async () => {
    const abort = new AbortController();
    const ended = outcome(
      client(SimulationService, t.url, big.key, "grpc").simulatePromotionImpact({ promotionId: big.promotionId, periods: 12 }, { signal: abort.signal, timeoutMs: LONG }),
    );
    await untilRunning(1);
    abort.abort();
    expect(await ended).toBe(Code.Canceled);
    await expectWorkerFree();
  }, LONG);

  it("refuses a forecast beyond the queue with RESOURCE_EXHAUSTED (forecast_queue_full), and a waiting one that is cancelled leaves the queue", async () => {
    const simulation = client(SimulationService, t.url, big.key, "grpc");
    const first = new AbortController();
    const second = new AbortController();
    const running = outcome(simulation.simulatePromotionImpact({ promotionId: big.promotionId, periods: 12 }, { signal: first.signal, timeoutMs: LONG }));
    await untilRunning(1);
    const waiting = outcome(simulation.simulatePromotionImpact({ promotionId: big.promotionId, periods: 12 }, { signal: second.signal, timeoutMs: LONG }));
    await untilRunning(1, 1);
    const refused = await client(SimulationService, t.url, small.key, "grpc").simulatePromotionImpact({ promotionId: small.promotionId, periods: 1 }).then(
      () => null,
      (e: unknown) => codeOf(e),
    );
    expect(refused).toEqual({ code: Code.ResourceExhausted, detail: "forecast_queue_full" });
    second.abort();
    expect(await waiting).toBe(Code.Canceled);
    await untilRunning(1, 0);
    first.abort();
    expect(await running).toBe(Code.Canceled);
    await expectWorkerFree();
  }, LONG);
});

describe("SimulatePromotionImpact in the server process", () => {
  it("runs a forecast under `node --max-old-space-size=1024 --import tsx src/main.ts serve`, and SIGTERM during one stops cleanly with exit code 0", async () => {
    const db = await createTestDatabase("forecast_process");
    let child: ChildProcess | undefined;
    try {
      const port = await freePort();
      const root = fileURLToPath(new URL("../../", import.meta.url));
      const env = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", HOST: "127.0.0.1", PORT: String(port), LOG_LEVEL: "info", DATABASE_URL: db.url, REDIS_KEY_PREFIX: `test:${db.name}:`, SHUTDOWN_GRACE_MS: "500" };
      child = spawn(`${root}node_modules/.bin/node`, ["--max-old-space-size=1024", "--import", "tsx", "src/main.ts", "serve"], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      const running = child;
      servers.add(running);
      running.stdout?.setEncoding("utf8").on("data", (c: string) => (output += c));
      running.stderr?.setEncoding("utf8").on("data", (c: string) => (output += c));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => running.once("exit", (code, signal) => resolve({ code, signal })));
      const url = `http://127.0.0.1:${port}`;
      for (let i = 0; ; i++) {
        if (running.exitCode !== null) throw new Error(`serve exited during startup:\n${output}`);
        const up = await fetch(`${url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }).then((r) => r.ok, () => false);
        if (up) break;
        if (i > 600) throw new Error(`serve did not come up:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const { organizationId, key } = await provisionKey(db.url, "forecast-process");
      const few = await provisionKey(db.url, "forecast-process-few");
      const orm = await openOrm({ databaseUrl: db.url, poolMax: 1 });
      try {
        await seedSubscriptions(orm.em.fork().getConnection(), organizationId, SUBSCRIPTIONS);
        await seedSubscriptions(orm.em.fork().getConnection(), few.organizationId, 30);
      } finally {
        await orm.close();
      }
      // The worker loads TypeScript in the server process as the server does (`--import tsx`,
      // inherited with the other options: a per-process one, as operators set, must not stop it).
      const quick = await client(SimulationService, url, few.key, "grpc").simulatePromotionImpact({ promotionId: await createForecastPromotion(url, few.key), periods: 3 }, { timeoutMs: LONG });
      expect(quick.evaluatedSubscriptions).toBe(30n);
      const promotionId = await createForecastPromotion(url, key);
      const simulation = client(SimulationService, url, key, "grpc");

      const inFlight = outcome(simulation.simulatePromotionImpact({ promotionId, periods: 12 }, { timeoutMs: LONG }));
      // Let the worker get into the subscriptions, then stop the server under it.
      await new Promise((r) => setTimeout(r, 1_500));
      running.kill("SIGTERM");
      const ended = await inFlight;
      const exit = await exited;
      expect(exit, output.slice(-3_000)).toEqual({ code: 0, signal: null });
      // Cut off after the grace period (or, on a fast machine, done within it).
      expect([Code.Unavailable, "ok"]).toContain(ended);
      const messages = output
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => (JSON.parse(l) as { msg?: string }).msg);
      expect(messages.at(-1)).toBe("stopped");
    } finally {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await db.drop();
    }
  }, LONG);
});
