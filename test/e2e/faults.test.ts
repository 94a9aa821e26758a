import { afterAll, describe, expect, it } from "vitest";
import { type Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { ApiKeyStore } from "../../src/store/api-keys.js";
import { openOrm } from "../../src/store/orm.js";
import { client, startTestApp, type Replica, type TestApp } from "../support/app.js";
import { createTestDatabase } from "../support/database.js";
import { runLoad, truth, type LoadResult } from "../support/load.js";
import { startPrivateRedis, type PrivateRedis } from "../support/redis-server.js";
import { startServerProcess } from "../support/server-process.js";
import { promo } from "../support/rpc.js";
import { sqlOf } from "../../src/events/sql.js";

// Faults in the middle of a hot run: Redis loses every key, Redis restarts, the server is killed
// with SIGKILL, Postgres refuses writes. Each uses a private Redis (or its own database) so the
// shared services are never touched. After each, the limits hold exactly and ledger = counters.

const MAX = 300;
const CUSTOMERS = 1_000;
const IN_FLIGHT = 64;
const FAST_SWEEP = { RESERVATION_TTL_MS: "1000", SWEEP_INTERVAL_MS: "200" };
const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});


async function hotPromotion(url: string, key: string, code: string): Promise<Promotion> {
  const promotions = client(PromotionService, url, key, "grpc");
  const created = promo(await promotions.createPromotion({ name: "Flash", code, effects: TEN_PERCENT, maxRedemptions: BigInt(MAX), maxRedemptionsPerCustomer: 1n }));
  return promo(await promotions.activatePromotion({ id: created.id }));
}

/**
 * Phase one with the fault injected after `faultAfterMs`, then phase two once everything settled.
 * Call i goes to urls[i % urls.length]: a grpc-js-lane server and a connect-lane replica on the
 * same data take the load together, so each fault is proven on both gRPC lanes in one run.
 */
async function faultyRun(urls: readonly string[], key: string, code: string, fault: () => Promise<void>, faultAfterMs = 400): Promise<LoadResult[]> {
  const lanes = urls.map((url) => client(RedemptionService, url, key, "grpc"));
  const call = (i: number) => (lanes[i % lanes.length] as (typeof lanes)[number]).redeemPromotion({ code, customerId: `c${i % CUSTOMERS}`, idempotencyKey: `${code}-${i}` });
  const phaseOne = runLoad(0, 2_500, IN_FLIGHT, call);
  await new Promise((r) => setTimeout(r, faultAfterMs));
  await fault();
  const first = await phaseOne;
  // Reservations stranded by the fault are settled by the sweeper within TTL + interval.
  await new Promise((r) => setTimeout(r, 1_500));
  const second = await runLoad(2_500, 5_000, IN_FLIGHT, call);
  return [first, second];
}

async function settled(read: () => Promise<{ pending: number }>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await read()).pending === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function expectExact(loads: LoadResult[], facts: Awaited<ReturnType<typeof truth>>, current: bigint): void {
  for (const l of loads) expect(l.unexpected).toEqual([]);
  expect(loads.reduce((n, l) => n + l.ok, 0)).toBe(MAX);
  expect(facts).toMatchObject({ ledger: MAX, redis: MAX, pending: 0, overLimitCustomers: 0, customerMismatches: 0 });
  expect(current).toBe(BigInt(MAX));
}

// Thousands of calls per fault on a machine shared with other work: minutes, not a timer.
describe("faults in the middle of a run", { timeout: 240_000 }, () => {
  let redis: PrivateRedis;
  let t: TestApp;
  /** The connect-node gRPC lane, a replica on t's data and Redis (t's lane is grpc-js). */
  let connectLane: Replica;
  const both = () => [t.url, connectLane.url];

  it("Redis FLUSHALL twice mid-run: counters are rebuilt from the ledger, the limit still holds exactly, and the outbox has one redemption.created per ledger row and one promotion.exhausted", async () => {
    redis = await startPrivateRedis();
    cleanups.push(() => redis.dispose());
    t = await startTestApp("faults_redis", { REDIS_URL: redis.url, GRPC_LANE: "grpc-js", ...FAST_SWEEP });
    cleanups.push(() => t.stop());
    connectLane = await t.replica({ GRPC_LANE: "connect" });
    const tenant = await t.tenant("flush-co");
    const p = await hotPromotion(t.url, tenant.key, "FLUSHED");
    const loads = await faultyRun(both(), tenant.key, "FLUSHED", async () => {
      await redis.flushAll();
      await new Promise((r) => setTimeout(r, 300));
      await redis.flushAll();
    });
    const read = () => truth(t.app.orm.em.fork(), redis.url, t.app.counters.prefix, p.id);
    await settled(read);
    expectExact(loads, await read(), promo(await client(PromotionService, t.url, tenant.key).getPromotion({ id: p.id })).currentRedemptions);
    // Events of the hot path are written by the ledger rows' own statement: exactly one per row,
    // none for the rows fenced by the rebuilds, and the last slot announced once.
    const events = await sqlOf(t.app.orm.em.fork()).rows<{ type: string; n: string; rows_matched: string }>(
      `select e.type, count(*)::text as n,
              count(r.id) filter (where r.id is not null and r.status <> 'ABANDONED')::text as rows_matched
         from events e left join redemptions r on e.type = 'redemption.created' and r.id::text = e.resource_id
        where e.organization_id = $1 group by e.type`,
      [tenant.organizationId],
    );
    const byType = Object.fromEntries(events.map((e) => [e.type, Number(e.n)]));
    expect(byType).toMatchObject({ "redemption.created": MAX, "promotion.exhausted": 1 });
    expect(Number(events.find((e) => e.type === "redemption.created")?.rows_matched)).toBe(MAX);
  });

  it("Redis restart (all data lost, unreachable meanwhile): clients see only retryable errors; the limit holds", async () => {
    const tenant = await t.tenant("restart-co");
    const p = await hotPromotion(t.url, tenant.key, "RESTARTED");
    const loads = await faultyRun(both(), tenant.key, "RESTARTED", async () => {
      await redis.stop();
      await new Promise((r) => setTimeout(r, 700));
      await redis.start();
    });
    expect(loads[0]?.retried).toBeGreaterThan(0);
    const read = () => truth(t.app.orm.em.fork(), redis.url, t.app.counters.prefix, p.id);
    await settled(read);
    expectExact(loads, await read(), promo(await client(PromotionService, t.url, tenant.key).getPromotion({ id: p.id })).currentRedemptions);
  });

  it("Postgres refusing writes for a moment: nothing half-done, the limit holds", async () => {
    const tenant = await t.tenant("readonly-co");
    const p = await hotPromotion(t.url, tenant.key, "REFUSED");
    const conn = t.app.orm.em.fork().getConnection();
    await conn.execute(`create or replace function refuse_writes() returns trigger language plpgsql as $$
      begin raise exception using errcode = '25006', message = 'cannot execute INSERT in a read-only transaction'; end $$`);
    const loads = await faultyRun(both(), tenant.key, "REFUSED", async () => {
      await conn.execute(`create trigger refuse_writes before insert on redemptions for each statement execute function refuse_writes()`);
      await new Promise((r) => setTimeout(r, 700));
      await conn.execute(`drop trigger refuse_writes on redemptions`);
      // At once: 200 ms in, a fast run had already written all MAX redemptions, so no write met
      // the refusal and nothing was retried (a CI run on 2026-12-02).
    }, 0);
    expect(loads[0]?.retried).toBeGreaterThan(0);
    const read = () => truth(t.app.orm.em.fork(), redis.url, t.app.counters.prefix, p.id);
    await settled(read);
    expectExact(loads, await read(), promo(await client(PromotionService, t.url, tenant.key).getPromotion({ id: p.id })).currentRedemptions);
  });

  it("the server killed with SIGKILL mid-run and started again: stranded reservations are settled, the limit holds", async () => {
    const db = await createTestDatabase("faults_kill");
    cleanups.push(() => db.drop());
    const prefix = `test:${db.name}:`;
    const server = await startServerProcess({ DATABASE_URL: db.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, ...FAST_SWEEP });
    cleanups.push(() => server.kill());
    const url = server.url;
    const orm = await openOrm({ databaseUrl: db.url, poolMax: 2 });
    cleanups.push(() => orm.close());
    const keys = new ApiKeyStore(orm.em.fork());
    const org = await keys.ensureOrganization("kill-co");
    const { key } = await keys.createKey(org.id, "kill test", ["read", "write", "redeem"]);
    const p = await hotPromotion(url, key, "KILLED");
    const loads = await faultyRun([url], key, "KILLED", async () => {
      await server.kill();
      await server.start();
    }, 700);
    expect(loads[0]?.retried).toBeGreaterThan(0);
    const read = () => truth(orm.em.fork(), redis.url, prefix, p.id);
    await settled(read);
    expectExact(loads, await read(), promo(await client(PromotionService, url, key).getPromotion({ id: p.id })).currentRedemptions);
  });

  it("the runs above were served by both lanes", () => {
    expect(t.lanesServed()).toContain("grpc-js");
    expect(connectLane.lanesServed()).toEqual(["connect"]);
  });
});
