// npm run demo: builds a realistic tenant in a running service through its public API only (the
// client other services use), then shows what the service makes of it: an eligibility preview
// with every check, a simulated invoice, and a 12-period forecast with the budget burning down.
//
//   PROMOTIONS_URL=http://127.0.0.1:8080 PROMOTIONS_API_KEY=prm_... npm run demo
//
// It can run again against the same organization: customers and subscriptions keep their ids
// (upserted again, a thousand per call), the promotions an earlier run left are deleted and made
// anew, so every run shows the same numbers.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  BillingInterval,
  BudgetBehavior,
  CustomerService,
  DerivedStatus,
  PhaseDuration,
  PromotionService,
  SimulationService,
  SubscriptionStatus,
  createPromotionsClient,
  type Phase,
  type Promotion,
  type PromotionsClientOptions,
} from "../client/index.js";
import { CATALOGUE, CURRENCY, DEMO_MARK, accounts, promotions as promotionSpecs, type DemoAccount, type PromotionRole } from "./demo/tenant.js";
import { bar, count, heading, money, percent, table } from "./demo/terminal.js";

const CUSTOMERS = 1_000;
/** Records per UpsertCustomers / UpsertSubscriptions call (the service takes up to 1,000). */
const BATCH = 500;
const PERIODS = 12;

const out = (text: string) => process.stdout.write(text);

async function main(): Promise<void> {
  const baseUrl = process.env.PROMOTIONS_URL || "http://127.0.0.1:8080";
  const apiKey = process.env.PROMOTIONS_API_KEY ?? "";
  if (apiKey === "") {
    throw new DemoError(
      "PROMOTIONS_API_KEY is not set: use the key `npm start` printed on its first run, or create one with " +
        "`npm run keys -- create --org demo --scopes read,write` (PROMOTIONS_URL defaults to http://127.0.0.1:8080)",
    );
  }
  const options: PromotionsClientOptions = { baseUrl, apiKey };
  const promotionsApi = createPromotionsClient(PromotionService, options);
  const customersApi = createPromotionsClient(CustomerService, options);
  const simulationApi = createPromotionsClient(SimulationService, options);
  const now = new Date();
  const began = performance.now();
  out(`Promotions demo against ${baseUrl}\n`);

  // ── Catalogue ──────────────────────────────────────────────────────────────────────────────
  out(heading("Catalogue"));
  out(
    table(
      ["Plan", "Name", "Product", "Billed", "Price"],
      CATALOGUE.map((p) => [p.planId, p.name, p.productId, p.interval === BillingInterval.YEAR ? "yearly" : "monthly", money(p.amountMinor, CURRENCY)]),
      ["left", "left", "left", "left", "right"],
    ),
  );

  // ── Customers and subscriptions ────────────────────────────────────────────────────────────
  out(heading("Customers and subscriptions"));
  const tenant = accounts(CUSTOMERS, now);
  const started = performance.now();
  let calls = 0;
  for (let i = 0; i < tenant.length; i += BATCH, calls++) {
    await customersApi.upsertCustomers({ customers: tenant.slice(i, i + BATCH).map((a) => a.customer) });
  }
  for (let i = 0; i < tenant.length; i += BATCH, calls++) {
    await customersApi.upsertSubscriptions({ subscriptions: tenant.slice(i, i + BATCH).map((a) => a.subscription) });
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  out(`  ${count(tenant.length)} customers and ${count(tenant.length)} subscriptions upserted in ${seconds} s (${calls} calls of up to ${BATCH})\n\n`);
  const tiers = ["starter", "pro", "enterprise"] as const;
  const mix = tiers.map((tier) => {
    const of = tenant.filter((a) => a.tier === tier);
    const monthly = of.filter((a) => !a.yearly).length;
    return [tier, count(monthly), count(of.length - monthly), count(of.length)];
  });
  out(table(["Tier", "Monthly", "Yearly", "Customers"], mix, ["left", "right", "right", "right"]));
  const statuses = [SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE, SubscriptionStatus.CANCELED];
  out(`\n  ${statuses.map((s) => `${SubscriptionStatus[s].toLowerCase().replace("_", " ")} ${tenant.filter((a) => a.subscription.status === s).length}`).join(" · ")}\n`);

  // ── Promotions ─────────────────────────────────────────────────────────────────────────────
  out(heading("Promotions"));
  const replaced = await deleteEarlierRun(promotionsApi, promotionSpecs());
  const specs = promotionSpecs();
  const created = {} as Record<PromotionRole, Promotion>;
  for (const role of Object.keys(specs) as PromotionRole[]) {
    const draft = (await promotionsApi.createPromotion(specs[role])).promotion;
    const live = (await promotionsApi.activatePromotion({ id: draft?.id ?? "" })).promotion;
    if (!live) throw new DemoError(`ActivatePromotion returned no promotion for ${specs[role].name ?? role}`);
    created[role] = live;
  }
  out(
    table(
      ["Promotion", "Archetype", "Effect", "Code", "Status"],
      Object.values(created).map((p) => [
        p.name,
        archetypeName(p),
        describePhases(p.phases),
        p.code || "(automatic)",
        DerivedStatus[p.derivedStatus].toLowerCase(),
      ]),
    ),
  );

  // ── Eligibility preview ────────────────────────────────────────────────────────────────────
  const target = created.conditions;
  out(heading(`Eligibility preview: ${target.name}`));
  const eligible = find(tenant, (a) => a.tier === "enterprise" && a.yearly && a.subscription.status === SubscriptionStatus.ACTIVE);
  const ineligible = find(tenant, (a) => a.tier === "starter" && !a.yearly && a.subscription.status === SubscriptionStatus.ACTIVE);
  for (const account of [eligible, ineligible]) {
    const preview = await promotionsApi.previewPromotionEligibility({
      promotionId: target.id,
      customerId: account.customer.id ?? "",
      subscriptionId: account.subscription.id ?? "",
    });
    const verdict = preview.eligible ? "ELIGIBLE" : `NOT ELIGIBLE (${preview.reason})`;
    out(`\n  ${account.customer.id} · ${describeAccount(account)} → ${verdict}\n  ${preview.effectSummary}\n\n`);
    out(table(["Check", "Result", "Detail"], preview.checks.map((c) => [c.check, c.passed ? "✓ pass" : "✗ fail", c.detail])));
  }

  // ── Simulated invoice ──────────────────────────────────────────────────────────────────────
  out(heading(`Simulated invoice: ${eligible.subscription.id}`));
  const stack = [created.conditions, created.loyalty, created.fixed, created.growth];
  const short = new Map(stack.map((p) => [p.id, p.name.split(":")[0] ?? p.name]));
  const { invoice } = await simulationApi.simulatePromotion({
    customerId: eligible.customer.id ?? "",
    subscriptionId: eligible.subscription.id ?? "",
    promotionIds: stack.map((p) => p.id),
  });
  if (!invoice) throw new DemoError("SimulatePromotion returned no invoice");
  const cur = invoice.currency;
  out(`  ${describeAccount(eligible)}; promotions considered: ${stack.map((p) => short.get(p.id)).join(", ")}\n\n`);
  out(
    table(
      ["Line", "Plan", "Product", "Amount", "Discount", "Total", "Discount by promotion"],
      invoice.lines.map((l) => [
        l.lineId,
        l.planId,
        l.productId,
        money(l.amountMinor, cur),
        money(l.discountMinor, cur),
        money(l.totalMinor, cur),
        l.discounts.map((d) => `${short.get(d.promotionId) ?? d.promotionId} ${money(d.amountMinor, cur)}`).join(" + "),
      ]),
      ["left", "left", "left", "right", "right", "right", "left"],
    ),
  );
  out("\n");
  out(
    table(
      ["", ""],
      [
        ["Subtotal", money(invoice.subtotalMinor, cur)],
        ["Discount", money(-invoice.discountMinor, cur)],
        ["Total", money(invoice.totalMinor, cur)],
        ["Credits granted", money(invoice.creditsGrantedMinor, cur)],
        ["Trial days added", String(invoice.trialDaysAdded)],
      ],
      ["left", "right"],
    ).replace(/^.*\n.*\n/, ""),
  );
  out("\n");
  out(
    table(
      ["Promotion", "Applied", "Phase", "Discount", "Why not"],
      invoice.promotions.map((o) => [o.promotionName, o.applied ? "yes" : "no", o.phaseName, money(o.discountMinor, cur), o.reason]),
      ["left", "left", "left", "right", "left"],
    ),
  );

  // ── Impact forecast ────────────────────────────────────────────────────────────────────────
  const ladder = created.loyalty;
  out(heading(`${PERIODS}-period impact forecast: ${ladder.name}`));
  const impact = await simulationApi.simulatePromotionImpact({ promotionId: ladder.id, periods: PERIODS });
  const budget = ladder.maxBudget ?? 0n;
  out(
    `  ${count(impact.evaluatedSubscriptions)} billable subscriptions evaluated, ${count(impact.eligibleSubscriptions)} eligible in period 1; ` +
      `budget ${money(budget, impact.currency)} (${BudgetBehavior[ladder.budgetBehavior]})\n\n`,
  );
  out(
    table(
      ["Period", "Eligible", "Discount", "Cumulative", "Budget left", "Remaining budget"],
      impact.periods.map((p) => [
        String(p.period),
        count(p.eligibleSubscriptions),
        money(p.discountMinor + p.creditMinor, impact.currency),
        money(p.cumulativeCostMinor, impact.currency),
        p.budgetRemainingMinor === undefined ? "no cap" : money(p.budgetRemainingMinor, impact.currency),
        p.budgetRemainingMinor === undefined ? "" : bar(p.budgetRemainingMinor, budget, 30) || "·",
      ]),
      ["right", "right", "right", "right", "right", "left"],
    ),
  );
  out(
    `\n  Total cost over ${PERIODS} periods: ${money(impact.totalCostMinor, impact.currency)}; ` +
      (impact.budgetExhaustedPeriod === undefined ? "the budget lasts.\n" : `the budget runs out in period ${impact.budgetExhaustedPeriod}.\n`),
  );
  const again = replaced > 0 ? ` (the ${replaced} promotions an earlier run made were deleted first, so their codes were free)` : "";
  out(`\nFinished in ${((performance.now() - began) / 1000).toFixed(1)} s${again}.\n`);
}

/**
 * Deletes the promotions an earlier run made (same names, marked in their metadata), so their
 * codes are free again and this run's numbers are not mixed with theirs. Returns how many.
 */
async function deleteEarlierRun(api: Client<typeof PromotionService>, specs: Record<PromotionRole, { name?: string }>): Promise<number> {
  const names = Object.values(specs).map((s) => s.name ?? "");
  let deleted = 0;
  let cursor = "";
  do {
    const page = await api.listPromotions({ filter: [`name.in=${names.join(",")}`], limit: 100, cursor });
    for (const p of page.promotions) {
      if (p.metadata.created_by !== DEMO_MARK.created_by) continue;
      await api.deletePromotion({ id: p.id });
      deleted++;
    }
    cursor = page.nextCursor;
  } while (cursor !== "");
  return deleted;
}

class DemoError extends Error {}

function find(tenant: readonly DemoAccount[], match: (a: DemoAccount) => boolean): DemoAccount {
  const found = tenant.find(match);
  if (!found) throw new DemoError("the generated tenant has no customer of the kind the demo needs");
  return found;
}

function describeAccount(a: DemoAccount): string {
  const items = a.subscription.items ?? [];
  const plan = CATALOGUE.find((p) => p.planId === items[0]?.planId)?.name ?? "?";
  const extras = items.slice(1).map((i) => `${i.quantity}× ${i.planId}`);
  return `${(a.customer.segments ?? []).join(",")} customer on ${plan}${extras.length ? ` + ${extras.join(", ")}` : ""}`;
}

function archetypeName(p: Promotion): string {
  return ["?", "standard", "loyalty ladder", "growth ladder"][p.archetype] ?? "?";
}

/** "50% off once → 30% off ×2 → 10% off forever". */
function describePhases(phases: readonly Phase[]): string {
  return phases
    .map((phase) => {
      const effects = phase.effects
        .map((e) => {
          switch (e.kind.case) {
            case "percentageDiscount":
              return `${percent(e.kind.value.percentBps)} off`;
            case "fixedDiscount":
              return `${money(e.kind.value.amountMinor, CURRENCY)} off`;
            case "freeTrialExtension":
              return `+${e.kind.value.days} trial days`;
            case "creditGrant":
              return `${money(e.kind.value.amountMinor, CURRENCY)} credit`;
            default:
              return "?";
          }
        })
        .join(" + ");
      const duration = phase.duration === PhaseDuration.REPEATING ? `×${phase.cycles}` : phase.duration === PhaseDuration.ONCE ? "once" : "forever";
      return `${effects} ${duration}`;
    })
    .join(" → ");
}

try {
  await main();
} catch (error) {
  process.stderr.write(`error: ${explain(error)}\n`);
  process.exitCode = 1;
}

function explain(error: unknown): string {
  if (error instanceof DemoError) return error.message;
  const e = ConnectError.from(error);
  const url = process.env.PROMOTIONS_URL || "http://127.0.0.1:8080";
  if (e.code === Code.Unavailable) return `cannot reach the promotions service at ${url} (${e.rawMessage}); start it with \`npm start\` or set PROMOTIONS_URL`;
  if (e.code === Code.Unauthenticated) return `the service at ${url} refused PROMOTIONS_API_KEY (${e.rawMessage})`;
  if (e.code === Code.PermissionDenied) return `PROMOTIONS_API_KEY lacks a scope the demo needs (read and write): ${e.rawMessage}`;
  return `${Code[e.code]}: ${e.rawMessage}`;
}
