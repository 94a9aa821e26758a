import type { EntityManager } from "@mikro-orm/postgresql";
import { CodeStore, type ResolvedCode } from "../store/code-store.js";
import { findTermsInForce, type TermsInForce } from "../store/promotion-views.js";

// In-process caches of what the hot path needs from Postgres: a promotion's terms in force and a
// code's settings. Each entry carries the promotion's terms_seq as read *before* the data, and
// reserve.lua refuses a reservation made with a seq older than the one in Redis (STALE_TERMS), so
// a cache is never trusted past a change another replica made: the caller drops the entry and
// reloads. A version scheduled for later ends the entry at its effective time.

export interface TermsEntry {
  view: TermsInForce;
  seq: bigint;
  /** ms since epoch when a scheduled version takes effect; Infinity when none. */
  until: number;
}

export interface CodeEntry {
  resolved: ResolvedCode;
  seq: bigint;
}

const MAX_ENTRIES = 10_000;

export class TermsCache {
  private readonly terms = new Map<string, TermsEntry>();
  /** Loads in flight: calls that miss together (every call in flight after a terms change) share one. */
  private readonly loading = new Map<string, Promise<TermsEntry | null>>();
  private readonly codes = new Map<string, CodeEntry>();

  /** The promotion's terms in force at `now`, or null when it does not exist for this tenant. */
  async load(em: EntityManager, organizationId: string, promotionId: string, now: Date): Promise<TermsEntry | null> {
    const key = `${organizationId}/${promotionId}`;
    const hit = this.terms.get(key);
    if (hit && now.getTime() < hit.until) return hit;
    const pending = this.loading.get(key);
    if (pending) return pending;
    const loaded: Promise<TermsEntry | null> = this.read(em, organizationId, promotionId, now).then((entry) => {
      // Kept only if forget() did not drop this load while it ran.
      if (this.loading.get(key) === loaded) {
        this.loading.delete(key);
        if (entry) remember(this.terms, key, entry);
      }
      return entry;
    }, (error: unknown) => {
      if (this.loading.get(key) === loaded) this.loading.delete(key);
      throw error;
    });
    this.loading.set(key, loaded);
    return loaded;
  }

  private async read(em: EntityManager, organizationId: string, promotionId: string, now: Date): Promise<TermsEntry | null> {
    const seq = await readSeq(em, organizationId, promotionId);
    if (seq === null) return null;
    const view = await findTermsInForce(em, organizationId, promotionId, now);
    if (!view) return null;
    return { view, seq, until: await nextVersionAt(em, promotionId, now) };
  }

  /**
   * A code's settings, with a seq read before them (`seq` gives the promotion's, cached or fresh).
   * A hit is returned as is: reserve.lua judges its seq.
   */
  async code(em: EntityManager, organizationId: string, code: string, seq: (promotionId: string) => Promise<bigint | null>): Promise<CodeEntry | null> {
    const key = `${organizationId}/${code.toUpperCase()}`;
    const hit = this.codes.get(key);
    if (hit) return hit;
    const first = await new CodeStore(em).resolve(organizationId, code);
    if (!first) {
      this.codes.delete(key);
      return null;
    }
    const held = await seq(first.promotionId);
    if (held === null) return null;
    // Read again after the seq, so the settings are at least as new as the seq they are checked with.
    const resolved = await new CodeStore(em).resolve(organizationId, code);
    if (!resolved || resolved.promotionId !== first.promotionId) return null;
    const entry = { resolved, seq: held };
    remember(this.codes, key, entry);
    return entry;
  }

  /** Drops what is cached about a promotion (and the codes pointing at it). */
  forget(organizationId: string, promotionId: string): void {
    this.terms.delete(`${organizationId}/${promotionId}`);
    this.loading.delete(`${organizationId}/${promotionId}`); // later callers read afresh
    for (const [key, entry] of this.codes) if (entry.resolved.promotionId === promotionId) this.codes.delete(key);
  }
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= MAX_ENTRIES) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}

async function readSeq(em: EntityManager, organizationId: string, promotionId: string): Promise<bigint | null> {
  const rows = await em
    .getConnection()
    .execute<{ terms_seq: string | number }[]>(`select terms_seq from promotions where id = ? and organization_id = ? and deleted_at is null`, [promotionId, organizationId], "all");
  return rows[0] ? BigInt(String(rows[0].terms_seq)) : null;
}

async function nextVersionAt(em: EntityManager, promotionId: string, now: Date): Promise<number> {
  const rows = await em.getConnection().execute<{ at: Date | string | null }[]>(
    `select min(effective_from) as at from promotion_versions
      where promotion_id = ? and state = 'published' and archived_reason is null and effective_from > ?`,
    [promotionId, now],
    "all",
  );
  const at = rows[0]?.at;
  return at == null ? Number.POSITIVE_INFINITY : new Date(at).getTime();
}
