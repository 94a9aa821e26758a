// grpc.health.v1.Health: what load balancers, Kubernetes probes and grpc-health-probe ask.
// The status lives here; the server flips it to NOT_SERVING when shutdown begins, so traffic
// drains away before the listener stops.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

/** Serving status per service name; "" is the server as a whole. */
export class HealthRegistry {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly listeners = new Set<() => void>();
  private shuttingDown = false;

  setStatus(service: string, status: ServingStatus): void {
    // Once shutdown has begun nothing may report SERVING again.
    this.statuses.set(service, this.shuttingDown ? ServingStatus.NOT_SERVING : status);
    this.notify();
  }

  status(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Every service becomes NOT_SERVING, and Watch streams end after telling their callers. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const service of this.statuses.keys()) this.statuses.set(service, ServingStatus.NOT_SERVING);
    this.notify();
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  check(req: HealthCheckRequest): HealthCheckResponse {
    const status = this.status(req.service);
    if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
    return create(HealthCheckResponseSchema, { status });
  }

  /**
   * Sends the current status, then every change, until shutdown ends it (OK, after NOT_SERVING) or
   * the call's signal does: at the caller's deadline that is DEADLINE_EXCEEDED, as gRPC says a
   * call cut short by its deadline ends, never OK.
   */
  async *watch(req: HealthCheckRequest, ctx: HandlerContext): AsyncGenerator<HealthCheckResponse> {
    let sent: ServingStatus | undefined;
    for (;;) {
      // An unknown service is not an error for Watch: it may be registered later (spec).
      const status = this.status(req.service) ?? ServingStatus.SERVICE_UNKNOWN;
      if (status !== sent) {
        yield create(HealthCheckResponseSchema, { status });
        sent = status;
      }
      if (this.shuttingDown) return;
      if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason, Code.Canceled);
      await this.nextChange(ctx.signal);
    }
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private nextChange(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.listeners.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.listeners.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

export function registerHealth(router: ConnectRouter, registry: HealthRegistry): void {
  router.service(Health, {
    check: (req) => registry.check(req),
    watch: (req, ctx) => registry.watch(req, ctx),
  });
}

export const HEALTH_SERVICE = Health.typeName;
