import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Metrics } from "../../observability/metrics.js";

// The RPC side of the Prometheus metrics: counts and times every call (the registry is served by
// src/observability/metrics-route.ts).

/** Counts and times each call by procedure and final code. Streams are measured to their end. */
export function metricsInterceptor(metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const done = (error: unknown): void => {
      const labels = {
        service: req.service.typeName,
        method: req.method.name,
        code: error === undefined ? "ok" : codeToString(ConnectError.from(error).code),
      };
      metrics.rpcCalls.inc(labels);
      metrics.rpcSeconds.observe(labels, (performance.now() - started) / 1000);
    };
    let res;
    try {
      res = await next(req);
    } catch (error) {
      done(error);
      throw error;
    }
    if (!res.stream) {
      done(undefined);
      return res;
    }
    return { ...res, message: observeEnd(res.message, done) };
  };
}

/** Passes every message through and calls `done` once when the stream ends, fails or is abandoned. */
export async function* observeEnd<T>(messages: AsyncIterable<T>, done: (error: unknown) => void): AsyncIterable<T> {
  let error: unknown;
  try {
    yield* messages;
  } catch (thrown) {
    error = thrown;
    throw thrown;
  } finally {
    done(error);
  }
}
