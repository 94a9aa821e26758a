// npm run soak: the server under a steady mixed workload for SOAK_SECONDS (default 180), then the
// invariants (see test/support/soak.ts). Exits 1 when one does not hold. SOAK_IN_FLIGHT sets the
// calls in flight (default 16). Needs the shared Postgres and Redis (DATABASE admin URL and
// REDIS_URL as the tests use them).
import { formatSoak, runSoak, soakViolations } from "../test/support/soak.js";

const seconds = Number(process.env.SOAK_SECONDS ?? 180);
const inFlight = Number(process.env.SOAK_IN_FLIGHT ?? 16);
if (!Number.isFinite(seconds) || seconds < 15) throw new Error(`SOAK_SECONDS must be a number ≥ 15 (got "${process.env.SOAK_SECONDS}")`);

const report = await runSoak({ seconds, inFlight, log: (line) => process.stdout.write(`${line}\n`) });
process.stdout.write(`${formatSoak(report)}\n`);
const violations = soakViolations(report);
if (violations.length > 0) {
  process.stdout.write(`FAILED:\n${violations.map((v) => `  ${v}`).join("\n")}\n`);
  process.exit(1);
}
process.stdout.write("all invariants hold\n");
