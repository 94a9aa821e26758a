import type { EntityManager } from "@mikro-orm/postgresql";
import type { BillingInterval, CustomerFacts, SubscriptionFacts, SubscriptionItem, SubscriptionStatus } from "../domain/billing.js";
import { billingContextOf, checkPricingTarget, customerOfTarget, type PricingRules, type PricingTarget } from "../domain/billing-context.js";
import type { BillingContext } from "../domain/billing.js";
import { notFound } from "../domain/errors.js";
import { Customer, Subscription } from "./entities.js";

// Customers and subscriptions as the billing system last described them. Upserts are ordered by
// the caller's updated_at inside one statement, so concurrent and out-of-order deliveries settle on
// the newest state without locks or lost updates.

export interface StoredCustomer extends CustomerFacts {
  metadata: Record<string, string>;
  updatedAt: Date;
}

export interface StoredSubscription extends SubscriptionFacts {
  updatedAt: Date;
}

export interface Upserted<T> {
  value: T;
  /** False when a newer state was already stored and this one changed nothing. */
  applied: boolean;
}

const itemsToJson = (items: readonly SubscriptionItem[]) =>
  items.map((i) => ({ plan_id: i.planId, product_id: i.productId, unit_amount_minor: i.unitAmountMinor.toString(), quantity: i.quantity }));

function itemsFromJson(json: unknown): SubscriptionItem[] {
  if (!Array.isArray(json)) return [];
  return json.map((raw) => {
    const r = (raw ?? {}) as Record<string, unknown>;
    return {
      planId: String(r.plan_id ?? ""),
      productId: String(r.product_id ?? ""),
      unitAmountMinor: BigInt(String(r.unit_amount_minor ?? "0")),
      quantity: Number(r.quantity ?? 0),
    };
  });
}

function customerFrom(row: Customer): StoredCustomer {
  return {
    id: row.id,
    segments: [...row.segments],
    hasPaidBefore: row.hasPaidBefore,
    createdAt: row.createdAt ?? null,
    metadata: { ...row.metadata },
    updatedAt: row.updatedAt,
  };
}

/** Maps a stored row to pipeline facts; used for single reads and for streaming forecasts. */
export function subscriptionFrom(row: Subscription): StoredSubscription {
  return {
    id: row.id,
    customerId: row.customerId,
    status: row.status as SubscriptionStatus,
    currency: row.currency,
    interval: row.interval as BillingInterval,
    currentPeriodStart: row.currentPeriodStart ?? null,
    currentPeriodEnd: row.currentPeriodEnd ?? null,
    trialEnd: row.trialEnd ?? null,
    items: itemsFromJson(row.items),
    updatedAt: row.updatedAt,
  };
}

export class BillingContextStore {
  constructor(private readonly em: EntityManager) {}

  /** One customer, written only when it is newer than the stored one (by updated_at); the stored row either way. */
  async upsertCustomer(organizationId: string, c: StoredCustomer): Promise<Upserted<StoredCustomer>> {
    const written = await this.upsertCustomers(organizationId, [c]);
    return { value: await this.getCustomer(organizationId, c.id), applied: written.has(c.id) };
  }

  /** One subscription, as upsertCustomer. */
  async upsertSubscription(organizationId: string, s: StoredSubscription): Promise<Upserted<StoredSubscription>> {
    const written = await this.upsertSubscriptions(organizationId, [s]);
    return { value: await this.getSubscription(organizationId, s.id), applied: written.has(s.id) };
  }

  /**
   * Many customers in one statement, each written only when it is newer than the stored one (by its own updated_at); the
   * ids it wrote. Ids must be distinct (one statement cannot update a row twice).
   */
  async upsertCustomers(organizationId: string, customers: readonly StoredCustomer[]): Promise<Set<string>> {
    const rows = await this.em.getConnection().execute<{ id: string }[]>(
      `insert into customers as c (organization_id, id, segments, has_paid_before, created_at, metadata, updated_at, stored_at)
       select ?, x.id, array(select jsonb_array_elements_text(x.segments)), x.has_paid_before, x.created_at, x.metadata, x.updated_at, now()
         from jsonb_to_recordset(?::jsonb) as x(id text, segments jsonb, has_paid_before boolean, created_at timestamptz, metadata jsonb, updated_at timestamptz)
       on conflict (organization_id, id) do update set
         segments = excluded.segments, has_paid_before = excluded.has_paid_before, created_at = excluded.created_at,
         metadata = excluded.metadata, updated_at = excluded.updated_at, stored_at = excluded.stored_at
       where c.updated_at < excluded.updated_at
       returning c.id`,
      [
        organizationId,
        JSON.stringify(
          customers.map((c) => ({
            id: c.id,
            segments: c.segments,
            has_paid_before: c.hasPaidBefore,
            created_at: c.createdAt?.toISOString() ?? null,
            metadata: c.metadata,
            updated_at: c.updatedAt.toISOString(),
          })),
        ),
      ],
    );
    return new Set(rows.map((r) => String(r.id)));
  }

  /** Many subscriptions in one statement, as upsertCustomers; the ids it wrote. */
  async upsertSubscriptions(organizationId: string, subscriptions: readonly StoredSubscription[]): Promise<Set<string>> {
    const rows = await this.em.getConnection().execute<{ id: string }[]>(
      `insert into subscriptions as s (organization_id, id, customer_id, status, currency, interval, current_period_start,
         current_period_end, trial_end, items, updated_at, stored_at)
       select ?, x.id, x.customer_id, x.status, x.currency, x.interval, x.current_period_start, x.current_period_end, x.trial_end,
              x.items, x.updated_at, now()
         from jsonb_to_recordset(?::jsonb) as x(id text, customer_id text, status text, currency text, interval text,
              current_period_start timestamptz, current_period_end timestamptz, trial_end timestamptz, items jsonb, updated_at timestamptz)
       on conflict (organization_id, id) do update set
         customer_id = excluded.customer_id, status = excluded.status, currency = excluded.currency,
         interval = excluded.interval, current_period_start = excluded.current_period_start,
         current_period_end = excluded.current_period_end, trial_end = excluded.trial_end, items = excluded.items,
         updated_at = excluded.updated_at, stored_at = excluded.stored_at
       where s.updated_at < excluded.updated_at
       returning s.id`,
      [
        organizationId,
        JSON.stringify(
          subscriptions.map((s) => ({
            id: s.id,
            customer_id: s.customerId,
            status: s.status,
            currency: s.currency,
            interval: s.interval,
            current_period_start: s.currentPeriodStart?.toISOString() ?? null,
            current_period_end: s.currentPeriodEnd?.toISOString() ?? null,
            trial_end: s.trialEnd?.toISOString() ?? null,
            items: itemsToJson(s.items),
            updated_at: s.updatedAt.toISOString(),
          })),
        ),
      ],
    );
    return new Set(rows.map((r) => String(r.id)));
  }

  async findCustomer(organizationId: string, id: string): Promise<StoredCustomer | null> {
    const row = await this.em.findOne(Customer, { organizationId, id });
    return row ? customerFrom(row) : null;
  }

  async getCustomer(organizationId: string, id: string): Promise<StoredCustomer> {
    const found = await this.findCustomer(organizationId, id);
    if (!found) throw notFound("customer", id, "customer_id");
    return found;
  }

  async getSubscription(organizationId: string, id: string): Promise<StoredSubscription> {
    const row = await this.em.findOne(Subscription, { organizationId, id });
    if (!row) throw notFound("subscription", id, "subscription_id");
    return subscriptionFrom(row);
  }

  /**
   * The one billing-context loader (redeem, apply, simulate, preview): reads the subscription and
   * customer a pricing target names; domain/billing-context.ts decides what the target may ask.
   */
  async billingContext(organizationId: string, target: PricingTarget, rules: PricingRules): Promise<BillingContext> {
    checkPricingTarget(target, rules);
    const subscription = target.subscriptionId === "" ? null : await this.getSubscription(organizationId, target.subscriptionId);
    const customerId = customerOfTarget(target, subscription);
    const customer = customerId === "" ? null : await this.findCustomer(organizationId, customerId);
    return billingContextOf(target, { subscription, customer }, rules);
  }

  /**
   * Billable subscriptions (TRIALING, ACTIVE, PAST_DUE) in id order, a batch at a time, so a
   * forecast over 100,000 of them never holds more than one batch and its customers in memory.
   */
  async *billableSubscriptions(
    organizationId: string,
    batchSize = 1000,
  ): AsyncGenerator<{ subscription: StoredSubscription; customer: StoredCustomer | null }[]> {
    let after = "";
    for (;;) {
      const rows = await this.em.find(
        Subscription,
        { organizationId, status: { $in: ["TRIALING", "ACTIVE", "PAST_DUE"] }, id: { $gt: after } },
        { orderBy: { id: "asc" }, limit: batchSize },
      );
      if (rows.length === 0) return;
      const customerIds = [...new Set(rows.map((r) => r.customerId))];
      const customers = await this.em.find(Customer, { organizationId, id: { $in: customerIds } });
      const byId = new Map(customers.map((c) => [c.id, customerFrom(c)]));
      yield rows.map((r) => ({ subscription: subscriptionFrom(r), customer: byId.get(r.customerId) ?? null }));
      // Each batch is read-only; letting go of it keeps memory flat across 100,000 rows.
      this.em.clear();
      after = rows[rows.length - 1]?.id ?? after;
      if (rows.length < batchSize) return;
    }
  }
}
