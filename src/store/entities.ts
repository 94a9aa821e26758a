import { defineEntity, p } from "@mikro-orm/core";

// Tables of the service. Schema changes go through the migrations in ./migrations, never through
// schema:update; these definitions must match them (test/integration/schema.test.ts checks).

const OrganizationSchema = defineEntity({
  name: "Organization",
  tableName: "organizations",
  properties: {
    id: p.uuid().primary(),
    slug: p.string().length(64).unique(),
    name: p.string().length(200),
    createdAt: p.datetime(3),
  },
});
export class Organization extends OrganizationSchema.class {}
OrganizationSchema.setClass(Organization);

const ApiKeySchema = defineEntity({
  name: "ApiKey",
  tableName: "api_keys",
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid().index(),
    name: p.string().length(200),
    /** First characters of the key, shown in listings so an operator can tell keys apart. */
    prefix: p.string().length(32),
    /** SHA-256 of the whole key, hex. The key itself is never stored. */
    keyHash: p.string().length(64).unique(),
    scopes: p.array(),
    createdAt: p.datetime(3),
    revokedAt: p.datetime(3).nullable(),
  },
});
export class ApiKey extends ApiKeySchema.class {}
ApiKeySchema.setClass(ApiKey);

const PromotionSchema = defineEntity({
  name: "Promotion",
  tableName: "promotions",
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    status: p.string().length(16),
    /** The newest version's primary code, reserved among the tenant's live promotions. */
    code: p.string().length(64).nullable(),
    /** Newest version number; what `expected_version` is compared with. */
    version: p.integer(),
    headVersionId: p.uuid(),
    currentRedemptions: p.bigint().default(0),
    currentBudgetUsed: p.bigint().default(0),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
    archivedAt: p.datetime(3).nullable(),
    deletedAt: p.datetime(3).nullable(),
  },
});
export class Promotion extends PromotionSchema.class {}
PromotionSchema.setClass(Promotion);

const PromotionVersionSchema = defineEntity({
  name: "PromotionVersion",
  tableName: "promotion_versions",
  properties: {
    id: p.uuid().primary(),
    promotionId: p.uuid(),
    organizationId: p.uuid(),
    version: p.integer(),
    /** "draft" or "published"; the lifecycle status is derived from this, time and the promotion. */
    state: p.string().length(16),
    effectiveFrom: p.datetime(3).nullable(),
    publishedAt: p.datetime(3).nullable(),
    publishedBy: p.string().length(64).nullable(),
    createdAt: p.datetime(3),
    createdBy: p.string().length(64).nullable(),
    archivedAt: p.datetime(3).nullable(),
    archivedReason: p.string().length(64).nullable(),
    usageCount: p.bigint().default(0),
    // The terms. Scalars are columns so list filters run in SQL; nested terms are JSON.
    name: p.string().length(200),
    description: p.text(),
    publicDescription: p.text(),
    code: p.string().length(64).nullable(),
    archetype: p.string().length(32),
    visibility: p.string().length(16),
    stackable: p.boolean(),
    priority: p.integer(),
    applicationTiming: p.string().length(16),
    conditionMode: p.string().length(8),
    conditions: p.json<unknown[]>(),
    isPhased: p.boolean(),
    phases: p.json<unknown[]>(),
    currency: p.string().length(3).nullable(),
    maxBudget: p.bigint().nullable(),
    budgetBehavior: p.string().length(16),
    maxRedemptions: p.bigint().nullable(),
    maxRedemptionsPerCustomer: p.bigint().nullable(),
    validFrom: p.datetime(3).nullable(),
    validTo: p.datetime(3).nullable(),
    requiresContinuousCoverage: p.boolean(),
    metadata: p.json<Record<string, string>>(),
  },
});
export class PromotionVersion extends PromotionVersionSchema.class {}
PromotionVersionSchema.setClass(PromotionVersion);

const CustomerSchema = defineEntity({
  name: "Customer",
  tableName: "customers",
  properties: {
    organizationId: p.uuid().primary(),
    id: p.string().length(200).primary(),
    segments: p.array(),
    hasPaidBefore: p.boolean(),
    createdAt: p.datetime(3).nullable(),
    metadata: p.json<Record<string, string>>(),
    /** The caller's time of this state; an upsert with an older one changes nothing. */
    updatedAt: p.datetime(3),
    storedAt: p.datetime(3),
  },
});
export class Customer extends CustomerSchema.class {}
CustomerSchema.setClass(Customer);

const SubscriptionSchema = defineEntity({
  name: "Subscription",
  tableName: "subscriptions",
  properties: {
    organizationId: p.uuid().primary(),
    id: p.string().length(200).primary(),
    customerId: p.string().length(200),
    status: p.string().length(16),
    currency: p.string().length(3),
    interval: p.string().length(8),
    currentPeriodStart: p.datetime(3).nullable(),
    currentPeriodEnd: p.datetime(3).nullable(),
    trialEnd: p.datetime(3).nullable(),
    /** [{plan_id, product_id, unit_amount_minor (decimal string), quantity}] */
    items: p.json<unknown[]>(),
    updatedAt: p.datetime(3),
    storedAt: p.datetime(3),
  },
});
export class Subscription extends SubscriptionSchema.class {}
SubscriptionSchema.setClass(Subscription);

export const ENTITIES = [Organization, ApiKey, Promotion, PromotionVersion, Customer, Subscription];
