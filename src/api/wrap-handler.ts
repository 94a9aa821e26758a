import type { UniversalHandler } from "@connectrpc/connect/protocol";

/**
 * `wrapped` as a handler in `handler`'s place: the router and connect-node read the procedure's
 * path, method, protocols and content types off the handler itself, so a wrapper must carry them.
 */
export function inPlaceOf(handler: UniversalHandler, wrapped: (request: Parameters<UniversalHandler>[0]) => ReturnType<UniversalHandler>): UniversalHandler {
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}
