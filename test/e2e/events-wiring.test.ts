import { randomUUID } from "node:crypto";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/promotions/v1/event_pb.js";
import { EventService } from "../../gen/promotions/v1/event_service_pb.js";
import { InvoiceService } from "../../gen/promotions/v1/invoice_service_pb.js";
import { ApplicationMethod, BudgetBehavior, DerivedStatus, PromotionStatus, type Promotion } from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService, RedemptionStatus } from "../../gen/promotions/v1/redemption_service_pb.js";
import { PhaseDuration } from "../../gen/promotions/v1/types_pb.js";
import { sqlOf } from "../../src/events/sql.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { promo, refusal } from "../support/rpc.js";

// Every change writes its event (DESIGN §9), in its own transaction, through the real API: each
// RPC's event appears once, with the resource after the change and the call's x-request-id; a
// refused change writes none; promotion.exhausted is written once however many calls race for the
// last slot; each budget threshold once; a scheduled version is announced at its effective_at and
// a cancelled one never. Events are read back with ListEvents (the API) and counted in the outbox.

const TEN_PERCENT = [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 1000 } } }];
const invoiceOf = (amount: bigint) => ({ currency: "USD", lines: [{ planId: "pro", productId: "app", unitAmountMinor: amount, quantity: 1 }] });

let t: TestApp;

/** A client that sends the key and, when given, `x-request-id` on every call. */
function clientWith<S extends DescService>(service: S, key: string, requestId?: () => string): Client<S> {
  const headers: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    if (requestId) req.header.set("x-request-id", requestId());
    return next(req);
  };
  return createClient(service, createConnectTransport({ baseUrl: t.url, httpVersion: "1.1", interceptors: [headers] }));
}

/** Each call carries the request id that `next` is set to. */
function tracedClients(key: string) {
  const ids = { next: "" };
  const requestId = () => ids.next;
  return {
    ids,
    promotions: clientWith(PromotionService, key, requestId),
    redemptions: clientWith(RedemptionService, key, requestId),
    invoices: clientWith(InvoiceService, key, requestId),
    events: clientWith(EventService, key),
  };
}

/** Every event of the caller's organization, oldest first (ListEvents pages newest first). */
async function allEvents(events: Client<typeof EventService>, types: string[] = []): Promise<Event[]> {
  const out: Event[] = [];
  let cursor = "";
  do {
    const page = await events.listEvents({ limit: 100, cursor, types });
    out.push(...page.events);
    cursor = page.nextCursor;
  } while (cursor !== "");
  return out.reverse();
}

/** Reads until `done` holds (an event shows once every older transaction of the cluster has ended), or fails after 15 s. */
async function eventsUntil(events: Client<typeof EventService>, done: (e: Event[]) => boolean, types: string[] = []): Promise<Event[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const got = await allEvents(events, types);
    if (done(got) || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Events in the outbox of one organization, by type (the table itself, whatever the readers show). */
async function outboxCounts(organizationId: string): Promise<Record<string, number>> {
  const rows = await sqlOf(t.app.orm.em.fork()).rows<{ type: string; n: string }>(`select type, count(*)::text as n from events where organization_id = $1 group by type`, [organizationId]);
  return Object.fromEntries(rows.map((r) => [r.type, Number(r.n)]));
}

const promotionOf = (e: Event | undefined): Promotion => {
  if (e?.payload.case !== "promotion") throw new Error(`not a promotion event: ${e?.type}`);
  return e.payload.value;
};

beforeAll(async () => {
  t = await startTestApp("events_wiring", { EVENTS_POLL_MS: "50" });
});

afterAll(async () => {
  await t?.stop();
});

describe("the promotion use cases write their events", () => {
  it("create, edit, activate, publish, codes, redeem, release, deactivate, delete: one event each, the resource after the change, the call's request id", async () => {
    const tenant = await t.tenant("wiring-lifecycle");
    const c = tracedClients(tenant.key);
    c.ids.next = "req-create";
    const created = promo(await c.promotions.createPromotion({ name: "Spring", code: "SPRING", effects: TEN_PERCENT }));
    c.ids.next = "req-edit-draft";
    await c.promotions.updatePromotion({ id: created.id, name: "Spring sale" });
    c.ids.next = "req-activate";
    await c.promotions.activatePromotion({ id: created.id });
    c.ids.next = "req-publish";
    const published = promo(await c.promotions.updatePromotion({ id: created.id, name: "Spring sale 2" }));
    c.ids.next = "req-codes";
    const codes = await c.promotions.createPromotionCodes({ promotionId: created.id, codes: ["SPRING-A", "SPRING-B"] });
    c.ids.next = "req-code-update";
    await c.promotions.updatePromotionCode({ id: codes.codes[0]?.id ?? "", active: false });
    c.ids.next = "req-redeem";
    const redemption = (await c.redemptions.redeemPromotion({ code: "SPRING-B", customerId: "cus_1" })).redemption;
    c.ids.next = "req-release";
    await c.redemptions.releaseRedemption({ id: redemption?.id ?? "" });
    c.ids.next = "req-deactivate";
    await c.promotions.deactivatePromotion({ id: created.id });
    c.ids.next = "req-delete";
    await c.promotions.deletePromotion({ id: created.id });

    const events = await eventsUntil(c.events, (e) => e.some((x) => x.type === "promotion.deleted"));
    expect(events.map((e) => [e.type, e.requestId])).toEqual([
      ["promotion.created", "req-create"],
      ["promotion.updated", "req-edit-draft"],
      ["promotion.activated", "req-activate"],
      ["promotion.updated", "req-publish"],
      ["promotion.version_published", "req-publish"],
      ["code.created", "req-codes"],
      ["code.created", "req-codes"],
      ["code.updated", "req-code-update"],
      ["redemption.created", "req-redeem"],
      ["redemption.released", "req-release"],
      ["promotion.archived", "req-deactivate"],
      ["promotion.deleted", "req-delete"],
    ]);
    const [createdEvent, editEvent, activatedEvent, updatedEvent, publishedEvent] = events;
    expect(promotionOf(createdEvent)).toMatchObject({ id: created.id, name: "Spring", status: PromotionStatus.DRAFT, version: 1n });
    expect(promotionOf(editEvent)).toMatchObject({ name: "Spring sale", status: PromotionStatus.DRAFT });
    expect(promotionOf(activatedEvent)).toMatchObject({ status: PromotionStatus.ACTIVE, liveVersion: 1n });
    // The payload is what the RPC answered.
    expect(promotionOf(updatedEvent)).toMatchObject({ name: "Spring sale 2", version: published.version, liveVersion: published.liveVersion, updatedAt: published.updatedAt });
    expect(promotionOf(publishedEvent)).toMatchObject({ name: "Spring sale 2", liveVersion: 2n });
    // created_at is the change's own time.
    expect(createdEvent?.createdAt).toEqual(created.createdAt);
    expect(events.filter((e) => e.type === "code.created").map((e) => (e.payload.case === "code" ? e.payload.value.code : ""))).toEqual(["SPRING-A", "SPRING-B"]);
    const codeUpdated = events.find((e) => e.type === "code.updated");
    expect(codeUpdated?.payload).toMatchObject({ case: "code", value: { id: codes.codes[0]?.id, active: false } });
    const redeemed = events.find((e) => e.type === "redemption.created");
    expect(redeemed?.payload).toMatchObject({ case: "redemption", value: { id: redemption?.id, code: "SPRING-B", customerId: "cus_1", status: RedemptionStatus.ACTIVE } });
    expect(redeemed?.createdAt).toEqual(redemption?.createdAt);
    expect(events.find((e) => e.type === "redemption.released")?.payload).toMatchObject({ case: "redemption", value: { id: redemption?.id, status: RedemptionStatus.RELEASED } });
    expect(promotionOf(events.find((e) => e.type === "promotion.archived"))).toMatchObject({ status: PromotionStatus.ARCHIVED });
    const deleted = promotionOf(events.find((e) => e.type === "promotion.deleted"));
    expect(deleted.id).toBe(created.id);
    expect(deleted.deletedAt).toBeDefined();
  });

  it("a call without x-request-id gets one made up by the server, and its event carries it", async () => {
    const tenant = await t.tenant("wiring-no-request-id");
    const promotions = clientWith(PromotionService, tenant.key);
    const events = clientWith(EventService, tenant.key);
    await promotions.createPromotion({ name: "Anonymous", code: "ANON", effects: TEN_PERCENT });
    const [created] = await eventsUntil(events, (e) => e.length === 1);
    expect(created?.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("a refused, rolled-back or replayed change writes no event", async () => {
    const tenant = await t.tenant("wiring-refused");
    const c = tracedClients(tenant.key);
    const p = promo(await c.promotions.createPromotion({ name: "Limited", code: "LIMITED", effects: TEN_PERCENT, maxRedemptions: 1n }));
    await c.promotions.activatePromotion({ id: p.id });
    const first = (await c.redemptions.redeemPromotion({ code: "LIMITED", customerId: "first", idempotencyKey: "once" })).redemption;
    const before = await outboxCounts(tenant.organizationId);
    expect(before).toEqual({ "promotion.created": 1, "promotion.activated": 1, "redemption.created": 1, "promotion.exhausted": 1 });

    expect((await refusal(c.promotions.activatePromotion({ id: p.id }))).code).toBe(Code.FailedPrecondition);
    expect((await refusal(c.promotions.updatePromotion({ id: p.id, name: "" }))).code).toBe(Code.InvalidArgument);
    expect((await refusal(c.redemptions.redeemPromotion({ code: "LIMITED", customerId: "second" }))).code).toBe(Code.ResourceExhausted);
    // A code another live promotion holds: the write reaches Postgres, the unique index refuses it
    // and the transaction rolls back with whatever it wrote.
    const other = promo(await c.promotions.createPromotion({ name: "Other", code: "OTHER", effects: TEN_PERCENT }));
    expect((await refusal(c.promotions.updatePromotion({ id: other.id, code: "LIMITED" }))).code).toBe(Code.AlreadyExists);
    expect((await refusal(c.promotions.createPromotionCodes({ promotionId: other.id, codes: ["NEW-1", "LIMITED"] }))).code).toBe(Code.AlreadyExists);
    // Redeemed codes of a promotion with ACTIVE redemptions are not deleted without end_redemptions.
    expect((await refusal(c.promotions.deletePromotion({ id: p.id }))).code).toBe(Code.FailedPrecondition);

    // A retried redeem answers with the first one's redemption and writes nothing.
    expect((await c.redemptions.redeemPromotion({ code: "LIMITED", customerId: "first", idempotencyKey: "once" })).redemption?.id).toBe(first?.id);

    expect(await outboxCounts(tenant.organizationId)).toEqual({ ...before, "promotion.created": 2 });
  });

  it("DeletePromotion with end_redemptions ends every ACTIVE redemption with its redemption.ended, in the delete's transaction", async () => {
    const tenant = await t.tenant("wiring-delete");
    const c = tracedClients(tenant.key);
    const p = promo(await c.promotions.createPromotion({ name: "Ending", code: "ENDING", effects: TEN_PERCENT }));
    await c.promotions.activatePromotion({ id: p.id });
    const made = await Promise.all(["a", "b", "c"].map(async (customerId) => (await c.redemptions.redeemPromotion({ code: "ENDING", customerId })).redemption?.id));
    c.ids.next = "req-delete-ending";
    await c.promotions.deletePromotion({ id: p.id, endRedemptions: true });
    const events = await eventsUntil(c.events, (e) => e.some((x) => x.type === "promotion.deleted"), ["redemption.ended", "promotion.deleted"]);
    const ended = events.filter((e) => e.type === "redemption.ended");
    expect(ended.map((e) => (e.payload.case === "redemption" ? e.payload.value.id : "")).sort()).toEqual([...made].sort());
    for (const e of ended) {
      expect(e.requestId).toBe("req-delete-ending");
      expect(e.payload).toMatchObject({ case: "redemption", value: { status: RedemptionStatus.ENDED, endReason: "promotion_deleted" } });
    }
    expect(events.at(-1)?.type).toBe("promotion.deleted");
  });
  it("ends a promotion's 10,003 ACTIVE redemptions 5,000 per statement, each with its redemption.ended, all in the delete's transaction", async () => {
    const tenant = await t.tenant("wiring-delete-many");
    const c = tracedClients(tenant.key);
    const p = promo(await c.promotions.createPromotion({ name: "Big", code: "BIG", effects: TEN_PERCENT }));
    await c.promotions.activatePromotion({ id: p.id });
    await c.redemptions.redeemPromotion({ code: "BIG", customerId: "api-1" });
    await c.redemptions.redeemPromotion({ code: "BIG", customerId: "api-2" });
    // A ledger that big is seeded, not redeemed one call at a time.
    const sql = sqlOf(t.app.orm.em.fork());
    await sql.rows(
      `insert into redemptions (id, organization_id, promotion_id, status, kind, epoch, promotion_version_id, version, customer_id, created_at)
       select gen_random_uuid(), p.organization_id, p.id, 'ACTIVE', 'CODE', p.counter_epoch, p.head_version_id, 1, 'seeded-' || g, now()
         from promotions p, generate_series(1, 10001) g where p.id = $1`,
      [p.id],
    );
    await c.promotions.deletePromotion({ id: p.id, endRedemptions: true });
    const [counts] = await sql.rows<{ ended: string; active: string; events: string }>(
      `select (select count(*) from redemptions where promotion_id = $1 and status = 'ENDED' and end_reason = 'promotion_deleted')::text as ended,
              (select count(*) from redemptions where promotion_id = $1 and status = 'ACTIVE')::text as active,
              (select count(distinct resource_id) from events where organization_id = $2 and type = 'redemption.ended')::text as events`,
      [p.id, tenant.organizationId],
    );
    expect(counts).toEqual({ ended: "10003", active: "0", events: "10003" });
    expect(await outboxCounts(tenant.organizationId)).toMatchObject({ "redemption.ended": 10_003, "promotion.deleted": 1 });
  }, 60_000);
});

describe("exactly once under races", () => {
  it("50 concurrent redeems for the last 3 slots: 3 redemption.created and exactly one promotion.exhausted", async () => {
    const tenant = await t.tenant("wiring-exhausted");
    const c = tracedClients(tenant.key);
    const p = promo(await c.promotions.createPromotion({ name: "Last three", code: "LAST3", effects: TEN_PERCENT, maxRedemptions: 3n }));
    await c.promotions.activatePromotion({ id: p.id });
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => c.redemptions.redeemPromotion({ code: "LAST3", customerId: `c${i}` })));
    const ok = results.flatMap((r) => (r.status === "fulfilled" && r.value.redemption ? [r.value.redemption.id] : []));
    expect(ok).toHaveLength(3);
    expect(await outboxCounts(tenant.organizationId)).toMatchObject({ "redemption.created": 3, "promotion.exhausted": 1 });
    const [exhausted] = await eventsUntil(c.events, (e) => e.length === 1, ["promotion.exhausted"]);
    expect(promotionOf(exhausted)).toMatchObject({ id: p.id, currentRedemptions: 3n, remainingRedemptions: 0n, derivedStatus: DerivedStatus.EXHAUSTED });
    const created = await eventsUntil(c.events, (e) => e.length === 3, ["redemption.created"]);
    expect(created.map((e) => (e.payload.case === "redemption" ? e.payload.value.id : "")).sort()).toEqual([...ok].sort());
  });

  it("a budget of 10,000 spent by 30 concurrent invoices of 1,000 each: budget_threshold 50, 80 and 100 once each, and one promotion.exhausted", async () => {
    const tenant = await t.tenant("wiring-budget");
    const c = tracedClients(tenant.key);
    const p = promo(await c.promotions.createPromotion({ name: "Budgeted", currency: "USD", effects: TEN_PERCENT, maxBudget: 10_000n, budgetBehavior: BudgetBehavior.CAP, applicationMethod: ApplicationMethod.AUTOMATIC }));
    await c.promotions.activatePromotion({ id: p.id });
    await Promise.all(Array.from({ length: 30 }, (_, i) => c.invoices.applyPromotions({ invoiceId: `inv-${i}`, customerId: `b${i}`, invoice: invoiceOf(10_000n) })));
    const counts = await outboxCounts(tenant.organizationId);
    expect(counts).toMatchObject({ "promotion.budget_threshold": 3, "promotion.exhausted": 1, "invoice.promotions_applied": 10 });
    const thresholds = await eventsUntil(c.events, (e) => e.length === 3, ["promotion.budget_threshold"]);
    expect(thresholds.map((e) => (e.payload.case === "budgetThreshold" ? e.payload.value.thresholdPercent : 0)).sort((a, b) => a - b)).toEqual([50, 80, 100]);
    for (const e of thresholds) {
      if (e.payload.case !== "budgetThreshold") throw new Error("payload");
      const used = e.payload.value.promotion?.currentBudgetUsed ?? 0n;
      // The promotion as that invoice's transaction saw it: at or past the threshold it crossed.
      expect(used * 100n).toBeGreaterThanOrEqual(BigInt(e.payload.value.thresholdPercent) * 10_000n);
    }
    const [exhausted] = await eventsUntil(c.events, (e) => e.length === 1, ["promotion.exhausted"]);
    expect(promotionOf(exhausted)).toMatchObject({ id: p.id, currentBudgetUsed: 10_000n });
  });
});

describe("invoices and the redemptions they move", () => {
  it("ApplyPromotions writes invoice.promotions_applied and the redemption.completed of its last cycle; ReverseInvoice writes invoice.reversed", async () => {
    const tenant = await t.tenant("wiring-invoices");
    const c = tracedClients(tenant.key);
    const p = promo(await c.promotions.createPromotion({ name: "Once", code: "ONCE", currency: "USD", phases: [{ name: "Default", duration: PhaseDuration.ONCE, effects: TEN_PERCENT }] }));
    await c.promotions.activatePromotion({ id: p.id });
    const redemption = (await c.redemptions.redeemPromotion({ code: "ONCE", customerId: "cus_1" })).redemption;
    c.ids.next = "req-apply";
    await c.invoices.applyPromotions({ invoiceId: "inv-1", customerId: "cus_1", invoice: invoiceOf(10_000n) });
    c.ids.next = "req-reverse";
    await c.invoices.reverseInvoice({ invoiceId: "inv-1", reason: "voided" });
    const events = await eventsUntil(c.events, (e) => e.some((x) => x.type === "invoice.reversed"), ["redemption.completed", "invoice.promotions_applied", "invoice.reversed"]);
    expect(events.map((e) => [e.type, e.requestId])).toEqual([
      ["redemption.completed", "req-apply"],
      ["invoice.promotions_applied", "req-apply"],
      ["invoice.reversed", "req-reverse"],
    ]);
    expect(events[0]?.payload).toMatchObject({ case: "redemption", value: { id: redemption?.id, status: RedemptionStatus.COMPLETED, cyclesUsed: 1 } });
    expect(events[1]?.payload).toMatchObject({ case: "invoice", value: { invoiceId: "inv-1", customerId: "cus_1", invoice: { discountMinor: 1_000n }, reversalReason: "" } });
    expect(events[2]?.payload).toMatchObject({ case: "invoice", value: { invoiceId: "inv-1", reversalReason: "voided" } });
    if (events[2]?.payload.case !== "invoice") throw new Error("payload");
    expect(events[2].payload.value.reversedAt).toBeDefined();
    // A retried ApplyPromotions / ReverseInvoice changes nothing and writes nothing.
    await c.invoices.reverseInvoice({ invoiceId: "inv-1", reason: "voided" });
    expect(await outboxCounts(tenant.organizationId)).toMatchObject({ "invoice.promotions_applied": 1, "invoice.reversed": 1, "redemption.completed": 1 });
  });
});

describe("scheduled versions", () => {
  it("a version scheduled for later is announced at its effective_at, not before; a cancelled or replaced schedule is never announced", async () => {
    const tenant = await t.tenant("wiring-scheduled");
    const c = tracedClients(tenant.key);
    const p = promo(await c.promotions.createPromotion({ name: "Now", code: "NOW", effects: TEN_PERCENT }));
    await c.promotions.activatePromotion({ id: p.id });
    const cancelled = promo(await c.promotions.createPromotion({ name: "Cancelled", code: "CANCELLED", effects: TEN_PERCENT }));
    await c.promotions.activatePromotion({ id: cancelled.id });
    const replaced = promo(await c.promotions.createPromotion({ name: "Replaced", code: "REPLACED", effects: TEN_PERCENT }));
    await c.promotions.activatePromotion({ id: replaced.id });

    const effectiveAt = new Date(Date.now() + 3_000);
    c.ids.next = "req-schedule";
    await c.promotions.updatePromotion({ id: p.id, name: "Later", effectiveAt: timestampFromDate(effectiveAt) });
    await c.promotions.updatePromotion({ id: cancelled.id, name: "Never", effectiveAt: timestampFromDate(effectiveAt) });
    // The cancellations: deactivating archives the version that never took effect; publishing
    // another version now replaces the scheduled one before it takes effect.
    await c.promotions.deactivatePromotion({ id: cancelled.id });
    await c.promotions.updatePromotion({ id: replaced.id, name: "Scheduled", effectiveAt: timestampFromDate(effectiveAt) });
    c.ids.next = "req-replace";
    await c.promotions.updatePromotion({ id: replaced.id, name: "Replacement" });

    const early = await allEvents(c.events, ["promotion.version_published", "promotion.updated"]);
    expect(early.map((e) => [e.type, promotionOf(e).id])).toEqual([
      ["promotion.updated", p.id],
      ["promotion.updated", cancelled.id],
      ["promotion.updated", replaced.id],
      ["promotion.updated", replaced.id],
      ["promotion.version_published", replaced.id],
    ]);
    expect(promotionOf(early[0])).toMatchObject({ name: "Now" }); // still the terms in force
    expect(early[4]?.requestId).toBe("req-replace");
    expect(promotionOf(early[4])).toMatchObject({ name: "Replacement" });

    const isScheduled = (e: Event) => promotionOf(e).id === p.id;
    const published = (await eventsUntil(c.events, (e) => e.some(isScheduled), ["promotion.version_published"])).filter(isScheduled);
    expect(Date.now()).toBeGreaterThanOrEqual(effectiveAt.getTime());
    expect(published).toHaveLength(1);
    const [event] = published;
    expect(event?.requestId).toBe("");
    expect(event?.createdAt ? timestampDate(event.createdAt).getTime() : 0).toBe(effectiveAt.getTime());
    expect(promotionOf(event)).toMatchObject({ id: p.id, name: "Later", liveVersion: 2n });
    // Time for the cancelled schedules' jobs to have run: nothing for them, ever.
    await new Promise((r) => setTimeout(r, 2_000));
    const all = await allEvents(c.events, ["promotion.version_published"]);
    expect(all.map((e) => [promotionOf(e).id, e.requestId === "" ? "at effective_at" : e.requestId])).toEqual([
      [replaced.id, "req-replace"],
      [p.id, "at effective_at"],
    ]);
  }, 30_000);
});

describe("tenant isolation", () => {
  it("another tenant's events do not exist for a key", async () => {
    const a = await t.tenant("wiring-iso-a");
    const b = await t.tenant("wiring-iso-b");
    const ca = tracedClients(a.key);
    const cb = tracedClients(b.key);
    const p = promo(await ca.promotions.createPromotion({ name: "A's", code: `ISO${randomUUID().slice(0, 6)}`, effects: TEN_PERCENT }));
    await ca.promotions.activatePromotion({ id: p.id });
    await ca.redemptions.redeemPromotion({ promotionId: p.id, customerId: "x" });
    const mine = await eventsUntil(ca.events, (e) => e.length === 3);
    expect(mine.map((e) => e.type)).toEqual(["promotion.created", "promotion.activated", "redemption.created"]);
    expect(await allEvents(cb.events)).toEqual([]);
    expect((await refusal(cb.events.listEvents({ cursor: "" }).then(() => cb.promotions.getPromotion({ id: p.id })))).code).toBe(Code.NotFound);
  });
});
