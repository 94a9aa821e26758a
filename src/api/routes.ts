// The application's services, as registered on the router (health and reflection are the
// server's own: src/server/server.ts adds them over whatever is registered here).
import type { ConnectRouter } from "@connectrpc/connect";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { PromotionVersionService } from "../../gen/promotions/v1/promotion_version_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";
import type { Checkout } from "../checkout/checkout.js";
import type { PromotionChangeHook } from "../promotions/change-hook.js";
import { customerService } from "./services/customer-service.js";
import { invoiceService } from "./services/invoice-service.js";
import { promotionService } from "./services/promotion-service.js";
import { promotionVersionService } from "./services/promotion-version-service.js";
import { redemptionService } from "./services/redemption-service.js";
import { simulationService } from "./services/simulation-service.js";

/** What the services are built on, besides the per-request EntityManager. */
export interface ServiceDeps {
  checkout: Checkout;
  onChanged: PromotionChangeHook;
}

export function routes(deps: ServiceDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(PromotionService, promotionService(deps.onChanged));
    router.service(PromotionVersionService, promotionVersionService());
    router.service(CustomerService, customerService());
    router.service(SimulationService, simulationService());
    router.service(RedemptionService, redemptionService(deps.checkout));
    router.service(InvoiceService, invoiceService(deps.checkout));
  };
}
