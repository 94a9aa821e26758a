// The application's services, as registered on the router (health and reflection are the
// server's own: src/server/server.ts adds them over whatever is registered here).
import type { ConnectRouter } from "@connectrpc/connect";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { PromotionVersionService } from "../../gen/promotions/v1/promotion_version_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";
import { EventService } from "../../gen/promotions/v1/event_service_pb.js";
import { WebhookService } from "../../gen/promotions/v1/webhook_service_pb.js";
import type { Checkout } from "../checkout/checkout.js";
import type { EventsRuntime } from "../events/runtime.js";
import type { PromotionChangeHook } from "../promotions/change-hook.js";
import type { ForecastPool } from "../promotions/forecast-pool.js";
import { customerService } from "./services/customer-service.js";
import { eventService } from "./services/event-service.js";
import { invoiceService } from "./services/invoice-service.js";
import { promotionService } from "./services/promotion-service.js";
import { promotionVersionService } from "./services/promotion-version-service.js";
import { redemptionService } from "./services/redemption-service.js";
import { simulationService } from "./services/simulation-service.js";
import { webhookService } from "./services/webhook-service.js";

/** What the services are built on, besides the per-request EntityManager. */
export interface ServiceDeps {
  checkout: Checkout;
  onChanged: PromotionChangeHook;
  events: EventsRuntime;
  /** How often StreamEvents looks for new events. */
  eventsPollMs: number;
  /** The worker threads SimulatePromotionImpact runs on. */
  forecasts: ForecastPool;
}

export function routes(deps: ServiceDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(PromotionService, promotionService(deps.onChanged, deps.events.versions));
    router.service(PromotionVersionService, promotionVersionService());
    router.service(CustomerService, customerService());
    router.service(SimulationService, simulationService(deps.forecasts));
    router.service(RedemptionService, redemptionService(deps.checkout));
    router.service(InvoiceService, invoiceService(deps.checkout));
    router.service(EventService, eventService(deps.events.feed, deps.eventsPollMs));
    router.service(WebhookService, webhookService(deps.events.webhooks));
  };
}
