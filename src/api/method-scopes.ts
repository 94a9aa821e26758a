import type { Scope } from "../store/api-keys.js";

// Which scope each RPC needs. Checkout systems get `redeem` keys that can neither read the
// catalogue nor change it; dashboards get `read`; back-office tooling gets `write`.
const REQUIRED: Readonly<Record<string, Scope>> = {
  GetPromotion: "read",
  ListPromotions: "read",
  PreviewPromotionEligibility: "read",
  ListPromotionCodes: "read",
  ListPromotionVersions: "read",
  GetPromotionVersion: "read",
  SimulatePromotion: "read",
  SimulatePromotionImpact: "read",
  GetRedemption: "read",
  ListRedemptions: "read",
  GetCustomer: "read",
  GetSubscription: "read",
  ListEvents: "read",
  StreamEvents: "read",
  ListWebhookEndpoints: "read",
  ListWebhookDeliveries: "read",
  CreatePromotion: "write",
  UpdatePromotion: "write",
  ActivatePromotion: "write",
  DeactivatePromotion: "write",
  CopyPromotion: "write",
  DeletePromotion: "write",
  CreatePromotionCodes: "write",
  UpdatePromotionCode: "write",
  UpsertCustomer: "write",
  UpsertSubscription: "write",
  CreateWebhookEndpoint: "write",
  UpdateWebhookEndpoint: "write",
  DeleteWebhookEndpoint: "write",
  RotateWebhookSecret: "write",
  RetryWebhookDelivery: "write",
  UpsertCustomers: "write",
  UpsertSubscriptions: "write",
  ApplyPromotions: "redeem",
  ReverseInvoice: "redeem",
  ValidateCode: "redeem",
  RedeemPromotion: "redeem",
  ReleaseRedemption: "redeem",
};

/** The scope a method needs; methods not listed need `write`, the narrowest grant. */
export function requiredScope(methodName: string): Scope {
  return REQUIRED[methodName] ?? "write";
}
