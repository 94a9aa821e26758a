// What another team meets first, before any handler runs: an RPC that does not exist, a body the
// server cannot decode or will not read, a content type or HTTP method it does not take, a path
// that is no RPC at all. Every error still carries a promotions.v1.ErrorDetail in the caller's own
// protocol, and plain HTTP gets a short text saying what to do.
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, base64Decode } from "@bufbuild/protobuf/wire";
import { AnySchema, anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckRequestSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { ErrorDetailSchema, type ErrorDetail } from "../../gen/promotions/v1/errors_pb.js";
import { GetPromotionRequestSchema, PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { grpcEnvelope, grpcStatusDetails, rawH2Request, rawRequest } from "./support/clients.js";

let t: TestApp;
let key: string;

beforeAll(async () => {
  t = await startTestApp("wire_errors", { MAX_BODY_BYTES: "65536" });
  ({ key } = await t.tenant("wire-co"));
});
afterAll(async () => {
  await t?.stop();
});

/** A service and method this server does not have, on a path every protocol would route. */
const NO_SUCH = [
  ["an unknown service", "/promotions.v1.CouponService/GetCoupon"],
  ["an unknown method of a known service", "/promotions.v1.PromotionService/GetPromotions"],
] as const;

/** The google.rpc.Status of a grpc-status-details-bin value, its ErrorDetails unpacked. */
function statusDetails(bin: string | undefined): { code: number; message: string; details: ErrorDetail[] } {
  if (bin === undefined) throw new Error("no grpc-status-details-bin");
  // Status { int32 code = 1; string message = 2; repeated Any details = 3; }: not vendored, read off the wire.
  const reader = new BinaryReader(base64Decode(bin));
  const out = { code: 0, message: "", details: [] as ErrorDetail[] };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) out.code = reader.int32();
    else if (field === 2) out.message = reader.string();
    else if (field === 3) {
      const any = fromBinary(AnySchema, reader.bytes());
      const detail = anyUnpack(any, ErrorDetailSchema);
      if (detail) out.details.push(detail);
    } else reader.skip(wireType);
  }
  return out;
}

function detailsOf(error: unknown): ErrorDetail[] {
  return ConnectError.from(error).findDetails(ErrorDetailSchema);
}

async function failure(work: Promise<unknown>): Promise<ConnectError> {
  try {
    await work;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

const getPromotion = () => toBinary(GetPromotionRequestSchema, create(GetPromotionRequestSchema, { id: "x" }));

/** grpc-js calling `path` with raw bytes, as a client generated from another version of the contract would. */
function grpcJsRaw(path: string, body: Uint8Array): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(new URL(t.url).host, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(body), new grpc.Metadata(), {}, (error) => {
      client.close();
      resolve(error);
    });
  });
}

describe("an RPC the server does not have", () => {
  it.each(NO_SUCH)("%s over gRPC is grpc-status 12 with an ErrorDetail, in a proper gRPC answer (HTTP 200, trailers)", async (_, path) => {
    const res = await rawH2Request(t.url, { ":path": path, "content-type": "application/grpc", te: "trailers" }, grpcEnvelope(getPromotion()));
    expect(res.headers[":status"]).toBe(200);
    expect(String(res.headers["content-type"])).toMatch(/^application\/grpc/);
    const status = res.trailers["grpc-status"] ?? res.headers["grpc-status"];
    expect(status).toBe(String(GrpcStatus.UNIMPLEMENTED));
    const bin = res.trailers["grpc-status-details-bin"] ?? res.headers["grpc-status-details-bin"];
    const decoded = statusDetails(typeof bin === "string" ? bin : undefined);
    expect(decoded.code).toBe(GrpcStatus.UNIMPLEMENTED);
    expect(decoded.details).toEqual([expect.objectContaining({ type: "not_found", code: "unknown_rpc" })]);
    expect(decoded.details[0]?.message).toContain(path.slice(1));
  });

  it("tells grpc-js UNIMPLEMENTED with the ErrorDetail and, for a near miss, the method it probably meant", async () => {
    const error = await grpcJsRaw("/promotions.v1.PromotionService/GetPromotions", getPromotion());
    expect(error?.code).toBe(GrpcStatus.UNIMPLEMENTED);
    expect(error?.details).toMatch(/^no RPC promotions\.v1\.PromotionService\/GetPromotions on this server; did you mean GetPromotion\?/);
    expect(error && grpcStatusDetails(error)?.errorDetails).toEqual([expect.objectContaining({ type: "not_found", code: "unknown_rpc", message: error?.details })]);
  });

  it.each(NO_SUCH)("%s over Connect is unimplemented with a JSON error body and an ErrorDetail", async (_, path) => {
    const res = await fetch(`${t.url}${path}`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: "{}" });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as { code: string; message: string; details: { type: string; debug: Record<string, string> }[] };
    expect(body.code).toBe("unimplemented");
    expect(body.details).toEqual([expect.objectContaining({ type: "promotions.v1.ErrorDetail", debug: expect.objectContaining({ type: "not_found", code: "unknown_rpc" }) })]);
  });

  it.each([
    ["connect-node over Connect", () => createConnectTransport({ baseUrl: t.url, httpVersion: "1.1" })],
    ["connect-node over gRPC", () => createGrpcTransport({ baseUrl: t.url })],
    ["connect-node over gRPC-Web", () => createGrpcWebTransport({ baseUrl: t.url, httpVersion: "1.1" })],
  ])("%s reads Code.Unimplemented with the ErrorDetail", async (_, transport) => {
    // A method of a service the server does not serve, as a client of a newer contract would call it.
    const known = PromotionService.method.getPromotion;
    const unknown = { ...known, parent: { ...PromotionService, typeName: "promotions.v1.CouponService" } } as typeof known;
    const error = await failure(transport().unary(unknown, undefined, undefined, undefined, { id: "x" }));
    expect(error.code).toBe(Code.Unimplemented);
    expect(detailsOf(error)).toEqual([expect.objectContaining({ type: "not_found", code: "unknown_rpc" })]);
  });
});

describe("bodies the server cannot decode or will not read", () => {
  const connect = (body: string | Uint8Array, contentType: string, headers: Record<string, string> = {}) =>
    fetch(`${t.url}/promotions.v1.PromotionService/GetPromotion`, { method: "POST", headers: { "content-type": contentType, authorization: `Bearer ${key}`, ...headers }, body });

  it.each([
    ["malformed protobuf (Connect binary)", () => connect(Uint8Array.from([0x0a, 0x64, 0x61]), "application/proto"), "invalid_argument", "malformed_body", ""],
    ["malformed JSON", () => connect('{"id":', "application/json"), "invalid_argument", "malformed_json", ""],
    ["a wrong JSON type", () => connect('{"id": 5}', "application/json"), "invalid_argument", "invalid_value", "id"],
    ["a body over MAX_BODY_BYTES (declared length)", () => connect(JSON.stringify({ id: "x".repeat(70_000) }), "application/json"), "resource_exhausted", "body_too_large", ""],
  ])("%s: a Connect error with an ErrorDetail", async (_, send, code, detailCode, param) => {
    const res = await send();
    const body = (await res.json()) as { code: string; message: string; details?: { type: string; value: string }[] };
    expect(body.code).toBe(code);
    const details = (body.details ?? []).filter((d) => d.type === "promotions.v1.ErrorDetail").map((d) => fromBinary(ErrorDetailSchema, base64Decode(d.value)));
    expect(details).toEqual([expect.objectContaining({ code: detailCode, param })]);
    expect(details[0]?.message).not.toBe("");
  });

  it.each([
    ["malformed protobuf", grpcEnvelope(Uint8Array.from([0x0a, 0x64, 0x61])), GrpcStatus.INVALID_ARGUMENT, "malformed_body"],
    ["a message over MAX_BODY_BYTES", grpcEnvelope(toBinary(GetPromotionRequestSchema, create(GetPromotionRequestSchema, { id: "x".repeat(70_000) }))), GrpcStatus.RESOURCE_EXHAUSTED, "body_too_large"],
  ])("%s over gRPC: its grpc-status with an ErrorDetail in grpc-status-details-bin", async (_, body, grpcStatus, detailCode) => {
    const res = await rawH2Request(
      t.url,
      { ":path": "/promotions.v1.PromotionService/GetPromotion", "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${key}` },
      body,
    );
    const all = { ...res.headers, ...res.trailers };
    expect(all["grpc-status"]).toBe(String(grpcStatus));
    const bin = all["grpc-status-details-bin"];
    expect(statusDetails(typeof bin === "string" ? bin : undefined).details).toEqual([expect.objectContaining({ code: detailCode })]);
  });

  it("a Health/Watch cut off by its deadline carries an ErrorDetail too", async () => {
    const res = await rawH2Request(
      t.url,
      { ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "200m" },
      grpcEnvelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}))),
    );
    expect(res.trailers["grpc-status"]).toBe(String(GrpcStatus.DEADLINE_EXCEEDED));
    const bin = res.trailers["grpc-status-details-bin"];
    expect(statusDetails(typeof bin === "string" ? bin : undefined).details).toEqual([expect.objectContaining({ type: "timeout", code: "deadline_exceeded" })]);
  });
});

describe("plain HTTP: a short body that says what to do", () => {
  it("GET / says what this server is and how to call it", async () => {
    const res = await rawRequest(t.url, { method: "GET", path: "/" });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/promotions service/i);
    expect(res.body).toContain("Connect, gRPC and gRPC-Web");
    expect(res.body).toContain("buf curl");
    expect(res.body).toContain("curl");
    expect(res.body).toContain("/grpc.health.v1.Health/Check");
    expect(res.body.length).toBeLessThan(2_000);
  });

  it("an unknown path is 404 with a hint, not an empty answer", async () => {
    const res = await rawRequest(t.url, { method: "GET", path: "/promotions" });
    expect(res.status).toBe(404);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/^no route GET \/promotions/);
    expect(res.body).toContain("GET /");
  });

  it("a wrong content type is 415 naming the ones that work", async () => {
    const res = await rawRequest(t.url, { method: "POST", path: "/promotions.v1.PromotionService/GetPromotion", headers: { "content-type": "text/plain" }, body: "{}" });
    expect(res.status).toBe(415);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    expect(res.body).toContain('"text/plain"');
    expect(res.body).toContain("application/json");
    expect(res.body).toContain("application/grpc");
  });

  it("a GET on an RPC that changes state is 405 saying to POST", async () => {
    const res = await rawRequest(t.url, { method: "GET", path: "/promotions.v1.PromotionService/CreatePromotion" });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("POST");
    expect(res.body).toMatch(/CreatePromotion .*POST/);
    expect(res.body).toContain("content-type: application/json");
  });

  it("a GET without a message on a side-effect-free RPC says how to put the request in the URL", async () => {
    const res = await rawRequest(t.url, { method: "GET", path: "/promotions.v1.PromotionService/GetPromotion" });
    expect(res.status).toBe(415);
    expect(res.body).toContain("?connect=v1&encoding=json&message=");
  });

  it("a key sent without `Bearer` is told to add it", async () => {
    const res = await fetch(`${t.url}/promotions.v1.PromotionService/ListPromotions`, { method: "POST", headers: { "content-type": "application/json", authorization: key }, body: "{}" });
    const body = (await res.json()) as { code: string; message: string };
    expect(res.status).toBe(401);
    expect(body.code).toBe("unauthenticated");
    expect(body.message).toMatch(/add `Bearer `/);
    expect(body.message).not.toContain(key);
  });
});

describe("h2 sessions survive it all", () => {
  it("one h2c connection answers an unknown RPC and then a known one", async () => {
    const session = http2.connect(t.url);
    const ask = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
        let status = "";
        stream.on("response", (h) => (status = String(h["grpc-status"] ?? status)));
        stream.on("trailers", (tr) => (status = String(tr["grpc-status"] ?? status)));
        stream.on("data", () => undefined);
        stream.on("error", reject);
        stream.on("close", () => resolve(status));
        stream.end(grpcEnvelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}))));
      });
    try {
      expect(await ask("/grpc.health.v1.Health/Nope")).toBe(String(GrpcStatus.UNIMPLEMENTED));
      expect(await ask("/grpc.health.v1.Health/Check")).toBe("0");
    } finally {
      session.close();
    }
  });
});
