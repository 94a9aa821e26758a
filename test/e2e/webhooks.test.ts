import { randomUUID } from "node:crypto";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/promotions/v1/event_pb.js";
import { EventService } from "../../gen/promotions/v1/event_service_pb.js";
import { PromotionSchema } from "../../gen/promotions/v1/promotion_pb.js";
import { WebhookAttemptStatus, WebhookDeliveryStatus, WebhookDisabledReason, WebhookEndpointSchema } from "../../gen/promotions/v1/webhook_pb.js";
import { WebhookService } from "../../gen/promotions/v1/webhook_service_pb.js";
import { appendEvents } from "../../src/events/outbox.js";
import { newSigningSecret } from "../../src/events/signing.js";
import { sqlOf } from "../../src/events/sql.js";
import { WebhookStore } from "../../src/events/webhook-store.js";
import { client, startTestApp, type Protocol, type TestApp } from "../support/app.js";
import { refusal } from "../support/rpc.js";
import { startDnsServer, type DnsServer } from "./support/dns-server.js";
import { startReceiver, type Receiver } from "./support/webhook-receiver.js";

// Webhooks end to end: a real server, real HTTP receivers on loopback and a DNS server of the
// test's own. Events are appended through the outbox directly, so each test controls exactly
// which events exist (test/e2e/events-wiring.test.ts proves what the use cases write).

const PROTOCOLS: readonly Protocol[] = ["connect-json", "connect-binary", "grpc", "grpc-web"];

let dns: DnsServer;
let t: TestApp;
let receiver: Receiver;
let tenant: { organizationId: string; key: string; keyId: string };

async function emit(app: TestApp, organizationId: string, name: string, type: "promotion.updated" | "promotion.exhausted" = "promotion.updated"): Promise<string> {
  const [id] = await app.app.orm.em.fork().transactional((em) =>
    appendEvents(em, [{ organizationId, type, payload: { case: "promotion", value: create(PromotionSchema, { id: randomUUID(), name, organizationId }) }, createdAt: new Date(), requestId: `req-${name}` }]),
  );
  if (id === undefined) throw new Error("no event written");
  return id;
}

function verified(secret: string, r: { headers: Record<string, string>; body: string }): boolean {
  try {
    new Webhook(secret).verify(r.body, r.headers);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dns = await startDnsServer();
  receiver = await startReceiver();
  t = await startTestApp("webhooks", {
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
    WEBHOOK_RETRY_BASE_SECONDS: "1",
    WEBHOOK_MAX_ATTEMPTS: "4",
    WEBHOOK_DNS_SERVERS: dns.address,
    EVENTS_POLL_MS: "50",
  });
  tenant = await t.tenant("hooks-a");
});

afterAll(async () => {
  await t?.stop();
  await receiver?.stop();
  await dns?.stop();
});

describe("WebhookService deliveries", () => {
  it("signs every delivery per Standard Webhooks: the receiver verifies it with the standardwebhooks package, and the body is the Event", async () => {
    const webhooks = client(WebhookService, t.url, tenant.key);
    const created = await webhooks.createWebhookEndpoint({ url: `${receiver.url}/signed`, eventTypes: ["promotion.updated"], description: "signed" });
    expect(created.signingSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(toJsonString(WebhookEndpointSchema, created.webhookEndpoint ?? create(WebhookEndpointSchema))).not.toContain(created.signingSecret);
    const id = await emit(t, tenant.organizationId, "signed");
    await receiver.waitFor((r) => r.some((x) => x.headers["webhook-id"] === id));
    const got = receiver.received.find((x) => x.headers["webhook-id"] === id);
    if (!got) throw new Error("not received");
    expect(got.path).toBe("/signed");
    expect(got.headers["content-type"]).toBe("application/json");
    expect(verified(created.signingSecret, got)).toBe(true);
    expect(verified(newSigningSecret(), got)).toBe(false);
    const event = fromJsonString(EventSchema, got.body);
    expect(event).toMatchObject({ id, type: "promotion.updated", requestId: "req-signed", payload: { case: "promotion", value: { name: "signed" } } });
    // Never a secret in the logs.
    expect(t.rawLogs()).not.toContain(created.signingSecret);
  });

  it("retries a receiver that fails three times, then succeeds, with the same webhook-id, and logs every attempt", async () => {
    const webhooks = client(WebhookService, t.url, tenant.key);
    const created = await webhooks.createWebhookEndpoint({ url: `${receiver.url}/flaky`, eventTypes: ["promotion.exhausted"] });
    receiver.respond = (_id, before) => ({ status: before < 3 ? 503 : 200 });
    const id = await emit(t, tenant.organizationId, "flaky", "promotion.exhausted");
    await receiver.waitFor((r) => r.filter((x) => x.headers["webhook-id"] === id).length === 4, 45_000);
    const attempts = receiver.received.filter((x) => x.headers["webhook-id"] === id);
    expect(attempts.map((a) => a.path)).toEqual(["/flaky", "/flaky", "/flaky", "/flaky"]);
    for (const a of attempts) expect(verified(created.signingSecret, a)).toBe(true);
    // The body is the same on every attempt; only the timestamp (and so the signature) moves.
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
    // Backoff: each wait at least as long as the base delay doubling (1 s × 2^k × ≥ 0.5).
    const gaps = attempts.slice(1).map((a, i) => a.at - (attempts[i]?.at ?? 0));
    gaps.forEach((gap, k) => expect(gap).toBeGreaterThanOrEqual(1_000 * 2 ** k - 100));

    const deadline = Date.now() + 10_000;
    let delivery;
    do {
      const page = await webhooks.listWebhookDeliveries({ endpointId: created.webhookEndpoint?.id ?? "", eventId: id });
      delivery = page.webhookDeliveries[0];
      if (delivery?.status === WebhookDeliveryStatus.SUCCEEDED) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    expect(delivery).toMatchObject({ eventId: id, eventType: "promotion.exhausted", status: WebhookDeliveryStatus.SUCCEEDED, attemptCount: 4 });
    expect(delivery?.attempts.map((a) => [a.attempt, a.status, a.responseStatusCode])).toEqual([
      [1, WebhookAttemptStatus.FAILED, 503],
      [2, WebhookAttemptStatus.FAILED, 503],
      [3, WebhookAttemptStatus.FAILED, 503],
      [4, WebhookAttemptStatus.SUCCEEDED, 200],
    ]);
    expect(delivery?.attempts[0]?.error).toBe("http_status: 503");
    for (const a of delivery?.attempts ?? []) expect(a.latencyMs).toBeGreaterThanOrEqual(0);
    receiver.respond = () => ({ status: 204 });
  }, 60_000);

  it("gives up after the last attempt, disables the endpoint and says so with a webhook_endpoint.disabled event; RetryWebhookDelivery sends it again", async () => {
    const webhooks = client(WebhookService, t.url, tenant.key);
    const events = client(EventService, t.url, tenant.key);
    const created = await webhooks.createWebhookEndpoint({ url: `${receiver.url}/down`, eventTypes: ["promotion.updated"] });
    const endpointId = created.webhookEndpoint?.id ?? "";
    // Every endpoint of this tenant that takes promotion.updated fails too: the same event (one
    // webhook-id) goes to each of them, so attempts are told apart by path.
    receiver.respond = (_id, _before) => ({ status: 500 });
    const id = await emit(t, tenant.organizationId, "down");
    const deadline = Date.now() + 50_000;
    let disabled = false;
    while (!disabled && Date.now() < deadline) {
      const page = await webhooks.listWebhookEndpoints({});
      disabled = page.webhookEndpoints.find((e) => e.id === endpointId)?.disabledReason === WebhookDisabledReason.PERSISTENT_FAILURE;
      if (!disabled) await new Promise((r) => setTimeout(r, 200));
    }
    expect(disabled).toBe(true);
    const [delivery] = (await webhooks.listWebhookDeliveries({ endpointId })).webhookDeliveries;
    expect(delivery).toMatchObject({ eventId: id, status: WebhookDeliveryStatus.FAILED, attemptCount: 4 });
    const listed = await events.listEvents({ types: ["webhook_endpoint.disabled"] });
    const notice = listed.events.find((e) => e.payload.case === "webhookEndpoint" && e.payload.value.id === endpointId);
    expect(notice?.payload.value).toMatchObject({ disabled: true, disabledReason: WebhookDisabledReason.PERSISTENT_FAILURE, url: `${receiver.url}/down` });
    expect(notice && toJsonString(EventSchema, notice)).not.toContain(created.signingSecret);

    // A disabled endpoint's delivery is not retried until it is enabled again.
    expect((await refusal(webhooks.retryWebhookDelivery({ id: delivery?.id ?? "" }))).detail?.code).toBe("webhook_endpoint_disabled");
    await webhooks.updateWebhookEndpoint({ id: endpointId, disabled: false });
    // A slow answer keeps the retried delivery pending while it is asked to retry again.
    receiver.respond = () => ({ status: 200, delayMs: 1_500 });
    const retried = await webhooks.retryWebhookDelivery({ id: delivery?.id ?? "" });
    expect(retried.webhookDelivery?.status).toBe(WebhookDeliveryStatus.PENDING);
    expect((await refusal(webhooks.retryWebhookDelivery({ id: delivery?.id ?? "" }))).detail?.code).toBe("webhook_delivery_pending");
    await receiver.waitFor((r) => r.filter((x) => x.headers["webhook-id"] === id && x.path === "/down").length === 5);
    const until = Date.now() + 10_000;
    let final = retried.webhookDelivery;
    while (final?.status !== WebhookDeliveryStatus.SUCCEEDED && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      final = (await webhooks.listWebhookDeliveries({ endpointId })).webhookDeliveries[0];
    }
    expect(final).toMatchObject({ status: WebhookDeliveryStatus.SUCCEEDED, attemptCount: 5 });
    expect(final?.attempts.at(-1)).toMatchObject({ attempt: 5, status: WebhookAttemptStatus.SUCCEEDED, responseStatusCode: 200 });
    receiver.respond = () => ({ status: 204 });
  }, 70_000);

  it("signs with the old and the new secret for 24 h after a rotation, then with the new one only", async () => {
    const webhooks = client(WebhookService, t.url, tenant.key);
    const created = await webhooks.createWebhookEndpoint({ url: `${receiver.url}/rotated`, eventTypes: ["promotion.updated"] });
    const endpointId = created.webhookEndpoint?.id ?? "";
    const rotated = await webhooks.rotateWebhookSecret({ id: endpointId });
    expect(rotated.signingSecret).not.toBe(created.signingSecret);
    const overlapEnds = rotated.previousSecretExpiresAt ? Number(rotated.previousSecretExpiresAt.seconds) * 1000 : 0;
    expect(Math.abs(overlapEnds - (Date.now() + 24 * 3_600_000))).toBeLessThan(60_000);
    const within = await emit(t, tenant.organizationId, "within 24 h");
    await receiver.waitFor((r) => r.some((x) => x.headers["webhook-id"] === within && x.path === "/rotated"));
    const first = receiver.received.find((x) => x.headers["webhook-id"] === within && x.path === "/rotated");
    if (!first) throw new Error("not received");
    expect(first.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(verified(created.signingSecret, first)).toBe(true);
    expect(verified(rotated.signingSecret, first)).toBe(true);

    // The clock of a rotation 25 h ago: its overlap is over.
    const store = new WebhookStore(sqlOf(t.app.orm.em.fork()));
    const newest = newSigningSecret();
    const rotatedAt = new Date(Date.now() - 25 * 3_600_000);
    await store.rotateSecret(tenant.organizationId, endpointId, newest, new Date(rotatedAt.getTime() + 24 * 3_600_000), rotatedAt);
    const after = await emit(t, tenant.organizationId, "after 24 h");
    await receiver.waitFor((r) => r.some((x) => x.headers["webhook-id"] === after && x.path === "/rotated"));
    const second = receiver.received.find((x) => x.headers["webhook-id"] === after && x.path === "/rotated");
    if (!second) throw new Error("not received");
    expect(second.headers["webhook-signature"]?.split(" ")).toHaveLength(1);
    expect(verified(newest, second)).toBe(true);
    expect(verified(rotated.signingSecret, second)).toBe(false);
  });

  it("resolves an endpoint's host when it delivers and connects to the address it checked (Host keeps the name)", async () => {
    const webhooks = client(WebhookService, t.url, tenant.key);
    dns.answers.set("hooks.internal.test", ["127.0.0.1"]);
    await webhooks.createWebhookEndpoint({ url: `http://hooks.localhost:${receiver.port}/named`, eventTypes: ["promotion.updated"] });
    const id = await emit(t, tenant.organizationId, "named");
    await receiver.waitFor((r) => r.some((x) => x.headers["webhook-id"] === id && x.path === "/named"));
    expect(receiver.received.find((x) => x.headers["webhook-id"] === id && x.path === "/named")?.host).toBe(`hooks.localhost:${receiver.port}`);
  });

  it("reports delivery outcomes and lag on /metrics", async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toMatch(/^promotions_webhook_attempts_total\{outcome="succeeded"\} [1-9]/m);
    expect(text).toMatch(/^promotions_webhook_attempts_total\{outcome="http_error"\} [1-9]/m);
    expect(text).toMatch(/^promotions_webhook_delivery_lag_seconds_count [1-9]/m);
    expect(text).toMatch(/^promotions_events_dispatch_lag_seconds_count [1-9]/m);
    expect(text).toMatch(/^promotions_webhook_deliveries_failed_total [1-9]/m);
    expect(text).toMatch(/^promotions_webhook_endpoints_disabled_total [1-9]/m);
  });
});

describe("tenant isolation", () => {
  it("shows another tenant's endpoints, deliveries and events to no one else (NOT_FOUND), and delivers none of its events to them", async () => {
    const a = client(WebhookService, t.url, tenant.key);
    const b = await t.tenant("hooks-b");
    const hooksB = client(WebhookService, t.url, b.key);
    const eventsB = client(EventService, t.url, b.key);
    const endpointA = (await a.createWebhookEndpoint({ url: `${receiver.url}/tenant-a`, eventTypes: [] })).webhookEndpoint?.id ?? "";
    await hooksB.createWebhookEndpoint({ url: `${receiver.url}/tenant-b`, eventTypes: [] });
    const eventA = await emit(t, tenant.organizationId, "a's secret");
    await receiver.waitFor((r) => r.some((x) => x.headers["webhook-id"] === eventA && x.path === "/tenant-a"));
    const [deliveryA] = (await a.listWebhookDeliveries({ endpointId: endpointA })).webhookDeliveries;

    expect((await hooksB.listWebhookEndpoints({})).webhookEndpoints.map((e) => e.id)).not.toContain(endpointA);
    for (const call of [
      () => hooksB.updateWebhookEndpoint({ id: endpointA, description: "mine now" }),
      () => hooksB.deleteWebhookEndpoint({ id: endpointA }),
      () => hooksB.rotateWebhookSecret({ id: endpointA }),
      () => hooksB.listWebhookDeliveries({ endpointId: endpointA }),
      () => hooksB.listWebhookDeliveries({ eventId: eventA }),
      () => hooksB.retryWebhookDelivery({ id: deliveryA?.id ?? "" }),
    ]) {
      expect((await refusal(call())).code).toBe(Code.NotFound);
    }
    expect(deliveryA?.eventId).toBe(eventA);
    expect((await hooksB.listWebhookDeliveries({})).webhookDeliveries.map((d) => d.eventId)).not.toContain(eventA);
    expect((await eventsB.listEvents({ limit: 100 })).events.map((e) => e.id)).not.toContain(eventA);
    const stream = eventsB.streamEvents({ afterId: eventA });
    expect((await refusal((async () => { for await (const _ of stream) return; })())).code).toBe(Code.NotFound);
    // B's endpoint subscribed to everything, yet got nothing of A's.
    expect(receiver.received.filter((x) => x.path === "/tenant-b").map((x) => x.headers["webhook-id"])).not.toContain(eventA);
  });
});

describe("ListEvents and StreamEvents", () => {
  it("lists events newest first with a type filter, a created_at range and a cursor; refuses an unknown type naming it", async () => {
    const c = await t.tenant("list-co");
    const events = client(EventService, t.url, c.key);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await emit(t, c.organizationId, `list ${i}`, i % 2 === 0 ? "promotion.updated" : "promotion.exhausted"));
    const deadline = Date.now() + 10_000;
    let all: string[] = [];
    while (all.length < 5 && Date.now() < deadline) all = (await events.listEvents({ limit: 100 })).events.map((e) => e.id);
    expect(all).toEqual([...ids].reverse());
    const first = await events.listEvents({ limit: 2 });
    const second = await events.listEvents({ limit: 2, cursor: first.nextCursor });
    const third = await events.listEvents({ limit: 2, cursor: second.nextCursor });
    expect([...first.events, ...second.events, ...third.events].map((e) => e.id)).toEqual([...ids].reverse());
    expect(third.nextCursor).toBe("");
    expect((await events.listEvents({ types: ["promotion.exhausted"] })).events.map((e) => e.id)).toEqual([ids[3], ids[1]]);
    const future = { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 };
    expect((await events.listEvents({ createdAtStart: future })).events).toEqual([]);
    expect((await events.listEvents({ createdAtEnd: future })).events).toHaveLength(5);
    const bad = await refusal(events.listEvents({ types: ["promotion.exhausted", "promotion.exploded"] }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.detail).toMatchObject({ param: "types[1]", code: "unknown_event_type" });
    expect((await refusal(events.listEvents({ cursor: "bogus" }))).detail?.param).toBe("cursor");
  });

  for (const protocol of PROTOCOLS) {
    it(`streams over ${protocol}, and a stream resumed from the last id it saw after the connection dropped misses nothing`, async () => {
      const c = await t.tenant(`stream-${protocol}`);
      const events = client(EventService, t.url, c.key, protocol);
      const first: string[] = [];
      const seen: string[] = [];
      const dropped = new AbortController();
      const reading = (async () => {
        try {
          for await (const res of events.streamEvents({}, { signal: dropped.signal })) {
            seen.push(res.event?.id ?? "");
            if (seen.length === 3) dropped.abort();
          }
        } catch (error) {
          if (!dropped.signal.aborted) throw error;
        }
      })();
      // The stream starts at the current end: give it a moment to open before writing.
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 5; i++) first.push(await emit(t, c.organizationId, `${protocol} ${i}`));
      await reading;
      expect(seen).toEqual(first.slice(0, 3));
      // Written while nobody listened.
      const later: string[] = [];
      for (let i = 5; i < 8; i++) later.push(await emit(t, c.organizationId, `${protocol} ${i}`));
      const resumed: string[] = [];
      const done = new AbortController();
      try {
        for await (const res of events.streamEvents({ afterId: seen[2] ?? "" }, { signal: done.signal })) {
          resumed.push(res.event?.id ?? "");
          if (resumed.length === 5) done.abort();
        }
      } catch (error) {
        if (!done.signal.aborted) throw error;
      }
      expect(resumed).toEqual([...first.slice(3), ...later]);
    });
  }

  it("replays from start_time, filters by type, and ends at the caller's deadline", async () => {
    const c = await t.tenant("stream-deadline");
    const events = client(EventService, t.url, c.key);
    const start = { seconds: BigInt(Math.floor(Date.now() / 1000) - 1), nanos: 0 };
    const a = await emit(t, c.organizationId, "old 1", "promotion.exhausted");
    await emit(t, c.organizationId, "old 2", "promotion.updated");
    const got: string[] = [];
    let ended: ConnectError | undefined;
    try {
      for await (const res of events.streamEvents({ startTime: start, types: ["promotion.exhausted"] }, { timeoutMs: 1_500 })) got.push(res.event?.id ?? "");
    } catch (error) {
      ended = ConnectError.from(error);
    }
    expect(got).toEqual([a]);
    expect(ended?.code).toBe(Code.DeadlineExceeded);
  });

  it("needs a key with scope read", async () => {
    const writer = await t.tenant("stream-writer", ["write"]);
    for (const key of [null, writer.key]) {
      const stream = client(EventService, t.url, key).streamEvents({});
      const failed = await refusal((async () => { for await (const _ of stream) return; })());
      expect(failed.code).toBe(key === null ? Code.Unauthenticated : Code.PermissionDenied);
    }
  });
});

describe("endpoint URLs where private networks are not allowed", () => {
  let strict: TestApp;
  let key: string;
  let org: string;

  beforeAll(async () => {
    strict = await startTestApp("webhooks_strict", { WEBHOOK_DNS_SERVERS: dns.address, WEBHOOK_RETRY_BASE_SECONDS: "1", EVENTS_POLL_MS: "50" });
    const s = await strict.tenant("strict-co");
    key = s.key;
    org = s.organizationId;
  });

  afterAll(async () => {
    await strict?.stop();
  });

  it.each([
    ["https://10.0.0.7/hook", "private_address"],
    ["https://127.0.0.1/hook", "private_address"],
    ["https://[::1]/hook", "private_address"],
    ["https://169.254.169.254/latest/meta-data", "private_address"],
    ["https://[fe80::1]/hook", "private_address"],
    ["https://[::ffff:192.168.1.1]/hook", "private_address"],
    ["https://localhost/hook", "private_address"],
    ["https://internal.test/hook", "private_address"],
    ["https://nowhere.test/hook", "unresolvable_host"],
    ["http://93.184.215.14/hook", "invalid_scheme"],
    [`http://127.0.0.1:9/hook`, "invalid_scheme"],
    ["https://user:secret@93.184.215.14/hook", "invalid_format"],
    ["ftp://93.184.215.14/hook", "invalid_scheme"],
    ["not a url", "invalid_format"],
  ])("refuses %s (%s), naming the url field", async (url, code) => {
    dns.answers.set("internal.test", ["10.1.2.3"]);
    const failed = await refusal(client(WebhookService, strict.url, key).createWebhookEndpoint({ url }));
    expect(failed.code).toBe(Code.InvalidArgument);
    expect(failed.detail).toMatchObject({ param: "url", code });
    expect(failed.message).not.toContain("secret@");
  });

  it("checks the address again at delivery time: a host that rebinds to loopback after the check gets no connection", async () => {
    const trap = await startReceiver();
    try {
      dns.answers.set("rebind.test", ["93.184.215.14"]);
      const webhooks = client(WebhookService, strict.url, key);
      const created = await webhooks.createWebhookEndpoint({ url: `https://rebind.test:${trap.port}/hook`, eventTypes: ["promotion.updated"] });
      const endpointId = created.webhookEndpoint?.id ?? "";
      // The attacker's DNS now points the accepted name at this machine.
      dns.answers.set("rebind.test", ["127.0.0.1"]);
      const id = await emit(strict, org, "rebound");
      const deadline = Date.now() + 15_000;
      let attempts: { error: string; responseStatusCode: number }[] = [];
      while (attempts.length === 0 && Date.now() < deadline) {
        attempts = (await webhooks.listWebhookDeliveries({ endpointId, eventId: id })).webhookDeliveries[0]?.attempts ?? [];
        if (attempts.length === 0) await new Promise((r) => setTimeout(r, 100));
      }
      expect(attempts[0]).toMatchObject({ responseStatusCode: 0, error: expect.stringMatching(/^address_refused: rebind\.test resolves to 127\.0\.0\.1, a loopback address/) });
      expect(trap.connections()).toBe(0);
      // Stop the retries: the test is over.
      await webhooks.deleteWebhookEndpoint({ id: endpointId });
    } finally {
      await trap.stop();
    }
  });

  it("ends open streams with UNAVAILABLE when the server shuts down", async () => {
    const events = client(EventService, strict.url, key);
    const ended = (async () => {
      try {
        for await (const _ of events.streamEvents({})) return null;
        return null;
      } catch (error) {
        return ConnectError.from(error);
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const stopping = strict.app.close();
    expect((await ended)?.code).toBe(Code.Unavailable);
    await stopping;
    await strict.db.drop();
    strict = undefined as unknown as TestApp;
  });
});
