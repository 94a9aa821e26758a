// Which lane an h2c connection's opening picks, and the bytes it replays (src/server/first-request.ts).
import hpack from "hpack.js";
import { describe, expect, it } from "vitest";
import { grpcTo, H2_PREFACE, isGrpc, Opening } from "../../src/server/first-request.js";

const PATHS = new Set(["/grpc.health.v1.Health/Check"]);

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

function block(headers: Record<string, string>): Buffer {
  const compressor = hpack.compressor.create({ table: { size: 4096 } });
  compressor.write(Object.entries(headers).map(([name, value]) => ({ name, value })));
  const chunks: Buffer[] = [];
  for (let chunk = compressor.read(); chunk !== null; chunk = compressor.read()) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const SETTINGS = frame(0x4, 0, 0);
const ACK = frame(0x4, 0x1, 0);
const request = (contentType: string, path = "/grpc.health.v1.Health/Check") =>
  block({ ":method": "POST", ":scheme": "http", ":authority": "x", ":path": path, "content-type": contentType, te: "trailers" });
const headers = (contentType: string, path?: string) => frame(0x1, 0x4, 1, request(contentType, path));

describe("Opening", () => {
  it.each([
    ["application/grpc", "grpc"],
    ["application/grpc+proto", "grpc"],
    ["application/grpc-web+proto", "connect"],
    ["application/json", "connect"],
    ["application/proto", "connect"],
  ])("sends a first request of %s to the %s lane, its bytes replayed as they came", (contentType, lane) => {
    const bytes = Buffer.concat([H2_PREFACE, SETTINGS, headers(contentType)]);
    expect(new Opening(grpcTo(PATHS)).push(bytes)).toEqual({ lane, replay: bytes });
  });

  it("keeps gRPC to a method the lane does not serve on the Connect lane", () => {
    const bytes = Buffer.concat([H2_PREFACE, SETTINGS, headers("application/grpc", "/no.Such/Method")]);
    expect(new Opening(grpcTo(PATHS)).push(bytes)?.lane).toBe("connect");
  });

  it("waits for a header block split over HEADERS and CONTINUATION, and for bytes split anywhere", () => {
    const whole = request("application/grpc");
    const bytes = Buffer.concat([H2_PREFACE, SETTINGS, frame(0x1, 0, 1, whole.subarray(0, 10)), frame(0x9, 0x4, 1, whole.subarray(10))]);
    const opening = new Opening(grpcTo(PATHS));
    expect(opening.push(bytes.subarray(0, 40))).toBeUndefined();
    expect(opening.push(bytes.subarray(40, bytes.length - 1))).toBeUndefined();
    expect(opening.push(bytes.subarray(bytes.length - 1))).toEqual({ lane: "grpc", replay: bytes });
  });

  it("after sending its own SETTINGS, waits for the client's ACK and cuts exactly that one from the replay", () => {
    const opening = new Opening(grpcTo(PATHS));
    expect(opening.push(Buffer.concat([H2_PREFACE, SETTINGS]))).toBeUndefined();
    expect(opening.sendSettings()).toBe(true);
    expect(opening.sendSettings()).toBe(false); // once
    const request = headers("application/grpc");
    expect(opening.push(request)).toBeUndefined(); // the request, but not yet the ACK
    expect(opening.push(Buffer.concat([ACK, ACK]))).toEqual({ lane: "grpc", replay: Buffer.concat([H2_PREFACE, SETTINGS, request, ACK]) });
  });

  it("never sends SETTINGS to a client that has begun its request, nor cuts an ACK it did not cause", () => {
    const opening = new Opening(grpcTo(PATHS));
    const whole = request("application/grpc");
    expect(opening.push(Buffer.concat([H2_PREFACE, SETTINGS, frame(0x1, 0, 1, whole.subarray(0, 10))]))).toBeUndefined();
    expect(opening.sendSettings()).toBe(false);
    const rest = Buffer.concat([ACK, frame(0x9, 0x4, 1, whole.subarray(10))]);
    expect(opening.push(rest)?.replay).toEqual(Buffer.concat([H2_PREFACE, SETTINGS, frame(0x1, 0, 1, whole.subarray(0, 10)), rest]));
  });

  it("gives up on an opening past 256 KiB without a decision: the Connect lane answers it", () => {
    const opening = new Opening(grpcTo(PATHS));
    opening.push(Buffer.concat([H2_PREFACE, SETTINGS]));
    opening.sendSettings();
    opening.push(headers("application/grpc"));
    expect(opening.push(frame(0x0, 0, 1, Buffer.alloc(300 * 1024)))?.lane).toBe("connect");
  });

  it("reads content types as gRPC names them", () => {
    expect([isGrpc("application/grpc"), isGrpc("application/grpc;charset=utf-8"), isGrpc("application/grpc-web"), isGrpc("application/grpcx")]).toEqual([true, true, false, false]);
  });
});
