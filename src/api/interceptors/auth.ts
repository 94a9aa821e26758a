import type { Interceptor } from "@connectrpc/connect";
import { LocalBuckets, type Bucket } from "../../counters/rate-limiter.js";
import { DomainError } from "../../domain/errors.js";
import type { Principal } from "../../store/api-keys.js";
import { clientAddressKey, principalKey } from "../context-keys.js";
import { requiredScope } from "../method-scopes.js";

// API key authentication and scope checks for every RPC except health and reflection.
//
// Asking Postgres about a key is the one thing an unauthenticated caller can make the service do,
// so it is rationed: a key verified lately is trusted for `ttlMs` (a revoked key stops working
// within that time); an unknown key is remembered as unknown for UNKNOWN_REMEMBERED_MS (keys are
// random: one is never presented before it exists, and a revoked one never comes back); one key is
// looked up by one query however many calls present it at once; and the keys a client address
// presents that are not known to be valid draw on a budget of that address (a token per lookup,
// given back when the key turns out valid). An address past its budget is refused without a query
// until it refills.

/** Looks a presented key up in the store (one query). */
export type KeyLookup = (key: string) => Promise<Principal | null>;
/** The principal behind a key presented from `clientAddress`; null when unknown or revoked; throws when the address may not ask now. */
export type KeyVerifier = (key: string, clientAddress: string) => Promise<Principal | null>;

export interface VerifierOptions {
  /** How long a verified key is trusted (0 = ask every time). */
  ttlMs: number;
  /** Lookups of keys not known valid, per client address: refill per minute and burst (0 = no limit). */
  perAddressPerMinute: number;
  perAddressBurst: number;
  /** Entries of each cache (known keys, unknown keys, address buckets), least recently used dropped first. */
  maxEntries?: number;
  /** An address was refused (for a rate-limited log line). */
  onAddressLimited?: (clientAddress: string) => void;
}

/** How long a key once verified is exempt from its address's budget (it is still looked up again after ttlMs). */
const VALID_REMEMBERED_MS = 3_600_000;
/** How long an unknown key is answered as unknown without a query. */
const UNKNOWN_REMEMBERED_MS = 600_000;

export function keyVerifier(lookup: KeyLookup, opts: VerifierOptions): KeyVerifier {
  const max = opts.maxEntries ?? 10_000;
  const valid = new Bounded<{ principal: Principal; until: number; seenUntil: number }>(max);
  const unknown = new Bounded<number>(max);
  const inFlight = new Map<string, Promise<Principal | null>>();
  const budgets = new LocalBuckets(max);
  const limited = opts.perAddressPerMinute > 0 && opts.perAddressBurst > 0;
  const bucket = (address: string): Bucket => ({ key: address, perSecond: opts.perAddressPerMinute / 60, burst: opts.perAddressBurst, take: 1 });

  const ask = async (key: string, address: string, now: number): Promise<Principal | null> => {
    const known = valid.get(key);
    // Only keys not known to be valid spend the address's budget.
    const charged = limited && (known === undefined || known.seenUntil <= now);
    if (charged) {
      const decision = budgets.run("take", [bucket(address)]);
      if (!decision.admitted) {
        opts.onAddressLimited?.(address);
        const message = `too many unknown API keys were presented from this address; retry in ${decision.retryAfterMs} ms`;
        throw new DomainError("resource_exhausted", [{ param: "", code: "too_many_invalid_keys", message }], { retryAfterMs: decision.retryAfterMs });
      }
    }
    const principal = await lookup(key);
    const at = Date.now();
    if (principal) {
      if (charged) budgets.run("give", [bucket(address)]);
      unknown.delete(key);
      valid.set(key, { principal, until: at + opts.ttlMs, seenUntil: at + VALID_REMEMBERED_MS });
    } else {
      valid.delete(key);
      unknown.set(key, at + UNKNOWN_REMEMBERED_MS);
    }
    return principal;
  };

  return async (key, clientAddress) => {
    const now = Date.now();
    const hit = valid.get(key);
    if (hit && hit.until > now) return hit.principal;
    const miss = unknown.get(key);
    if (miss !== undefined && miss > now) return null;
    // Calls presenting the same key at once share one lookup.
    const pending = inFlight.get(key);
    if (pending) return pending;
    const lookingUp = ask(key, clientAddress, now).finally(() => inFlight.delete(key));
    inFlight.set(key, lookingUp);
    return lookingUp;
  };
}

/** A Map that keeps at most `max` entries, dropping the least recently set. */
class Bounded<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    return this.map.get(key);
  }
  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value ?? "");
  }
  delete(key: string): void {
    this.map.delete(key);
  }
}

/** The key a request presents, from `authorization: Bearer <key>` or `x-api-key: <key>`. */
export function presentedKey(headers: Headers): string | null {
  const auth = headers.get("authorization");
  if (auth) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return match?.[1] ?? null;
  }
  return headers.get("x-api-key")?.trim() || null;
}

export function authInterceptor(verify: KeyVerifier, publicServices: ReadonlySet<string>): Interceptor {
  return (next) => async (req) => {
    if (publicServices.has(req.service.typeName)) return next(req);
    const key = presentedKey(req.header);
    if (key === null) {
      if (/^\s*(?!bearer\s)\S/i.test(req.header.get("authorization") ?? "")) {
        throw DomainError.of("unauthenticated", "bearer_required", "the authorization header must read `Bearer <key>`: add `Bearer ` before the key (or send it as `x-api-key: <key>`)");
      }
      throw DomainError.of("unauthenticated", "missing_api_key", "an API key is required: send `authorization: Bearer <key>` or `x-api-key: <key>`");
    }
    const principal = await verify(key, req.contextValues.get(clientAddressKey));
    if (!principal) throw DomainError.of("unauthenticated", "invalid_api_key", "the API key is unknown or revoked");
    const scope = requiredScope(req.method.name);
    if (!principal.scopes.has(scope)) {
      throw DomainError.of("permission_denied", "missing_scope", `${req.method.name} needs an API key with scope "${scope}"`);
    }
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
