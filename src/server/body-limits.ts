// Request bodies over MAX_BODY_BYTES: refused before they are read when their length is declared,
// and never left half-read on an HTTP/1.1 connection that would then parse the rest as a request.
import type http from "node:http";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { HttpRequest } from "./http.js";

export function declaredLength(req: HttpRequest): number {
  const value = req.headers["content-length"];
  const length = typeof value === "string" ? Number(value) : NaN;
  return Number.isFinite(length) ? length : 0;
}

/** Refused before the body is read, in whichever protocol the caller speaks (connect-node's requestGate). */
export function refuseDeclaredOversize(ctx: HandlerContext, maxBodyBytes: number): void {
  const length = Number(ctx.requestHeader.get("content-length") ?? "0");
  if (Number.isFinite(length) && length > maxBodyBytes) {
    throw new ConnectError(`request body of ${length} bytes exceeds the limit of ${maxBodyBytes}`, Code.ResourceExhausted);
  }
}

/**
 * An HTTP/1.1 answer sent before the request body was read to its end (a body without a declared
 * length refused as too large, say) must close the connection: the rest of that body would
 * otherwise be read as the next request on it.
 */
export function closeIfBodyUnread(req: http.IncomingMessage, res: http.ServerResponse): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: http.ServerResponse, ...args: Parameters<typeof writeHead>) {
    if (!req.complete && !this.headersSent) this.setHeader("connection", "close");
    return writeHead.apply(this, args);
  } as typeof writeHead;
}
