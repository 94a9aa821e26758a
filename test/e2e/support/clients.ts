// Real clients for the e2e tests: raw HTTP, grpc-js and buf curl, each as small as it can be.
import { execFile } from "node:child_process";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { AnySchema, anyUnpack, type Any } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ErrorDetailSchema, type ErrorDetail } from "../../../gen/promotions/v1/errors_pb.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request on a fresh connection; the body, when given, is sent in full. */
export function rawRequest(
  url: string,
  init: { method: string; path: string; headers?: Record<string, string>; body?: Buffer | string; ca?: Buffer },
): Promise<RawResponse> {
  const target = new URL(init.path, url);
  const send = target.protocol === "https:" ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = send(target, { method: init.method, headers: init.headers, agent: false, ca: init.ca }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end(init.body);
  });
}

/** Writes bytes on a raw socket and resolves once the server has closed it (or after ms). */
export function sendRawBytes(port: number, chunks: (Buffer | string)[], ms = 2_000): Promise<Buffer> {
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    const socket = net.connect(port, "127.0.0.1", () => {
      for (const chunk of chunks) socket.write(chunk);
    });
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(received));
    };
    const timer = setTimeout(done, ms);
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    socket.on("error", done);
    socket.on("close", done);
  });
}

export interface BufCurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the buf CLI from node_modules with the current (Node 24) binary. */
export function bufCurl(args: string[]): Promise<BufCurlResult> {
  const buf = `${root}node_modules/.bin/buf`;
  return new Promise((resolve) => {
    execFile(process.execPath, [buf, "curl", ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface GrpcJsResult<T> {
  error: grpc.ServiceError | null;
  value: T | undefined;
}

/** A plain grpc-js client, loaded from the .proto files as other services would load them. */
export function grpcJsUnary<Req, Res>(
  address: string,
  protoFile: string,
  serviceName: string,
  methodName: string,
  request: Req,
  options: grpc.CallOptions = {},
): Promise<GrpcJsResult<Res>> {
  const definition = protoLoader.loadSync(protoFile, { includeDirs: [`${root}proto`], longs: String, enums: String, defaults: true });
  const service = definition[serviceName] as protoLoader.ServiceDefinition | undefined;
  const method = service?.[methodName] as protoLoader.MethodDefinition<Req, Res> | undefined;
  if (method === undefined) throw new Error(`${serviceName}/${methodName} not in ${protoFile}`);
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      new grpc.Metadata(),
      options,
      (error, value) => {
        client.close();
        resolve({ error, value });
      },
    );
  });
}

/** The loader options a typical grpc-js service uses (google/protobuf imports come bundled with proto-loader). */
export const GRPC_JS_LOADER_OPTIONS: protoLoader.Options = {
  includeDirs: [`${root}proto`],
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

type UnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  callback: (error: grpc.ServiceError | null, value?: unknown) => void,
) => grpc.ClientUnaryCall;

/** One service's grpc-js client, as `grpc.loadPackageDefinition(...).pkg.Service` builds it, with promise-returning calls. */
export interface GrpcJsService {
  /** Calls `method` (as named in the .proto); `key`, when given, goes out as `authorization: Bearer <key>`. */
  call<Res>(method: string, request: object, key?: string | null): Promise<GrpcJsResult<Res>>;
  close(): void;
}

/** A plain grpc-js client for `serviceName`, loaded from `protoFiles` (relative to proto/) with proto-loader. */
export function grpcJsService(address: string, protoFiles: string[], serviceName: string): GrpcJsService {
  const definition = protoLoader.loadSync(protoFiles, GRPC_JS_LOADER_OPTIONS);
  let node: unknown = grpc.loadPackageDefinition(definition);
  for (const part of serviceName.split(".")) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== "function") throw new Error(`${serviceName} is not a service in ${protoFiles.join(", ")}`);
  const Service = node as grpc.ServiceClientConstructor;
  const client = new Service(address, grpc.credentials.createInsecure());
  return {
    call<Res>(method: string, request: object, key: string | null = null) {
      const fn = (client as unknown as Record<string, UnaryMethod | undefined>)[method];
      if (typeof fn !== "function") throw new Error(`${serviceName} has no method ${method}`);
      const metadata = new grpc.Metadata();
      if (key !== null) metadata.set("authorization", `Bearer ${key}`);
      return new Promise<GrpcJsResult<Res>>((resolve) => {
        fn.call(client, request, metadata, (error, value) => resolve({ error, value: value as Res | undefined }));
      });
    },
    close: () => client.close(),
  };
}

/** The google.rpc.Status a gRPC error carries in its `grpc-status-details-bin` trailer. */
export interface GrpcStatusDetails {
  code: number;
  message: string;
  /** The `promotions.v1.ErrorDetail` entries among the status' Any details. */
  errorDetails: ErrorDetail[];
  /** Type URLs of every Any detail, ErrorDetail or not. */
  typeUrls: string[];
}

/**
 * Decodes `grpc-status-details-bin`. google.rpc.Status is three fields (code = 1, message = 2,
 * repeated Any details = 3) and no .proto of it is vendored, so it is read off the wire directly;
 * each Any is then unpacked with the generated ErrorDetail schema.
 */
export function grpcStatusDetails(error: grpc.ServiceError): GrpcStatusDetails | null {
  const [bin] = error.metadata.get("grpc-status-details-bin");
  if (!(bin instanceof Buffer)) return null;
  const reader = new BinaryReader(bin);
  let code = 0;
  let message = "";
  const details: Any[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) code = reader.int32();
    else if (field === 2) message = reader.string();
    else if (field === 3) details.push(fromBinary(AnySchema, reader.bytes()));
    else reader.skip(wireType);
  }
  return {
    code,
    message,
    errorDetails: details.flatMap((any) => anyUnpack(any, ErrorDetailSchema) ?? []),
    typeUrls: details.map((any) => any.typeUrl),
  };
}

export interface RawH2Response {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One h2c request with exactly the headers given: no client-side timers, no retries. */
export function rawH2Request(url: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array): Promise<RawH2Response> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (responseHeaders = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("close", () => {
      session.close();
      resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) });
    });
    stream.end(body);
  });
}

/** The gRPC length-prefixed envelope around one message. */
export function grpcEnvelope(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}
