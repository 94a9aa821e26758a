import { readFileSync } from "node:fs";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { PromotionService } from "../gen/promotions/v1/promotion_service_pb.js";
import { PromotionVersionService } from "../gen/promotions/v1/promotion_version_service_pb.js";
import { CustomerService } from "../gen/promotions/v1/customer_service_pb.js";
import { SimulationService } from "../gen/promotions/v1/simulation_service_pb.js";
import { customerService } from "./api/customer-service.js";
import { simulationService } from "./api/simulation-service.js";
import { authInterceptor, cachedVerifier } from "./api/auth.js";
import { emKey } from "./api/context.js";
import { loggingInterceptor } from "./api/logging.js";
import { promotionService } from "./api/promotion-service.js";
import { promotionVersionService } from "./api/promotion-version-service.js";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import { PUBLIC_SERVICES, startServer, type RunningServer } from "./server.js";
import { ApiKeyStore } from "./store/api-keys.js";
import { migrate, openOrm, type MikroORM } from "./store/orm.js";

// Wires configuration, storage and transport into a running service. main.ts adds the process
// concerns (signals, exit codes); tests call startApp directly on a free port.

export interface App {
  server: RunningServer;
  orm: MikroORM;
  /** Graceful stop: drain calls, then close the pool. */
  close(): Promise<void>;
}

/** The application's services, as registered on the router. */
export function routes(router: ConnectRouter): void {
  router.service(PromotionService, promotionService());
  router.service(PromotionVersionService, promotionVersionService());
  router.service(CustomerService, customerService());
  router.service(SimulationService, simulationService());
}

export async function startApp(config: Config, logger: Logger): Promise<App> {
  await migrate({ databaseUrl: config.databaseUrl });
  const orm = await openOrm({ databaseUrl: config.databaseUrl });
  const verify = cachedVerifier((key) => new ApiKeyStore(orm.em.fork()).verify(key), config.authCacheTtlMs);
  // Order matters: logging sees the final code of everything below it, including auth refusals.
  const interceptors: Interceptor[] = [
    loggingInterceptor(logger),
    authInterceptor(verify, PUBLIC_SERVICES),
    (next) => async (req) => {
      req.contextValues.set(emKey, orm.em.fork());
      return next(req);
    },
  ];
  try {
    const server = await startServer({
      host: config.host,
      port: config.port,
      tls: config.tls ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } : undefined,
      corsOrigins: config.corsOrigins,
      maxBodyBytes: config.maxBodyBytes,
      shutdownGraceMs: config.shutdownGraceMs,
      routes,
      interceptors,
      logger,
    });
    return {
      server,
      orm,
      async close() {
        await server.close();
        await orm.close();
      },
    };
  } catch (error) {
    await orm.close();
    throw error;
  }
}

/** On a first run (no usable key anywhere) creates the `default` organization and one key with every scope. */
export async function ensureFirstRunKey(orm: MikroORM): Promise<string | null> {
  const keys = new ApiKeyStore(orm.em.fork());
  if (await keys.hasActiveKey()) return null;
  const org = await keys.ensureOrganization("default", "Default organization");
  const { key } = await keys.createKey(org.id, "first-run key", ["read", "write", "redeem"]);
  return key;
}
