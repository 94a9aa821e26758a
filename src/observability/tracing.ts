import { context, propagation, SpanStatusCode, trace, type Attributes, type Span } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

// OpenTelemetry tracing. Code everywhere calls the API (`traced`, `tracer`); the SDK is registered
// only when an OTLP endpoint is configured. Without it nothing is traced: `traced` just runs its
// work (no span, no context switch), and the app leaves the RPC tracing interceptor out.

/** Whether startTracing registered a provider that is still up. */
let tracingOn = false;

/** The tracer of this service's own spans. Resolved on each use so a provider registered later is seen. */
export function tracer() {
  return trace.getTracer("promotions");
}

/** Runs `work` inside a span named `name`; a throw marks the span as failed and is rethrown. */
export function traced<T>(name: string, work: () => Promise<T>, attributes?: Attributes): Promise<T> {
  if (!tracingOn) return work();
  return tracer().startActiveSpan(name, attributes ? { attributes } : {}, async (span: Span) => {
    try {
      return await work();
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

export interface Tracing {
  /** Exports the spans still buffered, then unregisters the provider. */
  shutdown(): Promise<void>;
}

/**
 * Registers a tracer provider that batches spans to `${endpoint}/v1/traces` (OTLP over HTTP,
 * JSON), with W3C trace-context propagation and async-context tracking. Null without an endpoint.
 */
export function startTracing(opts: { endpoint: string | null; serviceName: string }): Tracing | null {
  if (opts.endpoint === null) return null;
  const exporter = new OTLPTraceExporter({ url: `${opts.endpoint.replace(/\/+$/, "")}/v1/traces` });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": opts.serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  provider.register();
  tracingOn = true;
  let done: Promise<void> | undefined;
  return {
    shutdown: () =>
      (done ??= provider.shutdown().finally(() => {
        tracingOn = false;
        trace.disable();
        context.disable();
        propagation.disable();
      })),
  };
}
