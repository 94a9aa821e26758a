import type { Interceptor } from "@connectrpc/connect";
import { DomainError } from "../../domain/errors.js";
import type { Principal } from "../../store/api-keys.js";
import { principalKey } from "../context-keys.js";
import { requiredScope } from "../method-scopes.js";

// API key authentication and scope checks for every RPC except health and reflection.

export type KeyVerifier = (key: string) => Promise<Principal | null>;

/** Trusts a verified key for `ttlMs` so the hot path does not ask Postgres on every call. Unknown keys are never cached. */
export function cachedVerifier(verify: KeyVerifier, ttlMs: number, maxEntries = 10_000): KeyVerifier {
  if (ttlMs <= 0) return verify;
  const cache = new Map<string, { principal: Principal; until: number }>();
  return async (key) => {
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && hit.until > now) return hit.principal;
    const principal = await verify(key);
    cache.delete(key);
    if (principal) {
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value ?? "");
      cache.set(key, { principal, until: now + ttlMs });
    }
    return principal;
  };
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
    const principal = await verify(key);
    if (!principal) throw DomainError.of("unauthenticated", "invalid_api_key", "the API key is unknown or revoked");
    const scope = requiredScope(req.method.name);
    if (!principal.scopes.has(scope)) {
      throw DomainError.of("permission_denied", "missing_scope", `${req.method.name} needs an API key with scope "${scope}"`);
    }
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
