import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Metrics } from "../metrics.js";
import type { HttpRequest, HttpResponse } from "../server.js";

// Transport side of the Prometheus metrics: the interceptor that counts and times every RPC, and
// the plain HTTP route that serves the registry. GET /metrics needs no API key (like health).

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

/** The `extraHttpRoutes` handler: answers GET /metrics from the registry, leaves everything else. */
export function metricsRoute(contentType: string, collect: () => Promise<string>): (req: HttpRequest, res: HttpResponse) => boolean {
  return (req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") return false;
    collect().then(
      (text) => {
        res.statusCode = 200;
        res.setHeader("content-type", contentType);
        res.end(text);
      },
      (error: unknown) => {
        res.statusCode = 500;
        res.setHeader("content-type", "text/plain");
        res.end(`metrics collection failed: ${error instanceof Error ? error.message : String(error)}\n`);
      },
    );
    return true;
  };
}
