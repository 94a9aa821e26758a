// SimulatePromotionImpact over 100,000 subscriptions through the real server process, against a
// floor measured in the same run: streaming the same subscriptions out of Postgres without pricing
// them. Then, in turns, health-check latency with the server idle and while such a forecast runs on
// its worker thread (src/promotions/forecast-pool.ts): the forecast must not delay other calls.
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";
import { BillingContextStore } from "../../src/store/billing-context-store.js";
import { openOrm } from "../../src/store/orm.js";
import { client } from "../support/app.js";
import { createTestDatabase } from "../support/database.js";
import { createForecastPromotion, seedSubscriptions } from "../support/forecast-seed.js";
import { provisionKey, startServerProcess } from "../support/server-process.js";
import { GrpcLoadClient } from "./grpc-load.js";
import type { Row } from "./table.js";

const SUBSCRIPTIONS = Number(process.env.BENCH_SUBSCRIPTIONS ?? 100_000);
const PERIODS = 12;
/** Each idle turn of health checks; the forecast turn lasts as long as the forecast. */
const IDLE_MS = Number(process.env.BENCH_HEALTH_IDLE_S ?? 4) * 1000;
/** Health checks in flight, each on its own connection, one after another. */
const HEALTH_IN_FLIGHT = 4;

interface Latencies {
  samples: number[];
  errors: number;
}

/** Health checks, HEALTH_IN_FLIGHT at a time, until `until` resolves; each call's latency in ms. */
async function healthChecks(loads: readonly GrpcLoadClient[], until: Promise<unknown>, into: Latencies): Promise<void> {
  let done = false;
  void until.finally(() => (done = true));
  await Promise.all(
    loads.map(async (load) => {
      while (!done) {
        const t0 = performance.now();
        try {
          const res = await load.unary(Health.method.check, { service: "" }, 30_000);
          if (res.status !== HealthCheckResponse_ServingStatus.SERVING) throw new Error("not serving");
          into.samples.push(performance.now() - t0);
        } catch {
          into.errors++;
        }
      }
    }),
  );
}

function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchImpact(): Promise<Row[]> {
  const db = await createTestDatabase("bench_impact");
  const server = await startServerProcess({ DATABASE_URL: db.url, REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379", REDIS_KEY_PREFIX: `bench:${db.name}:`, LOG_LEVEL: "warn" });
  const orm = await openOrm({ databaseUrl: db.url, poolMax: 2 });
  const loads: GrpcLoadClient[] = [];
  try {
    const tenant = await provisionKey(db.url, "bench");
    // Bulk load straight into the table: the bench measures the forecast, not 100,000 upserts.
    await seedSubscriptions(orm.em.fork().getConnection(), tenant.organizationId, SUBSCRIPTIONS);

    const floorStart = performance.now();
    let streamed = 0;
    for await (const batch of new BillingContextStore(orm.em.fork()).billableSubscriptions(tenant.organizationId)) streamed += batch.length;
    const floorMs = performance.now() - floorStart;

    const promotionId = await createForecastPromotion(server.url, tenant.key);
    const simulation = client(SimulationService, server.url, tenant.key, "grpc");
    const forecastOnce = () => simulation.simulatePromotionImpact({ promotionId, periods: PERIODS }, { timeoutMs: 1_800_000 });

    // How soon the worker is free again after a caller gives up: a forecast of a 30-subscription
    // tenant on an idle worker, against the same started right after a 100,000-subscription one
    // ended by its deadline (or cancelled). The difference is how long the worker took to stop.
    const few = await provisionKey(db.url, "bench-few");
    await seedSubscriptions(orm.em.fork().getConnection(), few.organizationId, 30);
    const fewPromotion = (await client(PromotionService, server.url, few.key, "grpc").createPromotion({ name: "Few", currency: "USD", effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }] })).promotion?.id ?? "";
    const fewSimulation = client(SimulationService, server.url, few.key, "grpc");
    const smallForecastMs = async (): Promise<number> => {
      const t0 = performance.now();
      await fewSimulation.simulatePromotionImpact({ promotionId: fewPromotion, periods: 1 }, { timeoutMs: 60_000 });
      return performance.now() - t0;
    };
    // The first forecast starts the server's worker thread; the rows below measure a warm one.
    await smallForecastMs();

    // The forecast alone.
    const started = performance.now();
    const forecast = await forecastOnce();
    const forecastMs = performance.now() - started;
    const rss = server.rssBytes() ?? 0;

    // Health checks in turns: idle, during a forecast, idle again; the idle row is both idle turns.
    for (let i = 0; i < HEALTH_IN_FLIGHT; i++) loads.push(new GrpcLoadClient(server.url, "", 1));
    const idle: Latencies = { samples: [], errors: 0 };
    const during: Latencies = { samples: [], errors: 0 };
    await healthChecks(loads, sleep(500), { samples: [], errors: 0 }); // warm the connections
    process.stdout.write(`bench impact: health checks idle ${IDLE_MS / 1000} s, during a forecast, idle ${IDLE_MS / 1000} s\n`);
    await healthChecks(loads, sleep(IDLE_MS), idle);
    const turnStart = performance.now();
    const second = forecastOnce();
    await healthChecks(loads, second, during);
    const duringForecastMs = performance.now() - turnStart;
    await second;
    await healthChecks(loads, sleep(IDLE_MS), idle);
    const idleP99 = percentile(idle.samples, 0.99);

    const idleSmall: number[] = [];
    for (let i = 0; i < 5; i++) idleSmall.push(await smallForecastMs());
    const afterStop = async (how: "deadline" | "cancel"): Promise<number> => {
      const abort = new AbortController();
      const big = simulation.simulatePromotionImpact(
        { promotionId, periods: PERIODS },
        how === "deadline" ? { timeoutMs: 1_000 } : { signal: abort.signal, timeoutMs: 600_000 },
      );
      if (how === "cancel") setTimeout(() => abort.abort(), 1_000);
      await big.then(
        () => {
          throw new Error("the forecast finished before it could be stopped; raise BENCH_SUBSCRIPTIONS");
        },
        () => undefined,
      );
      return smallForecastMs();
    };
    const afterDeadline: number[] = [];
    const afterCancel: number[] = [];
    for (let i = 0; i < 3; i++) {
      afterDeadline.push(await afterStop("deadline"));
      afterCancel.push(await afterStop("cancel"));
    }
    const smallIdle = percentile(idleSmall, 0.5);
    const duringP99 = percentile(during.samples, 0.99);

    return [
      { name: `stream ${streamed.toLocaleString("en-US")} subscriptions (floor)`, "time s": floorMs / 1000, "subs/s": streamed / (floorMs / 1000), "× floor": 1 },
      {
        name: `SimulatePromotionImpact ${Number(forecast.evaluatedSubscriptions).toLocaleString("en-US")} × ${PERIODS} periods`,
        "time s": forecastMs / 1000,
        "subs/s": Number(forecast.evaluatedSubscriptions) / (forecastMs / 1000),
        "× floor": forecastMs / floorMs,
        "budget runs out": forecast.budgetExhaustedPeriod ?? "never",
        "server rss MiB": Math.round(rss / 2 ** 20),
      },
      { name: "health-check p99 idle", "checks": idle.samples.length, "failed": idle.errors, "p50 ms": percentile(idle.samples, 0.5), "p99 ms": idleP99, "× idle p99": 1 },
      {
        name: `health-check p99 during a ${SUBSCRIPTIONS.toLocaleString("en-US")}-subscription forecast`,
        "time s": duringForecastMs / 1000,
        "checks": during.samples.length,
        "failed": during.errors,
        "p50 ms": percentile(during.samples, 0.5),
        "p99 ms": duringP99,
        "× idle p99": duringP99 / idleP99,
        target: "≤ 3× idle",
      },
      { name: "30-subscription forecast, worker idle (median of 5)", "forecast ms": smallIdle },
      {
        name: "the same right after a forecast's deadline passed (median of 3)",
        "forecast ms": percentile(afterDeadline, 0.5),
        "stop ms": percentile(afterDeadline, 0.5) - smallIdle,
        target: "stop ≤ 100 ms",
      },
      {
        name: "the same right after a forecast was cancelled (median of 3)",
        "forecast ms": percentile(afterCancel, 0.5),
        "stop ms": percentile(afterCancel, 0.5) - smallIdle,
        target: "stop ≤ 100 ms",
      },
    ];
  } finally {
    for (const load of loads) load.close();
    await orm.close();
    await server.stop();
    await db.drop();
  }
}
