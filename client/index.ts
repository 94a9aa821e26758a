// `promotions-service/client`: what another TypeScript service needs to call this one. Every
// service descriptor and message type of promotions.v1 (generated into gen/, re-exported as is),
// plus a transport and a client that send the API key on every call.
//
//   import { PromotionService, createPromotionsClient } from "promotions-service/client";
//   const promotions = createPromotionsClient(PromotionService, { baseUrl, apiKey });
//   const { promotions: live } = await promotions.listPromotions({ filter: ["status.eq=active"] });
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";

export * from "../gen/promotions/v1/customer_pb.js";
export * from "../gen/promotions/v1/customer_service_pb.js";
export * from "../gen/promotions/v1/errors_pb.js";
export * from "../gen/promotions/v1/invoice_pb.js";
export * from "../gen/promotions/v1/invoice_service_pb.js";
export * from "../gen/promotions/v1/promotion_pb.js";
export * from "../gen/promotions/v1/promotion_service_pb.js";
export * from "../gen/promotions/v1/promotion_version_service_pb.js";
export * from "../gen/promotions/v1/redemption_service_pb.js";
export * from "../gen/promotions/v1/simulation_service_pb.js";
export * from "../gen/promotions/v1/types_pb.js";

export interface PromotionsClientOptions {
  /** Where the service listens, e.g. "http://promotions:8080". */
  baseUrl: string;
  /** An API key (`npm run keys -- create --org <slug>`); sent as `authorization: Bearer <key>`. */
  apiKey: string;
  /**
   * "grpc" (default): gRPC over HTTP/2, one multiplexed connection; what service-to-service calls
   * use. "connect": the Connect protocol with JSON over HTTP/1.1, readable in any HTTP proxy.
   */
  protocol?: "grpc" | "connect";
  /** More interceptors (tracing, deadlines, retries), run after the one that adds the key. */
  interceptors?: Interceptor[];
}

/** A transport to the promotions service that authenticates every call with the API key. */
export function createPromotionsTransport(options: PromotionsClientOptions): Transport {
  const apiKey: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${options.apiKey}`);
    return next(req);
  };
  const interceptors = [apiKey, ...(options.interceptors ?? [])];
  return options.protocol === "connect"
    ? createConnectTransport({ baseUrl: options.baseUrl, httpVersion: "1.1", interceptors })
    : createGrpcTransport({ baseUrl: options.baseUrl, interceptors });
}

/** A typed client of one of the services (PromotionService, RedemptionService, ...). */
export function createPromotionsClient<S extends DescService>(service: S, options: PromotionsClientOptions): Client<S> {
  return createClient(service, createPromotionsTransport(options));
}
