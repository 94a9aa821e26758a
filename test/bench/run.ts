// `npm run bench`: every benchmark against its in-run baseline; prints tables, writes JSON.
// BENCH_ONLY=impact|redeem runs just one of them; by default the impact bench, then the redeem bench.
import { benchImpact } from "./impact.js";
import { benchRedeem } from "./redeem.js";
import { printTable, writeResults } from "./table.js";

const BENCHES = ["impact", "redeem"] as const;
const only = process.env.BENCH_ONLY ?? "";
if (only !== "" && !(BENCHES as readonly string[]).includes(only)) {
  process.stderr.write(`BENCH_ONLY must be one of ${BENCHES.join(", ")} (got "${only}")\n`);
  process.exit(2);
}
const runs = (name: (typeof BENCHES)[number]) => only === "" || only === name;

if (runs("impact")) {
  const impact = await benchImpact();
  printTable("Impact forecast (SimulatePromotionImpact through the real server)", impact);
  const file = writeResults("impact", { measuredAt: new Date().toISOString(), node: process.version, rows: impact });
  process.stdout.write(`\nresults written to ${file}\n`);
}

if (runs("redeem")) {
  const redeem = await benchRedeem();
  printTable("Checkout hot path (gRPC over h2c, one connection, calls in flight as configured)", redeem.rows);
  const file = writeResults("redeem", { ...redeem.results, valid: redeem.valid });
  process.stdout.write(`\nresults written to ${file}\n`);
  if (!redeem.valid) {
    process.stderr.write("\nthe redeem run is NOT valid: see the failed calls or the verification above\n");
    process.exitCode = 1;
  }
}
