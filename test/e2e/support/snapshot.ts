// Every row of every table in the test database and every Redis key under the app's prefix, as
// text, so a test can say "nothing was written" byte for byte, or "nothing outside one tenant".
import { Redis } from "ioredis";
import type { TestApp } from "../../support/app.js";

export interface Snapshot {
  /** table name -> every row as `to_jsonb(row)::text`, sorted. */
  tables: Record<string, string[]>;
  /** key -> its type and value, members sorted where Redis keeps no order. */
  redis: Record<string, string>;
}

/** A Redis connection for snapshots (the app's own client may be a cluster client). */
export function snapshotRedis(): Redis {
  return new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { lazyConnect: false });
}

export function redisPrefix(t: TestApp): string {
  return `test:${t.db.name}:`;
}

/** Settles queued ledger confirms first, so what is on its way is in the picture. */
export async function takeSnapshot(t: TestApp, redis: Redis): Promise<Snapshot> {
  await t.app.counters.flushConfirms();
  const conn = t.app.orm.em.fork().getConnection();
  const names = await conn.execute<{ table_name: string }[]>(
    `select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`,
  );
  const tables: Record<string, string[]> = {};
  for (const { table_name: name } of names) {
    // Where the webhook dispatcher stands: it moves by itself as events are fanned out (like the
    // rate-limit buckets below, progress of background work, not data of any tenant).
    if (name === "webhook_dispatch_cursor") continue;
    const rows = await conn.execute<{ row: string }[]>(`select to_jsonb(t)::text as row from "${name}" t order by 1`);
    tables[name] = rows.map((r) => r.row);
  }
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", `${redisPrefix(t)}*`, "COUNT", 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  const values: Record<string, string> = {};
  // Rate-limit buckets ({k:<key id>}:rl:…) refill and expire with the clock alone: throttling
  // state, not data, so they would differ between two snapshots with no call in between.
  for (const key of keys.sort().filter((k) => !/\{k:[^}]*\}:rl:/.test(k))) {
    const type = await redis.type(key);
    let value: unknown;
    if (type === "string") value = await redis.get(key);
    else if (type === "hash") value = Object.entries(await redis.hgetall(key)).sort(([a], [b]) => a.localeCompare(b));
    else if (type === "zset") value = await redis.zrange(key, "0", "-1", "WITHSCORES");
    else if (type === "set") value = (await redis.smembers(key)).sort();
    else if (type === "list") value = await redis.lrange(key, 0, -1);
    else continue; // gone between SCAN and TYPE
    values[key] = `${type} ${JSON.stringify(value)}`;
  }
  return { tables, redis: values };
}

/**
 * The snapshot without what the given organizations own: rows carrying their organization_id,
 * their organization rows, discount lines of their invoice applications, and the Redis keys of
 * their promotions. Rows whose owner cannot be told stay in, so they are compared exactly.
 */
export function withoutOrganizations(s: Snapshot, orgIds: ReadonlySet<string>): Snapshot {
  const parse = (row: string) => JSON.parse(row) as Record<string, unknown>;
  const ownerOf = (table: string, row: Record<string, unknown>): unknown => (table === "organizations" ? row.id : row.organization_id);
  const theirApplications = new Set((s.tables.invoice_applications ?? []).map(parse).filter((r) => orgIds.has(String(r.organization_id))).map((r) => String(r.id)));
  // A delivery attempt is the tenant's through its delivery (webhook_attempts has no organization_id).
  const theirDeliveries = new Set((s.tables.webhook_deliveries ?? []).map(parse).filter((r) => orgIds.has(String(r.organization_id))).map((r) => String(r.id)));
  const theirPromotions = new Set((s.tables.promotions ?? []).map(parse).filter((r) => orgIds.has(String(r.organization_id))).map((r) => String(r.id)));
  const tables: Record<string, string[]> = {};
  for (const [table, rows] of Object.entries(s.tables)) {
    tables[table] = rows.filter((text) => {
      const row = parse(text);
      if (orgIds.has(String(ownerOf(table, row)))) return false;
      if (typeof row.delivery_id === "string" && theirDeliveries.has(row.delivery_id)) return false;
      return !(typeof row.application_id === "string" && theirApplications.has(row.application_id));
    });
  }
  const redis: Record<string, string> = {};
  for (const [key, value] of Object.entries(s.redis)) {
    const promotionId = /\{p:([^}]*)\}/.exec(key)?.[1];
    if (promotionId === undefined || !theirPromotions.has(promotionId)) redis[key] = value;
  }
  return { tables, redis };
}

/** What differs, one line per table row or key (at most `max` lines), for a readable failure. */
export function snapshotDiff(before: Snapshot, after: Snapshot, max = 20): string[] {
  const out: string[] = [];
  const tables = new Set([...Object.keys(before.tables), ...Object.keys(after.tables)]);
  for (const table of tables) {
    const was = new Set(before.tables[table] ?? []);
    const now = new Set(after.tables[table] ?? []);
    for (const row of now) if (!was.has(row)) out.push(`+ ${table} ${row}`);
    for (const row of was) if (!now.has(row)) out.push(`- ${table} ${row}`);
  }
  const keys = new Set([...Object.keys(before.redis), ...Object.keys(after.redis)]);
  for (const key of keys) {
    if (before.redis[key] !== after.redis[key]) out.push(`~ redis ${key}: ${before.redis[key] ?? "(none)"} -> ${after.redis[key] ?? "(none)"}`);
  }
  return out.slice(0, max);
}
