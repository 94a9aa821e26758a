import type { MikroORM } from "@mikro-orm/postgresql";
import type { NewEvent } from "../events/outbox.js";
import { traced } from "../observability/tracing.js";
import { Ledger, type RedemptionRow, type RedemptionWrite } from "./ledger.js";

// Group commit for the checkout ledger: redemptions that arrive while a write is in flight are
// written together by the next one — one multi-row INSERT, one commit — instead of one statement
// and one commit each. Nothing waits on a timer: a lone call is written at once, and under load
// each batch holds what arrived during the previous one.
//
// Every row keeps the single-row write's guarantees: it is inserted only if its promotion (and
// organization) still has the row's counter epoch, checked under FOR KEY SHARE per row, so a
// rebuild's FOR UPDATE waits for the whole batch (src/counters/README.md). A row the batch did not
// write — epoch moved, the sweeper's tombstone, an idempotency key already used — is told apart by
// Ledger.whyNotWritten. Each row's events (redemption.created, and promotion.exhausted for the
// reservation that took the last slot) go in the same statement, written only for the rows it
// wrote: still one statement, one commit, one round trip per batch.

const MAX_BATCH = 200;

interface Pending {
  row: RedemptionRow;
  /** Written by the same statement as the row, only if the row is. */
  events: readonly NewEvent[];
  resolve: (w: RedemptionWrite) => void;
  reject: (e: unknown) => void;
}

export class LedgerBatcher {
  private queue: Pending[] = [];
  private flushing = false;

  constructor(private readonly orm: MikroORM) {}

  write(row: RedemptionRow, events: readonly NewEvent[] = []): Promise<RedemptionWrite> {
    return new Promise<RedemptionWrite>((resolve, reject) => {
      this.queue.push({ row, events, resolve, reject });
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
    const ledger = new Ledger(this.orm.em.fork());
    let written: Set<string>;
    try {
      written = await traced("Ledger.writeRedemptions", () => ledger.insertRedemptions(
        batch.map((p) => p.row),
        batch.flatMap((p) => p.events.map((event) => ({ rowId: p.row.id, event }))),
      ));
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    const skipped: Pending[] = [];
    for (const p of batch) {
      if (written.has(p.row.id)) p.resolve({ kind: "written" });
      else skipped.push(p);
    }
    await Promise.all(skipped.map((p) => ledger.whyNotWritten(p.row).then(p.resolve, p.reject)));
  }
}
