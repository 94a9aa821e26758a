// The checkout hot path under load, through the real server in a process of its own: gRPC
// Health/Check (the floor: what any call costs on this machine), ValidateCode and RedeemPromotion
// on one hot promotion — each on both gRPC lanes: the grpc-js lane (GRPC_LANE=grpc-js) and
// connect-node's (a second server, GRPC_LANE=connect, on the same database and
// Redis) — and RedeemPromotion against a baseline that enforces the same limits with nothing but
// Postgres row locks (pg-baseline-server.ts). Every row is driven by the same client code
// (grpc-load.ts): `CONCURRENCY` calls in flight over one gRPC (HTTP/2) connection. The seven
// main rows are measured in turns (a warm-up each, then short windows in A B B A order) with both
// servers up, so the machine's own drift does not end up in the ratios. Only successful calls
// count; errors are reported and make the run invalid.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { WebhookService } from "../../gen/promotions/v1/webhook_service_pb.js";
import { openOrm } from "../../src/store/orm.js";
import { client } from "../support/app.js";
import { ADMIN_URL } from "../support/database.js";
import { freePort } from "../support/redis-server.js";
import { promo } from "../support/rpc.js";
import { GrpcLoadClient } from "./grpc-load.js";
import type { Row } from "./table.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

const seconds = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number of seconds (got "${raw}")`);
  return value * 1000;
};
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
/** Connections of the multi-worker rows (one HTTP/2 connection is served by one worker). */
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 4);
const WARMUP_MS = seconds("BENCH_WARMUP_S", 2);
const MEASURE_MS = seconds("BENCH_MEASURE_S", 8);
/** The measured time of each row is split into this many turns, taken in turn with the other rows'. */
const ROUNDS = Math.max(1, Math.round(Number(process.env.BENCH_ROUNDS ?? 4)));
/** Before each later turn: time for the calls in flight to refill before counting starts. */
const LEAD_IN_MS = 250;
const TIMEOUT_MS = 30_000;
/** Large enough never to run out during a run. */
const MAX_REDEMPTIONS = 1_000_000_000n;
const MAX_BUDGET = 1_000_000_000_000n;
const HOT_CODE = "HOTCODE";
/**
 * Another checkout of this service (e.g. the commit before a change, `git worktree add`), with its
 * node_modules installed: its floor and redeem rows are measured in the same turns as this one's,
 * each on a database of its own, so "before" and "after" meet the same machine.
 */
const COMPARE_DIR = (process.env.BENCH_COMPARE_DIR ?? "").replace(/\/$/, "");

export interface Measurement {
  /** Successful calls that completed inside the measured window. */
  calls: number;
  windowMs: number;
  callsPerSecond: number;
  /** calls/s of each measured window (the turns), in order. */
  turnsCallsPerSecond: number[];
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Successful calls in the whole phase, warm-up and stragglers included. */
  okTotal: number;
  /** Failed calls in the whole phase, by "CODE: message". */
  errors: number;
  errorKinds: Record<string, number>;
  /**
   * CPU time per successful call inside the window: the server process, this load generator,
   * every postgres and redis-server process on the host, and the whole machine (every core).
   */
  cpuMsPerCall: { server: number; client: number; postgres: number; redis: number; machine: number };
  /** Share of the machine's CPU in use during the window (other processes on the host included). */
  machineBusy: number;
}

export interface RedeemBench {
  rows: Row[];
  results: Record<string, unknown>;
  /** False when a call failed or the ledger disagrees with the calls that succeeded. */
  valid: boolean;
}

export async function benchRedeem(): Promise<RedeemBench> {
  const run = randomBytes(4).toString("hex");
  const loadAvgAtStart = os.loadavg();
  const children = new Children();
  const databases: string[] = [];
  const redisPrefix = `bench:${run}:`;
  const loads: GrpcLoadClient[] = [];
  const loadClient = (url: string, key: string, connections = 1): GrpcLoadClient => {
    const load = new GrpcLoadClient(url, key, connections);
    loads.push(load);
    return load;
  };
  try {
    // The real service: the key CLI creates and migrates its database, `serve` runs it.
    const db = databaseUrl(`promotions_bench_redeem_${run}`);
    databases.push(db.name);
    const serverEnv = { DATABASE_URL: db.url, REDIS_KEY_PREFIX: redisPrefix, LOG_LEVEL: "warn", HOST: "127.0.0.1", GRPC_LANE: "grpc-js" };
    const key = lastLine(await runToEnd(children, ["src/main.ts", "keys", "create", "--org", "bench", "--scopes", "read,write,redeem"], serverEnv));
    const profile = process.env.BENCH_CPU_PROF ? ["--cpu-prof", "--cpu-prof-dir", process.env.BENCH_CPU_PROF] : [];
    const real = await startChild(children, "promotions service", [...profile, "src/main.ts", "serve"], serverEnv);
    // The same service with connect-node answering gRPC, on the same data: the Connect lane's rows.
    const connectLane = await startChild(children, "promotions service, GRPC_LANE=connect", ["src/main.ts", "serve"], { ...serverEnv, GRPC_LANE: "connect" });

    const promotions = client(PromotionService, real.url, key, "grpc");
    const hot = await createHotPromotion(real.url, key);

    // The baseline: same request, same client code, limits held by a Postgres row lock. Both
    // servers run side by side and the rows are measured in turns (measureInTurns).
    const baseDb = databaseUrl(`promotions_bench_baseline_${run}`);
    await adminExecute(`create database "${baseDb.name}"`);
    databases.push(baseDb.name);
    const baselineServer = await startChild(children, "pg baseline", ["test/bench/pg-baseline-server.ts"], {
      DATABASE_URL: baseDb.url,
      BASELINE_PROMOTION_ID: hot.id,
      BASELINE_MAX_REDEMPTIONS: MAX_REDEMPTIONS.toString(),
      BASELINE_MAX_PER_CUSTOMER: "1",
      BASELINE_MAX_BUDGET: MAX_BUDGET.toString(),
    });

    const compare = COMPARE_DIR === "" ? null : await startCompared(children, databases, run, redisPrefix);
    // Issue 14: a webhook receiver that sleeps 30 s before answering, subscribed to every
    // redemption.created of a server of its own (same code and settings, its own database): its
    // redeems are measured in the same turns as the grpc-js lane's, so the p99s can be compared.
    // The control is the same with a receiver that answers at once, so both pay the same fan-out
    // (a delivery and a job per event) and only the sleeping differs.
    const sleeper = await startReceiver(30_000);
    const answerer = await startReceiver(0);
    const hooked = await startHooked(children, databases, run, redisPrefix, sleeper.url, "sleeping");
    const answered = await startHooked(children, databases, run, redisPrefix, answerer.url, "answering");

    const load = loadClient(real.url, key);
    const connectLoad = loadClient(connectLane.url, key);
    const [floor, floorConnect, validate, validateConnect, redeem, redeemConnect, baseline, redeemHooked, redeemAnswered, compareFloor, compareRedeem] = await measureInTurns([
      { label: "floor (grpc-js lane)", serverPid: real.child.pid, call: healthCall(load) },
      { label: "floor (connect lane)", serverPid: connectLane.child.pid, call: healthCall(connectLoad) },
      { label: "ValidateCode (grpc-js lane)", serverPid: real.child.pid, call: validateCall(load, `v-${run}`) },
      { label: "ValidateCode (connect lane)", serverPid: connectLane.child.pid, call: validateCall(connectLoad, `vc-${run}`) },
      { label: "RedeemPromotion (grpc-js lane)", serverPid: real.child.pid, call: redeemCall(load, hot.id, `r-${run}`) },
      { label: "RedeemPromotion (connect lane)", serverPid: connectLane.child.pid, call: redeemCall(connectLoad, hot.id, `rc-${run}`) },
      { label: "baseline", serverPid: baselineServer.child.pid, call: redeemCall(loadClient(baselineServer.url, key), hot.id, `b-${run}`) },
      { label: "RedeemPromotion, webhook receiver sleeping 30 s", serverPid: hooked.server.child.pid, call: redeemCall(loadClient(hooked.server.url, hooked.key), hooked.hotId, `h-${run}`) },
      { label: "RedeemPromotion, webhook receiver answering at once", serverPid: answered.server.child.pid, call: redeemCall(loadClient(answered.server.url, answered.key), answered.hotId, `a-${run}`) },
      ...(compare
        ? [
            { label: `floor of ${COMPARE_DIR}`, serverPid: compare.server.child.pid, call: healthCall(loadClient(compare.server.url, compare.key)) },
            { label: `RedeemPromotion on ${COMPARE_DIR}`, serverPid: compare.server.child.pid, call: redeemCall(loadClient(compare.server.url, compare.key), compare.hotId, `c-${run}`) },
          ]
        : []),
    ]);
    if (!floor || !floorConnect || !validate || !validateConnect || !redeem || !redeemConnect || !baseline || !redeemHooked || !redeemAnswered) throw new Error("a row was not measured");
    const hookedAttempts = await count(hooked.dbUrl, `select count(*) as n from webhook_attempts`, []);
    const hookedEvents = await count(hooked.dbUrl, `select count(*) as n from events where type = 'redemption.created'`, []);
    const answeredAttempts = await count(answered.dbUrl, `select count(*) as n from webhook_attempts where status = 'SUCCEEDED'`, []);
    process.stdout.write(`\nsleeping receiver: ${sleeper.received()} requests received, ${hookedAttempts} attempts logged, ${hookedEvents} redemption.created events\n`);
    process.stdout.write(`answering receiver: ${answerer.received()} requests received, ${answeredAttempts} attempts succeeded\n`);

    const ledger = await count(db.url, `select count(*) as n from redemptions where promotion_id = ? and status = 'ACTIVE'`, [hot.id]);
    const counted = promo(await promotions.getPromotion({ id: hot.id })).currentRedemptions;
    const baselineLedger = await count(baseDb.url, `select count(*) as n from bench_redemptions where promotion_id = ?`, [hot.id]);
    const baselineCounter = await count(baseDb.url, `select redemptions as n from bench_counters where promotion_id = ?`, [hot.id]);
    await children.stop(real.child);
    await children.stop(connectLane.child);
    await children.stop(baselineServer.child);
    if (compare) await children.stop(compare.server.child);
    await children.stop(hooked.server.child);
    await children.stop(answered.server.child);
    sleeper.close();
    answerer.close();

    // The same service with WORKERS=2 on the same database and Redis. One HTTP/2 connection stays
    // on one worker, so these rows (and a 1-worker row to compare with) spread calls over
    // CONNECTIONS connections.
    const single = await startChild(children, "promotions service, 1 worker", ["src/main.ts", "serve"], serverEnv);
    const redeemSpread1 = await measure(`RedeemPromotion, 1 worker, ${CONNECTIONS} connections`, single.child.pid, redeemCall(loadClient(single.url, key, CONNECTIONS), hot.id, `s-${run}`));
    await children.stop(single.child);
    const workers = await startChild(children, "promotions service, 2 workers", ["src/main.ts", "serve"], { ...serverEnv, WORKERS: "2" });
    const spread = loadClient(workers.url, key, CONNECTIONS);
    const floor2 = await measure(`floor, 2 workers, ${CONNECTIONS} connections`, undefined, healthCall(spread));
    const redeem2 = await measure(`RedeemPromotion, 2 workers, ${CONNECTIONS} connections`, undefined, redeemCall(spread, hot.id, `w-${run}`));
    const ledgerAfterWorkers = await count(db.url, `select count(*) as n from redemptions where promotion_id = ? and status = 'ACTIVE'`, [hot.id]);
    await children.stop(workers.child);

    const checks = [
      { what: "real: ledger ACTIVE redemptions = successful RedeemPromotion calls (both lanes)", expected: redeem.okTotal + redeemConnect.okTotal, actual: ledger },
      { what: "real: promotion current_redemptions = successful RedeemPromotion calls (both lanes)", expected: redeem.okTotal + redeemConnect.okTotal, actual: Number(counted) },
      {
        what: "real: ledger = every successful redeem of all runs (both lanes, 1 worker, 2 workers)",
        expected: redeem.okTotal + redeemConnect.okTotal + redeemSpread1.okTotal + redeem2.okTotal,
        actual: ledgerAfterWorkers,
      },
      { what: "baseline: redemption rows = successful calls", expected: baseline.okTotal, actual: baselineLedger },
      { what: "baseline: counter row = successful calls", expected: baseline.okTotal, actual: baselineCounter },
    ].map((c) => ({ ...c, ok: c.expected === c.actual }));
    process.stdout.write("\nverification after the run\n");
    for (const c of checks) process.stdout.write(`  ${c.ok ? "ok      " : "MISMATCH"} ${c.what}: ${c.actual} (expected ${c.expected})\n`);

    const phases = { floor, floorConnect, validate, validateConnect, redeem, redeemConnect, baseline, redeemHooked, redeemAnswered, redeemSpread1, floor2, redeem2, ...(compareFloor && compareRedeem ? { compareFloor, compareRedeem } : {}) };
    const errors = Object.entries(phases).filter(([, m]) => m.errors > 0);
    for (const [name, m] of errors) process.stdout.write(`\n${name}: ${m.errors} failed calls\n${Object.entries(m.errorKinds).map(([k, n]) => `  ${n} × ${k}`).join("\n")}\n`);

    const ratio = (m: Measurement) => m.callsPerSecond / floor.callsPerSecond;
    const row = (name: string, m: Measurement): Row => ({
      name,
      "calls/s": Math.round(m.callsPerSecond),
      "p50 ms": m.p50Ms,
      "p99 ms": m.p99Ms,
      errors: m.errors,
      "× floor": ratio(m),
      // Where each call's CPU went; "other" is everything else on the host (kernel, other processes).
      "CPU ms/call: server": m.cpuMsPerCall.server,
      pg: m.cpuMsPerCall.postgres,
      redis: m.cpuMsPerCall.redis,
      "bench client": m.cpuMsPerCall.client,
      other: otherCpu(m),
    });
    // "× floor" is against the floor of the row's own lane.
    const onConnect = (name: string, m: Measurement): Row => ({ ...row(name, m), "× floor": m.callsPerSecond / floorConnect.callsPerSecond });
    const rows: Row[] = [
      row("grpc.health.v1.Health/Check (floor), grpc-js lane", floor),
      onConnect("grpc.health.v1.Health/Check (floor), connect lane", floorConnect),
      row("ValidateCode, one hot code, grpc-js lane", validate),
      onConnect("ValidateCode, one hot code, connect lane", validateConnect),
      {
        ...row("RedeemPromotion, Redis Lua + ledger, grpc-js lane", redeem),
        "redeem/baseline": redeem.callsPerSecond / baseline.callsPerSecond,
        "grpc-js lane / connect lane": redeem.callsPerSecond / redeemConnect.callsPerSecond,
      },
      { ...onConnect("RedeemPromotion, Redis Lua + ledger, connect lane", redeemConnect), "redeem/baseline": redeemConnect.callsPerSecond / baseline.callsPerSecond },
      row("RedeemPromotion, Postgres row lock (baseline)", baseline),
      row("RedeemPromotion, grpc-js lane, webhook receiver answering at once", redeemAnswered),
      { ...row("RedeemPromotion, grpc-js lane, webhook receiver sleeping 30 s", redeemHooked), "sleeping p99 / answering p99": redeemHooked.p99Ms / redeemAnswered.p99Ms },
      ...(compareFloor && compareRedeem
        ? [
            { ...row(`Health/Check (floor) of ${COMPARE_DIR}`, compareFloor), "× floor": 1 },
            {
              ...row(`RedeemPromotion of ${COMPARE_DIR}`, compareRedeem),
              "× floor": compareRedeem.callsPerSecond / compareFloor.callsPerSecond,
              "this redeem / that redeem": redeem.callsPerSecond / compareRedeem.callsPerSecond,
            },
          ]
        : []),
      row(`RedeemPromotion, 1 worker, ${CONNECTIONS} connections`, redeemSpread1),
      row(`Health/Check, WORKERS=2, ${CONNECTIONS} connections`, floor2),
      { ...row(`RedeemPromotion, WORKERS=2, ${CONNECTIONS} connections`, redeem2), "2 workers / 1 worker": redeem2.callsPerSecond / redeemSpread1.callsPerSecond },
    ];
    return {
      rows,
      valid: errors.length === 0 && checks.every((c) => c.ok),
      results: {
        measuredAt: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? "", totalMemMiB: Math.round(os.totalmem() / 2 ** 20), platform: `${os.platform()} ${os.release()}`, node: process.version, loadAvgAtStart, loadAvgAtEnd: os.loadavg() },
        settings: { concurrency: CONCURRENCY, warmupMs: WARMUP_MS, measureMs: MEASURE_MS, rounds: ROUNDS, leadInMs: LEAD_IN_MS, protocol: "grpc (h2c)", connectionsPerRow: 1, loadGenerator: "grpc-load.ts (node:http2)" },
        ratios: {
          validateVsFloor: ratio(validate),
          redeemVsFloor: ratio(redeem),
          redeemVsBaseline: redeem.callsPerSecond / baseline.callsPerSecond,
          baselineP99OverRedeemP99: baseline.p99Ms / redeem.p99Ms,
          // Issue 15's targets: ≥ 2 and ≥ 6 (with baselineP99OverRedeemP99 > 1).
          redeemGrpcJsLaneVsConnectLane: redeem.callsPerSecond / redeemConnect.callsPerSecond,
          floorGrpcJsLaneVsConnectLane: floor.callsPerSecond / floorConnect.callsPerSecond,
          validateGrpcJsLaneVsConnectLane: validate.callsPerSecond / validateConnect.callsPerSecond,
          connectLaneRedeemVsBaseline: redeemConnect.callsPerSecond / baseline.callsPerSecond,
          redeemTwoWorkersVsOne: redeem2.callsPerSecond / redeemSpread1.callsPerSecond,
          // Issue 14: ≈ 1 (a receiver that sleeps 30 s does not move redeem's p99).
          sleepingReceiverRedeemP99OverAnsweringP99: redeemHooked.p99Ms / redeemAnswered.p99Ms,
          ...(compareFloor && compareRedeem
            ? {
                compareDir: COMPARE_DIR,
                compareRedeemVsFloor: compareRedeem.callsPerSecond / compareFloor.callsPerSecond,
                redeemVsCompareRedeem: redeem.callsPerSecond / compareRedeem.callsPerSecond,
              }
            : {}),
        },
        phases,
        checks,
        rows,
      },
    };
  } finally {
    for (const load of loads) load.close();
    await children.stopAll();
    await dropDatabases(databases);
    await deleteRedisKeys(redisPrefix);
  }
}

/** The hot promotion every redeem row calls: active, effectively unlimited, one per customer. */
async function createHotPromotion(url: string, key: string): Promise<Promotion> {
  const promotions = client(PromotionService, url, key, "grpc");
  const created = promo(
    await promotions.createPromotion({
      name: "Bench hot promotion",
      code: HOT_CODE,
      currency: "USD",
      effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }],
      maxRedemptions: MAX_REDEMPTIONS,
      maxRedemptionsPerCustomer: 1n,
      maxBudget: MAX_BUDGET,
    }),
  );
  return promo(await promotions.activatePromotion({ id: created.id }));
}

/** An HTTP receiver that answers 200 after `delayMs` (30 s is longer than an attempt may take). */
async function startReceiver(delayMs: number): Promise<{ url: string; received: () => number; close: () => void }> {
  let received = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    received++;
    req.resume();
    const timer = setTimeout(() => {
      timers.delete(timer);
      res.end("ok");
    }, delayMs);
    timers.add(timer);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the receiver has no port");
  return {
    url: `http://127.0.0.1:${address.port}/hook`,
    received: () => received,
    close: () => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      server.close();
    },
  };
}

/** This checkout's server on a database of its own, with the hot promotion and a webhook endpoint for every redemption.created at `receiverUrl`. */
async function startHooked(children: Children, databases: string[], run: string, redisPrefix: string, receiverUrl: string, name: string): Promise<{ server: Started; key: string; hotId: string; dbUrl: string }> {
  const db = databaseUrl(`promotions_bench_${name}_${run}`);
  databases.push(db.name);
  const env = { DATABASE_URL: db.url, REDIS_KEY_PREFIX: `${redisPrefix}${name}:`, LOG_LEVEL: "warn", HOST: "127.0.0.1", GRPC_LANE: "grpc-js", WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true" };
  const key = lastLine(await runToEnd(children, ["src/main.ts", "keys", "create", "--org", "bench", "--scopes", "read,write,redeem"], env));
  const server = await startChild(children, `promotions service with a ${name} webhook receiver`, ["src/main.ts", "serve"], env);
  await client(WebhookService, server.url, key, "grpc").createWebhookEndpoint({ url: receiverUrl, eventTypes: ["redemption.created"], description: `bench: ${name} receiver` });
  const hot = await createHotPromotion(server.url, key);
  return { server, key, hotId: hot.id, dbUrl: db.url };
}

/** The other checkout's server, on a database and Redis prefix of its own, with the same hot promotion. */
async function startCompared(children: Children, databases: string[], run: string, redisPrefix: string): Promise<{ server: Started; key: string; hotId: string }> {
  const db = databaseUrl(`promotions_bench_compare_${run}`);
  databases.push(db.name);
  const env = { DATABASE_URL: db.url, REDIS_KEY_PREFIX: `${redisPrefix}compare:`, LOG_LEVEL: "warn", HOST: "127.0.0.1" };
  const key = lastLine(await runToEnd(children, ["src/main.ts", "keys", "create", "--org", "bench", "--scopes", "read,write,redeem"], env, COMPARE_DIR));
  const server = await startChild(children, `promotions service of ${COMPARE_DIR}`, ["src/main.ts", "serve"], env, COMPARE_DIR);
  const hot = await createHotPromotion(server.url, key);
  return { server, key, hotId: hot.id };
}

/** The floor: Health/Check, which touches neither Postgres nor Redis. */
function healthCall(load: GrpcLoadClient): () => Promise<void> {
  return async () => {
    const res = await load.unary(Health.method.check, { service: "" }, TIMEOUT_MS);
    if (res.status !== HealthCheckResponse_ServingStatus.SERVING) throw new Error(`health ${HealthCheckResponse_ServingStatus[res.status]}`);
  };
}

/** ValidateCode of the hot code for a fresh customer per call; only a valid answer counts. */
function validateCall(load: GrpcLoadClient, prefix: string): (n: number) => Promise<void> {
  return async (n) => {
    const res = await load.unary(RedemptionService.method.validateCode, { code: HOT_CODE, customerId: `${prefix}-${n}` }, TIMEOUT_MS);
    if (!res.valid) throw new Error(`not valid: ${res.reason}`);
  };
}

/** The redeem request both servers get: a fresh customer and idempotency key per call. */
function redeemCall(load: GrpcLoadClient, promotionId: string, prefix: string): (n: number) => Promise<void> {
  return async (n) => {
    const res = await load.unary(RedemptionService.method.redeemPromotion, { code: HOT_CODE, promotionId, customerId: `${prefix}-c${n}`, idempotencyKey: `${prefix}-k${n}` }, TIMEOUT_MS);
    if (!res.redemption) throw new Error("no redemption in the response");
  };
}

/** One row of the table: calls of one kind against one server. */
interface Phase {
  label: string;
  /** The server whose CPU is counted as "server" (undefined when it is several processes). */
  serverPid: number | undefined;
  call: (n: number) => Promise<void>;
}

/** What a phase's windows have added up to. */
class Tally {
  latencies: number[] = [];
  okTotal = 0;
  errors = 0;
  errorKinds: Record<string, number> = {};
  cpu = { server: 0, client: 0, postgres: 0, redis: 0, machineBusy: 0, machineTotal: 0 };
  /** Calls that ended inside a window whose CPU counters were both read. */
  cpuCalls = 0;
  /** calls/s of each window, in order. */
  turns: number[] = [];
}

/**
 * Measures the phases in turns: each gets WARMUP_MS first, then ROUNDS windows of
 * MEASURE_MS / ROUNDS, in A B B A order, so a machine that speeds up or slows down during the run
 * (other tenants of the host) weighs on every phase alike and the ratios between them hold still.
 */
async function measureInTurns(phases: readonly Phase[]): Promise<Measurement[]> {
  for (const p of phases) process.stdout.write(`bench redeem: ${p.label} (${CONCURRENCY} in flight, ${WARMUP_MS / 1000} s warm-up + ${MEASURE_MS / 1000} s in ${ROUNDS} turns)\n`);
  const tallies = phases.map(() => new Tally());
  let seq = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const order = phases.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) {
      const phase = phases[i];
      const tally = tallies[i];
      if (!phase || !tally) continue;
      // The first turn warms up; later ones only refill the calls in flight before counting.
      seq = await runWindow(phase, tally, seq, round === 0 ? WARMUP_MS : LEAD_IN_MS, MEASURE_MS / ROUNDS);
    }
  }
  return tallies.map(toMeasurement);
}

const measure = async (label: string, serverPid: number | undefined, call: (n: number) => Promise<void>): Promise<Measurement> => {
  const [m] = await measureInTurns([{ label, serverPid, call }]);
  if (!m) throw new Error("no measurement");
  return m;
};

/** CONCURRENCY loops calling `call` for leadInMs, then windowMs; latencies of calls that end inside the window. Returns the next call number. */
async function runWindow(phase: Phase, tally: Tally, firstCall: number, leadInMs: number, windowMs: number): Promise<number> {
  let next = firstCall;
  const from = performance.now() + leadInMs;
  const to = from + windowMs;
  let inWindow = 0;
  const loop = async (): Promise<void> => {
    for (;;) {
      const started = performance.now();
      if (started >= to) return;
      try {
        await phase.call(next++);
        tally.okTotal++;
        const ended = performance.now();
        if (ended >= from && ended < to) {
          tally.latencies.push(ended - started);
          inWindow++;
        }
      } catch (error) {
        tally.errors++;
        const e = ConnectError.from(error);
        const kind = `${Code[e.code]}: ${e.rawMessage}`;
        tally.errorKinds[kind] = (tally.errorKinds[kind] ?? 0) + 1;
      }
    }
  };
  // CPU counters are read when the window opens and closes, by timers that may fire a little late.
  let cpuFrom: CpuSnapshot | undefined;
  let cpuTo: CpuSnapshot | undefined;
  const opening = setTimeout(() => (cpuFrom = cpuSnapshot(phase.serverPid)), leadInMs);
  const closing = setTimeout(() => (cpuTo = cpuSnapshot(phase.serverPid)), leadInMs + windowMs);
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  clearTimeout(opening);
  clearTimeout(closing);
  tally.turns.push(Math.round(inWindow / (windowMs / 1000)));
  if (cpuFrom && cpuTo) {
    const a = cpuFrom;
    const b = cpuTo;
    // The counters span (b.at - a.at), a little more than the window when a timer fired late.
    tally.cpuCalls += inWindow * ((b.at - a.at) / windowMs);
    for (const k of ["server", "client", "machineBusy", "machineTotal"] as const) tally.cpu[k] += b[k] - a[k];
    tally.cpu.postgres += grown(a.postgres, b.postgres);
    tally.cpu.redis += grown(a.redis, b.redis);
  }
  return next;
}

function toMeasurement(t: Tally): Measurement {
  const sorted = Float64Array.from(t.latencies).sort();
  const at = (q: number) => round3(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN);
  const perCall = (ms: number) => (t.cpuCalls > 0 ? round3(ms / t.cpuCalls) : Number.NaN);
  return {
    calls: sorted.length,
    windowMs: MEASURE_MS,
    callsPerSecond: sorted.length / (MEASURE_MS / 1000),
    turnsCallsPerSecond: t.turns,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: round3(sorted.at(-1) ?? Number.NaN),
    okTotal: t.okTotal,
    errors: t.errors,
    errorKinds: t.errorKinds,
    cpuMsPerCall: {
      server: perCall(t.cpu.server),
      client: perCall(t.cpu.client),
      postgres: perCall(t.cpu.postgres),
      redis: perCall(t.cpu.redis),
      machine: perCall(t.cpu.machineBusy),
    },
    machineBusy: t.cpu.machineTotal > 0 ? round3(t.cpu.machineBusy / t.cpu.machineTotal) : Number.NaN,
  };
}

interface CpuSnapshot {
  at: number;
  /** ms of CPU used by the server process so far (NaN off Linux). */
  server: number;
  client: number;
  /** ms of CPU used so far by each process named postgres / redis-server, by pid (empty off Linux). */
  postgres: Map<string, number>;
  redis: Map<string, number>;
  /** ms of busy and of total CPU time of the machine, all cores (NaN off Linux). */
  machineBusy: number;
  machineTotal: number;
}

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux

/** utime + stime of a process in ms, with its command name; null when it is gone. */
function processCpu(pid: string): { name: string; ms: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = stat.lastIndexOf(")");
    // After the parenthesised command name: state is [0], utime [11], stime [12].
    const fields = stat.slice(close + 2).split(" ");
    return { name: stat.slice(stat.indexOf("(") + 1, close), ms: (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS };
  } catch {
    return null;
  }
}

function cpuSnapshot(serverPid: number | undefined): CpuSnapshot {
  const usage = process.cpuUsage();
  let server = Number.NaN;
  const postgres = new Map<string, number>();
  const redis = new Map<string, number>();
  let machineBusy = Number.NaN;
  let machineTotal = Number.NaN;
  try {
    if (serverPid !== undefined) server = processCpu(String(serverPid))?.ms ?? Number.NaN;
    for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      const p = processCpu(pid);
      if (p?.name === "postgres") postgres.set(pid, p.ms);
      else if (p?.name === "redis-server") redis.set(pid, p.ms);
    }
    const [, ...ticks] = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).map(Number);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
    machineTotal = ticks.slice(0, 8).reduce((a, b) => a + b, 0) * CLOCK_TICK_MS;
    machineBusy = machineTotal - idle * CLOCK_TICK_MS;
  } catch {
    // not Linux: the CPU columns stay NaN
  }
  return { at: performance.now(), server, client: (usage.user + usage.system) / 1000, postgres, redis, machineBusy, machineTotal };
}

/**
 * CPU the processes alive at `b` used since `a` (all of it for those started since). A process
 * that exited in between takes its time with it, so this is a lower bound, never negative.
 */
function grown(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): number {
  let ms = 0;
  // (A pid reused by a new process in between would look like one that went back: counted as 0.)
  for (const [pid, now] of b) ms += Math.max(0, now - (a.get(pid) ?? 0));
  return ms;
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

function otherCpu(m: Measurement): number {
  const c = m.cpuMsPerCall;
  return round3(c.machine - c.server - c.postgres - c.redis - c.client);
}

function lastLine(text: string): string {
  const line = text.trim().split("\n").at(-1)?.trim();
  if (!line) throw new Error("the command printed nothing");
  return line;
}

// ---- child processes -------------------------------------------------------------------------

interface Started {
  child: ChildProcess;
  url: string;
}

/** Every child this bench started, so none outlives it: stopped in `finally`, killed on exit. */
class Children {
  private readonly live = new Set<ChildProcess>();

  constructor() {
    process.once("exit", () => {
      for (const child of this.live) child.kill("SIGKILL");
    });
  }

  /** Runs `args` with the Node and tsx of `root` (this checkout, or BENCH_COMPARE_DIR's). */
  spawn(args: string[], env: Record<string, string>, root = ROOT): { child: ChildProcess; output: () => string } {
    const child = spawn(`${root}/node_modules/.bin/node`, ["--import", "tsx", ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    this.live.add(child);
    child.once("exit", () => this.live.delete(child));
    let text = "";
    const keep = (chunk: Buffer) => {
      text = (text + chunk.toString("utf8")).slice(-64 * 1024);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    return { child, output: () => text };
  }

  /** SIGTERM, then SIGKILL when it has not exited within `graceMs`. */
  async stop(child: ChildProcess, graceMs = 5_000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((c) => this.stop(c)));
  }
}

/** Runs a CLI command to completion; its stdout, or an error with everything it printed. */
async function runToEnd(children: Children, args: string[], env: Record<string, string>, root = ROOT): Promise<string> {
  const { child, output } = children.spawn(args, env, root);
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  if (code !== 0) throw new Error(`${args.join(" ")} exited with ${code}:\n${output()}`);
  return stdout;
}

/** Starts a server on a free port and waits until its Health/Check answers SERVING. */
async function startChild(children: Children, label: string, args: string[], env: Record<string, string>, root = ROOT): Promise<Started> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const { child, output } = children.spawn(args, { ...env, PORT: String(port) }, root);
  const health = client(Health, url, null, "grpc");
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${label} exited before serving:\n${output()}`);
    try {
      const res = await health.check({ service: "" }, { timeoutMs: 1_000 });
      if (res.status === HealthCheckResponse_ServingStatus.SERVING) return { child, url };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${label} did not start within 60 s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}


// ---- databases and Redis -----------------------------------------------------------------------

function databaseUrl(name: string): { name: string; url: string } {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

async function adminExecute(sql: string): Promise<void> {
  const admin = await openOrm({ databaseUrl: ADMIN_URL, poolMax: 1 });
  try {
    await admin.em.getConnection().execute(sql, [], "run");
  } finally {
    await admin.close();
  }
}

async function count(url: string, sql: string, params: unknown[]): Promise<number> {
  const orm = await openOrm({ databaseUrl: url, poolMax: 1 });
  try {
    const rows = await orm.em.getConnection().execute<{ n: string | number }[]>(sql, params, "all");
    return Number(rows[0]?.n ?? Number.NaN);
  } finally {
    await orm.close();
  }
}

async function dropDatabases(names: readonly string[]): Promise<void> {
  for (const name of names) {
    await adminExecute(`drop database if exists "${name}" with (force)`).catch((error: unknown) => {
      process.stderr.write(`could not drop ${name}: ${String(error)}\n`);
    });
  }
}

async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(process.env.REDIS_URL || "redis://127.0.0.1:6379", { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [nextCursor, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = nextCursor;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } catch (error) {
    process.stderr.write(`could not delete Redis keys ${prefix}*: ${String(error)}\n`);
  } finally {
    redis.disconnect();
  }
}
