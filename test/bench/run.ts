// `npm run bench`: every benchmark against its in-run baseline; prints tables, writes JSON.
// BENCH_ONLY=impact|redeem runs just one of them; by default the impact bench, then the redeem bench.
// BENCH_RUNS (default 3): each bench runs that many times; the tables show the median of each cell,
// the JSON keeps every run.
import { benchImpact } from "./impact.js";
import { benchRedeem } from "./redeem.js";
import { medianRows, printTable, writeResults, type Row } from "./table.js";

const BENCHES = ["impact", "redeem"] as const;
const only = process.env.BENCH_ONLY ?? "";
if (only !== "" && !(BENCHES as readonly string[]).includes(only)) {
  process.stderr.write(`BENCH_ONLY must be one of ${BENCHES.join(", ")} (got "${only}")\n`);
  process.exit(2);
}
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 99) {
  process.stderr.write(`BENCH_RUNS must be an integer from 1 to 99 (got "${process.env.BENCH_RUNS}")\n`);
  process.exit(2);
}
const runs = (name: (typeof BENCHES)[number]) => only === "" || only === name;
const ofRuns = RUNS === 1 ? "" : `, median of ${RUNS} runs`;
const announce = (name: string, i: number) => {
  if (RUNS > 1) process.stdout.write(`\nbench ${name}: run ${i + 1} of ${RUNS}\n`);
};

if (runs("impact")) {
  const all: Row[][] = [];
  for (let i = 0; i < RUNS; i++) {
    announce("impact", i);
    all.push(await benchImpact());
    if (RUNS > 1) printTable(`Impact forecast, run ${i + 1}`, all[i] ?? []);
  }
  const impact = medianRows(all);
  printTable(`Impact forecast (SimulatePromotionImpact through the real server${ofRuns})`, impact);
  const file = writeResults("impact", { measuredAt: new Date().toISOString(), node: process.version, runs: RUNS, rows: impact, perRun: all });
  process.stdout.write(`\nresults written to ${file}\n`);
}

if (runs("redeem")) {
  const all: Awaited<ReturnType<typeof benchRedeem>>[] = [];
  for (let i = 0; i < RUNS; i++) {
    announce("redeem", i);
    all.push(await benchRedeem());
    if (RUNS > 1) printTable(`Checkout hot path, run ${i + 1}`, all[i]?.rows ?? []);
  }
  const rows = medianRows(all.map((r) => r.rows));
  const valid = all.every((r) => r.valid);
  printTable(`Checkout hot path (gRPC over h2c, one connection, calls in flight as configured${ofRuns})`, rows);
  const file = writeResults("redeem", RUNS === 1 ? { ...all[0]?.results, valid } : { measuredAt: new Date().toISOString(), runs: RUNS, rows, valid, perRun: all.map((r) => ({ ...r.results, valid: r.valid })) });
  process.stdout.write(`\nresults written to ${file}\n`);
  if (!valid) {
    process.stderr.write("\nthe redeem run is NOT valid: see the failed calls or the verification above\n");
    process.exitCode = 1;
  }
}
