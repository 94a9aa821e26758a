import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";

// connect-es answers a request body it cannot decode (malformed protobuf, a compressed gRPC frame
// without grpc-encoding) with INTERNAL, before any interceptor runs. That is the client's fault,
// not the server's: this wrapper rewrites exactly those answers to INVALID_ARGUMENT, in each
// protocol's own error encoding (Connect JSON body, gRPC trailers, gRPC-Web trailer frame).

const CLIENT_FAULT = /^(parse binary: |received compressed envelope|invalid envelope)/;
const INTERNAL_GRPC = "13";
const INVALID_ARGUMENT_GRPC = "3";

export function reclassifyParseErrors(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (request: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const response = await handler(request);
    if (!response.body) return response;
    const contentType = response.header?.get("content-type") ?? "";
    // gRPC-Web carries the status in a trailer frame of the body, gRPC in the HTTP trailers (or
    // the headers), Connect unary in the HTTP status and a JSON body.
    if (contentType.startsWith("application/grpc-web")) return { ...response, body: watch(response, response.body, true) };
    if (contentType.startsWith("application/grpc")) return { ...response, body: watch(response, response.body, false) };
    return response.status === 500 ? connectUnary(response) : response;
  };
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

function grpcMessage(headers: Headers | undefined): string {
  const raw = headers?.get("grpc-message") ?? "";
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** gRPC keeps the status in the trailers (or the headers, trailers-only); fix it once the body ends. */
function fixGrpcHeaders(headers: Headers | undefined): void {
  if (headers?.get("grpc-status") === INTERNAL_GRPC && CLIENT_FAULT.test(grpcMessage(headers))) {
    headers.set("grpc-status", INVALID_ARGUMENT_GRPC);
  }
}

/**
 * The body passed through chunk by chunk, with the status fixed wherever it travels. A plain
 * iterator rather than an async generator: this sits on every call, and a generator costs every
 * chunk several more promise hops.
 */
function watch(response: UniversalServerResponse, body: AsyncIterable<Uint8Array>, trailerFrames: boolean): AsyncIterable<Uint8Array> {
  fixGrpcHeaders(response.header);
  return {
    [Symbol.asyncIterator]() {
      const chunks = body[Symbol.asyncIterator]();
      return {
        next: () =>
          chunks.next().then((step): IteratorResult<Uint8Array> => {
            if (step.done === true) {
              fixGrpcHeaders(response.trailer);
              return step;
            }
            return trailerFrames ? { done: false, value: fixGrpcWebTrailerFrame(step.value) } : step;
          }),
        return: (value?: unknown) => chunks.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
      };
    },
  };
}

/** A gRPC-Web trailer frame (flag 0x80) carrying an INTERNAL client-fault status, rewritten. */
function fixGrpcWebTrailerFrame(chunk: Uint8Array): Uint8Array {
  if (chunk.byteLength < 5 || (chunk[0] ?? 0) !== 0x80) return chunk;
  const text = new TextDecoder().decode(chunk.subarray(5));
  const status = /^grpc-status: *13\r?$/m;
  const message = /^grpc-message: *(.*?)\r?$/m.exec(text)?.[1] ?? "";
  let decoded = message;
  try {
    decoded = decodeURIComponent(message);
  } catch {
    // keep it raw
  }
  if (!status.test(text) || !CLIENT_FAULT.test(decoded)) return chunk;
  const body = new TextEncoder().encode(text.replace(status, `grpc-status: ${INVALID_ARGUMENT_GRPC}`));
  const frame = new Uint8Array(5 + body.byteLength);
  frame[0] = 0x80;
  new DataView(frame.buffer).setUint32(1, body.byteLength);
  frame.set(body, 5);
  return frame;
}

/** Connect unary errors are a JSON body with an HTTP status; INTERNAL is 500, INVALID_ARGUMENT 400. */
async function connectUnary(response: UniversalServerResponse): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of response.body ?? []) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const replay = async function* (b: Uint8Array) {
    yield b;
  };
  try {
    const parsed: unknown = JSON.parse(bytes.toString("utf8"));
    if (
      parsed && typeof parsed === "object" && "code" in parsed && parsed.code === "internal" &&
      "message" in parsed && typeof parsed.message === "string" && CLIENT_FAULT.test(parsed.message)
    ) {
      const fixed = Buffer.from(JSON.stringify({ ...parsed, code: "invalid_argument" }));
      const header = new Headers(response.header);
      header.set("content-length", String(fixed.byteLength));
      return { ...response, status: 400, header, body: replay(fixed) };
    }
  } catch {
    // not a JSON error body: pass it on unchanged
  }
  return { ...response, body: replay(bytes) };
}
