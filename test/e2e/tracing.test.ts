import http from "node:http";
import type { AddressInfo } from "node:net";
import { trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { client, startTestApp } from "../support/app.js";

// OpenTelemetry through the real server: spans reach an OTLP/HTTP collector only when
// OTEL_EXPORTER_OTLP_ENDPOINT is set, are flushed by close(), and nest Lua calls and ledger
// transactions under the RPC's span. The collector here is a tiny HTTP server keeping each POST.

const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];
const REDEEM_SPAN = "promotions.v1.RedemptionService/RedeemPromotion";

interface Export {
  path: string;
  contentType: string;
  body: Buffer;
}

let collector: http.Server;
let endpoint: string;
const exports: Export[] = [];

beforeAll(async () => {
  collector = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      exports.push({ path: req.url ?? "", contentType: String(req.headers["content-type"] ?? ""), body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => collector.close(resolve));
});

/** The spans of every export, when the exporter sent OTLP JSON. */
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: { stringValue?: string } }[];
}
function jsonSpans(all: readonly Export[]): JsonSpan[] {
  const out: JsonSpan[] = [];
  for (const e of all.filter((x) => x.contentType.includes("json"))) {
    const parsed = JSON.parse(e.body.toString("utf8")) as { resourceSpans?: { scopeSpans?: { spans?: JsonSpan[] }[] }[] };
    for (const rs of parsed.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) out.push(...(ss.spans ?? []));
  }
  return out;
}

async function checkout(url: string, key: string, code: string, traceparent?: string): Promise<void> {
  const promotions = client(PromotionService, url, key);
  const created = (await promotions.createPromotion({ name: "Traced", code, effects: TEN_PERCENT })).promotion as Promotion;
  await promotions.activatePromotion({ id: created.id });
  await client(RedemptionService, url, key).redeemPromotion({ code, customerId: "t1" }, traceparent ? { headers: { traceparent } } : {});
}

describe("tracing", () => {
  it("registers no tracer provider and sends nothing without OTEL_EXPORTER_OTLP_ENDPOINT", async () => {
    const t = await startTestApp("tracing-off");
    try {
      expect(trace.getTracer("probe").startSpan("probe").isRecording()).toBe(false);
      const tenant = await t.tenant("untraced-co");
      await checkout(t.url, tenant.key, "QUIET");
    } finally {
      await t.stop();
    }
    expect(exports).toHaveLength(0);
  });

  it("exports the RPC span with its Lua and ledger children to the OTLP endpoint, flushed on close", async () => {
    const t = await startTestApp("tracing-on", { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
    const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    try {
      expect(trace.getTracer("probe").startSpan("probe").isRecording()).toBe(true);
      const tenant = await t.tenant("traced-co");
      await checkout(t.url, tenant.key, "LOUD", `00-${callerTrace}-00f067aa0ba902b7-01`);
    } finally {
      await t.stop(); // BatchSpanProcessor would wait 5 s; close() flushes now
    }
    expect(exports.length).toBeGreaterThan(0);
    expect(exports.every((e) => e.path === "/v1/traces")).toBe(true);
    const bytes = Buffer.concat(exports.map((e) => e.body)).toString("latin1");
    expect(bytes).toContain(REDEEM_SPAN);
    expect(bytes).toContain("lua.reserve");
    expect(bytes).toContain("Ledger.writeRedemption");

    // @opentelemetry/exporter-trace-otlp-http sends OTLP JSON (the protobuf one is another package).
    const spans = jsonSpans(exports);
    const rpc = spans.find((s) => s.name === REDEEM_SPAN);
    expect(rpc?.traceId).toBe(callerTrace); // continued the caller's W3C trace context
    expect(rpc?.attributes).toEqual(
      expect.arrayContaining([
        { key: "rpc.system", value: { stringValue: "connect_rpc" } },
        { key: "rpc.service", value: { stringValue: "promotions.v1.RedemptionService" } },
        { key: "rpc.method", value: { stringValue: "RedeemPromotion" } },
      ]),
    );
    const children = spans.filter((s) => s.parentSpanId === rpc?.spanId).map((s) => s.name);
    expect(children).toEqual(expect.arrayContaining(["lua.reserve", "Ledger.writeRedemptions"]));
    // close() unregistered the provider again.
    expect(trace.getTracer("probe").startSpan("probe").isRecording()).toBe(false);
  });
});
