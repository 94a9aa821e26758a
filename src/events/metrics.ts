import { Counter, Histogram, type Registry } from "prom-client";
import type { AttemptOutcome } from "./sender.js";

// Prometheus instruments of events and webhooks, registered on the app's registry (src/metrics.ts),
// so GET /metrics (and the cluster aggregation) serves them with everything else.

export interface EventMetrics {
  /** Webhook attempts by outcome (succeeded, http_error, timeout, network_error, dns_failed, address_refused). */
  readonly attempts: Counter<"outcome">;
  readonly attemptSeconds: Histogram<"outcome">;
  /** From an event's creation to a receiver's 2xx for it. */
  readonly deliveryLag: Histogram;
  /** From an event's creation to its fan-out into deliveries. */
  readonly dispatchLag: Histogram;
  /** Deliveries that failed every attempt, and endpoints disabled for it. */
  readonly deliveriesFailed: Counter;
  readonly endpointsDisabled: Counter;
}

const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400];

export function createEventMetrics(registry: Registry): EventMetrics {
  const registers = [registry];
  return {
    attempts: new Counter({ name: "promotions_webhook_attempts_total", help: "Webhook delivery attempts by outcome.", labelNames: ["outcome"] as const, registers }),
    attemptSeconds: new Histogram({
      name: "promotions_webhook_attempt_duration_seconds",
      help: "Time of one webhook attempt, request to end of answer (at most 10 s), by outcome.",
      labelNames: ["outcome"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    deliveryLag: new Histogram({
      name: "promotions_webhook_delivery_lag_seconds",
      help: "From an event's creation to the receiver's 2xx answer for it (retries included).",
      buckets: LAG_BUCKETS,
      registers,
    }),
    dispatchLag: new Histogram({
      name: "promotions_events_dispatch_lag_seconds",
      help: "From an event's creation to its fan-out into webhook deliveries.",
      buckets: LAG_BUCKETS,
      registers,
    }),
    deliveriesFailed: new Counter({ name: "promotions_webhook_deliveries_failed_total", help: "Deliveries that failed every attempt.", registers }),
    endpointsDisabled: new Counter({ name: "promotions_webhook_endpoints_disabled_total", help: "Endpoints disabled after persistent failure.", registers }),
  };
}

/** Records one attempt. */
export function observeAttempt(metrics: EventMetrics, outcome: AttemptOutcome, latencyMs: number): void {
  metrics.attempts.inc({ outcome });
  metrics.attemptSeconds.observe({ outcome }, latencyMs / 1000);
}
