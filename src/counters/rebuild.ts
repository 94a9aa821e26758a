import { randomUUID } from "node:crypto";
import type { Rebuilt } from "../store/ledger.js";
import type { Counters } from "./counters.js";

// Rebuilding a promotion's counters from the ledger after Redis lost them (or kept an epoch older
// than Postgres'): the ledger counted under a new epoch by the caller's `count` (Ledger.rebuild,
// which holds the fence: src/counters/README.md), then installed all or nothing. Every use case
// whose script answered NOT_HYDRATED calls this and tries again.
//
// The lock only spares the ledger duplicate counts; correctness never rests on it (a flush takes
// it, a stalled holder outlives it): each rebuild counts under an epoch of its own, and switch.lua
// installs only a complete stage of an epoch newer than the live one. So its TTL is short and its
// holder renews it while it works: a holder that stalls or dies stops blocking the others within
// REBUILD_LOCK_MS of Redis answering again, and one whose count never returns stops renewing after
// MAX_RENEWED_MS.

/** How long a rebuild lock outlives its last renewal. */
export const REBUILD_LOCK_MS = 2_000;
/**
 * How long a holder renews it at most. A count that has not come back by then is stuck (its
 * Postgres calls hang): the lock lapses REBUILD_LOCK_MS later and another process rebuilds.
 */
export const MAX_RENEWED_MS = 10_000;
/** How often the holder renews it. */
const RENEW_EVERY_MS = 500;
/** How long a caller that found the lock taken waits before trying its script again. */
const LOCKED_OUT_WAIT_MS = 10;
/** Counts that a flush left incomplete are counted again this many times in one call. */
const INSTALL_ATTEMPTS = 3;

type RebuildCounters = Pick<Counters, "lockRebuild" | "extendRebuildLock" | "unlockRebuild" | "isHydrated" | "install" | "raiseFloor">;

/** Rebuilds the counters of `promotionId` with `count()`, unless they are live or another process is rebuilding them. */
export async function rebuildCounters(counters: RebuildCounters, promotionId: string, count: () => Promise<Rebuilt>): Promise<void> {
  const token = randomUUID();
  if (!(await counters.lockRebuild(promotionId, token, REBUILD_LOCK_MS))) {
    await new Promise((r) => setTimeout(r, LOCKED_OUT_WAIT_MS));
    return;
  }
  const lockedAt = Date.now();
  const renew = setInterval(() => {
    // A holder stuck longer than this (its Postgres calls hang) must not block the others for good.
    if (Date.now() - lockedAt >= MAX_RENEWED_MS) return clearInterval(renew);
    void counters.extendRebuildLock(promotionId, token, REBUILD_LOCK_MS).catch(() => false);
  }, RENEW_EVERY_MS);
  try {
    if (await counters.isHydrated(promotionId)) return;
    for (let attempt = 0; attempt < INSTALL_ATTEMPTS; attempt++) {
      const rebuilt = await count();
      // Postgres is at this epoch now: counters of an older one never admit again here.
      counters.raiseFloor(promotionId, rebuilt.epoch);
      if ((await counters.install(promotionId, rebuilt)) !== "incomplete") return;
    }
  } finally {
    clearInterval(renew);
    await counters.unlockRebuild(promotionId, token).catch(() => undefined);
  }
}
