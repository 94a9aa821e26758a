import type { MikroORM } from "@mikro-orm/postgresql";
import type { Logger } from "../observability/logger.js";
import type { EventMetrics } from "./metrics.js";
import type { DeliveryQueue } from "./queue.js";
import { sqlOf } from "./sql.js";

// Fan-out: turns settled events into one delivery per subscribed endpoint, in the outbox's order
// (reader.ts), off every request path. One dispatcher works at a time across all processes (a
// transaction-scoped advisory lock; the others skip the round). In one transaction it reads the
// next batch after webhook_dispatch_cursor, inserts the deliveries (unique per endpoint and event,
// so a repeated batch adds nothing), enqueues their jobs and moves the cursor: a crash anywhere
// leaves all of it undone, and the next round does it again.
//
// An endpoint receives the events created while it exists and is enabled (created_at at or after
// its own), of the types it asked for (all when none).

const LOCK_KEY = 7_346_221_014; // pg_try_advisory_xact_lock key of "the dispatcher"
const BATCH = 500;

const DISPATCH = `
  with batch as (
    select ev.seq, ev.id, ev.organization_id, ev.type, ev.created_at, ev.txid from events ev
    where (ev.txid, ev.seq) > ((select txid from webhook_dispatch_cursor where id = 1), (select seq from webhook_dispatch_cursor where id = 1))
      and ev.txid < pg_snapshot_xmin(pg_current_snapshot())
    order by ev.txid, ev.seq
    limit $1),
  last as (select b.txid, b.seq from batch b order by b.txid desc, b.seq desc limit 1),
  moved as (update webhook_dispatch_cursor c set txid = last.txid, seq = last.seq from last where c.id = 1 returning 1),
  created as (
    insert into webhook_deliveries (id, organization_id, endpoint_id, event_id, event_type, status, created_at, updated_at)
    select gen_random_uuid(), b.organization_id, e.id, b.id, b.type, 'PENDING', now(), now()
    from batch b join webhook_endpoints e
      on e.organization_id = b.organization_id and e.deleted_at is null and e.disabled_at is null and e.created_at <= b.created_at
     and (cardinality(e.event_types) = 0 or b.type = any(e.event_types))
    order by b.txid, b.seq
    on conflict (endpoint_id, event_id) do nothing
    returning id)
  select (select count(*) from batch)::int as events,
         (select coalesce(json_agg(extract(epoch from b.created_at) * 1000), '[]'::json) from batch b) as created_ms,
         (select coalesce(json_agg(c.id::text), '[]'::json) from created c) as deliveries,
         (select count(*) from moved)::int as moved`;

export class Dispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly orm: MikroORM,
    private readonly queue: DeliveryQueue,
    private readonly metrics: EventMetrics,
    private readonly logger: Logger,
    private readonly pollMs: number,
  ) {}

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One round: dispatches batches until none is full; returns the events it moved past (0 when another process holds the lock). */
  async dispatch(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.dispatchBatch();
      total += n;
      if (n < BATCH || this.stopped) return total;
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.dispatch().then(
        () => this.schedule(this.pollMs),
        (error: unknown) => {
          this.logger.warn({ error: error instanceof Error ? error.message : String(error) }, "webhook dispatch failed; retrying");
          this.schedule(Math.max(this.pollMs, 1_000));
        },
      );
    }, ms);
    this.timer.unref();
  }

  private async dispatchBatch(): Promise<number> {
    return this.orm.em.fork().transactional(async (em) => {
      const sql = sqlOf(em);
      const [lock] = await sql.rows<{ ok: boolean }>(`select pg_try_advisory_xact_lock($1::bigint) as ok`, [LOCK_KEY]);
      if (!lock?.ok) return 0;
      const [round] = await sql.rows<{ events: number; created_ms: number[]; deliveries: string[] }>(DISPATCH, [BATCH]);
      if (!round || round.events === 0) return 0;
      await this.queue.enqueue(em, round.deliveries.map((deliveryId) => ({ deliveryId, manual: false })));
      const now = Date.now();
      for (const ms of round.created_ms) this.metrics.dispatchLag.observe(Math.max(0, now - Number(ms)) / 1000);
      return round.events;
    });
  }
}
