import { defineEntity, p } from "@mikro-orm/core";

// Tables of the service. Schema changes go through the migrations in ./migrations, never through
// schema:update; these definitions must match them.

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
    /** Fences the Redis counters: bumped by every rebuild from the ledger (src/counters/README.md). */
    counterEpoch: p.bigint().default(1),
    /** Moves on every change to the promotion or its codes; caches of terms compare it. */
    termsSeq: p.bigint().default(1),
    /** The max_budget in force when a STRICT budget refused a grant; EXHAUSTED while max_budget is not above it. */
    budgetExhaustedMax: p.bigint().nullable(),
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
    // The terms. Scalars are columns so list filters run in SQL; nested terms are JSON.
    name: p.string().length(200),
    description: p.text(),
    publicDescription: p.text(),
    code: p.string().length(64).nullable(),
    /** CODE, AUTOMATIC or ASSIGNED. */
    applicationMethod: p.string().length(16),
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

const PromotionCodeSchema = defineEntity({
  name: "PromotionCode",
  tableName: "promotion_codes",
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    promotionId: p.uuid(),
    /** Upper-cased. */
    code: p.string().length(64),
    active: p.boolean(),
    maxRedemptions: p.bigint().nullable(),
    minAmountMinor: p.bigint().nullable(),
    firstTimeCustomersOnly: p.boolean(),
    expiresAt: p.datetime(3).nullable(),
    metadata: p.json<Record<string, string>>(),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
    /** Set when the promotion is archived or deleted: the code is free for another promotion. */
    retiredAt: p.datetime(3).nullable(),
    /** The CreatePromotionCodes call that made it (null for codes older than batches). */
    batchId: p.uuid().nullable(),
    /** On the first code of a batch made with an idempotency key: the key and the request's digest. */
    idempotencyKey: p.string().length(200).nullable(),
    requestHash: p.string().length(64).nullable(),
  },
});
export class PromotionCode extends PromotionCodeSchema.class {}
PromotionCodeSchema.setClass(PromotionCode);

const RedemptionSchema = defineEntity({
  name: "Redemption",
  tableName: "redemptions",
  properties: {
    /** Also the id of the Redis reservation that admitted it. */
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    promotionId: p.uuid(),
    /**
     * ACTIVE, COMPLETED (its last period used), RELEASED (given back), ENDED (stopped by the system,
     * see end_reason), or ABANDONED (a tombstone: the reservation was given back, the write never happened).
     */
    status: p.string().length(16),
    /** CODE, ASSIGNED or AUTOMATIC (an automatic promotion's first application); null for tombstones. */
    kind: p.string().length(16).nullable(),
    /** The counter epoch the reservation was made under. */
    epoch: p.bigint(),
    promotionVersionId: p.uuid().nullable(),
    version: p.integer().nullable(),
    codeId: p.uuid().nullable(),
    code: p.string().length(64).nullable(),
    customerId: p.string().length(200).nullable(),
    subscriptionId: p.string().length(200).nullable(),
    idempotencyKey: p.string().length(200).nullable(),
    requestHash: p.string().length(64).nullable(),
    /** Billing periods of this redemption already used by invoices; selects the phase. */
    cyclesUsed: p.integer().default(0),
    /** Billing periods its pinned terms last; null when a phase is FOREVER. */
    cyclesTotal: p.integer().nullable(),
    metadata: p.json<Record<string, string>>(),
    createdAt: p.datetime(3),
    releasedAt: p.datetime(3).nullable(),
    completedAt: p.datetime(3).nullable(),
    endedAt: p.datetime(3).nullable(),
    /** Why the system ended it: promotion_deleted, coverage_gap. */
    endReason: p.string().length(32).nullable(),
  },
});
export class Redemption extends RedemptionSchema.class {}
RedemptionSchema.setClass(Redemption);

const InvoiceSchema = defineEntity({
  name: "Invoice",
  tableName: "invoices",
  properties: {
    organizationId: p.uuid().primary(),
    /** The caller's invoice id: ApplyPromotions is idempotent on it. */
    id: p.string().length(200).primary(),
    requestHash: p.string().length(64),
    customerId: p.string().length(200).nullable(),
    subscriptionId: p.string().length(200).nullable(),
    /** The priced invoice as returned, so a retry returns exactly the first answer. */
    priced: p.json<unknown>(),
    createdAt: p.datetime(3),
    /** APPLIED, or REVERSED (ReverseInvoice undid it; ApplyPromotions of this id is refused). */
    status: p.string().length(16).default("APPLIED"),
    /** The billing period priced (continuous coverage compares consecutive periods). */
    periodStart: p.datetime(3).nullable(),
    periodEnd: p.datetime(3).nullable(),
    reversedAt: p.datetime(3).nullable(),
    reverseReason: p.string().length(200).nullable(),
  },
});
export class Invoice extends InvoiceSchema.class {}
InvoiceSchema.setClass(Invoice);

const InvoiceApplicationSchema = defineEntity({
  name: "InvoiceApplication",
  tableName: "invoice_applications",
  properties: {
    /** Also the id of the Redis budget reservation. */
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    promotionId: p.uuid(),
    /** APPLIED, REVERSED (its invoice was reversed; its budget came back) or ABANDONED (tombstone, as for redemptions). */
    status: p.string().length(16),
    epoch: p.bigint(),
    invoiceId: p.string().length(200).nullable(),
    redemptionId: p.uuid().nullable(),
    version: p.integer().nullable(),
    phaseName: p.string().length(200).nullable(),
    discountMinor: p.bigint().default(0),
    creditMinor: p.bigint().default(0),
    budgetConsumedMinor: p.bigint().default(0),
    trialDays: p.integer().default(0),
    createdAt: p.datetime(3),
  },
});
export class InvoiceApplication extends InvoiceApplicationSchema.class {}
InvoiceApplicationSchema.setClass(InvoiceApplication);

const InvoiceDiscountLineSchema = defineEntity({
  name: "InvoiceDiscountLine",
  tableName: "invoice_discount_lines",
  properties: {
    applicationId: p.uuid().primary(),
    lineId: p.string().length(200).primary(),
    amountMinor: p.bigint(),
  },
});
export class InvoiceDiscountLine extends InvoiceDiscountLineSchema.class {}
InvoiceDiscountLineSchema.setClass(InvoiceDiscountLine);

// Events and webhooks (src/events/): written and read with SQL of their own; these definitions
// only keep the schema check honest.
const EventSchema = defineEntity({
  name: "Event",
  tableName: "events",
  properties: {
    /** Order within one transaction; internal. */
    seq: p.bigint().primary().autoincrement(),
    id: p.uuid().unique(),
    organizationId: p.uuid(),
    /** The writing transaction (pg_current_xact_id()). */
    txid: p.string().columnType("xid8"),
    type: p.string().length(64),
    createdAt: p.datetime(3),
    requestId: p.string().length(128).nullable(),
    resourceId: p.string().length(200),
    /** The payload oneof as proto JSON, e.g. {"promotion": {...}}. */
    payload: p.json<Record<string, unknown>>(),
    dedupeKey: p.string().length(300).nullable(),
  },
});
export class Event extends EventSchema.class {}
EventSchema.setClass(Event);

const WebhookEndpointSchema = defineEntity({
  name: "WebhookEndpoint",
  tableName: "webhook_endpoints",
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    url: p.string().length(2048),
    description: p.string().length(500),
    eventTypes: p.array(),
    /** The signing secret (whsec_…): needed in the clear to sign, so never logged or listed. */
    secret: p.string().length(100),
    previousSecret: p.string().length(100).nullable(),
    previousSecretExpiresAt: p.datetime(3).nullable(),
    disabledAt: p.datetime(3).nullable(),
    disabledReason: p.string().length(32).nullable(),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
    deletedAt: p.datetime(3).nullable(),
  },
});
export class WebhookEndpoint extends WebhookEndpointSchema.class {}
WebhookEndpointSchema.setClass(WebhookEndpoint);

const WebhookDeliverySchema = defineEntity({
  name: "WebhookDelivery",
  tableName: "webhook_deliveries",
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    endpointId: p.uuid(),
    eventId: p.uuid(),
    eventType: p.string().length(64),
    status: p.string().length(16),
    attemptCount: p.integer(),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
    deliveredAt: p.datetime(3).nullable(),
  },
});
export class WebhookDelivery extends WebhookDeliverySchema.class {}
WebhookDeliverySchema.setClass(WebhookDelivery);

const WebhookAttemptSchema = defineEntity({
  name: "WebhookAttempt",
  tableName: "webhook_attempts",
  properties: {
    deliveryId: p.uuid().primary(),
    attempt: p.integer().primary(),
    status: p.string().length(16),
    responseStatusCode: p.integer().nullable(),
    latencyMs: p.integer(),
    error: p.string().length(300).nullable(),
    startedAt: p.datetime(3),
  },
});
export class WebhookAttempt extends WebhookAttemptSchema.class {}
WebhookAttemptSchema.setClass(WebhookAttempt);

const WebhookDispatchCursorSchema = defineEntity({
  name: "WebhookDispatchCursor",
  tableName: "webhook_dispatch_cursor",
  properties: {
    id: p.integer().primary().autoincrement(false),
    txid: p.string().columnType("xid8"),
    seq: p.bigint(),
  },
});
export class WebhookDispatchCursor extends WebhookDispatchCursorSchema.class {}
WebhookDispatchCursorSchema.setClass(WebhookDispatchCursor);

const CounterReturnSchema = defineEntity({
  name: "CounterReturn",
  tableName: "counter_returns",
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    promotionId: p.uuid(),
    /** The counter epoch the release or reversal was committed under. */
    epoch: p.bigint(),
    /** RELEASE (a redemption's slot) or REVERSAL (budget). */
    kind: p.string().length(16),
    customerId: p.string().length(200).nullable(),
    codeId: p.uuid().nullable(),
    amountMinor: p.bigint().default(0),
    createdAt: p.datetime(3),
    /** When Redis took it (or a rebuild made it moot); null while pending. */
    appliedAt: p.datetime(3).nullable(),
  },
});
export class CounterReturn extends CounterReturnSchema.class {}
CounterReturnSchema.setClass(CounterReturn);

export const ENTITIES = [
  Organization,
  ApiKey,
  Promotion,
  PromotionVersion,
  Customer,
  Subscription,
  PromotionCode,
  Redemption,
  Invoice,
  InvoiceApplication,
  InvoiceDiscountLine,
  Event,
  WebhookEndpoint,
  WebhookDelivery,
  WebhookAttempt,
  WebhookDispatchCursor,
  CounterReturn,
];
