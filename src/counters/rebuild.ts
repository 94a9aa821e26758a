import { randomUUID } from "node:crypto";
import type { Rebuilt } from "../store/ledger.js";
import type { Counters } from "./counters.js";

// Rebuilding a promotion's counters from the ledger after Redis lost them: one process at a time
// (a lock in Redis), the ledger counted under a new epoch by the caller's `count` (Ledger.rebuild,
// which holds the fence: src/counters/README.md), then installed. Every use case whose script
// answered NOT_HYDRATED calls this and tries again.

/** How long a rebuild lock is held at most. */
const REBUILD_LOCK_MS = 30_000;
/** How long a caller that found the lock taken waits before trying its script again. */
const LOCKED_OUT_WAIT_MS = 10;

type RebuildCounters = Pick<Counters, "lockRebuild" | "unlockRebuild" | "isHydrated" | "install">;

/** Rebuilds the counters of `promotionId` with `count()`, unless they are there or another process is rebuilding them. */
export async function rebuildCounters(counters: RebuildCounters, promotionId: string, count: () => Promise<Rebuilt>): Promise<void> {
  const token = randomUUID();
  if (!(await counters.lockRebuild(promotionId, token, REBUILD_LOCK_MS))) {
    await new Promise((r) => setTimeout(r, LOCKED_OUT_WAIT_MS));
    return;
  }
  try {
    if (await counters.isHydrated(promotionId)) return;
    await counters.install(promotionId, await count());
  } finally {
    await counters.unlockRebuild(promotionId, token).catch(() => undefined);
  }
}
