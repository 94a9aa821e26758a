import { afterEach, describe, expect, it, vi } from "vitest";
import type { InstallResult } from "../../src/counters/counters.js";
import { MAX_RENEWED_MS, REBUILD_LOCK_MS, rebuildCounters } from "../../src/counters/rebuild.js";
import type { Rebuilt } from "../../src/store/ledger.js";

// rebuildCounters' decisions, against a scripted counters face: the real scripts are proven in
// test/integration/counters.test.ts and the faults end to end in test/e2e/counter-faults.test.ts.

const P = "00000000-0000-4000-8000-0000000000b1";

function face(installs: InstallResult[], opts: { locked?: boolean; hydrated?: boolean; countMs?: number; countHangs?: boolean } = {}) {
  const calls: string[] = [];
  let epoch = 10n;
  return {
    calls,
    counters: {
      lockRebuild: async (_p: string, _t: string, ttl: number) => (calls.push(`lock ${ttl}`), !opts.locked),
      extendRebuildLock: async (_p: string, _t: string, ttl: number) => (calls.push(`extend ${ttl}`), true),
      unlockRebuild: async () => void calls.push("unlock"),
      isHydrated: async () => (calls.push("hydrated?"), opts.hydrated ?? false),
      install: async (_p: string, r: Rebuilt) => (calls.push(`install ${r.epoch}`), installs.shift() ?? "installed"),
      raiseFloor: (_p: string, e: bigint) => void calls.push(`floor ${e}`),
    },
    count: async (): Promise<Rebuilt> => {
      if (opts.countHangs) await new Promise(() => undefined);
      if (opts.countMs) await new Promise((r) => setTimeout(r, opts.countMs));
      epoch++;
      calls.push(`count ${epoch}`);
      return { epoch, seq: 1n, redemptions: 0n, budgetUsed: 0n, perCustomer: new Map(), perCode: new Map() };
    },
  };
}

afterEach(() => vi.useRealTimers());

describe("rebuildCounters", () => {
  it("counts, raises the floor to the counted epoch, installs, and lets the lock go", async () => {
    const { calls, counters, count } = face(["installed"]);
    await rebuildCounters(counters, P, count);
    expect(calls).toEqual([`lock ${REBUILD_LOCK_MS}`, "hydrated?", "count 11", "floor 11", "install 11", "unlock"]);
  });

  it("counts again under a new epoch when a flush left the stage incomplete, at most three times", async () => {
    const { calls, counters, count } = face(["incomplete", "incomplete", "incomplete", "installed"]);
    await rebuildCounters(counters, P, count);
    expect(calls.filter((c) => c.startsWith("install"))).toEqual(["install 11", "install 12", "install 13"]);
    expect(calls.at(-1)).toBe("unlock");
  });

  it("stops at an outrun install (newer counters are live)", async () => {
    const { calls, counters, count } = face(["outrun"]);
    await rebuildCounters(counters, P, count);
    expect(calls.filter((c) => c.startsWith("count"))).toEqual(["count 11"]);
  });

  it("does nothing but wait briefly when another process holds the lock, or the counters are live", async () => {
    const locked = face([], { locked: true });
    await rebuildCounters(locked.counters, P, locked.count);
    expect(locked.calls).toEqual([`lock ${REBUILD_LOCK_MS}`]);
    const live = face([], { hydrated: true });
    await rebuildCounters(live.counters, P, live.count);
    expect(live.calls).toEqual([`lock ${REBUILD_LOCK_MS}`, "hydrated?", "unlock"]);
  });

  it("holds a short lock and renews it while a long count runs, then stops renewing", async () => {
    vi.useFakeTimers();
    const { calls, counters, count } = face(["installed"], { countMs: 1_800 });
    const done = rebuildCounters(counters, P, count);
    await vi.advanceTimersByTimeAsync(1_800);
    await done;
    expect(REBUILD_LOCK_MS).toBeLessThanOrEqual(2_000);
    expect(calls.filter((c) => c.startsWith("extend"))).toEqual([`extend ${REBUILD_LOCK_MS}`, `extend ${REBUILD_LOCK_MS}`, `extend ${REBUILD_LOCK_MS}`]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls.filter((c) => c.startsWith("extend"))).toHaveLength(3);
  });

  it("stops renewing after MAX_RENEWED_MS when its count never returns, so another process can rebuild", async () => {
    // Seen in test/e2e/fault-schedule.test.ts: after a Postgres restart one replica's queries hung
    // for good; its rebuild renewed the lock for as long as it waited (9 minutes and counting), and
    // every call to the promotion on every replica answered counters_busy.
    vi.useFakeTimers();
    const { calls, counters, count } = face([], { countHangs: true });
    void rebuildCounters(counters, P, count);
    await vi.advanceTimersByTimeAsync(MAX_RENEWED_MS + 60_000);
    const extends_ = calls.filter((c) => c.startsWith("extend")).length;
    expect(extends_).toBeLessThanOrEqual(Math.ceil(MAX_RENEWED_MS / 500));
    expect(extends_).toBeGreaterThan(0);
    expect(MAX_RENEWED_MS).toBeLessThanOrEqual(10_000);
  });
});
