// Requests no RPC handler matches. An RPC-shaped path (/<package>.<Service>/<Method>) gets
// UNIMPLEMENTED in the caller's protocol, with an ErrorDetail and the method it probably meant —
// gRPC clients need grpc-status 12 in a proper gRPC answer, not a bare HTTP 404. Anything else
// gets a short text: GET / says what this server is and how to call it, other paths are 404.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { nearest } from "../api/near-miss.js";
import { GRPC_ACCEPT_ENCODING, grpcWebTrailerFrame, writeGrpcStatus } from "../api/wire-status.js";

/** What connect-node's adapter calls for a path no handler serves (a Node request and response). */
type Fallback = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
type HttpRequest = Parameters<Fallback>[0];
type HttpResponse = Parameters<Fallback>[1];

/** A served RPC: its service's full name and the method's name. */
export interface KnownRpc {
  service: string;
  method: string;
}

const RPC_PATH = /^\/([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)\/([A-Za-z_]\w*)$/;

/** The adapter's `fallback`: `known` lists what the router serves once it is built. */
export function fallback(known: () => readonly KnownRpc[]): Fallback {
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    const rpc = RPC_PATH.exec(path);
    if (rpc) return unknownRpc(req, res, rpc[1] ?? "", rpc[2] ?? "", known());
    if (path === "/" && (req.method === "GET" || req.method === "HEAD")) return text(res, 200, about(req, known()));
    text(res, 404, `no route ${req.method ?? ""} ${path}: RPCs are POST /<package>.<Service>/<Method> (GET / says how to call them); metrics are GET /metrics.\n`);
  };
}

function unknownRpc(req: HttpRequest, res: HttpResponse, service: string, method: string, known: readonly KnownRpc[]): void {
  const error = unimplemented(service, method, known);
  const contentType = String(req.headers["content-type"] ?? "");
  if (contentType.startsWith("application/grpc-web")) {
    const trailer = new Headers();
    writeGrpcStatus(trailer, error);
    send(res, 200, new Headers({ "content-type": "application/grpc-web+proto", "grpc-accept-encoding": GRPC_ACCEPT_ENCODING }), grpcWebTrailerFrame(trailer));
    return;
  }
  if (contentType.startsWith("application/grpc")) {
    // Trailers-only: the status travels in the headers of a response without a body.
    const status = new Headers({ "content-type": contentType.startsWith("application/grpc+json") ? "application/grpc+json" : "application/grpc+proto", "grpc-accept-encoding": GRPC_ACCEPT_ENCODING });
    writeGrpcStatus(status, error);
    send(res, 200, status);
    return;
  }
  const query = new URL(req.url ?? "/", "http://x").searchParams;
  if (/^application\/(json|proto|connect\+)/.test(contentType) || query.has("connect") || query.has("encoding")) {
    send(res, 404, new Headers({ "content-type": "application/json" }), errorToJsonBytes(error, {}));
    return;
  }
  text(res, 404, `${error.rawMessage}\n`);
}

function unimplemented(service: string, method: string, known: readonly KnownRpc[]): ConnectError {
  const of = known.filter((k) => k.service === service);
  let message = `no RPC ${service}/${method} on this server`;
  if (of.length > 0) {
    const near = nearest(method, of.map((k) => k.method), (m) => [m]);
    message += near === null ? `; ${service.split(".").at(-1) ?? service} has ${of.map((k) => k.method).join(", ")}` : `; did you mean ${near}?`;
  } else {
    const services = [...new Set(known.map((k) => k.service))].filter((s) => !s.startsWith("grpc."));
    message += `; it serves ${services.join(", ")}`;
  }
  message = message.length > 600 ? `${message.slice(0, 599)}…` : message;
  const detail = create(ErrorDetailSchema, { type: "not_found", code: "unknown_rpc", message: message.length > 300 ? `${message.slice(0, 299)}…` : message });
  return new ConnectError(message, Code.Unimplemented, undefined, [{ desc: ErrorDetailSchema, value: detail }]);
}

function baseUrl(req: HttpRequest): string {
  const authority = "stream" in req ? req.authority : req.headers.host;
  const secure = "stream" in req ? req.scheme === "https" : "encrypted" in req.socket && req.socket.encrypted === true;
  return `${secure ? "https" : "http"}://${authority || "127.0.0.1:8080"}`;
}

function about(req: HttpRequest, known: readonly KnownRpc[]): string {
  const url = baseUrl(req);
  const services = [...new Set(known.map((k) => k.service))];
  return [
    "promotions service: coupon codes, automatic discounts, credits and trial extensions, with exact limits and budgets.",
    "",
    `This port speaks Connect, gRPC and gRPC-Web (HTTP/1.1 and h2c), one set of .proto files (proto/promotions/v1/).`,
    "Every RPC is POST /<package>.<Service>/<Method>; all but health and reflection need an API key:",
    "authorization: Bearer <key> (npm run keys -- create --org <slug> makes one).",
    "",
    `  curl -H 'content-type: application/json' -d '{}' ${url}/grpc.health.v1.Health/Check`,
    `  curl -H 'content-type: application/json' -H "authorization: Bearer $KEY" -d '{"limit":5}' ${url}/promotions.v1.PromotionService/ListPromotions`,
    `  buf curl --http2-prior-knowledge --list-methods ${url}`,
    "",
    `Side-effect-free RPCs also take GET: ${url}/promotions.v1.PromotionService/GetPromotion?connect=v1&encoding=json&message=%7B%22id%22%3A%22<id>%22%7D`,
    `Services: ${services.join(", ")}. Metrics: GET /metrics.`,
    "",
  ].join("\n");
}

function text(res: HttpResponse, status: number, body: string): void {
  send(res, status, new Headers({ "content-type": "text/plain; charset=utf-8" }), Buffer.from(body));
}

function send(res: HttpResponse, status: number, headers: Headers, body?: Uint8Array): void {
  res.statusCode = status;
  headers.forEach((value, name) => res.setHeader(name, value));
  if (body === undefined) {
    res.end();
    return;
  }
  res.setHeader("content-length", String(body.byteLength));
  res.end(body);
}
