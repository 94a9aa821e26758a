// SimulatePromotionImpact over 100,000 subscriptions through the real server, against a floor
// measured in the same run: streaming the same subscriptions out of Postgres without pricing them.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";
import { PhaseDuration } from "../../gen/promotions/v1/types_pb.js";
import { BillingContextStore } from "../../src/store/billing-context-store.js";
import { client, startTestApp } from "../support/app.js";
import type { Row } from "./table.js";

const SUBSCRIPTIONS = Number(process.env.BENCH_SUBSCRIPTIONS ?? 100_000);
const PERIODS = 12;

export async function benchImpact(): Promise<Row[]> {
  const t = await startTestApp("bench_impact");
  try {
    const tenant = await t.tenant("bench");
    const conn = t.app.orm.em.fork().getConnection();
    // Bulk load straight into the table: the bench measures the forecast, not 100,000 upserts.
    await conn.execute(
      `insert into customers (organization_id, id, segments, has_paid_before, created_at, metadata, updated_at, stored_at)
       select ?, 'cus_' || g, case when g % 3 = 0 then array['enterprise'] else array['smb'] end, g % 2 = 0, now(), '{}', now(), now()
       from generate_series(1, ?) g`,
      [tenant.organizationId, SUBSCRIPTIONS],
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
      [tenant.organizationId, SUBSCRIPTIONS],
    );
    await conn.execute("analyze subscriptions; analyze customers");

    const floorStart = performance.now();
    let streamed = 0;
    for await (const batch of new BillingContextStore(t.app.orm.em.fork()).billableSubscriptions(tenant.organizationId)) streamed += batch.length;
    const floorMs = performance.now() - floorStart;

    const { promotion } = await client(PromotionService, t.url, tenant.key, "grpc").createPromotion({
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
    const simulation = client(SimulationService, t.url, tenant.key, "grpc");
    const started = performance.now();
    const forecast = await simulation.simulatePromotionImpact({ promotionId: promotion?.id ?? "", periods: PERIODS }, { timeoutMs: 600_000 });
    const forecastMs = performance.now() - started;
    const rss = process.memoryUsage().rss;

    return [
      { name: `stream ${streamed.toLocaleString("en-US")} subscriptions (floor)`, "time s": floorMs / 1000, "subs/s": streamed / (floorMs / 1000), "× floor": 1 },
      {
        name: `SimulatePromotionImpact ${Number(forecast.evaluatedSubscriptions).toLocaleString("en-US")} × ${PERIODS} periods`,
        "time s": forecastMs / 1000,
        "subs/s": Number(forecast.evaluatedSubscriptions) / (forecastMs / 1000),
        "× floor": forecastMs / floorMs,
        "budget runs out": forecast.budgetExhaustedPeriod ?? "never",
        "rss MiB": Math.round(rss / 2 ** 20),
      },
    ];
  } finally {
    await t.stop();
  }
}
