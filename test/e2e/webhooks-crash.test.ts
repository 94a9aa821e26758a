import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromotionSchema } from "../../gen/promotions/v1/promotion_pb.js";
import { WebhookService } from "../../gen/promotions/v1/webhook_service_pb.js";
import { appendEvents } from "../../src/events/outbox.js";
import { sqlOf } from "../../src/events/sql.js";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import { client } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { provisionKey, startServerProcess, type ServerProcess } from "../support/server-process.js";
import { startReceiver, type Receiver } from "./support/webhook-receiver.js";

// At least once across a crash: the real server process is SIGKILLed while deliveries are in
// flight (and more events are written while it is down), started again, and every event still
// reaches the receiver. The outbox, the dispatch cursor and the pg-boss jobs are all in Postgres;
// jobs the dead process held expire and are retried by the restarted one.

const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";

let db: TestDatabase;
let orm: MikroORM;
let server: ServerProcess;
let receiver: Receiver;

beforeAll(async () => {
  db = await createTestDatabase("webhooks_crash");
  orm = await openOrm({ databaseUrl: db.url, poolMax: 4 });
  receiver = await startReceiver();
  // Slow enough that attempts are in flight when the process dies.
  receiver.respond = () => ({ status: 200, delayMs: 300 });
  server = await startServerProcess({
    DATABASE_URL: db.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${db.name}:`,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
    WEBHOOK_RETRY_BASE_SECONDS: "1",
    WEBHOOK_CONCURRENCY: "4",
    EVENTS_POLL_MS: "50",
  });
});

afterAll(async () => {
  await server?.stop();
  await receiver?.stop();
  await orm?.close();
  await db?.drop();
});

async function emit(organizationId: string, count: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 5) {
    ids.push(
      ...(await orm.em.fork().transactional((em) =>
        appendEvents(
          em,
          Array.from({ length: Math.min(5, count - i) }, (_, k) => ({
            organizationId,
            type: "promotion.updated" as const,
            payload: { case: "promotion" as const, value: create(PromotionSchema, { id: randomUUID(), name: `${tag} ${i + k}` }) },
            createdAt: new Date(),
          })),
        ),
      )),
    );
  }
  return ids;
}

describe("webhook delivery across a crash", () => {
  it("delivers every event at least once after the server is SIGKILLed mid-delivery and restarted", async () => {
    const { organizationId, key } = await provisionKey(db.url, "crash-co");
    const created = await client(WebhookService, server.url, key).createWebhookEndpoint({ url: `${receiver.url}/crash`, eventTypes: ["promotion.updated"] });
    const before = await emit(organizationId, 40, "before");
    await receiver.waitFor((r) => r.length >= 6, 30_000);
    await server.kill();
    const inFlightAtKill = receiver.received.length;
    const whileDown = await emit(organizationId, 10, "while down");
    await server.start();
    const all = [...before, ...whileDown];
    await receiver.waitFor((r) => {
      const got = new Set(r.map((x) => x.headers["webhook-id"]));
      return all.every((id) => got.has(id));
    }, 90_000);

    const received = new Set(receiver.received.map((x) => x.headers["webhook-id"]));
    expect(all.filter((id) => !received.has(id))).toEqual([]);
    expect(inFlightAtKill).toBeLessThan(before.length);
    for (const r of receiver.received) new Webhook(created.signingSecret).verify(r.body, r.headers);
    // Each delivery ends SUCCEEDED; one that was in flight at the kill may have been sent twice (same webhook-id).
    const deadline = Date.now() + 20_000;
    let states: { status: string; n: string }[] = [];
    do {
      states = await sqlOf(orm.em.fork()).rows(`select status, count(*)::text as n from webhook_deliveries group by status order by status`);
      if (states.length === 1 && states[0]?.status === "SUCCEEDED") break;
      await new Promise((r) => setTimeout(r, 200));
    } while (Date.now() < deadline);
    expect(states).toEqual([{ status: "SUCCEEDED", n: String(all.length) }]);
    expect(server.crashes()).toEqual([]);
  }, 150_000);
});
