// Every answer as it leaves a handler, whoever wrote it. connect-es answers some requests before
// any interceptor runs — a body it cannot decode, one over the size limit, JSON that does not fit
// the schema, a content type or HTTP method it does not take — and those answers carry no
// ErrorDetail, call a client's malformed protobuf INTERNAL, and say 415 or 405 with an empty body.
// This wrapper, put around each handler where the router is built, settles them in the caller's
// own protocol (Connect JSON body, gRPC trailers, gRPC-Web trailer frame, Connect end-stream):
// - a client's undecodable body is INVALID_ARGUMENT, not INTERNAL;
// - every error carries a promotions.v1.ErrorDetail, naming the field for JSON that does not fit;
// - grpc-message is percent-encoded as the gRPC spec says, so every client shows the exact text;
// - gRPC answers advertise grpc-accept-encoding; 415 and 405 get a short text saying what to do.
// Errors that already carry an ErrorDetail (all the interceptors' and handlers') keep it.
import type { DescMessage, DescMethod, JsonValue } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, endStreamFlag, errorFromJson, errorFromJsonBytes, errorToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import { hasErrorDetail, withErrorDetail } from "./errors.js";
import { findJsonProblem } from "./json-problems.js";
import { inPlaceOf } from "./wrap-handler.js";
import { GRPC_ACCEPT_ENCODING, grpcWebTrailerFrame, writeGrpcStatus } from "./wire-status.js";

/** What an error answer may need to know of the request it answers. */
interface Asked {
  method: DescMethod;
  /** The request body as JSON, when it was JSON and could be read; undefined otherwise. */
  json(): JsonValue | undefined;
}

export function wireAnswers(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (request: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const { request: passed, json } = keepJsonBody(request);
    const response = await handler(passed);
    return answer(request, response, { method: handler.method, json });
  };
  return inPlaceOf(handler, wrapped);
}

function answer(request: UniversalServerRequest, response: UniversalServerResponse, asked: Asked): UniversalServerResponse | Promise<UniversalServerResponse> {
  const contentType = response.header?.get("content-type") ?? "";
  if (response.status === 415 || response.status === 405 || response.status === 505) return plainRefusal(request, response, asked.method);
  if (!response.body) return response;
  if (contentType.startsWith("application/grpc-web")) return { ...response, body: watch(response, response.body, asked, "grpc-web") };
  if (contentType.startsWith("application/grpc")) {
    response.header?.set("grpc-accept-encoding", GRPC_ACCEPT_ENCODING);
    return { ...response, body: watch(response, response.body, asked, "grpc") };
  }
  if (contentType.startsWith("application/connect+")) return { ...response, body: watch(response, response.body, asked, "connect-stream") };
  return response.status === 200 ? response : connectUnaryError(response, asked);
}

/* ------------------------------------------------------------------------ settling one error ---- */

// connect-es raises a client's undecodable body as INTERNAL; it is the client's fault.
const CLIENT_FAULT = /^(parse binary: |received compressed envelope|invalid envelope|protocol error: (incomplete envelope|promised \d+ bytes))/;

/** `error` as the client should get it; the same object when it needs nothing. */
function settle(error: ConnectError, asked: Asked): ConnectError {
  let e = error;
  if (e.code === Code.Internal && CLIENT_FAULT.test(e.rawMessage)) {
    const reclassified = new ConnectError(e.rawMessage, Code.InvalidArgument, undefined, undefined, e);
    reclassified.details.push(...e.details);
    e = reclassified;
  }
  if (hasErrorDetail(e)) return e;
  const text = e.rawMessage;
  if (/ from JSON\b/.test(text) && e.code === Code.InvalidArgument) return jsonError(e, asked);
  const oversize = /^message size (\d+) is larger than configured readMaxBytes (\d+)/.exec(text);
  if (oversize) {
    const message = `the request (${oversize[1]} bytes) is larger than this server accepts (${oversize[2]} bytes)`;
    return withErrorDetail(e, { code: "body_too_large", message }, message);
  }
  if (/exceeds the limit of \d+/.test(text) && e.code === Code.ResourceExhausted) return withErrorDetail(e, { code: "body_too_large" });
  if (CLIENT_FAULT.test(text)) {
    const message = `the request body is not a valid ${asked.method.input.typeName} in protobuf binary (${text.replace(/^parse binary: /, "")})`;
    return withErrorDetail(e, { code: "malformed_body", message }, message);
  }
  if (/^protocol error: (missing|received extra) input message/.test(text)) return withErrorDetail(e, { code: "malformed_body" });
  if (/^unknown compression/.test(text)) return withErrorDetail(e, { code: "unsupported_encoding" });
  if (/timeout/.test(text) && e.code === Code.InvalidArgument) return withErrorDetail(e, { code: "invalid_timeout" });
  if (e.code === Code.DeadlineExceeded) return withErrorDetail(e, { code: "deadline_exceeded", message: "the call's deadline passed before it finished" });
  if (e.code === Code.Canceled) return withErrorDetail(e, { code: "canceled" });
  if (e.code === Code.Internal || e.code === Code.Unknown) return withErrorDetail(e, { code: "internal", message: "internal error; it has been logged" });
  return withErrorDetail(e, { code: e.code === Code.Unavailable ? "unavailable" : codeName(e.code) });
}

function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** JSON that is not JSON, or that does not fit the request message: the first bad field, by path. */
function jsonError(e: ConnectError, asked: Asked): ConnectError {
  const json = asked.json();
  const problem = json === undefined ? null : findJsonProblem(asked.method.input, json);
  if (problem === null) {
    const syntax = json === undefined;
    const message = syntax
      ? `the request body is not valid JSON (${e.rawMessage.replace(/^cannot decode \S+ \S+ from JSON: /, "")})`
      : e.rawMessage.replace(/^cannot decode (message|field) /, "cannot read ");
    return withErrorDetail(e, { code: syntax ? "malformed_json" : "invalid_value", message }, message);
  }
  return withErrorDetail(e, problem, problem.param === "" ? problem.message : `${problem.param}: ${problem.message}`);
}

/**
 * The JSON a Connect request carried, for jsonError: the unary POST body (its chunks are kept as
 * they pass to the handler, nothing is copied unless an error needs them) or GET's `message`.
 */
function keepJsonBody(request: UniversalServerRequest): { request: UniversalServerRequest; json: () => JsonValue | undefined } {
  const none = () => undefined;
  if (request.method === "GET") {
    const query = new URL(request.url).searchParams;
    if (query.get("encoding") !== "json") return { request, json: none };
    return { request, json: () => parseJson(query.get("base64") === "1" ? base64Decode(query.get("message") ?? "") : new TextEncoder().encode(query.get("message") ?? "")) };
  }
  const contentType = request.header.get("content-type") ?? "";
  const body = request.body;
  if (!/^application\/json\b/.test(contentType) || body === null || typeof body !== "object" || !(Symbol.asyncIterator in body)) {
    return { request, json: none };
  }
  const chunks: Uint8Array[] = [];
  const kept: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]() {
      const it = (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
      return {
        next: () =>
          it.next().then((step) => {
            if (step.done !== true) chunks.push(step.value);
            return step;
          }),
        return: (value?: unknown) => it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
      };
    },
  };
  // A compressed body would need decompressing again; its errors go without a field path.
  const encoded = (request.header.get("content-encoding") ?? "identity") !== "identity";
  return { request: { ...request, body: kept }, json: () => (encoded ? undefined : parseJson(Buffer.concat(chunks))) };
}

function parseJson(bytes: Uint8Array): JsonValue | undefined {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as JsonValue;
  } catch {
    return undefined;
  }
}

/* ---------------------------------------------------------------------- per protocol ------------ */

/** Connect unary errors are a JSON body with an HTTP status. */
async function connectUnaryError(response: UniversalServerResponse, asked: Asked): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of response.body ?? []) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const encoded = response.header?.get("content-encoding");
  let error: ConnectError | null = null;
  if (encoded === null || encoded === undefined || encoded === "identity") {
    try {
      error = errorFromJsonBytes(bytes, undefined, new ConnectError("not an error body"));
    } catch {
      error = null;
    }
  }
  const settled = error === null ? null : settle(error, asked);
  if (settled === null || settled === error) return { ...response, body: once(bytes) };
  const fixed = errorToJsonBytes(settled, {});
  const header = new Headers(response.header);
  header.set("content-length", String(fixed.byteLength));
  return { ...response, status: codeToHttpStatus(settled.code), header, body: once(fixed) };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** Settles the status in gRPC headers or trailers, in place, and re-encodes its message. */
function settleGrpcStatus(target: Headers | undefined, asked: Asked): void {
  if (target === undefined) return;
  const status = target.get("grpc-status");
  if (status === null || status === "0") return;
  const error = findTrailerError(target);
  if (error === undefined) return;
  writeGrpcStatus(target, settle(error, asked));
}

/**
 * The body passed through chunk by chunk, with the status settled wherever it travels: gRPC in
 * the headers or trailers (fixed as the body ends, before the adapter writes the trailers),
 * gRPC-Web in a trailer frame, Connect streams in the end-stream message. A plain iterator rather
 * than an async generator: this sits on every call, and a generator costs every chunk several
 * more promise hops.
 */
function watch(response: UniversalServerResponse, body: AsyncIterable<Uint8Array>, asked: Asked, protocol: "grpc" | "grpc-web" | "connect-stream"): AsyncIterable<Uint8Array> {
  if (protocol === "grpc") settleGrpcStatus(response.header, asked);
  return {
    [Symbol.asyncIterator]() {
      const chunks = body[Symbol.asyncIterator]();
      return {
        next: () =>
          chunks.next().then((step): IteratorResult<Uint8Array> => {
            if (step.done === true) {
              if (protocol === "grpc") settleGrpcStatus(response.trailer, asked);
              return step;
            }
            if (protocol === "grpc-web") return { done: false, value: settleGrpcWebTrailer(step.value, asked) };
            if (protocol === "connect-stream") return { done: false, value: settleEndStream(step.value, asked) };
            return step;
          }),
        return: (value?: unknown) => chunks.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
      };
    },
  };
}

/** A gRPC-Web trailer frame (flag 0x80) with an error status, settled; every other chunk as is. */
function settleGrpcWebTrailer(chunk: Uint8Array, asked: Asked): Uint8Array {
  if (chunk.byteLength < 5 || (chunk[0] ?? 0) !== trailerFlag) return chunk;
  const trailer = trailerParse(chunk.subarray(5));
  const status = trailer.get("grpc-status");
  if (status === null || status === "0") return chunk;
  settleGrpcStatus(trailer, asked);
  return grpcWebTrailerFrame(trailer);
}

/** A Connect end-stream message (flag 0x02, not compressed) with an error, settled. */
function settleEndStream(chunk: Uint8Array, asked: Asked): Uint8Array {
  if (chunk.byteLength < 5 || (chunk[0] ?? 0) !== endStreamFlag) return chunk;
  let end: unknown;
  try {
    end = JSON.parse(new TextDecoder().decode(chunk.subarray(5)));
  } catch {
    return chunk;
  }
  if (typeof end !== "object" || end === null || !("error" in end) || end.error === undefined) return chunk;
  let error: ConnectError;
  try {
    error = errorFromJson(end.error as JsonValue, undefined, new ConnectError("not an error"));
  } catch {
    return chunk;
  }
  const settled = settle(error, asked);
  if (settled === error) return chunk;
  const body = new TextEncoder().encode(JSON.stringify({ ...end, error: errorToJson(settled, {}) }));
  const frame = new Uint8Array(5 + body.byteLength);
  frame[0] = endStreamFlag;
  new DataView(frame.buffer).setUint32(1, body.byteLength);
  frame.set(body, 5);
  return frame;
}

/* ------------------------------------------------------------------- plain HTTP refusals -------- */

const PROTOCOLS = "application/json or application/proto (Connect), application/grpc (gRPC, over HTTP/2) or application/grpc-web (gRPC-Web)";

/** 415, 405 and 505 as connect-es writes them have no body; a person with curl needs one line of help. */
function plainRefusal(request: UniversalServerRequest, response: UniversalServerResponse, method: DescMethod): UniversalServerResponse {
  const rpc = `${method.parent.typeName}/${method.name}`;
  const path = `/${rpc}`;
  const canGet = method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
  const example = `curl -H 'content-type: application/json' -H 'authorization: Bearer <key>' -d '{}' <this server>${path}`;
  const header = new Headers(response.header);
  let text: string;
  if (response.status === 405) {
    header.set("allow", canGet ? "POST, GET" : "POST");
    text = canGet
      ? `${method.name} takes POST, or GET with the request in the URL (${path}?connect=v1&encoding=json&message=<URL-encoded JSON>); got ${request.method}.\n`
      : `${method.name} changes state, so it takes POST with the request as the body (content-type: application/json for Connect); got ${request.method}.\n  ${example}\n`;
  } else if (response.status === 505) {
    text = `${rpc} streams both ways and needs HTTP/2 (h2c or TLS with ALPN); this request came over HTTP/${request.httpVersion}.\n`;
  } else if (request.method === "GET") {
    text = `a GET call of ${method.name} puts the request in the URL: ${path}?connect=v1&encoding=json&message=<URL-encoded JSON>, e.g. message=%7B%7D for {}.\n`;
  } else {
    const sent = request.header.get("content-type") ?? "";
    text = `${sent === "" ? "no content-type" : `unsupported content-type ${JSON.stringify(sent)}`}: call ${rpc} with ${PROTOCOLS}.\n  ${example}\n`;
  }
  const bytes = new TextEncoder().encode(text);
  header.set("content-type", "text/plain; charset=utf-8");
  header.set("content-length", String(bytes.byteLength));
  return { ...response, header, body: once(bytes) };
}
