// Errors in each protocol's own encoding, written the way every client reads them: Connect's JSON
// error body, gRPC's grpc-status / grpc-message / grpc-status-details-bin, gRPC-Web's trailer
// frame. Used for answers connect-es writes itself (wire-answers.ts) and for routes it never sees
// (src/server/fallback.ts).
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType, base64Encode } from "@bufbuild/protobuf/wire";
import type { ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";

/**
 * What the server decompresses (connect-node's adapter default, which src/server/server.ts keeps),
 * advertised on every gRPC answer as the spec asks, so clients know they may compress.
 */
export const GRPC_ACCEPT_ENCODING = [compressionGzip.name, compressionBrotli.name].join(",");

/**
 * grpc-message as the gRPC HTTP/2 spec encodes it: bytes outside printable ASCII, and '%', as
 * %XX of their UTF-8, everything else as is. connect-es uses encodeURIComponent, which also
 * escapes ':' ';' ',' and spaces; grpc-js (decodeURI) then shows "name%3A name is required%3B".
 */
export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** google.rpc.Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }: grpc-status-details-bin, before base64. */
export function statusBytes(error: ConnectError): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.Varint).int32(error.code);
  if (error.rawMessage !== "") w.tag(2, WireType.LengthDelimited).string(error.rawMessage);
  for (const detail of error.details) {
    const [type, value] = "desc" in detail ? [detail.desc.typeName, toBinary(detail.desc, create(detail.desc, detail.value))] : [detail.type, detail.value];
    const any = new BinaryWriter().tag(1, WireType.LengthDelimited).string(`type.googleapis.com/${type}`).tag(2, WireType.LengthDelimited).bytes(value).finish();
    w.tag(3, WireType.LengthDelimited).bytes(any);
  }
  return w.finish();
}

/** Sets the status of `error` (code, spec-encoded message, details) on gRPC headers or trailers. */
export function writeGrpcStatus(target: Headers, error: ConnectError): void {
  target.set("grpc-status", String(error.code));
  target.set("grpc-message", encodeGrpcMessage(error.rawMessage));
  if (error.details.length > 0) target.set("grpc-status-details-bin", base64Encode(statusBytes(error), "std_raw"));
  else target.delete("grpc-status-details-bin");
}

/** A gRPC-Web trailer frame (flag 0x80) holding `trailer`. */
export function grpcWebTrailerFrame(trailer: Headers): Uint8Array {
  const body = trailerSerialize(trailer);
  const frame = new Uint8Array(5 + body.byteLength);
  frame[0] = trailerFlag;
  new DataView(frame.buffer).setUint32(1, body.byteLength);
  frame.set(body, 5);
  return frame;
}
