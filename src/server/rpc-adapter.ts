// connect-node's adapter (connectNodeAdapter) with one difference: a call whose request is a
// single message — unary and server-streaming, every RPC here but reflection — is handed to
// connect only once its body has arrived whole. Until then it costs the bytes received so far,
// not a handler with its context, pipeline, deadline and error objects: a client that sends
// headers and then nothing, or a body one byte a second, holds a buffer until BODY_TIMEOUT_MS
// cuts it (connections.ts). Client- and bidi-streaming calls are handed over at once.
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { declaredLength } from "./body-limits.js";
import { bodyPending, isHttp1, type HttpRequest, type HttpResponse } from "./http.js";

export interface RpcAdapterOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  contextValues: (req: HttpRequest) => ContextValues;
  /** Bodies larger than this are handed to connect as they come (it refuses them, with readMaxBytes). */
  maxBodyBytes: number;
  /** A handler failed in a way no response could say (connect-node logs these to the console). */
  onFailure: (reason: unknown, handler: UniversalHandler) => void;
  /** Answers a path no procedure serves (fallback.ts); a bare 404 without it. */
  fallback?: (req: HttpRequest, res: HttpResponse) => void;
}

/** The RPC request handler: serves the router's procedures, `fallback` (or 404) for any other path. */
export function rpcAdapter(opts: RpcAdapterOptions): (req: HttpRequest, res: HttpResponse) => void {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...opts });
  opts.routes(router);
  const paths = new Map(router.handlers.map((h) => [h.requestPath, h]));

  const dispatch = (handler: UniversalHandler, req: HttpRequest, res: HttpResponse, body: AsyncIterable<Uint8Array> | undefined): void => {
    let request: ReturnType<typeof universalRequestFromNodeRequest>;
    try {
      request = universalRequestFromNodeRequest(req, res, undefined, opts.contextValues(req));
    } catch {
      // A request connect cannot make sense of (no authority: HTTP/1.0 without Host). Answered
      // here, also when it comes after the body, outside any caller that could catch it.
      if (!res.headersSent) res.statusCode = 400;
      res.end();
      return;
    }
    handler(body === undefined ? request : { ...request, body })
      .then((response) => universalResponseToNodeResponse(response, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code !== Code.Aborted) opts.onFailure(reason, handler);
      });
  };

  return (req, res) => {
    const handler = paths.get((req.url ?? "").split("?", 2)[0] ?? "");
    if (!handler) {
      if (opts.fallback) return opts.fallback(req, res);
      res.statusCode = 404;
      res.end();
      return;
    }
    const kind = handler.method.methodKind;
    if (kind === "client_streaming" || kind === "bidi_streaming" || !bodyPending(req) || declaredLength(req) > opts.maxBodyBytes) {
      dispatch(handler, req, res, undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= opts.maxBodyBytes) return;
      // Too large to hold: connect reads the rest and refuses it in the caller's protocol.
      stop();
      req.pause();
      dispatch(handler, req, res, followedBy(chunks, req));
    };
    const onEnd = (): void => {
      stop();
      // A stream reset or a connection lost mid-body ends its request too: nothing to answer.
      if (res.destroyed || (!isHttp1(req) && req.stream.destroyed)) return;
      dispatch(handler, req, res, replay(chunks));
    };
    req.on("data", onData);
    req.once("end", onEnd);
  };
}

/** The chunks as an async iterable; a plain iterator, as a generator costs each chunk several promise hops. */
function replay(chunks: readonly Buffer[]): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      let at = 0;
      return {
        next: () => Promise.resolve(at < chunks.length ? { done: false, value: chunks[at++] as Uint8Array } : { done: true as const, value: undefined }),
        return: () => {
          at = chunks.length;
          return Promise.resolve({ done: true as const, value: undefined });
        },
      };
    },
  };
}

async function* followedBy(chunks: readonly Buffer[], rest: AsyncIterable<Buffer>): AsyncIterable<Uint8Array> {
  yield* chunks;
  yield* rest;
}
