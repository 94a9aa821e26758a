// A tenant of `count` customers and ACTIVE monthly subscriptions, written by SQL in two statements:
// the forecast tests and the bench measure SimulatePromotionImpact, not 100,000 upserts. A third
// of the customers are "enterprise", so a promotion conditioned on that segment is eligible for some.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { PhaseDuration } from "../../gen/promotions/v1/types_pb.js";
import { client } from "./app.js";

export interface Sql {
  execute(sql: string, params?: unknown[]): Promise<unknown>;
}

export async function seedSubscriptions(conn: Sql, organizationId: string, count: number): Promise<void> {
  await conn.execute(
    `insert into customers (organization_id, id, segments, has_paid_before, created_at, metadata, updated_at, stored_at)
     select ?, 'cus_' || g, case when g % 3 = 0 then array['enterprise'] else array['smb'] end, g % 2 = 0, now(), '{}', now(), now()
     from generate_series(1, ?) g`,
    [organizationId, count],
  );
  await conn.execute(
    `insert into subscriptions (organization_id, id, customer_id, status, currency, interval, current_period_start,
       current_period_end, trial_end, items, updated_at, stored_at)
     select ?, 'sub_' || lpad(g::text, 7, '0'), 'cus_' || g, 'ACTIVE', 'USD', 'MONTH', '2026-11-01', '2026-12-01', null,
       jsonb_build_array(
         jsonb_build_object('plan_id', case when g % 4 = 0 then 'pro' else 'basic' end, 'product_id', 'app', 'unit_amount_minor', (2000 + (g % 7) * 500)::text, 'quantity', 1),
         jsonb_build_object('plan_id', 'seats', 'product_id', 'seats', 'unit_amount_minor', '1000', 'quantity', 1 + g % 5)),
       now(), now()
     from generate_series(1, ?) g`,
    [organizationId, count],
  );
  await conn.execute("analyze subscriptions; analyze customers");
}

/** The phased, budgeted promotion every forecast test and bench prices (enterprise customers only). */
export async function createForecastPromotion(url: string, key: string): Promise<string> {
  const { promotion } = await client(PromotionService, url, key, "grpc").createPromotion({
    name: "Enterprise ladder",
    archetype: 3,
    isPhased: true,
    currency: "USD",
    maxBudget: 50_000_000n,
    conditions: [{ kind: { case: "customerSegments", value: { anyOf: ["enterprise"] } } }],
    validFrom: timestampFromDate(new Date("2026-01-01T00:00:00Z")),
    phases: [
      { name: "Intro", duration: PhaseDuration.REPEATING, cycles: 3, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 2000 } } }] },
      { name: "After", duration: PhaseDuration.FOREVER, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }] },
    ],
  });
  if (!promotion) throw new Error("no promotion created");
  return promotion.id;
}
