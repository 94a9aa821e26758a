import type { MikroORM } from "@mikro-orm/postgresql";
import { traced } from "../tracing.js";
import { Ledger, type RedemptionRow, type RedemptionWrite } from "./ledger.js";

// Group commit for the checkout ledger: redemptions that arrive while a write is in flight are
// written together by the next one — one multi-row INSERT, one commit — instead of one statement
// and one commit each. Nothing waits on a timer: a lone call is written at once, and under load
// each batch holds what arrived during the previous one.
//
// Every row keeps the single-row write's guarantees: it is inserted only if its promotion (and
// organization) still has the row's counter epoch, checked under FOR KEY SHARE per row, so a
// rebuild's FOR UPDATE waits for the whole batch (src/counters/README.md). A row the batch did not
// write — epoch moved, the sweeper's tombstone, an idempotency key already used — is written again
// on its own, which tells which of those it was.

const MAX_BATCH = 200;

interface Pending {
  row: RedemptionRow;
  resolve: (w: RedemptionWrite) => void;
  reject: (e: unknown) => void;
}

export class LedgerBatcher {
  private queue: Pending[] = [];
  private flushing = false;

  constructor(private readonly orm: MikroORM) {}

  write(row: RedemptionRow): Promise<RedemptionWrite> {
    return new Promise<RedemptionWrite>((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      // Let the calls already on their way this tick join the first batch.
      await new Promise<void>((r) => setImmediate(r));
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        await this.writeBatch(batch);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const em = this.orm.em.fork();
    let written: Set<string>;
    try {
      written = await traced("Ledger.writeRedemptions", () => insertAll(em, batch.map((p) => p.row)));
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    const ledger = new Ledger(em);
    await Promise.all(
      batch.map(async (p) => {
        if (written.has(p.row.id)) return p.resolve({ kind: "written" });
        try {
          p.resolve(await ledger.writeRedemption(p.row));
        } catch (error) {
          p.reject(error);
        }
      }),
    );
  }
}

async function insertAll(em: ReturnType<MikroORM["em"]["fork"]>, rows: readonly RedemptionRow[]): Promise<Set<string>> {
  const records = rows.map((r) => ({
    id: r.id,
    organization_id: r.organizationId,
    promotion_id: r.promotionId,
    status: r.status,
    epoch: r.epoch.toString(),
    promotion_version_id: r.promotionVersionId,
    version: r.version,
    code_id: r.codeId,
    code: r.code,
    customer_id: r.customerId,
    subscription_id: r.subscriptionId,
    idempotency_key: r.idempotencyKey,
    request_hash: r.requestHash,
    cycles_used: r.cyclesUsed,
    metadata: r.metadata,
    created_at: r.createdAt.toISOString(),
    released_at: r.releasedAt?.toISOString() ?? null,
  }));
  const inserted = await em.getConnection().execute<{ id: string }[]>(
    `insert into redemptions (id, organization_id, promotion_id, status, epoch, promotion_version_id, version, code_id, code,
       customer_id, subscription_id, idempotency_key, request_hash, cycles_used, metadata, created_at, released_at)
     select v.id, v.organization_id, v.promotion_id, v.status, v.epoch, v.promotion_version_id, v.version, v.code_id, v.code,
       v.customer_id, v.subscription_id, v.idempotency_key, v.request_hash, v.cycles_used, v.metadata, v.created_at, v.released_at
     from jsonb_to_recordset(?::jsonb) as v(id uuid, organization_id uuid, promotion_id uuid, status varchar, epoch bigint,
       promotion_version_id uuid, version int, code_id uuid, code varchar, customer_id varchar, subscription_id varchar,
       idempotency_key varchar, request_hash varchar, cycles_used int, metadata jsonb, created_at timestamptz, released_at timestamptz)
     where exists (
       select 1 from promotions p
       where p.id = v.promotion_id and p.organization_id = v.organization_id and p.counter_epoch = v.epoch
       for key share)
     on conflict do nothing
     returning id`,
    [JSON.stringify(records)],
    "all",
  );
  return new Set(inserted.map((r) => String(r.id)));
}
