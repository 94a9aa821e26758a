// The one port with the grpc-js lane on (GRPC_LANE=grpc-js): an h2c connection whose
// first request is gRPC is served by grpc-js, every other connection exactly as before by
// connect-node — Connect and gRPC-Web over h2c, HTTP/1.1, and gRPC calls made later on a
// connection that began with Connect. Which lane answered is read from the log lines (`lane`).
import http2 from "node:http2";
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckRequestSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { client, startTestApp, type Protocol, type TestApp } from "../support/app.js";
import { grpcEnvelope, grpcJsService, rawH2Request } from "./support/clients.js";

let t: TestApp;
let key: string;

beforeAll(async () => {
  t = await startTestApp("grpc_lane", { GRPC_LANE: "grpc-js" });
  ({ key } = await t.tenant("lane-co"));
});
afterAll(async () => {
  await t?.stop();
});

/** The lane of the log line of the call with this request id. */
function laneOf(requestId: string): unknown {
  return t.logs().find((l) => l.msg === "rpc" && l.request_id === requestId)?.lane;
}

let ids = 0;
const requestId = (tag: string) => `lane-${tag}-${++ids}`;

/** Calls ValidateCode with a request id of its own over `protocol`; returns that id once answered. */
async function validate(protocol: Protocol, tag: string): Promise<string> {
  const id = requestId(tag);
  const res = await client(RedemptionService, t.url, key, protocol).validateCode({ code: "NO-SUCH-CODE", customerId: "c" }, { headers: { "x-request-id": id } });
  expect(res.reason).toBe("code_not_found");
  return id;
}

/** Requests on one h2c session, in order; each answered before the next is sent. */
async function onOneSession(requests: { headers: http2.OutgoingHttpHeaders; body: Uint8Array }[]): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }[]> {
  const session = http2.connect(t.url);
  const answers = [];
  try {
    for (const request of requests) {
      answers.push(
        await new Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
          const stream = session.request({ ":method": "POST", ...request.headers });
          const chunks: Buffer[] = [];
          let headers: http2.IncomingHttpHeaders = {};
          let trailers: http2.IncomingHttpHeaders = {};
          stream.on("response", (h) => (headers = h));
          stream.on("trailers", (h) => (trailers = h));
          stream.on("data", (c: Buffer) => chunks.push(c));
          stream.on("error", reject);
          stream.on("close", () => resolve({ headers, trailers, body: Buffer.concat(chunks) }));
          stream.end(request.body);
        }),
      );
    }
  } finally {
    session.close();
  }
  return answers;
}

describe("which lane serves a connection", () => {
  it("an h2c connection whose first request is gRPC is served by grpc-js (connect-node's gRPC client, grpc-js's own)", async () => {
    expect(laneOf(await validate("grpc", "grpc"))).toBe("grpc-js");
    const promotions = grpcJsService(new URL(t.url).host, ["promotions/v1/redemption_service.proto"], "promotions.v1.RedemptionService");
    try {
      const res = await promotions.call<{ reason: string }>("ValidateCode", { code: "NOPE", customerId: "c" }, key);
      expect(res.error).toBeNull();
      expect(res.value?.reason).toBe("code_not_found");
    } finally {
      promotions.close();
    }
    const last = t.logs().filter((l) => l.msg === "rpc").at(-1);
    expect(last?.lane).toBe("grpc-js");
  });

  it.each<Protocol>(["connect-binary", "connect-json", "grpc-web"])("a connection whose first request is %s is served by connect-node, unchanged", async (protocol) => {
    expect(laneOf(await validate(protocol, protocol))).toBe("connect");
  });

  it("gRPC-Web over h2c (not only HTTP/1.1) stays with connect-node", async () => {
    const id = requestId("grpc-web-h2");
    const [answer] = await onOneSession([
      {
        headers: { ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc-web+proto", "x-request-id": id },
        body: grpcEnvelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}))),
      },
    ]);
    expect(answer?.headers[":status"]).toBe(200);
    expect(String(answer?.headers["content-type"])).toMatch(/^application\/grpc-web/);
  });

  it("gRPC calls on a connection that began with Connect are answered by connect-node on that connection", async () => {
    const connectId = requestId("first-connect");
    const grpcId = requestId("then-grpc");
    const answers = await onOneSession([
      {
        headers: { ":path": "/promotions.v1.PromotionService/ListPromotions", "content-type": "application/json", authorization: `Bearer ${key}`, "x-request-id": connectId },
        body: Buffer.from("{}"),
      },
      {
        headers: { ":path": "/promotions.v1.PromotionService/ListPromotions", "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${key}`, "x-request-id": grpcId },
        body: grpcEnvelope(new Uint8Array()),
      },
    ]);
    expect(answers[0]?.headers[":status"]).toBe(200);
    expect(answers[1]?.trailers["grpc-status"] ?? answers[1]?.headers["grpc-status"]).toBe("0");
    expect([laneOf(connectId), laneOf(grpcId)]).toEqual(["connect", "connect"]);
  });

  it("gRPC to a method no service has stays with connect-node, which answers it with an ErrorDetail", async () => {
    const res = await rawH2Request(t.url, { ":path": "/promotions.v1.PromotionService/GetPromotions", "content-type": "application/grpc", te: "trailers" }, grpcEnvelope(new Uint8Array()));
    expect(res.trailers["grpc-status"] ?? res.headers["grpc-status"]).toBe("12");
    expect(res.trailers["grpc-status-details-bin"] ?? res.headers["grpc-status-details-bin"]).toBeDefined();
  });

  it("HTTP/1.1 Connect is unchanged", async () => {
    const res = await client(PromotionService, t.url, key, "connect-json").listPromotions({});
    expect(res.promotions).toEqual([]);
  });
});

describe("the HTTP/2 opening", () => {
  it("sends SETTINGS right after the client's preface, before any request (grpc-go and grpcio wait for them)", async () => {
    const socket = net.connect(t.app.server.port, "127.0.0.1");
    try {
      await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      const got = new Promise<Buffer>((resolve, reject) => {
        socket.once("data", resolve);
        socket.once("error", reject);
        setTimeout(() => reject(new Error("no SETTINGS within 2 s")), 2_000);
      });
      socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 0x04, 0, 0, 0, 0, 0])]));
      const first = await got;
      expect(first[3]).toBe(0x04); // a SETTINGS frame
      expect((first[4] ?? 0) & 0x1).toBe(0); // not an ACK
    } finally {
      socket.destroy();
    }
  });

  it("serves a gRPC connection whose request headers span HEADERS and CONTINUATION frames", async () => {
    // Headers over the default 16 KiB frame make Node's client split the block.
    const id = requestId("continuation");
    const big = "x".repeat(20_000);
    const res = await rawH2Request(
      t.url,
      { ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers", "x-request-id": id, "x-padding": big },
      grpcEnvelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}))),
    );
    expect(res.trailers["grpc-status"] ?? res.headers["grpc-status"]).toBe("0");
  });

  it("advertises grpc-accept-encoding on the grpc-js lane's answers", async () => {
    const res = await rawH2Request(t.url, { ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" }, grpcEnvelope(new Uint8Array()));
    expect(String(res.headers["grpc-accept-encoding"]).split(/, */)).toEqual(expect.arrayContaining(["gzip"]));
  });
});
