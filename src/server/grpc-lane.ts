// The gRPC lane: the same services, interceptors and handler contexts as the Connect lane, served
// by a @grpc/grpc-js server (several times cheaper per call than connect-node) on connections the
// listener hands it (first-request.ts). Nothing here knows a use case or a rule: each grpc-js call
// becomes the HandlerContext and request connect-es would have built — headers, deadline,
// cancellation, request id, client address, the call's cutoff in the connection registry — and
// runs through connect-es's own invokeUnaryImplementation / transformInvokeImplementation with
// the app's interceptor list, so auth, scopes, rate limits, logs, metrics, strict input and error
// mapping are the very code the Connect lane runs. Messages are protobuf-es's toBinary/fromBinary
// of the descriptors in gen/ (unknown fields kept, so strict input refuses them as on Connect).
import { fromBinary, toBinary, type DescMessage, type DescMethod, type Message } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  createMethodImplSpec,
  createServiceImplSpec,
  type ConnectRouter,
  type ContextValues,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImplSpec,
} from "@connectrpc/connect";
import { invokeUnaryImplementation, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import * as grpc from "@grpc/grpc-js";
import type http2 from "node:http2";
import type net from "node:net";
import type { Logger } from "pino";
import { clientAddressKey, laneKey, requestIdKey } from "../api/context-keys.js";
import { toConnectError, withErrorDetail } from "../api/errors.js";
import { statusBytes } from "../api/wire-status.js";
import type { TransportLimits } from "../config.js";
import { callKey } from "./call-signals.js";
import type { Connections } from "./connections.js";

export interface GrpcLaneOptions {
  services: readonly ServiceImplSpec[];
  interceptors: readonly Interceptor[];
  /** The app's request-scoped values; the lane adds request id, client address and the call. */
  contextValues: () => ContextValues;
  connections: Connections;
  limits: TransportLimits;
  maxBodyBytes: number;
  /** Streams that idle by design (reflection): they end as soon as draining begins. */
  endsOnDrain: (path: string) => boolean;
  pickRequestId: (header: string | null) => string;
  clientAddress: (remote: string | undefined) => string;
  logger: Logger;
}

export interface GrpcLane {
  /** Every path the lane serves ("/package.Service/Method"). */
  paths: ReadonlySet<string>;
  /** Serves a connection whose opening bytes are unshifted onto it. */
  inject(socket: net.Socket): void;
  /** GOAWAY to every connection; those still open after graceMs are cut. */
  drain(graceMs: number): void;
  destroy(): void;
}

/** How much earlier than grpc-js the handler's context reaches the caller's deadline. */
const DEADLINE_HEAD_START_MS = 2;

/** A request as the lane decodes it: the message, or why it could not be read. */
type Decoded = { message: Message } | { problem: ConnectError };

/** The service implementations `routes` registers, as connect-es's specs (the same objects both lanes call). */
export function serviceSpecs(routes: (router: ConnectRouter) => void, router: ConnectRouter): ServiceImplSpec[] {
  const specs: ServiceImplSpec[] = [];
  const capture: ConnectRouter = {
    handlers: router.handlers,
    service(service, impl, options) {
      router.service(service, impl, options);
      specs.push(createServiceImplSpec(service, impl));
      return capture;
    },
    rpc(method, impl, options) {
      router.rpc(method, impl, options);
      specs.push({ service: method.parent, methods: { [method.localName]: createMethodImplSpec(method, impl) } });
      return capture;
    },
  };
  routes(capture);
  return specs;
}

export function startGrpcLane(opts: GrpcLaneOptions): GrpcLane {
  const server = new grpc.Server({
    "grpc.max_concurrent_streams": opts.limits.http2MaxConcurrentStreams,
    // Messages up to MAX_BODY_BYTES are read; over it, up to twice as much, `decode` refuses them
    // with an ErrorDetail as the Connect lane does; beyond that grpc-js does, with its own words.
    "grpc.max_receive_message_length": opts.maxBodyBytes * 2,
    "grpc.max_connection_idle_ms": opts.limits.idleConnectionTimeoutMs,
    // Not an interceptor at all: it hands each stream to the connection registry as grpc-js
    // starts on it (before its body has arrived), for the limits the Connect lane's streams have.
    interceptors: [
      (_method, call) => {
        // grpc-js hands the first interceptor its base call, which holds the HTTP/2 stream.
        const stream = (call as unknown as { stream?: unknown }).stream;
        if (isServerStream(stream)) opts.connections.laneStream(stream);
        settleOwnAnswers(call, opts.logger);
        return call as grpc.ServerInterceptingCall;
      },
    ],
  });
  const paths = new Set<string>();
  for (const spec of opts.services) {
    for (const method of Object.values(spec.methods)) paths.add(register(server, method, opts));
  }
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  return {
    paths,
    inject: (socket) => injector.injectConnection(socket),
    drain: (graceMs) => injector.drain(graceMs),
    destroy: () => {
      injector.destroy();
      server.forceShutdown();
    },
  };
}

/** A status as grpc-js's calls send it. */
interface LaneStatus {
  code: grpc.status;
  details: string;
  metadata?: grpc.Metadata | null;
}

/** The two methods of grpc-js's base call that its own refusals pass through. */
interface BaseCall {
  sendStatus?: (status: LaneStatus) => void;
  decompressMessage?: (message: Buffer, encoding: string) => Buffer | Promise<Buffer>;
}

/**
 * grpc-js answers some requests itself, before any handler: a stream that ends inside a message, a
 * second message on a unary call, a declared length over its limit, a body it cannot inflate, its
 * own deadline timer. Those answers get the ErrorDetail and the code the Connect lane gives them
 * (wire-answers.ts), so every error carries one on both lanes. They all go through the base call's
 * own `sendStatus`, which grpc-js calls as a method of the object (checked against grpc-js 1.14:
 * server-interceptors.ts, BaseServerInterceptingCall), so this call's method is wrapped. A message
 * flagged compressed on a call that names no grpc-encoding is refused too (grpc-js reads it as
 * plain bytes; the gRPC spec makes it a protocol error, and connect-node refuses it).
 */
function settleOwnAnswers(call: object, logger: Logger): void {
  const base = call as BaseCall;
  const send = base.sendStatus?.bind(call);
  if (send) base.sendStatus = (status) => send(settledStatus(status, logger));
  const inflate = base.decompressMessage?.bind(call);
  if (inflate) {
    base.decompressMessage = (message, encoding) =>
      message.readUInt8(0) === 1 && encoding === "identity"
        ? Promise.reject({ code: grpc.status.INVALID_ARGUMENT, details: "the request message is flagged compressed, but the call names no grpc-encoding" })
        : inflate(message, encoding);
  }
}

/** `status` with an ErrorDetail (and the Connect lane's code); unchanged when it has one. */
function settledStatus(status: LaneStatus, logger: Logger): LaneStatus {
  if (status.code === grpc.status.OK || (status.metadata?.get("grpc-status-details-bin").length ?? 0) > 0) return status;
  const details = typeof status.details === "string" ? status.details : "";
  const [code, detail, message] = ownAnswer(status.code, details);
  if (code === Code.Internal) logger.error({ grpcStatus: status.code, details }, "grpc-js answered a call with an internal error");
  const error = withErrorDetail(new ConnectError(message, code), detail, message);
  const metadata = status.metadata?.clone() ?? new grpc.Metadata();
  const bytes = statusBytes(error);
  metadata.set("grpc-status-details-bin", Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return { code: error.code as number as grpc.status, details: error.rawMessage, metadata };
}

/** The code, detail and message of an answer grpc-js made itself. */
function ownAnswer(grpcCode: unknown, details: string): [Code, { code: string; message?: string }, string] {
  // A body that does not inflate rejects with zlib's Error, whose `code` is a string.
  if (typeof grpcCode !== "number") return [Code.InvalidArgument, { code: "malformed_body" }, `the request body could not be inflated (${details || String(grpcCode)})`];
  const code = grpcCode as Code;
  if (code === Code.ResourceExhausted) return [code, { code: "body_too_large" }, `the request is larger than this server accepts (${details})`];
  if (code === Code.DeadlineExceeded) return [code, { code: "deadline_exceeded", message: "the call's deadline passed before it finished" }, details];
  if (code === Code.Unimplemented && /^Received no request message|^No message received/i.test(details)) {
    return [Code.InvalidArgument, { code: "malformed_body" }, "the request ended before its message was complete"];
  }
  if (code === Code.Unimplemented && /second request message/.test(details)) return [code, { code: "malformed_body" }, "a unary call takes exactly one request message"];
  if (code === Code.Unimplemented && /unsupported encoding/.test(details)) return [code, { code: "unsupported_encoding" }, details];
  if (code === Code.InvalidArgument) return [code, { code: "malformed_body" }, details];
  if (code === Code.Internal && /^Invalid grpc-timeout/.test(details)) return [Code.InvalidArgument, { code: "invalid_timeout" }, details];
  if (code === Code.Internal && /^Failed to decompress message/.test(details)) return [Code.InvalidArgument, { code: "malformed_body" }, "the request body could not be inflated"];
  if (code === Code.Internal && /^Error deserializing request/.test(details)) return [Code.InvalidArgument, { code: "malformed_body" }, details];
  if (code === Code.Internal || code === Code.Unknown) return [Code.Internal, { code: "internal", message: "internal error; it has been logged" }, "internal error; it has been logged"];
  return [code, { code: Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() }, details];
}

function isServerStream(value: unknown): value is http2.ServerHttp2Stream {
  return typeof value === "object" && value !== null && "session" in value && "rstCode" in value && "respond" in value;
}

/** Serves one method; returns its path. */
function register(server: grpc.Server, spec: MethodImplSpec, opts: GrpcLaneOptions): string {
  const method = spec.method;
  const path = `/${method.parent.typeName}/${method.name}`;
  const serialize = (message: Message): Buffer => {
    const bytes = toBinary(method.output, message);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
  const deserialize = (bytes: Buffer): Decoded => decode(method, bytes, opts.maxBodyBytes);
  const interceptors = [...opts.interceptors];
  switch (spec.kind) {
    case "unary": {
      const handler: grpc.handleUnaryCall<Decoded, Message> = (call, callback) => {
        const { ctx, done } = begin(call, spec, path, opts);
        if ("problem" in call.request) {
          done();
          return callback(statusOf(call.request.problem, ctx.responseTrailer));
        }
        invokeUnaryImplementation(spec, ctx, call.request.message, interceptors).then(
          (message) => {
            call.sendMetadata(metadataOf(ctx.responseHeader));
            callback(null, message, trailerOf(ctx.responseTrailer));
            done();
          },
          (error: unknown) => {
            call.sendMetadata(metadataOf(ctx.responseHeader));
            callback(statusOf(toConnectError(error), ctx.responseTrailer));
            done();
          },
        );
      };
      server.register(path, handler, serialize, deserialize, "unary");
      return path;
    }
    case "server_streaming": {
      const handler: grpc.handleServerStreamingCall<Decoded, Message> = (call) => {
        const { ctx, done } = begin(call, spec, path, opts);
        const request = call.request;
        const input = "problem" in request ? failing(request.problem) : once(request.message);
        stream(call, transformInvokeImplementation(spec, ctx, interceptors)(input), ctx, done);
      };
      server.register(path, handler, serialize, deserialize, "serverStream");
      return path;
    }
    case "bidi_streaming":
    case "client_streaming": {
      const handler: grpc.handleBidiStreamingCall<Decoded, Message> = (call) => {
        const { ctx, done } = begin(call, spec, path, opts);
        stream(call, transformInvokeImplementation(spec, ctx, interceptors)(messagesOf(call)), ctx, done);
      };
      server.register(path, handler, serialize, deserialize, spec.kind === "bidi_streaming" ? "bidi" : "clientStream");
      return path;
    }
  }
}

type AnyCall = grpc.ServerUnaryCall<Decoded, Message> | grpc.ServerWritableStream<Decoded, Message> | grpc.ServerDuplexStream<Decoded, Message>;

/** The HandlerContext connect-es would build for this call, and the call entered in the connection registry. */
function begin(call: AnyCall, spec: MethodImplSpec, path: string, opts: GrpcLaneOptions): { ctx: ReturnType<typeof createHandlerContext>; done: () => void } {
  const header = headersOf(call.metadata);
  const requestId = opts.pickRequestId(header.get("x-request-id"));
  const registered = opts.connections.callStarted(opts.endsOnDrain(path));
  const cutoff = registered.call.cutoff;
  (call as NodeJS.EventEmitter).once("cancelled", () => cutoff.abort(new ConnectError("the client cancelled the call", Code.Canceled)));
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  const values = opts
    .contextValues()
    .set(requestIdKey, requestId)
    .set(laneKey, "grpc-js")
    .set(clientAddressKey, opts.clientAddress(peerAddress(call.getPeer())))
    .set(callKey, registered.call);
  const ctx = createHandlerContext({
    service: spec.method.parent,
    method: spec.method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: path,
    // A little before grpc-js's own deadline timer: the handler's DEADLINE_EXCEEDED, with its
    // ErrorDetail (and its log line and metric), is sent before grpc-js sends a bare one.
    timeoutMs: Number.isFinite(at) ? Math.max(0, at - Date.now() - DEADLINE_HEAD_START_MS) : undefined,
    requestSignal: cutoff.signal,
    requestHeader: header,
    responseHeader: { "x-request-id": requestId },
    contextValues: values,
  });
  return {
    ctx,
    done: () => {
      ctx.abort(); // stops the deadline timer
      registered.done();
    },
  };
}

/** The address of a grpc-js peer ("1.2.3.4:5678", "::1:5678", or a bare address). */
function peerAddress(peer: string): string | undefined {
  if (peer === "unknown") return undefined;
  const bracketed = /^\[(.*)\]:\d+$/.exec(peer);
  if (bracketed) return bracketed[1];
  const port = /^(.*):\d+$/.exec(peer);
  return port && (port[1]?.includes(".") || port[1]?.includes(":")) ? port[1] : peer;
}

/** Writes every message (waiting while the client's window is full), then the status. */
function stream(
  call: grpc.ServerWritableStream<Decoded, Message> | grpc.ServerDuplexStream<Decoded, Message>,
  messages: AsyncIterable<Message>,
  ctx: ReturnType<typeof createHandlerContext>,
  done: () => void,
): void {
  let headersSent = false;
  const sendHeaders = (): void => {
    if (headersSent) return;
    headersSent = true;
    call.sendMetadata(metadataOf(ctx.responseHeader));
  };
  const pump = async (): Promise<void> => {
    for await (const message of messages) {
      sendHeaders();
      if (!call.write(message)) await writable(call, ctx.signal);
    }
  };
  pump().then(
    () => {
      sendHeaders();
      call.end(trailerOf(ctx.responseTrailer));
      done();
    },
    (error: unknown) => {
      sendHeaders();
      call.emit("error", statusOf(toConnectError(error), ctx.responseTrailer));
      done();
    },
  );
}

function writable(call: NodeJS.EventEmitter, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const go = (): void => {
      call.off("drain", go);
      signal.removeEventListener("abort", go);
      resolve();
    };
    call.on("drain", go);
    signal.addEventListener("abort", go, { once: true });
  });
}

function decode(method: DescMethod, bytes: Buffer, maxBytes: number): Decoded {
  if (bytes.length > maxBytes) {
    const message = `the request (${bytes.length} bytes) is larger than this server accepts (${maxBytes} bytes)`;
    return { problem: withErrorDetail(new ConnectError(message, Code.ResourceExhausted), { code: "body_too_large", message }, message) };
  }
  try {
    return { message: fromBinary(method.input as DescMessage, bytes) };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const message = `the request body is not a valid ${method.input.typeName} in protobuf binary (${reason})`;
    return { problem: withErrorDetail(new ConnectError(message, Code.InvalidArgument), { code: "malformed_body", message }, message) };
  }
}

async function* once(message: Message): AsyncIterable<Message> {
  yield message;
}

async function* failing(problem: ConnectError): AsyncIterable<Message> {
  throw problem;
}

async function* messagesOf(call: grpc.ServerDuplexStream<Decoded, Message>): AsyncIterable<Message> {
  for await (const decoded of call as AsyncIterable<Decoded>) {
    if ("problem" in decoded) throw decoded.problem;
    yield decoded.message;
  }
}

/* ------------------------------------------------------------------ metadata and status ---- */

/** gRPC metadata as the Headers connect-es hands interceptors (binary values base64, as on the wire). */
function headersOf(metadata: grpc.Metadata): Headers {
  const header = new Headers();
  for (const [key, value] of Object.entries(metadata.getMap())) {
    header.append(key, typeof value === "string" ? value : value.toString("base64"));
  }
  return header;
}

function metadataOf(header: Headers): grpc.Metadata {
  const metadata = new grpc.Metadata();
  header.forEach((value, key) => {
    if (key.endsWith("-bin")) metadata.set(key, Buffer.from(value, "base64"));
    else metadata.set(key, value);
  });
  return metadata;
}

function trailerOf(trailer: Headers): grpc.Metadata | undefined {
  let empty = true;
  trailer.forEach(() => (empty = false));
  return empty ? undefined : metadataOf(trailer);
}

/** The status a ConnectError is on the wire: code, message (grpc-js percent-encodes it), its metadata, and grpc-status-details-bin. */
function statusOf(error: ConnectError, trailer: Headers): grpc.StatusObject {
  const metadata = metadataOf(trailer);
  error.metadata.forEach((value, key) => metadata.set(key, value));
  if (error.details.length > 0) {
    const bytes = statusBytes(error);
    metadata.set("grpc-status-details-bin", Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  return { code: error.code as number as grpc.status, details: error.rawMessage, metadata };
}
