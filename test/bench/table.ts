// Bench output: a table on stdout and the same rows as JSON under test/bench/results/.
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface Row {
  name: string;
  [column: string]: string | number;
}

export function printTable(title: string, rows: readonly Row[]): void {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: string | number | undefined) => (v === undefined ? "" : typeof v === "number" ? v.toLocaleString("en-US", { maximumFractionDigits: 2 }) : v);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => `| ${values.map((v, i) => (i === 0 ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join(" | ")} |`;
  process.stdout.write(`\n${title}\n`);
  process.stdout.write(`${line(columns)}\n|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|\n`);
  for (const r of rows) process.stdout.write(`${line(columns.map((c) => cell(r[c])))}\n`);
}

export function writeResults(name: string, payload: unknown): string {
  const dir = fileURLToPath(new URL("./results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}${name}.json`;
  writeFileSync(file, `${JSON.stringify(payload, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`);
  return file;
}

/**
 * The median of several runs, row by row (matched by name, in the first run's order) and column by
 * column; a column that is not a number in every run keeps the first run's value.
 */
export function medianRows(runs: readonly (readonly Row[])[]): Row[] {
  const first = runs[0] ?? [];
  return first.map((row) => {
    const same = runs.map((r) => r.find((x) => x.name === row.name)).filter((x): x is Row => x !== undefined);
    const out: Row = { ...row };
    for (const column of Object.keys(row)) {
      if (column === "name") continue;
      const values = same.map((r) => r[column]);
      if (!values.every((v): v is number => typeof v === "number" && !Number.isNaN(v))) continue;
      const sorted = [...values].sort((a, b) => a - b);
      const mid = Math.floor(sorted.length / 2);
      out[column] = sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
    }
    if (runs.length > 1) out.runs = same.length;
    return out;
  });
}
