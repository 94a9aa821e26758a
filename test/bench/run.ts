// `npm run bench`: every benchmark against its in-run baseline; prints tables, writes JSON.
import { benchImpact } from "./impact.js";
import { printTable, writeResults } from "./table.js";

const impact = await benchImpact();
printTable("Impact forecast (SimulatePromotionImpact through the real server)", impact);
const file = writeResults("impact", { measuredAt: new Date().toISOString(), node: process.version, rows: impact });
process.stdout.write(`\nresults written to ${file}\n`);
