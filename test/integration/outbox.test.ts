import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromotionSchema } from "../../gen/promotions/v1/promotion_pb.js";
import { RedemptionSchema, RedemptionStatus } from "../../gen/promotions/v1/redemption_service_pb.js";
import { defaultTerms } from "../../src/domain/terms.js";
import { appendEvents, rowEventsParam, withRowEvents, type NewEvent, type RowEvent } from "../../src/events/outbox.js";
import { EventReader, NO_FILTER, START, type Position } from "../../src/events/reader.js";
import { sqlOf } from "../../src/events/sql.js";
import { ApiKeyStore } from "../../src/store/api-keys.js";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import { Promotions } from "../../src/promotions/promotions.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// The outbox against a real PostgreSQL: events commit with their change or not at all, a dedupe
// key makes an event exist once, a reader that resumes "after the last event it saw" never skips
// an event whose transaction committed late, and the group-commit INSERT can write the events of
// exactly the rows it wrote in the same statement.

let db: TestDatabase;
let orm: MikroORM;
let org: string;
let otherOrg: string;
let promotionId: string;
let versionId: string;

const reader = () => new EventReader(sqlOf(orm.em.fork()));

function promotionEvent(name: string, organizationId = org, dedupeKey: string | null = null): NewEvent {
  return {
    organizationId,
    type: "promotion.updated",
    payload: { case: "promotion", value: create(PromotionSchema, { id: promotionId, name, organizationId }) },
    createdAt: new Date(),
    requestId: `req-${name}`,
    dedupeKey,
  };
}

/** Waits until the reader shows `count` events after `from` (other databases' transactions can hold the xmin back a moment). */
async function settledAfter(from: Position, count: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = await reader().after(org, from, NO_FILTER, 1_000);
    if (events.length >= count || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The reader's head once every event committed so far has settled: what a test starts from, so
 * events of earlier tests (held back while any older transaction in the cluster ran) stay out.
 */
async function quiescentHead(timeoutMs = 10_000): Promise<Position> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [newest] = await sqlOf(orm.em.fork()).rows<{ txid: string; seq: string }>(
      `select e.txid::text as txid, e.seq::text as seq from events e where organization_id = $1 order by e.txid desc, e.seq desc limit 1`,
      [org],
    );
    const head = await reader().head(org);
    if (!newest || (newest.txid === head.txid && newest.seq === head.seq) || Date.now() > deadline) return head;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function countEvents(where = "true", params: unknown[] = []): Promise<number> {
  const rows = await sqlOf(orm.em.fork()).rows<{ n: string }>(`select count(*)::text as n from events where ${where}`, params);
  return Number(rows[0]?.n ?? 0);
}

beforeAll(async () => {
  db = await createTestDatabase("outbox");
  orm = await openOrm({ databaseUrl: db.url });
  const keys = new ApiKeyStore(orm.em.fork());
  org = (await keys.ensureOrganization("outbox-co")).id;
  otherOrg = (await keys.ensureOrganization("outbox-other")).id;
  const view = await new Promotions(orm.em.fork()).create(
    { organizationId: org, keyId: "test" },
    {
      ...defaultTerms(),
      name: "Outboxed",
      phases: [{ name: "Default", duration: "FOREVER", cycles: null, effects: [{ kind: "percentage_discount", percentBps: 1000, appliesTo: null }] }],
    },
  );
  promotionId = view.id;
  versionId = view.liveVersionId;
});

afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

describe("appendEvents", () => {
  it("writes no event for a change that rolls back", async () => {
    const before = await countEvents();
    await expect(
      orm.em.fork().transactional(async (em) => {
        const ids = await appendEvents(em, [promotionEvent("rolled back")]);
        expect(ids).toHaveLength(1);
        throw new Error("the change fails after its event was appended");
      }),
    ).rejects.toThrow("the change fails");
    expect(await countEvents()).toBe(before);
    expect(await countEvents(`request_id = $1`, ["req-rolled back"])).toBe(0);
  });

  it("refuses to write an event outside the change's transaction", async () => {
    await expect(appendEvents(orm.em.fork(), [promotionEvent("alone")])).rejects.toThrow(/inside the transaction/);
    expect(await countEvents(`request_id = $1`, ["req-alone"])).toBe(0);
  });

  it("commits the event with the change, readable with its typed payload, request id and time", async () => {
    const head = await quiescentHead();
    const [id] = await orm.em.fork().transactional((em) => appendEvents(em, [promotionEvent("committed")]));
    const [seen] = await settledAfter(head, 1);
    expect(seen?.event).toMatchObject({ id, type: "promotion.updated", requestId: "req-committed", payload: { case: "promotion", value: { id: promotionId, name: "committed" } } });
    expect(seen?.event.createdAt).toBeDefined();
  });

  it("writes an event with a dedupe key once, however often it is appended (same statement or later)", async () => {
    const key = `promotion.exhausted:${promotionId}:${randomUUID()}`;
    const first = await orm.em.fork().transactional((em) => appendEvents(em, [promotionEvent("once", org, key), promotionEvent("once again", org, key)]));
    const later = await orm.em.fork().transactional((em) => appendEvents(em, [promotionEvent("once more", org, key)]));
    expect(first).toHaveLength(1);
    expect(later).toEqual([]);
    expect(await countEvents(`dedupe_key = $1`, [key])).toBe(1);
    // Keys are per organization: another tenant's event with the same key is its own.
    const elsewhere = await orm.em.fork().transactional((em) => appendEvents(em, [promotionEvent("other tenant", otherOrg, key)]));
    expect(elsewhere).toHaveLength(1);
  });

  it("keeps one organization's events from another's readers", async () => {
    const [theirs] = await orm.em.fork().transactional((em) => appendEvents(em, [promotionEvent("theirs", otherOrg)]));
    expect(await reader().positionOf(org, theirs ?? "")).toBeNull();
    const ours = await reader().newestFirst(org, null, NO_FILTER, 100);
    expect(ours.map((s) => s.event.id)).not.toContain(theirs);
  });
});

describe("ordered, resumable reading", () => {
  it("does not skip an event whose transaction started first and commits last (a reader after the last id would)", async () => {
    const head = await quiescentHead();
    let commitFirst!: () => void;
    const held = new Promise<void>((r) => (commitFirst = r));
    let appendedFirst!: () => void;
    const firstAppended = new Promise<void>((r) => (appendedFirst = r));
    // T1 appends first (its seq is the smallest) and stays open while T2 and T3 commit.
    const t1 = orm.em.fork().transactional(async (em) => {
      const ids = await appendEvents(em, [promotionEvent("t1")]);
      appendedFirst();
      await held;
      return ids;
    });
    await firstAppended;
    try {
      await heldBack(head, t1, commitFirst);
    } finally {
      commitFirst();
    }
  });

  async function heldBack(head: Position, t1: Promise<string[]>, commitFirst: () => void): Promise<void> {
    const [id2] = await orm.em.fork().transactional((em) => appendEvents(em, [promotionEvent("t2")]));
    const [id3] = await orm.em.fork().transactional((em) => appendEvents(em, [promotionEvent("t3")]));

    // What a naive reader ("seq > last seen") hands out now: T2 and T3, past T1's smaller seq.
    const naive = await sqlOf(orm.em.fork()).rows<{ id: string; seq: string }>(
      `select e.id::text as id, e.seq::text as seq from events e where organization_id = $1 and e.seq > $2::bigint order by e.seq`,
      [org, head.seq],
    );
    expect(naive.map((r) => r.id)).toEqual([id2, id3]);
    const naiveLast = naive.at(-1)?.seq ?? "0";
    // The outbox reader holds T2 and T3 back while the older T1 is open.
    expect(await reader().after(org, head, NO_FILTER, 100)).toEqual([]);

    commitFirst();
    const [id1] = await t1;
    const all = await settledAfter(head, 3);
    expect(all.map((s) => s.event.id)).toEqual([id1, id2, id3]);
    // The naive reader, resuming after what it saw, never gets T1's event.
    const naiveNext = await sqlOf(orm.em.fork()).rows<{ id: string }>(`select id::text as id from events where organization_id = $1 and seq > $2::bigint`, [org, naiveLast]);
    expect(naiveNext.map((r) => r.id)).not.toContain(id1);
    // Resuming after any event it handed out misses nothing that follows it.
    for (const [i, seen] of all.entries()) {
      const rest = await reader().after(org, seen.position, NO_FILTER, 100);
      expect(rest.map((s) => s.event.id)).toEqual(all.slice(i + 1).map((s) => s.event.id));
    }
  }

  it("hands out the events of a transaction that commits while readers poll, none twice and none skipped, under concurrent writers", async () => {
    const head = await quiescentHead();
    const writers = 8;
    const perWriter = 25;
    const seen: string[] = [];
    let position = head;
    let writing = true;
    const poll = (async () => {
      for (;;) {
        const batch = await reader().after(org, position, NO_FILTER, 50);
        for (const s of batch) {
          seen.push(s.event.id);
          position = s.position;
        }
        if (!writing && batch.length === 0) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const written = (
      await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          const ids: string[] = [];
          for (let i = 0; i < perWriter; i++) {
            ids.push(
              ...(await orm.em.fork().transactional(async (em) => {
                const out = await appendEvents(em, [promotionEvent(`w${w}-${i}`)]);
                // Some transactions stay open a little while others commit.
                if (i % 5 === 0) await new Promise((r) => setTimeout(r, 15));
                return out;
              })),
            );
          }
          return ids;
        }),
      )
    ).flat();
    // Let the reader catch up with everything committed, then stop it.
    await settledAfter(head, writers * perWriter);
    writing = false;
    await poll;
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual([...written].sort());
  });
});

describe("events of the group-commit INSERT (prototype over a copy of the ledger's INSERT_FENCED)", () => {
  // A copy of src/store/ledger.ts INSERT_FENCED (not exported, and not to be edited here).
  const COLUMNS = `id, organization_id, promotion_id, status, kind, epoch, promotion_version_id, version, code_id, code,
  customer_id, subscription_id, idempotency_key, request_hash, cycles_used, metadata, created_at, released_at`;
  const COLUMNS_OF_V = COLUMNS.split(",").map((c) => `v.${c.trim()}`).join(", ");
  const INSERT_FENCED = `insert into redemptions (${COLUMNS})
  select ${COLUMNS_OF_V}
  from jsonb_to_recordset($1::jsonb) as v(id uuid, organization_id uuid, promotion_id uuid, status varchar, kind varchar, epoch bigint,
    promotion_version_id uuid, version int, code_id uuid, code varchar, customer_id varchar, subscription_id varchar,
    idempotency_key varchar, request_hash varchar, cycles_used int, metadata jsonb, created_at timestamptz, released_at timestamptz)
  where exists (
    select 1 from promotions p
    where p.id = v.promotion_id and p.organization_id = v.organization_id and p.counter_epoch = v.epoch
    for key share)
  on conflict do nothing
  returning id`;
  const WITH_EVENTS = withRowEvents(INSERT_FENCED, 2);

  interface Row {
    id: string;
    epoch: number;
    customer: string;
  }

  function record(r: Row) {
    return {
      id: r.id, organization_id: org, promotion_id: promotionId, status: "ACTIVE", kind: "CODE", epoch: String(r.epoch), promotion_version_id: versionId,
      version: 1, code_id: null, code: null, customer_id: r.customer, subscription_id: null, idempotency_key: null, request_hash: null,
      cycles_used: 0, metadata: {}, created_at: new Date().toISOString(), released_at: null,
    };
  }

  function eventsOf(r: Row, lastSlot: boolean): RowEvent[] {
    const redemption = create(RedemptionSchema, { id: r.id, promotionId, customerId: r.customer, status: RedemptionStatus.ACTIVE, version: 1, promotionVersionId: versionId });
    const created: RowEvent = { rowId: r.id, event: { organizationId: org, type: "redemption.created", payload: { case: "redemption", value: redemption }, createdAt: new Date(), requestId: `req-${r.id}` } };
    if (!lastSlot) return [created];
    const exhausted: RowEvent = {
      rowId: r.id,
      event: {
        organizationId: org,
        type: "promotion.exhausted",
        payload: { case: "promotion", value: create(PromotionSchema, { id: promotionId }) },
        createdAt: new Date(),
        dedupeKey: `promotion.exhausted:${promotionId}:${r.id}`,
      },
    };
    return [created, exhausted];
  }

  async function batch(rows: Row[], events: RowEvent[]): Promise<string[]> {
    const written = await sqlOf(orm.em.fork()).rows<{ id: string }>(WITH_EVENTS, [JSON.stringify(rows.map(record)), rowEventsParam(events)]);
    return written.map((w) => String(w.id));
  }

  async function eventsOfRows(ids: string[]): Promise<{ type: string; resource_id: string }[]> {
    return sqlOf(orm.em.fork()).rows(`select type, resource_id from events where request_id = any($1::varchar[]) or dedupe_key = any($2::varchar[]) order by seq`, [
      ids.map((id) => `req-${id}`),
      ids.map((id) => `promotion.exhausted:${promotionId}:${id}`),
    ]);
  }

  it("writes the events of exactly the rows the statement wrote: none for a fenced row or a duplicate, none twice on a retry", async () => {
    const [epochRow] = await sqlOf(orm.em.fork()).rows<{ e: string }>(`select counter_epoch::text as e from promotions where id = $1`, [promotionId]);
    const epoch = Number(epochRow?.e);
    const written: Row = { id: randomUUID(), epoch, customer: "c-written" };
    const fenced: Row = { id: randomUUID(), epoch: epoch - 1, customer: "c-fenced" };
    const last: Row = { id: randomUUID(), epoch, customer: "c-last" };
    const rows = [written, fenced, last];
    const events = [...eventsOf(written, false), ...eventsOf(fenced, false), ...eventsOf(last, true)];

    const ids = await batch(rows, events);
    expect(ids.sort()).toEqual([written.id, last.id].sort());
    expect(await eventsOfRows(rows.map((r) => r.id))).toEqual([
      { type: "redemption.created", resource_id: written.id },
      { type: "redemption.created", resource_id: last.id },
      { type: "promotion.exhausted", resource_id: promotionId },
    ]);

    // The same batch again (a retry after a lost answer): the rows exist, so no event is written.
    expect(await batch(rows, events)).toEqual([]);
    expect(await eventsOfRows(rows.map((r) => r.id))).toHaveLength(3);
  });

  it("writes one exhaustion however many rows of concurrent batches carry the same dedupe key", async () => {
    const [epochRow] = await sqlOf(orm.em.fork()).rows<{ e: string }>(`select counter_epoch::text as e from promotions where id = $1`, [promotionId]);
    const epoch = Number(epochRow?.e);
    const key = `promotion.exhausted:${promotionId}:race-${randomUUID()}`;
    const racers = Array.from({ length: 6 }, (): Row => ({ id: randomUUID(), epoch, customer: `c-${randomUUID()}` }));
    await Promise.all(
      racers.map((r) =>
        batch([r], [
          ...eventsOf(r, false),
          { rowId: r.id, event: { organizationId: org, type: "promotion.exhausted", payload: { case: "promotion", value: create(PromotionSchema, { id: promotionId }) }, createdAt: new Date(), dedupeKey: key } },
        ]),
      ),
    );
    expect(await countEvents(`dedupe_key = $1`, [key])).toBe(1);
    expect(await countEvents(`type = 'redemption.created' and resource_id = any($1::varchar[])`, [racers.map((r) => r.id)])).toBe(racers.length);
  });
});
