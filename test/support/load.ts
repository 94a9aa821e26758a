// Drives many calls with a fixed number in flight, retrying what the service calls retryable, and
// reads a promotion's truth from the ledger, Redis and the API to compare them.
import { Code, ConnectError } from "@connectrpc/connect";
import { Redis } from "ioredis";
import type { EntityManager } from "@mikro-orm/postgresql";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { promotionKeys } from "../../src/counters/keys.js";
import type { RedisClient } from "../../src/counters/redis.js";
import { APPLIED_APPLICATION, COUNTED_REDEMPTION } from "../../src/store/ledger-sql.js";

export interface LoadResult {
  ok: number;
  /** Refusals by ErrorDetail.code (expected ones: limits reached). */
  refused: Record<string, number>;
  /** Calls that failed with a retryable code and were retried. */
  retried: number;
  /** The retries by ErrorDetail.code (e.g. counters_busy while a rebuild runs; counters_unavailable when a Redis call failed). */
  retriedBy: Record<string, number>;
  /** Anything else: must stay empty. */
  unexpected: string[];
}

const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Aborted, Code.Canceled, Code.Unknown]);

/** Runs `call(i)` for i in [from, to) with `inFlight` at once; retries retryable failures (same i, same idempotency key). */
export async function runLoad(from: number, to: number, inFlight: number, call: (i: number) => Promise<unknown>, maxRetries = 200): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, refused: {}, retried: 0, retriedBy: {}, unexpected: [] };
  let next = from;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= to) return;
      for (let attempt = 0; ; attempt++) {
        try {
          await call(i);
          result.ok++;
          break;
        } catch (error) {
          const e = ConnectError.from(error);
          const detail = e.findDetails(ErrorDetailSchema)[0];
          if ((e.code === Code.ResourceExhausted || e.code === Code.FailedPrecondition) && detail) {
            result.refused[detail.code] = (result.refused[detail.code] ?? 0) + 1;
            break;
          }
          if (RETRYABLE.has(e.code) && attempt < maxRetries) {
            result.retried++;
            const reason = detail?.code ?? Code[e.code];
            result.retriedBy[reason] = (result.retriedBy[reason] ?? 0) + 1;
            await new Promise((r) => setTimeout(r, 20 + Math.min(attempt, 10) * 20));
            continue;
          }
          result.unexpected.push(`${Code[e.code]}: ${e.rawMessage}`);
          break;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return result;
}

export interface Truth {
  /** Redemptions that hold a slot (ACTIVE, COMPLETED, ENDED). */
  ledger: number;
  ledgerBudget: bigint;
  redis: number | null;
  redisBudget: bigint | null;
  pending: number;
  /** Customers holding more counted redemptions than `perCustomer`. */
  overLimitCustomers: number;
  /** Customers whose Redis count differs from the ledger's. */
  customerMismatches: number;
}

/**
 * `redis` is a URL (a client is opened and closed here) or a client the caller owns, e.g. a Redis
 * Cluster client: every key read here belongs to one promotion, so all share one slot.
 */
export async function truth(em: EntityManager, redis: string | RedisClient, prefix: string, promotionId: string, perCustomer = 1): Promise<Truth> {
  const conn = em.getConnection();
  const [ledger] = await conn.execute<{ n: string }[]>(`select count(*) as n from redemptions where promotion_id = ? and ${COUNTED_REDEMPTION}`, [promotionId]);
  const [budget] = await conn.execute<{ b: string }[]>(
    `select coalesce(sum(budget_consumed_minor), 0) as b from invoice_applications where promotion_id = ? and ${APPLIED_APPLICATION}`,
    [promotionId],
  );
  const over = await conn.execute<{ n: string }[]>(
    `select count(*) as n from (select customer_id from redemptions where promotion_id = ? and ${COUNTED_REDEMPTION} group by customer_id having count(*) > ?) x`,
    [promotionId, perCustomer],
  );
  const perCustomerLedger = await conn.execute<{ customer_id: string; n: string }[]>(
    `select customer_id, count(*) as n from redemptions where promotion_id = ? and ${COUNTED_REDEMPTION} group by customer_id`,
    [promotionId],
  );
  const keys = promotionKeys(prefix, promotionId);
  const client = typeof redis === "string" ? new Redis(redis) : redis;
  try {
    const [n, b] = await client.hmget(keys.state, "n", "b");
    const pending = await client.zcard(keys.pending);
    const perCustomerRedis = await client.hgetall(keys.customers);
    const ledgerMap = new Map(perCustomerLedger.map((r) => [r.customer_id, Number(r.n)]));
    let customerMismatches = 0;
    if (n != null) {
      for (const [c, count] of ledgerMap) if (Number(perCustomerRedis[c] ?? 0) !== count) customerMismatches++;
      for (const [c, count] of Object.entries(perCustomerRedis)) if (!ledgerMap.has(c) && Number(count) !== 0) customerMismatches++;
    }
    return {
      ledger: Number(ledger?.n ?? 0),
      ledgerBudget: BigInt(String(budget?.b ?? 0)),
      redis: n == null ? null : Number(n),
      redisBudget: b == null ? null : BigInt(b),
      pending,
      overLimitCustomers: Number(over[0]?.n ?? 0),
      customerMismatches,
    };
  } finally {
    if (typeof redis === "string") client.disconnect();
  }
}
