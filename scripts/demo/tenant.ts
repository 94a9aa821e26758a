// The demo tenant: a SaaS catalogue, 1,000 customers with subscriptions drawn from a seeded random
// generator, and one promotion of each archetype and effect. The same ids, codes and (relative to
// now) dates on every run, so a second run replaces the first and shows the same numbers. Data
// only; scripts/demo.ts sends it through the public API.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  Archetype,
  BillingInterval,
  BudgetBehavior,
  ConditionMode,
  PhaseDuration,
  SubscriptionStatus,
  Visibility,
  type ConditionSchema,
  type CreatePromotionRequestSchema,
  type CustomerSchema,
  type EffectSchema,
  type SubscriptionSchema,
} from "../../client/index.js";

export const CURRENCY = "USD";

export interface Price {
  planId: string;
  productId: string;
  name: string;
  interval: BillingInterval.MONTH | BillingInterval.YEAR;
  amountMinor: bigint;
}

const tiers = [
  { key: "starter", name: "Starter", monthly: 1_900n },
  { key: "pro", name: "Pro", monthly: 4_900n },
  { key: "enterprise", name: "Enterprise", monthly: 19_900n },
] as const;
type Tier = (typeof tiers)[number]["key"];

/** Plans (monthly, and yearly at ten months' price) of the core product, then the add-ons. */
export const CATALOGUE: readonly Price[] = [
  ...tiers.flatMap((t): Price[] => [
    { planId: `${t.key}-monthly`, productId: "platform", name: `${t.name} monthly`, interval: BillingInterval.MONTH, amountMinor: t.monthly },
    { planId: `${t.key}-yearly`, productId: "platform", name: `${t.name} yearly`, interval: BillingInterval.YEAR, amountMinor: t.monthly * 10n },
  ]),
  { planId: "seat-monthly", productId: "seats", name: "Extra seat monthly", interval: BillingInterval.MONTH, amountMinor: 800n },
  { planId: "seat-yearly", productId: "seats", name: "Extra seat yearly", interval: BillingInterval.YEAR, amountMinor: 8_000n },
  { planId: "analytics-monthly", productId: "analytics", name: "Analytics add-on monthly", interval: BillingInterval.MONTH, amountMinor: 2_900n },
  { planId: "analytics-yearly", productId: "analytics", name: "Analytics add-on yearly", interval: BillingInterval.YEAR, amountMinor: 29_000n },
];

function price(planId: string): Price {
  const found = CATALOGUE.find((p) => p.planId === planId);
  if (!found) throw new Error(`no plan ${planId} in the catalogue`);
  return found;
}

export interface DemoAccount {
  tier: Tier;
  yearly: boolean;
  customer: MessageInitShape<typeof CustomerSchema>;
  subscription: MessageInitShape<typeof SubscriptionSchema>;
}

/** mulberry32: small, seeded, good enough to make data look organic and stay reproducible. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const DAY_MS = 86_400_000;

/** Marks what the demo made (customers' and promotions' metadata), so a later run knows its own. */
export const DEMO_MARK = { created_by: "npm run demo" } as const;

/** `n` customers, each with one subscription: mostly Starter, some Pro, a few Enterprise; 30% yearly. */
export function accounts(n: number, now: Date): DemoAccount[] {
  const rnd = random(20_261_125);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const days = (d: number) => new Date(now.getTime() + d * DAY_MS);
  return Array.from({ length: n }, (_, i): DemoAccount => {
    const roll = rnd();
    const tier: Tier = roll < 0.5 ? "starter" : roll < 0.85 ? "pro" : "enterprise";
    const yearly = rnd() < 0.3;
    const period = yearly ? "yearly" : "monthly";
    const segments =
      tier === "enterprise" ? ["enterprise"] : tier === "pro" ? [pick(["smb", "startup"])] : [pick(["startup", "startup", "smb", "smb", "education", "nonprofit"])];
    const status = ((r) =>
      r < 0.08 ? SubscriptionStatus.TRIALING : r < 0.13 ? SubscriptionStatus.PAST_DUE : r < 0.15 ? SubscriptionStatus.CANCELED : SubscriptionStatus.ACTIVE)(rnd());
    const seats = tier === "enterprise" ? 5 + Math.floor(rnd() * 36) : tier === "pro" ? Math.floor(rnd() * 6) : 0;
    const analytics = tier === "enterprise" ? rnd() < 0.7 : tier === "pro" ? rnd() < 0.3 : false;
    const items = [{ planId: `${tier}-${period}`, quantity: 1 }];
    if (seats > 0) items.push({ planId: `seat-${period}`, quantity: seats });
    if (analytics) items.push({ planId: `analytics-${period}`, quantity: 1 });
    const start = days(-Math.floor(rnd() * (yearly ? 360 : 28)));
    const end = new Date(start);
    if (yearly) end.setUTCFullYear(end.getUTCFullYear() + 1);
    else end.setUTCMonth(end.getUTCMonth() + 1);
    const id = String(i + 1).padStart(4, "0");
    return {
      tier,
      yearly,
      customer: {
        id: `demo_cus_${id}`,
        segments,
        createdAt: timestampFromDate(days(-30 - Math.floor(rnd() * 1_000))),
        hasPaidBefore: status !== SubscriptionStatus.TRIALING,
        metadata: { ...DEMO_MARK },
        updatedAt: timestampFromDate(now),
      },
      subscription: {
        id: `demo_sub_${id}`,
        customerId: `demo_cus_${id}`,
        status,
        currency: CURRENCY,
        interval: yearly ? BillingInterval.YEAR : BillingInterval.MONTH,
        currentPeriodStart: timestampFromDate(start),
        currentPeriodEnd: timestampFromDate(end),
        trialEnd: status === SubscriptionStatus.TRIALING ? timestampFromDate(days(1 + Math.floor(rnd() * 14))) : undefined,
        items: items.map(({ planId, quantity }) => ({ planId, productId: price(planId).productId, unitAmountMinor: price(planId).amountMinor, quantity })),
        updatedAt: timestampFromDate(now),
      },
    };
  });
}

type PromotionInit = MessageInitShape<typeof CreatePromotionRequestSchema>;
type EffectInit = MessageInitShape<typeof EffectSchema>;
type ConditionInit = MessageInitShape<typeof ConditionSchema>;

const percentOff = (percentBps: number): EffectInit => ({ kind: { case: "percentageDiscount", value: { percentBps } } });
const phase = (name: string, duration: PhaseDuration, cycles: number, effects: EffectInit[]) => ({ name, duration, cycles, effects });

export type PromotionRole = "percentage" | "fixed" | "trial" | "credit" | "conditions" | "growth" | "loyalty";

/** One promotion of each effect and archetype, each marked as the demo's (a later run replaces them). */
export function promotions(): Record<PromotionRole, PromotionInit> {
  const all = specs();
  for (const spec of Object.values(all)) spec.metadata = { ...DEMO_MARK };
  return all;
}

function specs(): Record<PromotionRole, PromotionInit> {
  return {
    percentage: {
      name: "Spring sale: 20% off for 3 months",
      code: "SPRING20",
      visibility: Visibility.PUBLIC,
      stackable: true,
      priority: 5,
      currency: CURRENCY,
      phases: [phase("Default", PhaseDuration.REPEATING, 3, [percentOff(2_000)])],
      maxRedemptions: 500n,
      maxRedemptionsPerCustomer: 1n,
    },
    fixed: {
      name: "Welcome: $10 off the first invoice",
      code: "WELCOME10",
      stackable: true,
      priority: 3,
      currency: CURRENCY,
      conditions: [{ kind: { case: "firstTimeCustomer", value: {} } }],
      phases: [phase("Default", PhaseDuration.ONCE, 0, [{ kind: { case: "fixedDiscount", value: { amountMinor: 1_000n } } }])],
    },
    trial: {
      name: "Trial extension: 14 more days",
      code: "TRIAL14",
      currency: CURRENCY,
      phases: [phase("Default", PhaseDuration.ONCE, 0, [{ kind: { case: "freeTrialExtension", value: { days: 14 } } }])],
    },
    credit: {
      name: "Referral: $25 account credit",
      code: "REFER25",
      stackable: true,
      currency: CURRENCY,
      phases: [phase("Default", PhaseDuration.ONCE, 0, [{ kind: { case: "creditGrant", value: { amountMinor: 2_500n } } }])],
      maxBudget: 250_000n,
      budgetBehavior: BudgetBehavior.STRICT,
    },
    conditions: {
      name: "Enterprise annual: 15% off",
      description: "Automatic for enterprise customers on a yearly plan spending at least $1,000 a year.",
      archetype: Archetype.STANDARD,
      stackable: true,
      priority: 10,
      currency: CURRENCY,
      conditionMode: ConditionMode.ALL,
      conditions: [
        { kind: { case: "customerSegments", value: { anyOf: ["enterprise"] } } },
        { kind: { case: "plans", value: { include: ["enterprise-yearly"] } } },
        { kind: { case: "minSpend", value: { amountMinor: 100_000n } } },
      ] satisfies ConditionInit[],
      effects: [percentOff(1_500)],
    },
    growth: {
      name: "Launch ladder: 50% → 30% → 10%",
      code: "LAUNCH",
      archetype: Archetype.GROWTH_LADDER,
      isPhased: true,
      priority: 1,
      currency: CURRENCY,
      phases: [
        phase("Launch month", PhaseDuration.ONCE, 0, [percentOff(5_000)]),
        phase("Ramp", PhaseDuration.REPEATING, 2, [percentOff(3_000)]),
        phase("Steady", PhaseDuration.FOREVER, 0, [percentOff(1_000)]),
      ],
    },
    loyalty: {
      name: "Loyalty ladder: 5% → 10% → 15%",
      description: "Rewards staying: the discount grows while the subscription is paid without a gap.",
      archetype: Archetype.LOYALTY_LADDER,
      isPhased: true,
      requiresContinuousCoverage: true,
      stackable: true,
      priority: 8,
      currency: CURRENCY,
      phases: [
        phase("First quarter", PhaseDuration.REPEATING, 3, [percentOff(500)]),
        phase("Rest of the first year", PhaseDuration.REPEATING, 6, [percentOff(1_000)]),
        phase("Loyal", PhaseDuration.FOREVER, 0, [percentOff(1_500)]),
      ],
      maxBudget: 15_000_000n,
      budgetBehavior: BudgetBehavior.CAP,
    },
  };
}
