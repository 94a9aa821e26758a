// The soak: the real server in its own process (a database of its own, a Redis prefix of its own)
// under a steady mixed workload — promotion CRUD, SimulatePromotion, ValidateCode, RedeemPromotion,
// ReleaseRedemption, ApplyPromotions — for a while, then the checks: nothing failed but the expected
// refusals, memory stayed flat after warm-up, and ledger = counters for every promotion that moved.
// `npm run soak` (scripts/soak.ts) runs it for minutes; test/e2e/soak.test.ts for 30 s.
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { BudgetBehavior } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";
import { openOrm } from "../../src/store/orm.js";
import { client } from "./app.js";
import { promo } from "./rpc.js";
import { createTestDatabase } from "./database.js";
import { truth, type Truth } from "./load.js";
import { freePort } from "./redis-server.js";
import { heapAfterGc, provisionKey, scrapeMemory, startServerProcess } from "./server-process.js";
import { startSteadyLoad, throughput, type Operation, type OperationStats } from "./steady-load.js";

const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];
const INVOICE = { currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: 10_000n, quantity: 1 }] };
const CAPPED_MAX = 500;
const CAPPED_PER_CUSTOMER = 2;
const BUDGET = 50_000_000n;

/**
 * The only refusals the workload may see, by operation: the capped promotion runs into its global
 * and per-customer limits. ValidateCode answers those as `valid: false`, not as errors; the open
 * promotion, releases, CRUD, simulation and invoices (CAP budget) are never refused.
 */
export const EXPECTED_REFUSALS: Record<string, readonly string[]> = {
  "redeem capped": ["max_redemptions_reached", "customer_limit_reached"],
};

export interface MemorySample {
  atS: number;
  /** Heap used right after a forced full GC (inspector): the live set. */
  heapAfterGcMb: number | null;
  /** Heap used as GET /metrics reports it (nodejs_heap_size_used_bytes): live set + garbage. */
  heapUsedMb: number | null;
  rssMb: number | null;
}

export interface SoakReport {
  seconds: number;
  stats: Record<string, OperationStats>;
  throughput: ReturnType<typeof throughput>;
  /** Refusals outside EXPECTED_REFUSALS and every unexpected error, as "op: code". */
  problems: string[];
  samples: MemorySample[];
  /** Heap after GC (median of the first and of the last window after warm-up), MB. */
  heapAfterWarmupMb: number | null;
  heapAtEndMb: number | null;
  /** heapAtEnd / heapAfterWarmup - 1 (0.1 = 10% growth); null without samples. */
  heapGrowth: number | null;
  rssGrowth: number | null;
  /** Per promotion that moved: the ledger and Redis after the run, and the limits they must hold. */
  promotions: { name: string; facts: Truth; max: number | null; maxBudget: bigint | null; perCustomer: number }[];
  /** Crashes of the server process (exits nobody asked for). */
  crashes: string[];
}

export async function runSoak(opts: { seconds: number; inFlight?: number; log?: (line: string) => void }): Promise<SoakReport> {
  const log = opts.log ?? (() => undefined);
  const inFlight = opts.inFlight ?? 16;
  const db = await createTestDatabase("soak");
  const prefix = `soak:${db.name}:`;
  // The inspector (loopback only) is how the soak forces a GC before reading the heap.
  const inspectPort = await freePort();
  const server = await startServerProcess({ DATABASE_URL: db.url, REDIS_URL, REDIS_KEY_PREFIX: prefix }, { nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`] });
  const orm = await openOrm({ databaseUrl: db.url, poolMax: 2 });
  try {
    const { key } = await provisionKey(db.url, "soak-co");
    const promotions = client(PromotionService, server.url, key, "grpc");
    const redemptions = client(RedemptionService, server.url, key, "grpc");
    const simulation = client(SimulationService, server.url, key, "grpc");
    const invoices = client(InvoiceService, server.url, key, "grpc");
    const activate = async (fields: Record<string, unknown>) =>
      promo(await promotions.activatePromotion({ id: promo(await promotions.createPromotion({ name: "Soak", effects: TEN_PERCENT, ...fields })).id }));
    const open = await activate({ code: "SOAK-OPEN", maxRedemptionsPerCustomer: 1n });
    const capped = await activate({ code: "SOAK-CAPPED", maxRedemptions: BigInt(CAPPED_MAX), maxRedemptionsPerCustomer: BigInt(CAPPED_PER_CUSTOMER) });
    const budget = await activate({ currency: "USD", maxBudget: BUDGET, budgetBehavior: BudgetBehavior.CAP });
    log(`server pid ${server.pid()} on ${server.url}; database ${db.name}; Redis prefix ${prefix}`);

    // Redemptions waiting to be released (each released once; the release is idempotent anyway).
    const releasable: string[] = [];
    const redeem = (name: string, code: string, customerId: string, idempotencyKey: string): Operation => ({
      name,
      async run() {
        const res = await redemptions.redeemPromotion({ code, customerId, idempotencyKey });
        if (res.redemption && releasable.length < 10_000) releasable.push(res.redemption.id);
      },
    });
    const next = (i: number): Operation => {
      switch (i % 20) {
        case 0:
        case 1:
          return {
            name: "crud (create, update, get, delete)",
            async run() {
              const created = promo(await promotions.createPromotion({ name: `draft ${i}`, effects: TEN_PERCENT, priority: i % 10 }));
              await promotions.updatePromotion({ id: created.id, name: `draft ${i} renamed`, expectedVersion: created.version });
              await promotions.getPromotion({ id: created.id });
              await promotions.deletePromotion({ id: created.id });
            },
          };
        case 2:
          return { name: "list", run: async () => void (await promotions.listPromotions({ limit: 20 })) };
        case 3:
        case 4:
        case 5:
          return { name: "simulate", run: async () => void (await simulation.simulatePromotion({ invoice: INVOICE, promotionIds: [budget.id, open.id] })) };
        case 6:
        case 7:
        case 8:
          return { name: "validate", run: async () => void (await redemptions.validateCode({ code: "SOAK-CAPPED", customerId: `c${i % 400}` })) };
        case 9:
        case 10:
        case 11:
        case 12:
          return redeem("redeem open", "SOAK-OPEN", `o${i}`, `open-${i}`);
        case 13:
        case 14:
          return redeem("redeem capped", "SOAK-CAPPED", `c${i % 400}`, `capped-${i}`);
        case 15:
        case 16: {
          const id = releasable.shift();
          if (id === undefined) return redeem("redeem open", "SOAK-OPEN", `o${i}`, `open-${i}`);
          return { name: "release", run: async () => void (await redemptions.releaseRedemption({ id })) };
        }
        default:
          return { name: "apply", run: async () => void (await invoices.applyPromotions({ invoiceId: `soak-${i}`, customerId: `inv${i}`, invoice: INVOICE })) };
      }
    };

    const samples: MemorySample[] = [];
    const started = performance.now();
    const sampleEveryMs = Math.max(2_000, Math.round((opts.seconds * 1_000) / 90));
    const sample = async () => {
      const scraped = await scrapeMemory(server.url);
      const rss = scraped?.rssBytes ?? server.rssBytes();
      const live = await heapAfterGc(inspectPort);
      const mb = (b: number | null | undefined) => (b == null ? null : Math.round((b / 1_048_576) * 10) / 10);
      samples.push({ atS: Math.round((performance.now() - started) / 100) / 10, heapAfterGcMb: mb(live), heapUsedMb: mb(scraped?.heapUsedBytes), rssMb: mb(rss) });
    };
    const load = startSteadyLoad({ inFlight, next, maxRetries: 0 });
    while (performance.now() - started < opts.seconds * 1_000) {
      await new Promise((r) => setTimeout(r, sampleEveryMs));
      await sample();
      const last = samples.at(-1);
      if (last && samples.length % 5 === 0) log(`${last.atS.toFixed(0).padStart(5)} s  heap after GC ${last.heapAfterGcMb} MB  heap used ${last.heapUsedMb} MB  rss ${last.rssMb} MB`);
    }
    const stats = await load.stop();
    const seconds = (performance.now() - started) / 1_000;

    const problems: string[] = [];
    for (const [op, s] of Object.entries(stats)) {
      problems.push(...s.unexpected);
      for (const code of Object.keys(s.refused)) if (!(EXPECTED_REFUSALS[op] ?? []).includes(code)) problems.push(`${op}: refused ${code} ×${s.refused[code]}`);
    }

    // Memory: the live heap (after a forced GC) in the first window after warm-up against the last
    // window, each the median of its samples; without the inspector, the floor of heap used.
    const warmup = Math.max(10, opts.seconds / 3);
    const windowS = Math.max(6, (opts.seconds - warmup) / 4);
    const typical = (from: number, to: number, pick: (s: MemorySample) => number | null, reduce: (v: number[]) => number) => {
      const values = samples.filter((s) => s.atS >= from && s.atS < to).map(pick).filter((v): v is number => v !== null);
      return values.length ? reduce(values) : null;
    };
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? 0;
    const hasLive = samples.some((x) => x.heapAfterGcMb !== null);
    const heapOf = (x: MemorySample) => (hasLive ? x.heapAfterGcMb : x.heapUsedMb);
    const heapReduce = hasLive ? median : (v: number[]) => Math.min(...v);
    const heapStart = typical(warmup, warmup + windowS, heapOf, heapReduce);
    const heapEnd = typical(seconds - windowS, Infinity, heapOf, heapReduce);
    const rssStart = typical(warmup, warmup + windowS, (x) => x.rssMb, median);
    const rssEnd = typical(seconds - windowS, Infinity, (x) => x.rssMb, median);
    const growth = (a: number | null, b: number | null) => (a === null || b === null ? null : Math.round((b / a - 1) * 1_000) / 1_000);

    // Every promotion that moved, once the confirms and the sweeper have caught up.
    const settled = async (id: string, perCustomer: number) => {
      for (let i = 0; ; i++) {
        const facts = await truth(orm.em.fork(), REDIS_URL, prefix, id, perCustomer);
        if (facts.pending === 0 || i === 150) return facts;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const report: SoakReport = {
      seconds,
      stats,
      throughput: throughput(stats, seconds),
      problems,
      samples,
      heapAfterWarmupMb: heapStart,
      heapAtEndMb: heapEnd,
      heapGrowth: growth(heapStart, heapEnd),
      rssGrowth: growth(rssStart, rssEnd),
      promotions: [
        { name: "SOAK-OPEN", facts: await settled(open.id, 1), max: null, maxBudget: null, perCustomer: 1 },
        { name: "SOAK-CAPPED", facts: await settled(capped.id, CAPPED_PER_CUSTOMER), max: CAPPED_MAX, maxBudget: null, perCustomer: CAPPED_PER_CUSTOMER },
        { name: "budget", facts: await settled(budget.id, 1), max: null, maxBudget: BUDGET, perCustomer: 1 },
      ],
      crashes: server.crashes(),
    };
    return report;
  } finally {
    await server.stop();
    await orm.close();
    await db.drop();
  }
}

/** The invariants, as lines; empty when all hold. */
export function soakViolations(report: SoakReport, maxHeapGrowth = 0.3): string[] {
  const out = [...report.problems, ...report.crashes];
  if (report.heapGrowth === null) out.push("no heap samples (GET /metrics did not answer)");
  else if (report.heapGrowth >= maxHeapGrowth) out.push(`heap grew ${(report.heapGrowth * 100).toFixed(1)}% after warm-up (limit ${maxHeapGrowth * 100}%)`);
  for (const p of report.promotions) {
    const f = p.facts;
    if (f.pending !== 0) out.push(`${p.name}: ${f.pending} reservations still pending`);
    if (f.redis !== null && f.redis !== f.ledger) out.push(`${p.name}: ledger ${f.ledger} ≠ Redis ${f.redis}`);
    if (f.redisBudget !== null && f.redisBudget !== f.ledgerBudget) out.push(`${p.name}: ledger budget ${f.ledgerBudget} ≠ Redis ${f.redisBudget}`);
    if (f.customerMismatches !== 0) out.push(`${p.name}: ${f.customerMismatches} customers' counts differ between ledger and Redis`);
    if (f.overLimitCustomers !== 0) out.push(`${p.name}: ${f.overLimitCustomers} customers over ${p.perCustomer}`);
    if (p.max !== null && f.ledger > p.max) out.push(`${p.name}: ${f.ledger} redemptions > max ${p.max}`);
    if (p.maxBudget !== null && f.ledgerBudget > p.maxBudget) out.push(`${p.name}: budget ${f.ledgerBudget} > max ${p.maxBudget}`);
  }
  return out;
}

/** The report as text: throughput per operation, memory samples, the promotions' truth. */
export function formatSoak(report: SoakReport): string {
  const lines = [`soak: ${report.seconds.toFixed(1)} s`, "throughput (answered calls/s, mean ms, ok, refused):"];
  for (const [op, t] of Object.entries(report.throughput)) lines.push(`  ${op.padEnd(36)} ${String(t.perSecond).padStart(6)}/s ${t.meanMs.toFixed(1).padStart(7)} ms  ok ${t.ok}  refused ${t.refused}`);
  lines.push(`heap after GC samples (MB): ${report.samples.map((s) => `${s.atS.toFixed(0)}s=${s.heapAfterGcMb}`).join(" ")}`);
  lines.push(`heap used samples, /metrics (MB): ${report.samples.map((s) => `${s.atS.toFixed(0)}s=${s.heapUsedMb}`).join(" ")}`);
  lines.push(`rss samples (MB): ${report.samples.map((s) => `${s.atS.toFixed(0)}s=${s.rssMb}`).join(" ")}`);
  lines.push(
    `heap after warm-up ${report.heapAfterWarmupMb} MB → at end ${report.heapAtEndMb} MB (growth ${report.heapGrowth === null ? "n/a" : `${(report.heapGrowth * 100).toFixed(1)}%`}); rss growth ${report.rssGrowth === null ? "n/a" : `${(report.rssGrowth * 100).toFixed(1)}%`}`,
  );
  for (const p of report.promotions) {
    lines.push(`  ${p.name.padEnd(12)} ledger ${p.facts.ledger} redis ${p.facts.redis} budget ${p.facts.ledgerBudget}/${p.facts.redisBudget} pending ${p.facts.pending}`);
  }
  return lines.join("\n");
}
