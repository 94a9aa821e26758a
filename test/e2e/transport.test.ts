// One port, every protocol: Connect (JSON and binary), gRPC and gRPC-Web, over HTTP/1.1 and h2c,
// from connect-node, connect-web (fetch), grpc-js and buf curl.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as web from "@connectrpc/connect-web";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { GetPromotionRequestSchema, PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import type { RunningServer } from "../../src/server/server.js";
import { bufCurl, grpcEnvelope, grpcJsUnary, rawH2Request, rawRequest, sendRawBytes } from "./support/clients.js";
import { startTestServer, type Observed } from "./support/test-server.js";

let server: RunningServer;
let observed: Observed;

beforeAll(async () => {
  ({ server, observed } = await startTestServer());
});
afterAll(async () => {
  await server.close();
});

const transports: Record<string, (baseUrl: string) => Transport> = {
  "Connect JSON over HTTP/1.1": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  "Connect binary over HTTP/1.1": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  "Connect JSON over h2c": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }),
  "Connect binary over h2c": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  "gRPC over h2c": (baseUrl) => createGrpcTransport({ baseUrl }),
  "gRPC-Web over HTTP/1.1": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  "gRPC-Web over h2c": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
  "Connect from connect-web (fetch)": (baseUrl) => web.createConnectTransport({ baseUrl }),
  "gRPC-Web from connect-web (fetch)": (baseUrl) => web.createGrpcWebTransport({ baseUrl }),
};
const cases = Object.entries(transports);

describe("one port, every protocol", () => {
  it.each(cases)("serves %s", async (_, transport) => {
    const client = createClient(PromotionService, transport(server.url));
    const res = await client.getPromotion({ id: "promo-1" });
    expect(res.promotion?.id).toBe("promo-1");
    expect(res.promotion?.name).toBe("Ten percent off");
    expect(res.promotion?.code).toBe("acme"); // the app's contextValues survived
  });

  it("serves a plain grpc-js client loaded from the .proto files", async () => {
    const { error, value } = await grpcJsUnary<{ id: string }, { promotion: { id: string; name: string } }>(
      `127.0.0.1:${server.port}`,
      "promotions/v1/promotion_service.proto",
      "promotions.v1.PromotionService",
      "GetPromotion",
      { id: "from-grpc-js" },
    );
    expect(error).toBeNull();
    expect(value?.promotion.id).toBe("from-grpc-js");
  });

  it("answers Unimplemented for an RPC the app did not implement", async () => {
    const client = createClient(PromotionService, createGrpcTransport({ baseUrl: server.url }));
    await expect(client.listPromotions({})).rejects.toMatchObject({ code: Code.Unimplemented });
  });

  it("serves plain HTTP routes beside the RPCs, over HTTP/1.1", async () => {
    const res = await rawRequest(server.url, { method: "GET", path: "/metrics" });
    expect(res.status).toBe(200);
    expect(res.body).toContain("rpc_requests_total");
    expect((await rawRequest(server.url, { method: "GET", path: "/nope" })).status).toBe(404);
  });
});

describe("grpc.health.v1.Health", () => {
  it.each(["", "promotions.v1.PromotionService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"])(
    "reports %j as SERVING",
    async (service) => {
      const client = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
      expect((await client.check({ service })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    },
  );

  it("answers NOT_FOUND for a service it does not know", async () => {
    const client = createClient(Health, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    await expect(client.check({ service: "nope.v1.Nope" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("ends Watch at the caller's deadline with DEADLINE_EXCEEDED, after telling it SERVING (a client with no timer of its own)", async () => {
    const started = Date.now();
    const res = await rawH2Request(
      server.url,
      { ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "300m" },
      grpcEnvelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }))),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    const status = fromBinary(HealthCheckResponseSchema, res.body.subarray(5, 5 + res.body.readUInt32BE(1))).status;
    expect(status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(res.trailers["grpc-status"]).toBe(String(GrpcStatus.DEADLINE_EXCEEDED));
  });

  it("ends Watch with DEADLINE_EXCEEDED for connect-node's gRPC and Connect clients", async () => {
    for (const transport of [createGrpcTransport({ baseUrl: server.url }), createConnectTransport({ baseUrl: server.url, httpVersion: "2" })]) {
      const seen: HealthCheckResponse_ServingStatus[] = [];
      const watching = (async () => {
        for await (const res of createClient(Health, transport).watch({ service: "" }, { timeoutMs: 300 })) seen.push(res.status);
      })();
      await expect(watching).rejects.toMatchObject({ code: Code.DeadlineExceeded });
      expect(seen).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
    }
  });

  it("advertises grpc-accept-encoding on gRPC responses", async () => {
    const res = await rawH2Request(
      server.url,
      { ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" },
      grpcEnvelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }))),
    );
    expect(res.trailers["grpc-status"] ?? res.headers["grpc-status"]).toBe("0");
    expect(String(res.headers["grpc-accept-encoding"]).split(/, */)).toEqual(expect.arrayContaining(["gzip", "br"]));
  });

  it("answers grpc-js from the vendored health.proto", async () => {
    const { error, value } = await grpcJsUnary<{ service: string }, { status: string }>(
      `127.0.0.1:${server.port}`,
      "grpc/health/v1/health.proto",
      "grpc.health.v1.Health",
      "Check",
      { service: "" },
    );
    expect(error).toBeNull();
    expect(value?.status).toBe("SERVING");
  });
});

describe("reflection through buf curl", () => {
  it("lists the registered methods, and health and reflection", async () => {
    const res = await bufCurl(["--http2-prior-knowledge", "--list-methods", server.url]);
    expect(res.stderr).toBe("");
    const methods = res.stdout.trim().split("\n");
    expect(methods).toContain("promotions.v1.PromotionService/GetPromotion");
    expect(methods).toContain("promotions.v1.PromotionService/CreatePromotion");
    expect(methods).toContain("grpc.health.v1.Health/Check");
    expect(methods).toContain("grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
    expect(methods.some((m) => m.startsWith("promotions.v1.PromotionVersionService/"))).toBe(false);
  });

  it.each([
    ["grpc-v1", "connect"],
    ["grpc-v1alpha", "connect"],
    ["grpc-v1", "grpc"],
    ["grpc-v1alpha", "grpcweb"],
  ])("calls GetPromotion with a schema from %s reflection over %s", async (reflectProtocol, protocol) => {
    const res = await bufCurl([
      "--http2-prior-knowledge",
      "--reflect-protocol",
      reflectProtocol,
      "--protocol",
      protocol,
      "--data",
      '{"id":"x"}',
      `${server.url}/promotions.v1.PromotionService/GetPromotion`,
    ]);
    expect(res.stderr).toBe("");
    expect(JSON.parse(res.stdout)).toMatchObject({ promotion: { id: "x", name: "Ten percent off" } });
  });
});

describe("CORS", () => {
  const preflight = (origin: string) =>
    rawRequest(server.url, {
      method: "OPTIONS",
      path: "/promotions.v1.PromotionService/GetPromotion",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-api-key" },
    });

  it("answers a preflight from an allowed origin with the Connect and app headers", async () => {
    const res = await preflight("https://app.example.com");
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    expect(res.headers["access-control-allow-methods"]).toBe("POST, GET");
    const allowed = String(res.headers["access-control-allow-headers"]).split(", ");
    expect(allowed).toEqual(
      expect.arrayContaining(["Content-Type", "Connect-Protocol-Version", "X-Grpc-Web", "authorization", "x-api-key", "x-request-id"]),
    );
    expect(res.headers["access-control-max-age"]).toBe("7200");
  });

  it("refuses a preflight from another origin with 403 and no CORS headers", async () => {
    const res = await preflight("https://evil.example.com");
    expect(res.status).toBe(403);
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("exposes the gRPC-Web and request-id headers to an allowed origin, and nothing to others", async () => {
    const call = (origin: string) =>
      rawRequest(server.url, {
        method: "POST",
        path: "/promotions.v1.PromotionService/GetPromotion",
        headers: { origin, "content-type": "application/json", "connect-protocol-version": "1" },
        body: '{"id":"x"}',
      });
    const allowed = await call("https://app.example.com");
    expect(allowed.status).toBe(200);
    expect(allowed.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    expect(String(allowed.headers["access-control-expose-headers"]).split(", ")).toEqual(
      expect.arrayContaining(["Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "x-request-id"]),
    );
    const other = await call("https://evil.example.com");
    expect(other.headers["access-control-allow-origin"]).toBeUndefined();
    expect(other.headers["access-control-expose-headers"]).toBeUndefined();
  });
});

describe("request ids", () => {
  it("keeps a sane x-request-id, echoes it, and hands it to interceptors and handlers", async () => {
    let echoed: string | null = null;
    const client = createClient(PromotionService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    const res = await client.getPromotion(
      { id: "x" },
      { headers: { "x-request-id": "req-42.a_b" }, onHeader: (h) => (echoed = h.get("x-request-id")) },
    );
    expect(echoed).toBe("req-42.a_b");
    expect(res.promotion?.description).toBe("req-42.a_b");
    expect(observed.interceptedRequestIds).toContain("req-42.a_b");
  });

  it.each([["has spaces in it"], ["x".repeat(129)], [""]])("replaces %j with a generated UUID", async (given) => {
    const res = await rawRequest(server.url, {
      method: "POST",
      path: "/promotions.v1.PromotionService/GetPromotion",
      headers: { "content-type": "application/json", "x-request-id": given },
      body: '{"id":"x"}',
    });
    const id = String(res.headers["x-request-id"]);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(JSON.parse(res.body)).toMatchObject({ promotion: { description: id } });
  });
});

describe("request size limit", () => {
  const oversized = { id: "x".repeat(32 * 1024) }; // the test server allows 16 KiB

  it.each(cases)("refuses an oversized message over %s with RESOURCE_EXHAUSTED", async (_, transport) => {
    const client = createClient(PromotionService, transport(server.url));
    await expect(client.getPromotion(oversized)).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect((await client.getPromotion({ id: "after" })).promotion?.id).toBe("after");
  });

  it("refuses a too-large Content-Length before the body arrives, and closes that HTTP/1.1 connection", async () => {
    const reply = await sendRawBytes(server.port, [
      "POST /promotions.v1.PromotionService/GetPromotion HTTP/1.1\r\n" +
        `Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${50 * 1024 * 1024}\r\n\r\n`,
    ]);
    const text = reply.toString("utf8");
    expect(text).toMatch(/^HTTP\/1\.1 429/);
    expect(text.toLowerCase()).toContain("connection: close");
    expect(text).toContain("resource_exhausted");
  });

  it("refuses an oversized message from grpc-js too", async () => {
    const { error } = await grpcJsUnary(`127.0.0.1:${server.port}`, "promotions/v1/promotion_service.proto",
      "promotions.v1.PromotionService", "GetPromotion", oversized);
    expect(error?.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
  });
});

describe("deadlines", () => {
  it.each(cases)("ends a call past its deadline over %s, and the handler's signal fires", async (_, transport) => {
    const client = createClient(PromotionService, transport(server.url));
    const before = observed.aborts.length;
    const started = Date.now();
    await expect(client.getPromotion({ id: "wait" }, { timeoutMs: 200 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(Date.now() - started).toBeLessThan(2_000);
    // Whichever fires first, the server's timer or the client hanging up, the handler stops waiting.
    await expect.poll(() => observed.aborts.length).toBeGreaterThan(before);
  });

  it("enforces connect-timeout-ms on its own, for a client that keeps no timer", async () => {
    const started = Date.now();
    const res = await rawRequest(server.url, {
      method: "POST",
      path: "/promotions.v1.PromotionService/GetPromotion",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", "connect-timeout-ms": "200" },
      body: '{"id":"wait"}',
    });
    expect(JSON.parse(res.body)).toMatchObject({ code: "deadline_exceeded" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(observed.aborts.at(-1)?.code).toBe(Code.DeadlineExceeded);
  });

  it("enforces grpc-timeout on its own, for a client that keeps no timer", async () => {
    const res = await rawH2Request(
      server.url,
      { ":path": "/promotions.v1.PromotionService/GetPromotion", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "200m" },
      grpcEnvelope(toBinary(GetPromotionRequestSchema, create(GetPromotionRequestSchema, { id: "wait" }))),
    );
    expect(res.trailers["grpc-status"] ?? res.headers["grpc-status"]).toBe(String(GrpcStatus.DEADLINE_EXCEEDED));
    expect(observed.aborts.at(-1)?.code).toBe(Code.DeadlineExceeded);
  });

  it("gives grpc-js DEADLINE_EXCEEDED", async () => {
    const { error } = await grpcJsUnary(`127.0.0.1:${server.port}`, "promotions/v1/promotion_service.proto",
      "promotions.v1.PromotionService", "GetPromotion", { id: "wait" }, { deadline: Date.now() + 200 });
    expect(error?.code).toBe(GrpcStatus.DEADLINE_EXCEEDED);
  });
});

describe("hostile bytes", () => {
  it.each([
    ["garbage", ["\x16\x03\x01\x00\xffnot http at all\r\n\r\n"]],
    ["a truncated preface", ["PRI * HTTP/2.0\r\n"]],
    ["a preface followed by junk frames", ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Buffer.alloc(64, 0xff)]],
    ["an HTTP/1.1 request line without headers", ["GET / HTTP/1.1\r\n\r\n"]],
    ["a header block too large", [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`]],
    ["an HTTP/1.0 call without Host, with a body", ["POST /promotions.v1.PromotionService/GetPromotion HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"]],
  ])("survives %s", async (_, chunks) => {
    await sendRawBytes(server.port, chunks, 500);
    const client = createClient(PromotionService, createGrpcTransport({ baseUrl: server.url }));
    expect((await client.getPromotion({ id: "still-up" })).promotion?.id).toBe("still-up");
  });

  it.each([
    ["garbage", "\x00\x01not http\r\n\r\n", "400"],
    ["a header block too large", `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`, "431"],
  ])("answers %s with a status line, then closes", async (_, bytes, status) => {
    const reply = await sendRawBytes(server.port, [bytes]);
    expect(reply.toString("latin1")).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  });
});

describe("TLS", () => {
  let dir: string;
  let tlsServer: RunningServer;
  let ca: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "promotions-tls-"));
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    ], { stdio: "ignore" });
    ca = readFileSync(join(dir, "cert.pem"));
    ({ server: tlsServer } = await startTestServer({ tls: { cert: ca, key: readFileSync(join(dir, "key.pem")) } }));
  });
  afterAll(async () => {
    await tlsServer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("announces an https URL", () => {
    expect(tlsServer.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it.each([
    ["Connect over h2 (ALPN)", () => createConnectTransport({ baseUrl: tlsServer.url, httpVersion: "2", nodeOptions: { ca } })],
    ["Connect over HTTP/1.1", () => createConnectTransport({ baseUrl: tlsServer.url, httpVersion: "1.1", nodeOptions: { ca } })],
    ["gRPC over h2", () => createGrpcTransport({ baseUrl: tlsServer.url, nodeOptions: { ca } })],
    ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: tlsServer.url, httpVersion: "1.1", nodeOptions: { ca } })],
  ])("serves %s", async (_, transport) => {
    const client = createClient(PromotionService, transport());
    expect((await client.getPromotion({ id: "secure" })).promotion?.id).toBe("secure");
  });

  it("serves buf curl with reflection over TLS", async () => {
    const res = await bufCurl(["--insecure", "--data", '{"id":"tls"}', `${tlsServer.url}/promotions.v1.PromotionService/GetPromotion`]);
    expect(res.stderr).toBe("");
    expect(JSON.parse(res.stdout)).toMatchObject({ promotion: { id: "tls" } });
  });

  it("survives plaintext spoken to the TLS port", async () => {
    await sendRawBytes(tlsServer.port, ["GET / HTTP/1.1\r\nHost: x\r\n\r\n"], 500);
    const client = createClient(PromotionService, createConnectTransport({ baseUrl: tlsServer.url, httpVersion: "2", nodeOptions: { ca } }));
    expect((await client.getPromotion({ id: "ok" })).promotion?.id).toBe("ok");
  });
});
