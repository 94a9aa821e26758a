import type { MikroORM } from "@mikro-orm/postgresql";
import type { Logger } from "../observability/logger.js";
import { START, type Position } from "./reader.js";
import { sqlOf } from "./sql.js";

// Wake-ups for StreamEvents: one poller per process (however many streams are open) looks for
// newly settled events of any organization every `pollMs` while someone waits, and wakes the
// streams of the organizations that got some; each stream then reads its own events from its own
// position. Polling rather than LISTEN/NOTIFY: a NOTIFY makes every committing transaction take
// a global lock (the hot path would pay it), and a notification could arrive before the event
// has settled anyway (an older transaction still open), so a poll would be needed regardless.

export type WakeReason = "new" | "timeout" | "aborted" | "closed";

interface Waiter {
  organizationId: string;
  wake: (reason: WakeReason) => void;
}

export class EventFeed {
  private readonly waiters = new Set<Waiter>();
  /** Wake-ups per organization so far: a stream that read at version v and then waits does not miss one in between. */
  private readonly versions = new Map<string, number>();
  private cursor: Position | null = null;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly orm: MikroORM,
    private readonly pollMs: number,
    private readonly logger: Logger,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** The organization's wake-up count; pass it to wait() after reading. */
  version(organizationId: string): number {
    return this.versions.get(organizationId) ?? 0;
  }

  /** Resolves when the organization has new events since `version`, after `maxMs`, on abort, or when the feed closes. */
  wait(organizationId: string, version: number, signal: AbortSignal, maxMs: number): Promise<WakeReason> {
    if (this.closed) return Promise.resolve("closed");
    if (signal.aborted) return Promise.resolve("aborted");
    if (this.version(organizationId) !== version) return Promise.resolve("new");
    return new Promise((resolve) => {
      const waiter: Waiter = {
        organizationId,
        wake: (reason) => {
          this.waiters.delete(waiter);
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          resolve(reason);
        },
      };
      const onAbort = () => waiter.wake("aborted");
      const timer = setTimeout(() => waiter.wake("timeout"), maxMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.add(waiter);
      this.ensurePolling();
    });
  }

  /** Ends every wait ("closed"); streams end (shutdown). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiter of [...this.waiters]) waiter.wake("closed");
  }

  private ensurePolling(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => void this.poll(), this.pollMs);
  }

  private async poll(): Promise<void> {
    try {
      const sql = sqlOf(this.orm.em.fork());
      if (this.cursor === null) {
        const [head] = await sql.rows<{ txid: string; seq: string }>(
          `select e.txid::text as txid, e.seq::text as seq from events e where e.txid < pg_snapshot_xmin(pg_current_snapshot()) order by e.txid desc, e.seq desc limit 1`,
        );
        this.cursor = head ?? START;
        // What settled before this start is behind the cursor: whoever waits already reads again.
        for (const waiter of [...this.waiters]) waiter.wake("new");
        return;
      }
      const rows = await sql.rows<{ organization_id: string; txid: string; seq: string }>(
        `select e.organization_id::text as organization_id, e.txid::text as txid, e.seq::text as seq from events e
         where (e.txid, e.seq) > ($1::xid8, $2::bigint) and e.txid < pg_snapshot_xmin(pg_current_snapshot())
         order by e.txid, e.seq limit 5000`,
        [this.cursor.txid, this.cursor.seq],
      );
      const last = rows.at(-1);
      if (last) this.cursor = { txid: last.txid, seq: last.seq };
      const woken = new Set(rows.map((r) => r.organization_id));
      for (const organizationId of woken) this.versions.set(organizationId, this.version(organizationId) + 1);
      for (const waiter of [...this.waiters]) if (woken.has(waiter.organizationId)) waiter.wake("new");
    } catch (error) {
      this.logger.warn({ error: error instanceof Error ? error.message : String(error) }, "event feed poll failed");
    } finally {
      this.timer = undefined;
      // Keep polling while anyone waits; an idle feed costs nothing.
      if (this.waiters.size > 0) this.ensurePolling();
      else this.cursor = null;
    }
  }
}
