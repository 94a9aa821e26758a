import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CandidatePromotion } from "../../src/domain/billing.js";
import type { Condition, Effect, Phase } from "../../src/domain/terms.js";
import { forecastSubscriptions, type ForecastJob } from "../../src/promotions/dry-runs.js";
import { ForecastPool } from "../../src/promotions/forecast-pool.js";
import { ApiKeyStore } from "../../src/store/api-keys.js";
import { DomainError } from "../../src/domain/errors.js";
import { migrate, openOrm, type MikroORM } from "../../src/store/orm.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { seedSubscriptions } from "../support/forecast-seed.js";
import { startPrivatePostgres } from "../support/postgres-server.js";
import { credit, fixed, on, pct, phase, promotion, terms } from "../unit/support/pricing.js";

// SimulatePromotionImpact prices on a worker thread (src/promotions/forecast-pool.ts) what it used
// to price on the event loop: both threads run forecastSubscriptions, and the job and the result
// cross the thread boundary by structured cloning. Random tenants and promotions, priced both ways
// against the same real Postgres, must give the same forecast to the last minor unit.

let db: TestDatabase;
let orm: MikroORM;
let pool: ForecastPool;
let ORG = "";

/** A small deterministic generator (mulberry32), so a failing seed can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;

async function seedTenant(seed: number, count: number): Promise<void> {
  const conn = orm.em.fork().getConnection();
  await conn.execute("delete from subscriptions where organization_id = ?", [ORG]);
  await conn.execute("delete from customers where organization_id = ?", [ORG]);
  const r = rng(seed);
  const customers = [];
  const subscriptions = [];
  for (let i = 0; i < count; i++) {
    customers.push({
      organization_id: ORG,
      id: `cus_${i}`,
      segments: r() < 0.4 ? ["enterprise"] : r() < 0.5 ? ["smb", "eu"] : [],
      has_paid_before: r() < 0.5,
      created_at: r() < 0.2 ? null : new Date(Date.UTC(2025, Math.floor(r() * 12), 1 + Math.floor(r() * 28))).toISOString(),
    });
    const items = Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({
      plan_id: pick(r, ["basic", "pro", "seats"]),
      product_id: pick(r, ["app", "seats", "storage"]),
      unit_amount_minor: String(Math.floor(r() * 20_000)),
      quantity: 1 + Math.floor(r() * 4),
    }));
    const start = new Date(Date.UTC(2026, 10, 1 + Math.floor(r() * 28)));
    subscriptions.push({
      organization_id: ORG,
      id: `sub_${String(i).padStart(5, "0")}`,
      // A few have no customer row, a few are not billable.
      customer_id: r() < 0.05 ? `ghost_${i}` : `cus_${i}`,
      status: pick(r, ["ACTIVE", "ACTIVE", "ACTIVE", "TRIALING", "PAST_DUE", "CANCELED"]),
      currency: r() < 0.85 ? "USD" : "EUR",
      interval: pick(r, ["MONTH", "MONTH", "YEAR", "WEEK"]),
      current_period_start: r() < 0.05 ? null : start.toISOString(),
      current_period_end: null,
      trial_end: r() < 0.3 ? new Date(start.getTime() + 14 * 86_400_000).toISOString() : null,
      items,
    });
  }
  await conn.execute(
    `insert into customers (organization_id, id, segments, has_paid_before, created_at, metadata, updated_at, stored_at)
     select x.organization_id, x.id, array(select jsonb_array_elements_text(x.segments)), x.has_paid_before, x.created_at, '{}', now(), now()
       from jsonb_to_recordset(?::jsonb) as x(organization_id uuid, id text, segments jsonb, has_paid_before boolean, created_at timestamptz)`,
    [JSON.stringify(customers)],
  );
  await conn.execute(
    `insert into subscriptions (organization_id, id, customer_id, status, currency, interval, current_period_start,
       current_period_end, trial_end, items, updated_at, stored_at)
     select x.organization_id, x.id, x.customer_id, x.status, x.currency, x.interval, x.current_period_start, x.current_period_end,
            x.trial_end, x.items, now(), now()
       from jsonb_to_recordset(?::jsonb) as x(organization_id uuid, id text, customer_id text, status text, currency text, interval text,
            current_period_start timestamptz, current_period_end timestamptz, trial_end timestamptz, items jsonb)`,
    [JSON.stringify(subscriptions)],
  );
}

function randomPromotion(seed: number): CandidatePromotion {
  const r = rng(seed * 7919);
  const effect = (): Effect =>
    pick(r, [
      () => pct(500 + Math.floor(r() * 5000), r() < 0.3 ? on(["pro"]) : null),
      () => fixed(BigInt(Math.floor(r() * 3000)), r() < 0.3 ? on([], ["seats"]) : null),
      () => credit(BigInt(Math.floor(r() * 2000))),
    ])();
  const conditions: Condition[] = [];
  if (r() < 0.4) conditions.push({ kind: "customer_segments", anyOf: ["enterprise"] });
  if (r() < 0.3) conditions.push({ kind: "min_spend", amountMinor: BigInt(Math.floor(r() * 20_000)) });
  if (r() < 0.3) conditions.push({ kind: "plans", include: ["pro", "seats"], exclude: [] });
  if (r() < 0.2) conditions.push({ kind: "first_time_customer" });
  const phased = r() < 0.5;
  const phases: Phase[] = phased
    ? [phase("intro", [effect()], "REPEATING", 1 + Math.floor(r() * 3)), phase("then", [effect()], r() < 0.5 ? "FOREVER" : "ONCE")]
    : [phase("Default", [effect(), ...(r() < 0.3 ? [effect()] : [])], pick(r, ["FOREVER", "ONCE"] as const))];
  const maxBudget = r() < 0.5 ? BigInt(Math.floor(r() * 5_000_000)) : null;
  return promotion(
    `promo_${seed}`,
    terms([], { isPhased: phased, phases, conditions, conditionMode: r() < 0.5 ? "ALL" : "ANY", currency: r() < 0.2 ? "" : "USD", maxBudget }),
    { currentBudgetUsed: maxBudget === null ? 0n : BigInt(Math.floor(r() * 100_000)) },
  );
}

const never = new AbortController().signal;

beforeAll(async () => {
  db = await createTestDatabase("forecast_pool");
  orm = await openOrm({ databaseUrl: db.url, poolMax: 4 });
  ORG = (await new ApiKeyStore(orm.em.fork()).ensureOrganization("forecast")).id;
  pool = new ForecastPool({ databaseUrl: db.url, workers: 1, queueLimit: 2 });
});

afterAll(async () => {
  await pool?.close();
  await orm?.close();
  await db?.drop();
});

describe("ForecastPool", () => {
  for (const seed of [1, 2, 3]) {
    it(`prices on its worker exactly what the event loop prices (random tenant and promotions, seed ${seed})`, async () => {
      // More than one batch of 1,000, so the worker's keyset paging is exercised as well.
      await seedTenant(seed, 2_300);
      const costs: bigint[] = [];
      for (let k = 0; k < 4; k++) {
        const job: ForecastJob = { organizationId: ORG, promotion: randomPromotion(seed * 10 + k), periods: 1 + ((seed + k) % 12), now: new Date("2026-11-15T00:00:00Z") };
        const inProcess = await forecastSubscriptions(orm.em.fork(), job, never);
        const onWorker = await pool.run(job, never);
        expect(onWorker).toEqual(inProcess);
        expect(inProcess.evaluatedSubscriptions).toBeGreaterThan(1_000n);
        costs.push(inProcess.totalCostMinor);
      }
      // The random promotions do grant something (a comparison of zeros would prove little).
      expect(costs.some((c) => c > 0n)).toBe(true);
      expect(pool.state()).toEqual({ running: 0, queued: 0, threads: 1 });
    });
  }

  it("answers UNAVAILABLE while its worker cannot reach Postgres, and forecasts again once it can", async () => {
    // A private instance: this test stops it.
    const pg = await startPrivatePostgres();
    const url = pg.url("forecast_outage");
    const own = new ForecastPool({ databaseUrl: url, workers: 1, queueLimit: 0 });
    try {
      await migrate({ databaseUrl: url });
      const seeded = await openOrm({ databaseUrl: url, poolMax: 1 });
      let organizationId: string;
      try {
        organizationId = (await new ApiKeyStore(seeded.em.fork()).ensureOrganization("outage")).id;
        await seedSubscriptions(seeded.em.fork().getConnection(), organizationId, 12);
      } finally {
        await seeded.close();
      }
      const job: ForecastJob = { organizationId, promotion: randomPromotion(99), periods: 2, now: new Date("2026-11-15T00:00:00Z") };
      await pg.stop();
      const refused = await own.run(job, never).then(
        () => null,
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(DomainError);
      expect(refused).toMatchObject({ kind: "unavailable", details: [{ code: "database_unavailable" }] });
      await pg.start();
      expect((await own.run(job, never)).evaluatedSubscriptions).toBe(12n);
    } finally {
      await own.close();
      await pg.dispose();
    }
  }, 120_000);

  it("leaves a worker that is still starting to start when its forecast is cancelled, and runs the next forecast on it", async () => {
    await seedTenant(7, 1_500);
    const fresh = new ForecastPool({ databaseUrl: db.url, workers: 1, queueLimit: 1 });
    try {
      const job: ForecastJob = { organizationId: ORG, promotion: randomPromotion(70), periods: 3, now: new Date("2026-11-15T00:00:00Z") };
      const abort = new AbortController();
      const cancelled = fresh.run(job, abort.signal).then(
        () => "finished",
        (e: unknown) => e,
      );
      abort.abort(new Error("caller left"));
      expect(await cancelled).toMatchObject({ message: "caller left" });
      // The next one waits for the start the cancelled one began, on the same thread.
      expect(await fresh.run(job, never)).toEqual(await forecastSubscriptions(orm.em.fork(), job, never));
      expect(fresh.state()).toEqual({ running: 0, queued: 0, threads: 1 });
    } finally {
      await fresh.close();
    }
  });

  it("terminates a worker that does not stop within the grace period and runs the next forecast on a replacement", async () => {
    // A worker stuck in a query cannot read the cancel flag: the test holds an ACCESS EXCLUSIVE lock
    // on subscriptions, so the forecast's first batch waits for it. (A zero grace against a running
    // forecast raced: on a loaded CI machine the worker's "cancelled" reply was read before the 0 ms
    // timer fired, and nothing was terminated.)
    await seedTenant(8, 2_000);
    const warnings: string[] = [];
    const logger = pino({ level: "warn" }, new Writable({ write: (chunk: Buffer, _enc, done) => (warnings.push(String((JSON.parse(chunk.toString()) as { msg: string }).msg)), done()) }));
    const strict = new ForecastPool({ databaseUrl: db.url, workers: 1, queueLimit: 1, cancelGraceMs: 50, logger });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let holder: Promise<unknown> = Promise.resolve();
    try {
      const job: ForecastJob = { organizationId: ORG, promotion: randomPromotion(80), periods: 12, now: new Date("2026-11-15T00:00:00Z") };
      await strict.run({ ...job, periods: 1 }, never); // the worker has started and is ready
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      holder = orm.em.fork().transactional(async (em) => {
        await em.getConnection().execute("lock table subscriptions in access exclusive mode", [], "run", em.getTransactionContext());
        locked();
        await released;
      });
      await isLocked;
      const abort = new AbortController();
      const cancelled = strict.run(job, abort.signal).then(
        () => "finished",
        (e: unknown) => e,
      );
      expect(strict.state().running).toBe(1);
      await new Promise((r) => setTimeout(r, 100)); // the worker is waiting for the lock
      abort.abort(new Error("caller left"));
      expect(await cancelled).toMatchObject({ message: "caller left" });
      for (let i = 0; i < 500 && warnings.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(warnings).toEqual(["cancelled forecast did not stop in time; its worker was terminated"]);
      // Replaced at once, not when the next forecast comes.
      expect(strict.state()).toEqual({ running: 0, queued: 0, threads: 1 });
      release();
      await holder;
      expect(await strict.run(job, never)).toEqual(await forecastSubscriptions(orm.em.fork(), job, never));
    } finally {
      release();
      await holder;
      await strict.close();
    }
  });
});
