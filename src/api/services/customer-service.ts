import type { ServiceImpl } from "@connectrpc/connect";
import { CustomerSchema, SubscriptionSchema } from "../../../gen/promotions/v1/customer_pb.js";
import type { CustomerService } from "../../../gen/promotions/v1/customer_service_pb.js";
import { create } from "@bufbuild/protobuf";
import { validateCustomer, validateSubscription } from "../../domain/billing-validation.js";
import type { Violation } from "../../domain/errors.js";
import { assertValid, checkText, LIMITS } from "../../domain/checks.js";
import { BillingContextStore } from "../../store/billing-context-store.js";
import { customerFromProto, customerToProto, subscriptionFromProto, subscriptionToProto } from "../convert/billing.js";
import { ConversionProblems } from "../convert/promotion.js";
import { requestScope } from "../request-scope.js";

// promotions.v1.CustomerService: the billing context other services push in.

export function customerService(): ServiceImpl<typeof CustomerService> {
  return {
    async upsertCustomer(req, ctx) {
      const { em, actor } = requestScope(ctx);
      const problems = new ConversionProblems();
      const customer = customerFromProto(req.customer ?? create(CustomerSchema), problems);
      assertValid([...problems.violations, ...validateCustomer(customer, customer.updatedAt)]);
      const { value, applied } = await new BillingContextStore(em).upsertCustomer(actor.organizationId, {
        ...customer,
        updatedAt: customer.updatedAt ?? new Date(0),
      });
      return { customer: customerToProto(value), applied };
    },

    async upsertSubscription(req, ctx) {
      const { em, actor } = requestScope(ctx);
      const problems = new ConversionProblems();
      const subscription = subscriptionFromProto(req.subscription ?? create(SubscriptionSchema), problems);
      assertValid([...problems.violations, ...validateSubscription(subscription, subscription.updatedAt)]);
      const { value, applied } = await new BillingContextStore(em).upsertSubscription(actor.organizationId, {
        ...subscription,
        updatedAt: subscription.updatedAt ?? new Date(0),
      });
      return { subscription: subscriptionToProto(value), applied };
    },

    async getCustomer(req, ctx) {
      const { em, actor } = requestScope(ctx);
      assertValidId(req.id);
      return { customer: customerToProto(await new BillingContextStore(em).getCustomer(actor.organizationId, req.id)) };
    },

    async getSubscription(req, ctx) {
      const { em, actor } = requestScope(ctx);
      assertValidId(req.id);
      return { subscription: subscriptionToProto(await new BillingContextStore(em).getSubscription(actor.organizationId, req.id)) };
    },
  };
}

/**
 * An external id as the upserts accept it. Checked before the lookup: a NUL reaches Postgres as a
 * protocol violation, which would be answered as an unreachable database.
 */
function assertValidId(id: string): void {
  const out: Violation[] = [];
  checkText(out, id, "id", { min: 1, max: LIMITS.idLength });
  assertValid(out);
}
