import { normalizeCode } from "../domain/terms.js";
import type { ResolvedCode } from "../store/code-store.js";
import type { TermsInForce } from "../store/promotion-views.js";
import type { CatalogReads } from "./ports.js";

// In-process caches of what the hot path needs from Postgres: a promotion's terms in force and a
// code's settings. Each entry carries the promotion's terms_seq as read in the same snapshot as the
// data, and reserve.lua refuses a reservation made with a seq older than the one in Redis
// (STALE_TERMS), so a cache is never trusted past a change another replica made: the caller drops
// the entry and reloads. A version scheduled for later ends the entry at its effective time.

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
  async load(catalog: CatalogReads, organizationId: string, promotionId: string, now: Date): Promise<TermsEntry | null> {
    const key = `${organizationId}/${promotionId}`;
    const hit = this.terms.get(key);
    if (hit && now.getTime() < hit.until) return hit;
    const pending = this.loading.get(key);
    if (pending) return pending;
    const loaded: Promise<TermsEntry | null> = read(catalog, organizationId, promotionId, now).then((entry) => {
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

  /** A code's settings with the seq they were read at; a hit is returned as is (reserve.lua judges its seq). */
  async code(catalog: CatalogReads, organizationId: string, code: string): Promise<CodeEntry | null> {
    const key = `${organizationId}/${normalizeCode(code)}`;
    const hit = this.codes.get(key);
    if (hit) return hit;
    const resolved = await catalog.resolveCode(organizationId, code);
    if (!resolved) {
      this.codes.delete(key);
      return null;
    }
    const entry = { resolved, seq: resolved.termsSeq };
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

async function read(catalog: CatalogReads, organizationId: string, promotionId: string, now: Date): Promise<TermsEntry | null> {
  const found = await catalog.checkoutTerms(organizationId, promotionId, now);
  if (!found) return null;
  return { view: found.view, seq: found.seq, until: found.nextVersionAt?.getTime() ?? Number.POSITIVE_INFINITY };
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= MAX_ENTRIES) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}
