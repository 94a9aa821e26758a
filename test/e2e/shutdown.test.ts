// close(): stop accepting, report NOT_SERVING, let in-flight calls finish within the grace period,
// then cut off whatever is left.
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { startServer } from "../../src/server/server.js";
import { pino } from "pino";
import type { GrpcLane } from "../../src/config.js";
import { LANES } from "../support/app.js";
import { SLOW_MS, startTestServer } from "./support/test-server.js";

/** Each protocol, and gRPC on both lanes (GRPC_LANE). */
const transports: [string, (baseUrl: string) => Transport, GrpcLane][] = [
  ["Connect over HTTP/1.1", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }), "connect"],
  ["Connect over h2c", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }), "connect"],
  ["gRPC over h2c, connect lane", (baseUrl) => createGrpcTransport({ baseUrl }), "connect"],
  ["gRPC over h2c, grpc-js lane", (baseUrl) => createGrpcTransport({ baseUrl }), "grpc-js"],
  ["gRPC-Web over HTTP/1.1", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }), "connect"],
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("close()", () => {
  it.each(transports)("lets an in-flight call over %s finish", async (_, transport, lane) => {
    const { server } = await startTestServer({ grpcLane: lane });
    const client = createClient(PromotionService, transport(server.url));
    await client.getPromotion({ id: "warm-up" }); // an idle keep-alive connection or h2 session exists too
    const call = client.getPromotion({ id: "slow" });
    await sleep(100);
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(SLOW_MS - 150);
    expect((await call).promotion?.id).toBe("slow");
  });

  it("refuses new connections once closed", async () => {
    const { server } = await startTestServer();
    await server.close();
    const client = createClient(PromotionService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    await expect(client.getPromotion({ id: "late" })).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it.each(LANES)("tells Watch callers NOT_SERVING and ends their streams, without waiting for the grace period (%s lane)", async (lane) => {
    const { server } = await startTestServer({ shutdownGraceMs: 30_000, grpcLane: lane });
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const seen: Status[] = [];
    const watching = (async () => {
      for await (const res of health.watch({ service: "promotions.v1.PromotionService" })) seen.push(res.status);
    })();
    await expect.poll(() => seen.length).toBe(1);
    const started = Date.now();
    await server.close();
    await watching;
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it.each(LANES)("cuts off a call that outlives the grace period, and the handler sees UNAVAILABLE (%s lane)", async (lane) => {
    const { server, observed } = await startTestServer({ shutdownGraceMs: 300, grpcLane: lane });
    const client = createClient(PromotionService, createGrpcTransport({ baseUrl: server.url }));
    const outcome = client.getPromotion({ id: "wait" }).then(() => undefined, (err: unknown) => ConnectError.from(err));
    await sleep(100);
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await outcome)?.code).toBe(Code.Unavailable);
    expect(observed.aborts.map((e) => e.code)).toEqual([Code.Unavailable]);
  });

  it("returns the same promise when called twice", async () => {
    const { server } = await startTestServer();
    const first = server.close();
    expect(server.close()).toBe(first);
    await first;
  });
});

describe("startServer()", () => {
  it("rejects when the port is taken", async () => {
    const { server } = await startTestServer();
    const taken = startServer({
      host: "127.0.0.1",
      port: server.port,
      corsOrigins: [],
      maxBodyBytes: 1024,
      shutdownGraceMs: 100,
      routes: () => undefined,
      logger: pino({ level: "silent" }),
    });
    await expect(taken).rejects.toMatchObject({ code: "EADDRINUSE" });
    await server.close();
  });
});
