import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "../../observability/logger.js";
import { laneKey, principalKey, requestIdKey } from "../context-keys.js";
import { toConnectError } from "../errors.js";

// One JSON log line per call (method, code, duration, organization, request id), and the single
// point where thrown errors are mapped to what the client sees. Causes of INTERNAL errors are
// logged here and never sent.

export function loggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const line = () => ({
      method: `/${req.service.typeName}/${req.method.name}`,
      request_id: req.contextValues.get(requestIdKey),
      lane: req.contextValues.get(laneKey),
      organization: req.contextValues.get(principalKey)?.organizationId ?? null,
      duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
    });
    try {
      const res = await next(req);
      // Not even built when info lines are off (LOG_LEVEL=warn): this runs on every call.
      if (logger.isLevelEnabled("info")) logger.info({ ...line(), code: "ok" }, "rpc");
      return res;
    } catch (thrown) {
      const error = toConnectError(thrown);
      // The code as the wire and the metrics name it (invalid_argument), not the enum key.
      const fields = { ...line(), code: codeToString(error.code), error: error.rawMessage };
      if (error.code === Code.Internal) {
        logger.error({ ...fields, cause: describe(error.cause) }, "rpc");
      } else if (error.code === Code.Unavailable) {
        // What was unreachable and why (a Redis or Postgres error), for operators; never sent.
        logger.warn({ ...fields, cause: rootCause(error) }, "rpc");
      } else {
        logger.info(fields, "rpc");
      }
      throw error;
    }
  };
}

function describe(cause: unknown): { name: string; message: string; stack?: string } | string {
  if (cause instanceof ConnectError && cause.cause !== undefined) return describe(cause.cause);
  if (cause instanceof Error) return { name: cause.name, message: cause.message, ...(cause.stack ? { stack: cause.stack } : {}) };
  return String(cause);
}

/** The innermost cause's name and message (no stack): why a dependency call failed. */
function rootCause(error: unknown): string {
  let current: unknown = error;
  while (current instanceof Error && current.cause !== undefined) current = current.cause;
  return current instanceof Error ? `${current.name}: ${current.message}` : String(current);
}
