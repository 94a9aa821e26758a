import type { MikroORM } from "@mikro-orm/postgresql";
import type { Counters } from "../counters/counters.js";
import type { Logger } from "../observability/logger.js";
import { Ledger } from "../store/ledger.js";
import { settleReturns } from "./returns.js";

// Settles reservations that outlived their deadline without being confirmed: the process died
// between reserve and confirm, the ledger write failed, or Redis was unreachable for the confirm.
// For each one it asks the ledger, atomically, "written, or never?" by inserting a tombstone with
// the reservation's id: if the tombstone lands, the real write can never land after it (same
// primary key), so the counters are given back; if a real row is there, the reservation is only
// confirmed. Every replica may run it; give_back.lua moves counters only for a pending
// reservation, so two sweepers never give one back twice.

export interface SweepResult {
  abandoned: number;
  confirmed: number;
  /** Counter returns of committed releases and reversals that a crash or an outage left pending. */
  returned: number;
}

/** How long a committed release or reversal has to apply its own counter return before the sweeper does. */
const RETURN_GRACE_MS = 2_000;

export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly orm: MikroORM,
    private readonly counters: Counters,
    private readonly logger: Logger,
    private readonly intervalMs = 2_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.sweep()
        .then((r) => {
          if (r.abandoned + r.confirmed + r.returned > 0) this.logger.info({ ...r }, "settled overdue reservations and counter returns");
        })
        .catch((error: unknown) => this.logger.warn({ error: error instanceof Error ? error.message : String(error) }, "sweep failed; will retry"))
        .finally(() => {
          this.running = undefined;
        });
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass over every promotion that can hold reservations. */
  async sweep(now = Date.now()): Promise<SweepResult> {
    const ledger = new Ledger(this.orm.em.fork());
    const result: SweepResult = { abandoned: 0, confirmed: 0, returned: 0 };
    for (const promotionId of await ledger.promotionsThatMayHoldReservations()) {
      for (const reservation of await this.counters.overdue(promotionId, now)) {
        // Read once: the kind picks the ledger table, the marker is what give_back.lua clears.
        const details = await this.counters.details(promotionId, reservation.id);
        const outcome = details?.kind === "a"
          ? await ledger.settleBudgetReservation(promotionId, reservation.id)
          : await ledger.settleRedemptionReservation(promotionId, reservation.id);
        if (outcome === "abandoned") {
          if (await this.counters.giveBack(promotionId, reservation.id, details?.marker ?? "")) result.abandoned++;
        } else if (await this.counters.confirm(promotionId, reservation.id)) {
          result.confirmed++;
        }
      }
    }
    result.returned = await settleReturns(this.counters, ledger, await ledger.pendingReturns(new Date(now - RETURN_GRACE_MS)), new Date(now));
    return result;
  }
}
