// npm run demo, as a user runs it: the script in a child process against a running service, with
// nothing but the URL and a key. Its tables are read back and checked for numbers that add up.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { PromotionStatus } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { client, startTestApp, type TestApp } from "../support/app.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const NODE = `${ROOT}node_modules/.bin/node`;

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runDemo(env: Record<string, string>): Promise<DemoRun & { ms: number }> {
  const started = Date.now();
  const child = spawn(NODE, ["--import", "tsx", "scripts/demo.ts"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

/** "$1,234.56" / "-$1,234.56" -> minor units. */
function minor(text: string): bigint {
  const match = /^(-?)\$([\d,]+)\.(\d\d)$/.exec(text.trim());
  if (!match) throw new Error(`not an amount: ${text}`);
  const value = BigInt(`${match[2]?.replaceAll(",", "")}${match[3]}`);
  return match[1] === "-" ? -value : value;
}

/** The lines of the section under `title` (up to the next heading). */
function section(output: string, title: RegExp): string[] {
  const lines = output.split("\n");
  const start = lines.findIndex((l, i) => title.test(l) && /^═+$/.test(lines[i + 1] ?? ""));
  if (start < 0) throw new Error(`no section ${title}:\n${output}`);
  const rest = lines.slice(start + 2);
  const end = rest.findIndex((l, i) => l !== "" && !l.startsWith(" ") && /^═+$/.test(rest[i + 1] ?? ""));
  return end < 0 ? rest : rest.slice(0, end);
}

describe("npm run demo", () => {
  let t: TestApp;
  let key = "";
  let first: DemoRun & { ms: number };

  beforeAll(async () => {
    t = await startTestApp("demo", { AUTH_CACHE_TTL_MS: "5000" });
    ({ key } = await t.tenant("demo", ["read", "write"]));
    first = await runDemo({ PROMOTIONS_URL: t.url, PROMOTIONS_API_KEY: key });
  }, 180_000);

  afterAll(async () => {
    await t?.stop();
  });

  it("exits 0 and prints every section", () => {
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    for (const title of [
      /^Promotions demo against http:\/\/127\.0\.0\.1:\d+$/m,
      /^Catalogue$/m,
      /^Customers and subscriptions$/m,
      /^Promotions$/m,
      /^Eligibility preview: Enterprise annual: 15% off$/m,
      /^Simulated invoice: demo_sub_\d{4}$/m,
      /^12-period impact forecast: Loyalty ladder/m,
    ]) {
      expect(first.stdout).toMatch(title);
    }
  });

  it("finishes in under 10 s", () => {
    expect(first.ms).toBeLessThan(10_000);
    expect(Number(/^Finished in ([\d.]+) s/m.exec(first.stdout)?.[1])).toBeLessThan(10);
  });

  it("loaded 1,000 customers and subscriptions through CustomerService in four calls, and they are there", async () => {
    expect(first.stdout).toMatch(/^ {2}1,000 customers and 1,000 subscriptions upserted in [\d.]+ s \(4 calls of up to 500\)$/m);
    const customers = client(CustomerService, t.url, key);
    const { customer } = await customers.getCustomer({ id: "demo_cus_1000" });
    expect(customer?.segments.length).toBe(1);
    const { subscription } = await customers.getSubscription({ id: "demo_sub_0001" });
    expect(subscription?.customerId).toBe("demo_cus_0001");
  });

  it("created one live promotion of each effect and archetype", async () => {
    const rows = section(first.stdout, /^Promotions$/).filter((l) => / live$/.test(l));
    expect(rows).toHaveLength(7);
    const text = rows.join("\n");
    for (const kind of ["20% off ×3", "$10.00 off once", "+14 trial days once", "$25.00 credit once", "15% off forever", "growth ladder", "loyalty ladder"]) {
      expect(text).toContain(kind);
    }
    const { promotions } = await client(PromotionService, t.url, key).listPromotions({ limit: 100 });
    expect(promotions.filter((p) => p.status === PromotionStatus.ACTIVE)).toHaveLength(7);
    expect(promotions.find((p) => p.name.startsWith("Loyalty ladder"))).toMatchObject({ isPhased: true, requiresContinuousCoverage: true });
  });

  it("previews one eligible and one ineligible customer with every check and its reason", () => {
    const lines = section(first.stdout, /^Eligibility preview/);
    const verdicts = lines.filter((l) => / → /.test(l));
    expect(verdicts).toHaveLength(2);
    expect(verdicts[0]).toMatch(/enterprise customer on Enterprise yearly.* → ELIGIBLE$/);
    expect(verdicts[1]).toMatch(/→ NOT ELIGIBLE \(condition\.customer_segments\)$/);
    const checks = lines.filter((l) => /✓ pass|✗ fail/.test(l));
    for (const check of ["status", "validity_window", "condition.customer_segments", "condition.plans", "condition.min_spend"]) {
      expect(checks.filter((l) => l.trimStart().startsWith(`${check} `))).toHaveLength(2);
    }
    expect(checks.filter((l) => l.includes("✗ fail")).length).toBeGreaterThanOrEqual(3);
  });

  it("prices an invoice whose lines and totals add up", () => {
    const lines = section(first.stdout, /^Simulated invoice/);
    const amount = (label: string) => minor(lines.find((l) => l.trimStart().startsWith(label))?.slice(label.length + 2) ?? "");
    const subtotal = amount("Subtotal");
    const discount = -amount("Discount");
    expect(discount).toBeGreaterThan(0n);
    expect(amount("Total")).toBe(subtotal - discount);
    const priced = lines.filter((l) => /^ {2}item-\d/.test(l)).map((l) => l.trim().split(/\s{2,}/));
    expect(priced.length).toBeGreaterThanOrEqual(2);
    expect(priced.reduce((s, cells) => s + minor(cells[3] ?? ""), 0n)).toBe(subtotal);
    expect(priced.reduce((s, cells) => s + minor(cells[4] ?? ""), 0n)).toBe(discount);
    for (const cells of priced) expect(minor(cells[5] ?? "")).toBe(minor(cells[3] ?? "") - minor(cells[4] ?? ""));
    const outcomes = lines.join("\n");
    expect(outcomes).toMatch(/Enterprise annual: 15% off\s+yes/);
    expect(outcomes).toMatch(/Launch ladder.*\s+no\s+.*not_stackable/);
  });

  it("forecasts 12 periods with the budget burning down to its cap", () => {
    const lines = section(first.stdout, /^12-period impact forecast/);
    const rows = lines.filter((l) => /^ +\d+ +[\d,]+ +\$/.test(l)).map((l) => l.trim().split(/\s{2,}/));
    expect(rows.map((r) => r[0])).toEqual(Array.from({ length: 12 }, (_, i) => String(i + 1)));
    const left = rows.map((r) => minor(r[4] ?? ""));
    const cumulative = rows.map((r) => minor(r[3] ?? ""));
    for (let i = 0; i < 12; i++) {
      expect(left[i]).toBe(15_000_000n - (cumulative[i] ?? 0n)); // $150,000.00 budget
      if (i > 0) expect(left[i]).toBeLessThanOrEqual(left[i - 1] ?? 0n);
    }
    expect(rows[0]?.[5]).toMatch(/^█+/);
    const exhausted = /the budget runs out in period (\d+)\./.exec(lines.join("\n"));
    expect(Number(exhausted?.[1])).toBeGreaterThan(1);
    expect(left[Number(exhausted?.[1]) - 1]).toBe(0n);
  });

  it("runs again against the same organization and shows the same numbers, replacing its promotions", async () => {
    const second = await runDemo({ PROMOTIONS_URL: t.url, PROMOTIONS_API_KEY: key });
    expect(second.stderr).toBe("");
    expect(second.code).toBe(0);
    // Only how long it took may differ.
    const numbers = (run: DemoRun) => run.stdout.split("\n").filter((l) => !/ upserted in [\d.]+ s |^Finished in /.test(l));
    expect(numbers(second)).toEqual(numbers(first));
    expect(second.stdout).toMatch(/^Finished in [\d.]+ s \(the 7 promotions an earlier run made were deleted first/m);
    const { promotions } = await client(PromotionService, t.url, key).listPromotions({ limit: 100 });
    expect(promotions).toHaveLength(7);
    expect(second.ms).toBeLessThan(10_000);
  }, 180_000);

  it("without PROMOTIONS_API_KEY exits 1 with one line saying how to get a key", async () => {
    const result = await runDemo({ PROMOTIONS_URL: t.url });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^error: PROMOTIONS_API_KEY is not set: .*npm run keys -- create/);
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
  });
});
