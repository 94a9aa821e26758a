// One tenant's worth of data touched by every RPC (promotions active and draft, extra codes,
// versions, a customer and subscription, a redemption, a priced invoice), and a valid request per
// RPC naming it. Every external id and code carries the tenant's tag, so another tenant's key
// naming them can only find them by leaking.
import { BillingInterval, SubscriptionStatus } from "../../../gen/promotions/v1/customer_pb.js";
import { InvoiceService } from "../../../gen/promotions/v1/invoice_service_pb.js";
import { PromotionService } from "../../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../../gen/promotions/v1/redemption_service_pb.js";
import { WebhookService } from "../../../gen/promotions/v1/webhook_service_pb.js";
import { client } from "../../support/app.js";
import { at, pushCustomerAndSubscription } from "./billing.js";

export interface World {
  tag: string;
  organizationId: string;
  /** Active, with a primary code, two versions, a redemption and an invoice application. */
  promotionId: string;
  /** A draft with a code of its own. */
  draftId: string;
  code: string;
  /** An extra code of the active promotion. */
  codeId: string;
  extraCode: string;
  redemptionId: string;
  customerId: string;
  subscriptionId: string;
  invoiceId: string;
  /** A disabled webhook endpoint on a loopback port nobody listens on: it never receives anything. */
  webhookEndpointId: string;
}

const pct = (bps: number) => ({ kind: { case: "percentageDiscount" as const, value: { percentBps: bps } } });

export async function seedWorld(url: string, key: string, organizationId: string, tag: string): Promise<World> {
  const promotions = client(PromotionService, url, key);
  const redemptions = client(RedemptionService, url, key);
  const customerId = `${tag}-cus`;
  const subscriptionId = `${tag}-sub`;
  await pushCustomerAndSubscription(
    url,
    key,
    { customerId, subscriptionId, items: [{ planId: "pro", productId: "app", unitAmountMinor: 5_000n, quantity: 2 }] },
    { customer: { segments: ["vip"], createdAt: at("2025-01-01T00:00:00Z") } },
  );
  const code = `${tag}-SAVE10`.toUpperCase();
  const created = await promotions.createPromotion({ name: `${tag} ten off`, code, currency: "USD", effects: [pct(1000)], maxRedemptions: 1_000n, maxRedemptionsPerCustomer: 100n });
  const promotionId = created.promotion?.id ?? "";
  await promotions.activatePromotion({ id: promotionId });
  await promotions.updatePromotion({ id: promotionId, name: `${tag} ten off, v2` });
  const extraCode = `${tag}-EXTRA`.toUpperCase();
  const codes = await promotions.createPromotionCodes({ promotionId, codes: [extraCode], maxRedemptions: 50n });
  const draft = await promotions.createPromotion({ name: `${tag} draft`, code: `${tag}-DRAFT`.toUpperCase(), effects: [pct(500)] });
  const redeemed = await redemptions.redeemPromotion({ code, customerId, subscriptionId, idempotencyKey: `${tag}-order-1` });
  const invoiceId = `${tag}-inv-1`;
  await client(InvoiceService, url, key).applyPromotions({ invoiceId, subscriptionId });
  // Disabled at once, so no background delivery ever writes while a test compares snapshots.
  const webhooks = client(WebhookService, url, key);
  const endpoint = await webhooks.createWebhookEndpoint({ url: `http://127.0.0.1:9/${tag}`, eventTypes: ["promotion.exhausted"], description: `${tag} hooks` });
  const webhookEndpointId = endpoint.webhookEndpoint?.id ?? "";
  await webhooks.updateWebhookEndpoint({ id: webhookEndpointId, disabled: true });
  // Hydrate the counters of every promotion a read may touch, so a later read finds them warm.
  for (const c of [code, extraCode, `${tag}-DRAFT`.toUpperCase()]) await redemptions.validateCode({ code: c, customerId });
  return {
    tag,
    organizationId,
    promotionId,
    draftId: draft.promotion?.id ?? "",
    code,
    codeId: codes.codes[0]?.id ?? "",
    extraCode,
    redemptionId: redeemed.redemption?.id ?? "",
    customerId,
    subscriptionId,
    invoiceId,
    webhookEndpointId,
  };
}

/**
 * A valid request per RPC (by method name) against the world: the starting point of mutations in
 * the fuzz, and the "tenant A's resource" of the authorization matrix. Write RPCs that would
 * change the world's own resources name them all the same; the tests decide which key sends them.
 */
export function seedRequests(w: World): Record<string, Record<string, unknown>> {
  const invoice = { currency: "USD", lines: [{ id: "l1", planId: "pro", productId: "app", unitAmountMinor: 4_000n, quantity: 1 }] };
  return {
    CreatePromotion: { name: `${w.tag} new`, code: `${w.tag}-NEW`, currency: "USD", effects: [pct(1500)], maxRedemptions: 10n, metadata: { source: "fuzz" } },
    GetPromotion: { id: w.promotionId },
    ListPromotions: { limit: 5, filter: ["status.eq=ACTIVE"] },
    UpdatePromotion: { id: w.promotionId, name: `${w.tag} renamed`, expectedVersion: 2n },
    ActivatePromotion: { id: w.draftId },
    DeactivatePromotion: { id: w.promotionId },
    CopyPromotion: { id: w.promotionId, code: `${w.tag}-COPY`, name: `${w.tag} copy` },
    DeletePromotion: { id: w.draftId },
    PreviewPromotionEligibility: { promotionId: w.promotionId, customerId: w.customerId, subscriptionId: w.subscriptionId },
    CreatePromotionCodes: { promotionId: w.promotionId, codes: [`${w.tag}-MORE`], maxRedemptions: 5n },
    ListPromotionCodes: { promotionId: w.promotionId, limit: 10 },
    UpdatePromotionCode: { id: w.codeId, active: false },
    ListPromotionVersions: { id: w.promotionId, limit: 10 },
    GetPromotionVersion: { id: w.promotionId, version: 1n },
    SimulatePromotion: { customerId: w.customerId, subscriptionId: w.subscriptionId, promotionIds: [w.promotionId] },
    SimulatePromotionImpact: { promotionId: w.promotionId, periods: 3 },
    ValidateCode: { code: w.code, customerId: w.customerId, invoice },
    RedeemPromotion: { code: w.code, customerId: w.customerId, subscriptionId: w.subscriptionId, idempotencyKey: `${w.tag}-order-2` },
    ReleaseRedemption: { id: w.redemptionId },
    GetRedemption: { id: w.redemptionId },
    ListRedemptions: { promotionId: w.promotionId, limit: 10 },
    ApplyPromotions: { invoiceId: `${w.tag}-inv-2`, subscriptionId: w.subscriptionId },
    ReverseInvoice: { invoiceId: w.invoiceId, reason: "voided" },
    UpsertCustomer: { customer: { id: w.customerId, segments: ["vip", "eu"], hasPaidBefore: true, updatedAt: at("2026-02-01T00:00:00Z") } },
    UpsertSubscription: {
      subscription: {
        id: w.subscriptionId,
        customerId: w.customerId,
        status: SubscriptionStatus.ACTIVE,
        currency: "USD",
        interval: BillingInterval.MONTH,
        currentPeriodStart: at("2026-12-01T00:00:00Z"),
        currentPeriodEnd: at("2027-01-01T00:00:00Z"),
        items: [{ planId: "pro", productId: "app", unitAmountMinor: 5_000n, quantity: 3 }],
        updatedAt: at("2026-02-01T00:00:00Z"),
      },
    },
    UpsertCustomers: {
      customers: [
        { id: w.customerId, segments: ["vip"], hasPaidBefore: true, updatedAt: at("2026-02-02T00:00:00Z") },
        { id: `${w.tag}-cus-2`, segments: ["smb"], updatedAt: at("2026-02-02T00:00:00Z") },
      ],
    },
    UpsertSubscriptions: {
      subscriptions: [
        {
          id: `${w.tag}-sub-2`,
          customerId: `${w.tag}-cus-2`,
          status: SubscriptionStatus.ACTIVE,
          currency: "USD",
          interval: BillingInterval.MONTH,
          items: [{ planId: "pro", productId: "app", unitAmountMinor: 4_000n, quantity: 1 }],
          updatedAt: at("2026-02-02T00:00:00Z"),
        },
      ],
    },
    GetCustomer: { id: w.customerId },
    GetSubscription: { id: w.subscriptionId },
    ListEvents: { limit: 10, types: ["promotion.created"] },
    CreateWebhookEndpoint: { url: `http://127.0.0.1:9/${w.tag}-new`, eventTypes: ["promotion.exhausted"], description: `${w.tag} new hooks` },
    ListWebhookEndpoints: { limit: 10 },
    UpdateWebhookEndpoint: { id: w.webhookEndpointId, description: `${w.tag} renamed hooks` },
    DeleteWebhookEndpoint: { id: w.webhookEndpointId },
    RotateWebhookSecret: { id: w.webhookEndpointId },
    ListWebhookDeliveries: { endpointId: w.webhookEndpointId, limit: 10 },
    // The world has no delivery (nothing emits events yet); a UUID of the world that is no delivery.
    RetryWebhookDelivery: { id: w.webhookEndpointId },
  };
}

/** Every id and code of the world, for fuzzers to draw from. */
export function worldValues(w: World): string[] {
  return [w.promotionId, w.draftId, w.code, w.codeId, w.extraCode, w.redemptionId, w.customerId, w.subscriptionId, w.invoiceId, w.organizationId, w.webhookEndpointId];
}
