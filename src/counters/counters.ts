import { DomainError } from "../domain/errors.js";
import type { CounterReturn, Rebuilt } from "../store/ledger.js";
import { promotionKeys, type PromotionKeys } from "./keys.js";
import { ReserveOutcome } from "./outcomes.js";
import type { RedisClient } from "./redis.js";
import { defineScript, type ScriptFn } from "./scripts.js";
import { traced } from "../observability/tracing.js";

// The typed face of the Lua scripts in ./scripts (one file per script; each names its KEYS, ARGV
// and return values in its header). Nothing else in the service talks to these keys.

/** The scripts this face calls; each file's name carries its key count (scripts.ts). */
export const SCRIPT_NAMES = [
  "reserve", "consume_budget", "confirm", "give_back", "apply_return", "stage", "switch", "extend_lock", "unlock", "publish_seq",
] as const;
type ScriptName = (typeof SCRIPT_NAMES)[number];

/**
 * reserve-6.lua's ARGV, by name and in order: the encoder below builds the call from this list, and
 * test/unit/lua-scripts.test.ts holds it to the script's header.
 */
export const RESERVE_ARGV = [
  "mode", "reservation_id", "now", "deadline", "terms_seq", "customer_id", "code_id", "status", "valid_from", "valid_to",
  "code_active", "code_expires_at", "max_redemptions", "max_per_customer", "has_idempotency_key", "code_max_redemptions",
  "max_budget", "idempotency_ttl_ms", "budget_exhausted", "epoch_floor",
] as const;
type ReserveArgs = Record<(typeof RESERVE_ARGV)[number], string | number>;

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Entries per staged batch (one stage.lua call). */
const STAGE_BATCH = 1_000;
/** How long a staged hash outlives a rebuild that never switches it in. */
const STAGE_TTL_MS = 5 * 60 * 1000;
/** How long confirms wait to be sent together. */
const CONFIRM_BATCH_MS = 2;

export interface ReserveRequest {
  mode: "redeem" | "check";
  promotionId: string;
  reservationId: string;
  now: number;
  deadline: number;
  termsSeq: bigint;
  customerId: string;
  codeId: string | null;
  status: string;
  validFrom: Date | null;
  validTo: Date | null;
  codeActive: boolean;
  codeExpiresAt: Date | null;
  maxRedemptions: bigint | null;
  maxPerCustomer: bigint | null;
  codeMaxRedemptions: bigint | null;
  maxBudget: bigint | null;
  /** A STRICT budget refused a grant: no more redemptions either (budget_exhausted). */
  budgetExhausted: boolean;
  idempotencyKey: string | null;
}

export interface ReserveResult {
  outcome: ReserveOutcome;
  epoch: bigint;
  /** The earlier reservation id when outcome is Duplicate. */
  earlier: string;
  /** Redemptions counted after the call. */
  redemptions: bigint;
  /** Budget used as the call saw it (0 for NOT_HYDRATED and STALE_TERMS). */
  budgetUsed: bigint;
}

export interface CounterSnapshot {
  epoch: bigint;
  seq: bigint;
  redemptions: bigint;
  budgetUsed: bigint;
}

/** A pending reservation's details (the `{p:P}:d` hash). */
export interface ReservationDetails {
  /** "r" (a redemption) or "a" (budget for an invoice); null when unreadable. */
  kind: "r" | "a" | null;
  /** The idempotency marker key the reservation set; "" for none (or unreadable). */
  marker: string;
}

/** What install() did: the counters are the rebuild's, newer ones were live, or the stage lost entries (rebuild again). */
export type InstallResult = "installed" | "outrun" | "incomplete";

export interface PendingReservation {
  id: string;
  deadline: number;
}

const opt = (v: bigint | null): string => (v === null ? "-1" : v.toString());
const ms = (d: Date | null): string => (d === null ? "" : String(d.getTime()));

export class Counters {
  private readonly run: Record<ScriptName, ScriptFn>;
  private readonly confirmQueue = new Map<string, string[]>();
  /**
   * Per promotion, the newest counter epoch this process knows Postgres is at (from its own
   * rebuilds and from ledger writes fenced by a newer one): counters of an older epoch answer
   * NOT_HYDRATED and are rebuilt. One entry per promotion this process touched.
   */
  private readonly floors = new Map<string, bigint>();
  private confirmTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly redis: RedisClient,
    readonly prefix: string,
    /** Told how long each script call took (metrics). */
    private readonly onScript: (script: ScriptName, seconds: number) => void = () => undefined,
  ) {
    this.run = Object.fromEntries(SCRIPT_NAMES.map((name) => [name, defineScript(redis, name)])) as Record<ScriptName, ScriptFn>;
  }

  keys(promotionId: string): PromotionKeys {
    return promotionKeys(this.prefix, promotionId);
  }

  /** reserve.lua: checks every limit and, in "redeem" mode, moves every counter at once. */
  async reserve(r: ReserveRequest): Promise<ReserveResult> {
    const k = this.keys(r.promotionId);
    const idem = r.idempotencyKey === null ? k.idempotency("") : k.idempotency(r.idempotencyKey);
    const args: ReserveArgs = {
      mode: r.mode,
      reservation_id: r.reservationId,
      now: r.now,
      deadline: r.deadline,
      terms_seq: r.termsSeq.toString(),
      customer_id: r.customerId,
      code_id: r.codeId ?? "",
      status: r.status,
      valid_from: ms(r.validFrom),
      valid_to: ms(r.validTo),
      code_active: r.codeActive ? "1" : "0",
      code_expires_at: ms(r.codeExpiresAt),
      max_redemptions: opt(r.maxRedemptions),
      max_per_customer: opt(r.maxPerCustomer),
      has_idempotency_key: r.idempotencyKey === null ? "0" : "1",
      code_max_redemptions: opt(r.codeMaxRedemptions),
      max_budget: opt(r.maxBudget),
      idempotency_ttl_ms: IDEMPOTENCY_TTL_MS,
      budget_exhausted: r.budgetExhausted ? "1" : "0",
      epoch_floor: this.floor(r.promotionId).toString(),
    };
    const reply = await this.call("reserve", [k.state, k.customers, k.codes, k.pending, k.details, idem, ...RESERVE_ARGV.map((name) => args[name])]);
    const [outcome, epoch, earlier, n, b] = tuple(reply, 5);
    return { outcome: Number(outcome) as ReserveOutcome, epoch: BigInt(String(epoch)), earlier: String(earlier), redemptions: BigInt(String(n)), budgetUsed: BigInt(String(b)) };
  }

  /** consume_budget.lua: reserves up to `amount` of budget (CAP) or all of it or nothing (STRICT). */
  async consumeBudget(r: {
    promotionId: string;
    reservationId: string;
    deadline: number;
    maxBudget: bigint | null;
    amount: bigint;
    behavior: "CAP" | "STRICT";
  }): Promise<{ hydrated: boolean; epoch: bigint; granted: bigint; budgetUsed: bigint }> {
    const k = this.keys(r.promotionId);
    const reply = await this.call("consume_budget", [
      k.state, k.pending, k.details, r.reservationId, r.deadline, opt(r.maxBudget), r.amount.toString(), r.behavior, this.floor(r.promotionId).toString(),
    ]);
    const [outcome, epoch, granted, b] = tuple(reply, 4);
    return { hydrated: Number(outcome) === 0, epoch: BigInt(String(epoch)), granted: BigInt(String(granted)), budgetUsed: BigInt(String(b)) };
  }

  /** confirm.lua: the ledger row exists; the reservation is no longer pending. */
  async confirm(promotionId: string, reservationId: string): Promise<boolean> {
    const k = this.keys(promotionId);
    return Number(await this.call("confirm", [k.pending, k.details, reservationId])) === 1;
  }

  /**
   * Confirms in the background, batched per promotion (one script call per promotion every few
   * ms): the caller's answer does not wait for it, and a confirm that never runs (crash, Redis
   * down) is done by the sweeper, which finds the ledger row.
   */
  confirmLater(promotionId: string, reservationId: string): void {
    const ids = this.confirmQueue.get(promotionId);
    if (ids) ids.push(reservationId);
    else this.confirmQueue.set(promotionId, [reservationId]);
    this.confirmTimer ??= setTimeout(() => void this.flushConfirms(), CONFIRM_BATCH_MS);
  }

  /** Sends every queued confirm now (also on shutdown). */
  async flushConfirms(): Promise<void> {
    clearTimeout(this.confirmTimer);
    this.confirmTimer = undefined;
    const batch = [...this.confirmQueue];
    this.confirmQueue.clear();
    await Promise.all(
      batch.map(async ([promotionId, ids]) => {
        const k = this.keys(promotionId);
        await this.call("confirm", [k.pending, k.details, ...ids]).catch(() => undefined);
      }),
    );
  }

  /**
   * give_back.lua: returns a pending reservation's counters; false when it was not pending.
   * `marker` is the idempotency marker key its details name ("" for none: a reservation made
   * without an idempotency key, or budget); when the caller does not know it, it is read from the
   * details. give_back.lua clears the marker only if it is the one in the details.
   */
  async giveBack(promotionId: string, reservationId: string, marker?: string): Promise<boolean> {
    const k = this.keys(promotionId);
    marker ??= (await this.details(promotionId, reservationId))?.marker ?? "";
    return Number(await this.call("give_back", [k.state, k.customers, k.codes, k.pending, k.details, marker || k.state, reservationId])) === 1;
  }

  /**
   * apply_return.lua: a release or reversal committed in the ledger (counter_returns) gives its
   * counters back, if these counters counted it (same epoch), once. Returns "applied", "other_epoch"
   * (a newer rebuild already left it out), "already" (applied before) or "not_yet" (no counters of
   * its epoch are installed yet: it stays pending).
   */
  async applyReturn(r: CounterReturn): Promise<"applied" | "other_epoch" | "already" | "not_yet"> {
    const k = this.keys(r.promotionId);
    const reply = Number(await this.call("apply_return", [
      k.state, k.customers, k.codes, k.applied(r.id),
      r.epoch.toString(), r.kind, r.customerId ?? "", r.codeId ?? "", r.amountMinor.toString(), IDEMPOTENCY_TTL_MS,
    ]));
    return reply === 1 ? "applied" : reply === 2 ? "already" : reply === 3 ? "not_yet" : "other_epoch";
  }

  /** publish_seq.lua: terms changed in Postgres; reservations made with older ones become stale. */
  async publishSeq(promotionId: string, seq: bigint): Promise<void> {
    await this.call("publish_seq", [this.keys(promotionId).state, seq.toString()]);
  }

  /** Counters of many promotions at once; null for one that is not hydrated (or older than its floor). */
  async snapshot(promotionIds: readonly string[]): Promise<Map<string, CounterSnapshot | null>> {
    const out = new Map<string, CounterSnapshot | null>();
    // One HMGET per promotion: each may live on another cluster node.
    const replies = await this.guard(() => Promise.all(promotionIds.map((id) => this.redis.hmget(this.keys(id).state, "epoch", "seq", "n", "b"))));
    promotionIds.forEach((id, i) => {
      const [epoch, seq, n, b] = replies[i] ?? [];
      const live = epoch != null && BigInt(epoch) >= this.floor(id);
      out.set(id, live ? { epoch: BigInt(epoch), seq: BigInt(seq ?? "0"), redemptions: BigInt(n ?? "0"), budgetUsed: BigInt(b ?? "0") } : null);
    });
    return out;
  }

  /** Counters of this promotion are live at an epoch no older than its floor. */
  async isHydrated(promotionId: string): Promise<boolean> {
    const epoch = await this.guard(() => this.redis.hget(this.keys(promotionId).state, "epoch"));
    return epoch !== null && BigInt(epoch) >= this.floor(promotionId);
  }

  /** Postgres is at least at `epoch` for this promotion: older counters no longer count (they are rebuilt). */
  raiseFloor(promotionId: string, epoch: bigint): void {
    if (epoch > this.floor(promotionId)) this.floors.set(promotionId, epoch);
  }

  private floor(promotionId: string): bigint {
    return this.floors.get(promotionId) ?? 0n;
  }

  /** Takes the rebuild lock of a promotion; false when another process holds it. */
  async lockRebuild(promotionId: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.guard(() => this.redis.set(this.keys(promotionId).rebuildLock, token, "PX", ttlMs, "NX"))) === "OK";
  }

  /** Renews a rebuild lock this token holds; false when it was lost (expired, flushed, taken). */
  async extendRebuildLock(promotionId: string, token: string, ttlMs: number): Promise<boolean> {
    return Number(await this.call("extend_lock", [this.keys(promotionId).rebuildLock, token, ttlMs])) === 1;
  }

  async unlockRebuild(promotionId: string, token: string): Promise<void> {
    await this.call("unlock", [this.keys(promotionId).rebuildLock, token]);
  }

  /**
   * Installs counters rebuilt from the ledger, all or nothing: the per-customer and per-code counts
   * are staged under the rebuild's epoch, in batches, then switch.lua checks that the stage holds
   * every entry and makes it live together with the state hash in one step (src/counters/README.md).
   * `afterBatch` runs after each staged batch (tests put faults there).
   */
  async install(promotionId: string, rebuilt: Rebuilt, afterBatch: () => Promise<void> = async () => undefined): Promise<InstallResult> {
    const k = this.keys(promotionId);
    const staged = k.staged(rebuilt.epoch);
    const customers = await this.stage(staged.customers, rebuilt.perCustomer, afterBatch);
    const codes = await this.stage(staged.codes, rebuilt.perCode, afterBatch);
    const reply = Number(await this.call("switch", [
      k.state, k.customers, k.codes, k.pending, k.details, staged.customers, staged.codes,
      rebuilt.epoch.toString(), rebuilt.seq.toString(), rebuilt.redemptions.toString(), rebuilt.budgetUsed.toString(), customers, codes,
    ]));
    return reply === 1 ? "installed" : reply === 2 ? "incomplete" : "outrun";
  }

  /** What a pending reservation holds and which idempotency marker it set; null when it is not pending. */
  async details(promotionId: string, reservationId: string): Promise<ReservationDetails | null> {
    const json = await this.guard(() => this.redis.hget(this.keys(promotionId).details, reservationId));
    return json === null ? null : parseDetails(json);
  }

  /** Pending reservations whose deadline has passed. */
  async overdue(promotionId: string, now: number, limit = 500): Promise<PendingReservation[]> {
    const flat = await this.guard(() => this.redis.zrangebyscore(this.keys(promotionId).pending, "-inf", now, "WITHSCORES", "LIMIT", 0, limit));
    const out: PendingReservation[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: flat[i] ?? "", deadline: Number(flat[i + 1]) });
    return out;
  }

  /** Stages the positive entries in batches; returns how many there are (what the stage must hold). */
  private async stage(key: string, entries: ReadonlyMap<string, bigint>, afterBatch: () => Promise<void>): Promise<number> {
    const batch: string[] = [];
    let staged = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      await this.call("stage", [key, STAGE_TTL_MS, ...batch.splice(0, batch.length)]);
      await afterBatch();
    };
    for (const [field, value] of entries) {
      if (value <= 0n) continue;
      batch.push(field, value.toString());
      staged++;
      if (batch.length >= 2 * STAGE_BATCH) await flush();
    }
    await flush();
    return staged;
  }

  private async call(name: ScriptName, args: (string | number)[]): Promise<unknown> {
    const started = performance.now();
    try {
      return await traced(`lua.${name}`, () => this.guard(() => this.run[name](...args)), { "db.system": "redis" });
    } finally {
      this.onScript(name, (performance.now() - started) / 1000);
    }
  }

  /** Redis failures become UNAVAILABLE: the caller may retry; no counter state is assumed. */
  private async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw new DomainError("unavailable", [{ param: "", code: "counters_unavailable", message: "the counter store is unreachable; retry" }], { cause: error });
    }
  }
}

function tuple(reply: unknown, n: number): unknown[] {
  if (!Array.isArray(reply) || reply.length < n) throw new Error(`unexpected script reply: ${JSON.stringify(reply)}`);
  return reply;
}

/** The JSON reserve.lua and consume_budget.lua store per pending reservation; unreadable parts read as unknown. */
function parseDetails(json: string): ReservationDetails {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return { kind: null, marker: "" };
  }
  if (!parsed || typeof parsed !== "object") return { kind: null, marker: "" };
  return {
    kind: "k" in parsed && (parsed.k === "r" || parsed.k === "a") ? parsed.k : null,
    marker: "i" in parsed && typeof parsed.i === "string" ? parsed.i : "",
  };
}
