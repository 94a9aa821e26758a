// A customer and a monthly subscription pushed through the public API, as the billing system
// would: the set-up of every e2e test that prices a stored subscription.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { BillingInterval, SubscriptionStatus, type CustomerSchema, type SubscriptionSchema } from "../../../gen/promotions/v1/customer_pb.js";
import { CustomerService } from "../../../gen/promotions/v1/customer_service_pb.js";
import { client } from "../../support/app.js";

export const at = (iso: string) => timestampFromDate(new Date(iso));

type Item = { planId: string; productId: string; unitAmountMinor: bigint; quantity: number };

/**
 * Upserts a customer and its ACTIVE USD monthly subscription for November 2026 with `items`;
 * `customer` and `subscription` override any field.
 */
export async function pushCustomerAndSubscription(
  url: string,
  key: string,
  ids: { customerId: string; subscriptionId: string; items: Item[] },
  over: { customer?: MessageInitShape<typeof CustomerSchema>; subscription?: MessageInitShape<typeof SubscriptionSchema> } = {},
): Promise<void> {
  const customers = client(CustomerService, url, key);
  await customers.upsertCustomer({ customer: { id: ids.customerId, segments: [], hasPaidBefore: true, updatedAt: at("2026-01-01T00:00:00Z"), ...over.customer } });
  await customers.upsertSubscription({
    subscription: {
      id: ids.subscriptionId,
      customerId: ids.customerId,
      status: SubscriptionStatus.ACTIVE,
      currency: "USD",
      interval: BillingInterval.MONTH,
      currentPeriodStart: at("2026-11-01T00:00:00Z"),
      currentPeriodEnd: at("2026-12-01T00:00:00Z"),
      items: ids.items,
      updatedAt: at("2026-01-01T00:00:00Z"),
      ...over.subscription,
    },
  });
}
