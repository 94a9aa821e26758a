import type { ServiceImpl } from "@connectrpc/connect";
import { CustomerSchema, SubscriptionSchema } from "../../../gen/promotions/v1/customer_pb.js";
import type { CustomerService } from "../../../gen/promotions/v1/customer_service_pb.js";
import { create } from "@bufbuild/protobuf";
import { validateCustomer, validateSubscription } from "../../domain/billing-validation.js";
import { DomainError, type Violation } from "../../domain/errors.js";
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

    async upsertCustomers(req, ctx) {
      const { em, actor } = requestScope(ctx);
      const customers = inBatch(req.customers, "customers", (c, problems) => {
        const customer = customerFromProto(c, problems);
        return { value: { ...customer, updatedAt: customer.updatedAt ?? new Date(0) }, violations: validateCustomer(customer, customer.updatedAt), prefix: "customer" };
      });
      const written = await new BillingContextStore(em).upsertCustomers(actor.organizationId, customers);
      return { applied: customers.map((c) => written.has(c.id)) };
    },

    async upsertSubscriptions(req, ctx) {
      const { em, actor } = requestScope(ctx);
      const subscriptions = inBatch(req.subscriptions, "subscriptions", (s, problems) => {
        const subscription = subscriptionFromProto(s, problems);
        return {
          value: { ...subscription, updatedAt: subscription.updatedAt ?? new Date(0) },
          violations: validateSubscription(subscription, subscription.updatedAt),
          prefix: "subscription",
        };
      });
      const written = await new BillingContextStore(em).upsertSubscriptions(actor.organizationId, subscriptions);
      return { applied: subscriptions.map((s) => written.has(s.id)) };
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

/** How many records one batch upsert takes: a request of the largest customers stays far below MAX_BODY_BYTES' default. */
const MAX_BATCH = 1_000;

/**
 * Converts and checks every record of a batch upsert, naming each problem by its place in the
 * batch (`customers[3].id`, from the single upsert's `customer.id`); all or nothing, every id once.
 */
function inBatch<M, T extends { id: string }>(
  items: readonly M[],
  field: string,
  convert: (item: M, problems: ConversionProblems) => { value: T; violations: Violation[]; prefix: string },
): T[] {
  const out: Violation[] = [];
  if (items.length === 0) out.push({ param: field, code: "required", message: `${field} needs at least one entry` });
  if (items.length > MAX_BATCH) {
    throw DomainError.of("invalid_argument", "too_many", `${field} may hold at most ${MAX_BATCH} entries (got ${items.length}); send several calls`, field);
  }
  const seen = new Map<string, number>();
  const values = items.map((item, i) => {
    const problems = new ConversionProblems();
    const { value, violations, prefix } = convert(item, problems);
    const at = `${field}[${i}]`;
    for (const v of [...problems.violations, ...violations]) {
      out.push({ ...v, param: v.param.replace(new RegExp(`^${prefix}\\b`), at), message: v.message.replace(new RegExp(`^${prefix}\\b`), at) });
    }
    const first = seen.get(value.id);
    if (first !== undefined) out.push({ param: `${at}.id`, code: "duplicate", message: `${at}.id repeats ${field}[${first}].id (${JSON.stringify(value.id)}); send each once` });
    else seen.set(value.id, i);
    return value;
  });
  assertValid(out);
  return values;
}
