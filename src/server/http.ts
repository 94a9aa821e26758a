// The request and response types both HTTP versions hand the server, and what every part of the
// listener asks of them.
import type http from "node:http";
import type http2 from "node:http2";

export type HttpRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type HttpResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Plain HTTP routes beside the RPCs (e.g. GET /metrics); true when the request was handled. */
export type HttpRoute = (req: HttpRequest, res: HttpResponse) => boolean;

export function isHttp1(req: HttpRequest): req is http.IncomingMessage {
  return !("stream" in req);
}

/** Whether the request's body may still be on its way (not for a request sent whole with its headers, nor one already read). */
export function bodyPending(req: HttpRequest): boolean {
  if (isHttp1(req)) return !req.complete;
  return !req.stream.endAfterHeaders && !req.stream.readableEnded;
}
