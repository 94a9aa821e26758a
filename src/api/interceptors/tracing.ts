import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { context, propagation, SpanKind, SpanStatusCode, trace, type Span, type TextMapGetter } from "@opentelemetry/api";
import { tracer } from "../../observability/tracing.js";
import { observeEnd } from "./metrics.js";

// One server span per RPC, named by procedure ("promotions.v1.RedemptionService/RedeemPromotion")
// as OpenTelemetry's RPC conventions say, continuing the caller's W3C trace context when it sends
// one. Lua calls and ledger transactions below become its children. With no tracer provider
// registered (no OTEL_EXPORTER_OTLP_ENDPOINT) every call here is a no-op.

/** Codes that mean the server failed; the others are the caller's problem and leave the span status unset. */
const SERVER_FAULTS: ReadonlySet<Code> = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

const headerGetter: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

export function tracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const parent = propagation.extract(context.active(), req.header, headerGetter);
    const span = tracer().startSpan(
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: { "rpc.system": "connect_rpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name },
      },
      parent,
    );
    let res;
    try {
      res = await context.with(trace.setSpan(parent, span), () => next(req));
    } catch (error) {
      end(span, error);
      throw error;
    }
    if (!res.stream) {
      end(span, undefined);
      return res;
    }
    return { ...res, message: observeEnd(res.message, (error) => end(span, error)) };
  };
}

function end(span: Span, error: unknown): void {
  if (error !== undefined) {
    const failure = ConnectError.from(error);
    span.setAttribute("rpc.connect_rpc.error_code", codeToString(failure.code));
    if (SERVER_FAULTS.has(failure.code)) span.setStatus({ code: SpanStatusCode.ERROR, message: failure.rawMessage });
  }
  span.end();
}
