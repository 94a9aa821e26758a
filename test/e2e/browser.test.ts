// Browser clients in a real browser: the page in test/browser (generated clients + connect-web,
// bundled by esbuild) runs in headless Chromium, served from another origin than the API, and
// calls the real server over Connect and over gRPC-Web. CORS lets the allowed origin in and keeps
// every other one out; the same policy is checked at the HTTP level too.
import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { JsonValue } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { chromium, type Browser, type Page, type Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { client, startTestApp, type TestApp } from "../support/app.js";
import { bundleBrowserPage, type BrowserPage } from "../browser/bundle.js";
import type { Outcome } from "../browser/page.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const CODE = "BROWSER10";
const CUSTOMER = "cus_browser";
const CALLED = ["/promotions.v1.RedemptionService/ValidateCode", "/promotions.v1.SimulationService/SimulatePromotion"];
const preflightedPaths = (run: PageRun) => run.preflights.map((p) => new URL(p.url).pathname).sort();
const INVOICE = {
  currency: "USD",
  lines: [
    { id: "seat", planId: "pro", productId: "app", unitAmountMinor: "2000", quantity: 2 },
    { id: "addon", planId: "pro", productId: "addon", unitAmountMinor: "3000", quantity: 1 },
  ],
};

let t: TestApp;
let key: string;
let promotion: Promotion;
let browser: Browser;
let allowed: PageServer; // its origin is in CORS_ORIGINS
let refused: PageServer; // the same page, from an origin that is not

interface PageServer {
  origin: string;
  close(): Promise<void>;
}

/** The bundled page over plain HTTP on its own port: an origin of its own. */
async function servePage(page: BrowserPage): Promise<PageServer> {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://page").pathname;
    const [type, body] =
      path === "/" ? ["text/html; charset=utf-8", page.html] : path === "/page.js" ? ["text/javascript; charset=utf-8", page.script] : [];
    if (type === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the browser tests drive Debian's Chromium. Install Debian's chromium package ` +
        "(apt-get install -y --no-install-recommends chromium); test/setup/system.sh, which npm test runs first, does this. No browser is downloaded.",
    );
  }
  const [page, launched] = await Promise.all([bundleBrowserPage(), chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })]);
  browser = launched;
  [allowed, refused] = await Promise.all([servePage(page), servePage(page)]);
  t = await startTestApp("browser", { CORS_ORIGINS: allowed.origin });
  ({ key } = await t.tenant("browser-co"));
  await client(CustomerService, t.url, key).upsertCustomer({
    customer: { id: CUSTOMER, segments: [], updatedAt: timestampNow() },
  });
  const promotions = client(PromotionService, t.url, key);
  const created = await promotions.createPromotion({
    name: "Ten percent in the browser",
    code: CODE,
    currency: "USD",
    effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }],
  });
  const activated = await promotions.activatePromotion({ id: created.promotion?.id ?? "" });
  if (!activated.promotion) throw new Error("ActivatePromotion returned no promotion");
  promotion = activated.promotion;
});

afterAll(async () => {
  await browser?.close();
  await Promise.all([allowed?.close(), refused?.close()]);
  await t?.stop();
});

interface PageRun {
  validate: Outcome;
  simulate: Outcome;
  /** Content-Type of each call the page made to the API, as the browser sent it. */
  requestTypes: string[];
  /** Calls to the API that the page's script got a response to (CORS let it read one). */
  answered: number;
  console: string[];
  /** The CORS preflights the browser sent, as the network layer saw them (Chrome DevTools Protocol). */
  preflights: { url: string; status: number; headers: Record<string, string> }[];
}

async function runPage(from: PageServer, protocol: "connect" | "grpc-web"): Promise<PageRun> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const preflights = await watchPreflights(page);
    const requestTypes: string[] = [];
    let answered = 0;
    const consoleLines: string[] = [];
    const toApi = (req: Request) => req.url().startsWith(t.url) && req.method() === "POST";
    page.on("request", (req) => {
      if (toApi(req)) requestTypes.push(req.headers()["content-type"] ?? "");
    });
    page.on("requestfinished", (req) => {
      if (toApi(req)) answered++;
    });
    page.on("console", (msg) => consoleLines.push(msg.text()));
    const query = new URLSearchParams({
      api: t.url,
      key,
      protocol,
      code: CODE.toLowerCase(),
      customer: CUSTOMER,
      invoice: JSON.stringify(INVOICE),
      promotions: promotion.id,
    });
    await page.goto(`${from.origin}/?${query.toString()}`);
    await page.waitForSelector("body[data-done=true]", { timeout: 10_000 });
    const read = async (id: string): Promise<Outcome> => JSON.parse((await page.textContent(`#${id}`)) ?? "null") as Outcome;
    return { validate: await read("validate"), simulate: await read("simulate"), requestTypes, answered, console: consoleLines, preflights };
  } finally {
    await context.close();
  }
}

/** Preflights never reach Playwright's request events; the DevTools protocol reports them. */
async function watchPreflights(page: Page): Promise<PageRun["preflights"]> {
  const seen: PageRun["preflights"] = [];
  const preflightIds = new Set<string>();
  const cdp = await page.context().newCDPSession(page);
  cdp.on("Network.requestWillBeSent", (e) => {
    if (e.type === "Preflight") preflightIds.add(e.requestId);
  });
  cdp.on("Network.responseReceived", (e) => {
    if (e.type === "Preflight" || preflightIds.has(e.requestId)) {
      seen.push({ url: e.response.url, status: e.response.status, headers: lowerCaseKeys(e.response.headers) });
    }
  });
  await cdp.send("Network.enable");
  return seen;
}

function lowerCaseKeys(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

function ok(outcome: Outcome): JsonValue {
  if ("error" in outcome) throw new Error(`the page got an error: ${outcome.error.code}: ${outcome.error.message}`);
  return outcome.ok;
}

describe("browser clients (headless Chromium, page on another origin)", () => {
  it.each([
    ["connect", "application/json"],
    ["grpc-web", "application/grpc-web+proto"],
  ] as const)("calls ValidateCode and SimulatePromotion over %s", async (protocol, contentType) => {
    const run = await runPage(allowed, protocol);
    expect(ok(run.validate)).toMatchObject({ valid: true, promotionId: promotion.id });
    // Proto JSON: int64 amounts are strings. 10% of 40.00 + 30.00, allocated to the lines.
    expect(ok(run.simulate)).toMatchObject({
      invoice: {
        currency: "USD",
        subtotalMinor: "7000",
        discountMinor: "700",
        totalMinor: "6300",
        lines: [
          { lineId: "seat", discountMinor: "400" },
          { lineId: "addon", discountMinor: "300" },
        ],
        promotions: [{ promotionId: promotion.id, applied: true }],
      },
    });
    // The protocol really was the one asked for, and it went cross-origin through a preflight.
    expect(run.requestTypes).toEqual([contentType, contentType]);
    expect(run.answered).toBe(2);
    expect(preflightedPaths(run)).toEqual(CALLED);
    for (const preflight of run.preflights) {
      expect(preflight.status).toBe(204);
      expect(preflight.headers["access-control-allow-origin"]).toBe(allowed.origin);
    }
  });

  it.each(["connect", "grpc-web"] as const)("refuses a page from an origin not in CORS_ORIGINS over %s", async (protocol) => {
    const run = await runPage(refused, protocol);
    for (const outcome of [run.validate, run.simulate]) {
      expect(outcome).toEqual({ error: { code: "Unknown", message: expect.stringContaining("Failed to fetch") } });
    }
    expect(run.requestTypes).toHaveLength(2); // the page tried both calls ...
    expect(run.answered).toBe(0); // ... and the browser stopped both at the refused preflight
    expect(run.console.some((line) => line.includes("blocked by CORS policy"))).toBe(true);
    expect(preflightedPaths(run)).toEqual(CALLED);
    for (const preflight of run.preflights) {
      expect(preflight.status).toBe(403);
      expect(preflight.headers["access-control-allow-origin"]).toBeUndefined();
    }
  });
});

describe("CORS at the HTTP level", () => {
  const path = "/promotions.v1.RedemptionService/ValidateCode";
  const preflight = (origin: string) =>
    fetch(`${t.url}${path}`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,connect-protocol-version,x-grpc-web,x-user-agent",
      },
    });
  const call = (origin: string) =>
    fetch(`${t.url}${path}`, {
      method: "POST",
      headers: { origin, authorization: `Bearer ${key}`, "content-type": "application/json", "connect-protocol-version": "1" },
      body: JSON.stringify({ code: CODE, customerId: "cus_http" }),
    });

  it("answers an allowed origin's preflight with the origin, the headers both protocols send, and a max age", async () => {
    const res = await preflight(allowed.origin);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(allowed.origin);
    expect(res.headers.get("vary")).toMatch(/origin/i);
    const allowedHeaders = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(", ");
    expect(allowedHeaders).toEqual(
      expect.arrayContaining(["authorization", "x-api-key", "content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "x-user-agent", "grpc-timeout"]),
    );
    expect((res.headers.get("access-control-allow-methods") ?? "").split(", ")).toContain("POST");
    expect(res.headers.get("access-control-max-age")).toBe("7200"); // Chromium caps it at 2 hours
  });

  it("gives an allowed origin's call the origin and exposes the gRPC-Web, Connect and request-id headers", async () => {
    const res = await call(allowed.origin);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ valid: true, promotionId: promotion.id });
    expect(res.headers.get("access-control-allow-origin")).toBe(allowed.origin);
    const exposed = (res.headers.get("access-control-expose-headers") ?? "").toLowerCase().split(", ");
    expect(exposed).toEqual(
      expect.arrayContaining(["grpc-status", "grpc-message", "grpc-status-details-bin", "content-encoding", "connect-content-encoding", "x-request-id"]),
    );
  });

  it("gives an origin not in CORS_ORIGINS no allow-origin header, on the preflight or the call", async () => {
    const pre = await preflight(refused.origin);
    expect(pre.status).toBe(403);
    expect(pre.headers.get("access-control-allow-origin")).toBeNull();
    expect(pre.headers.get("access-control-allow-headers")).toBeNull();
    const res = await call(refused.origin);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.headers.get("access-control-expose-headers")).toBeNull();
  });
});
