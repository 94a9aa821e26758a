import { createHash } from "node:crypto";

/**
 * A digest of a request for idempotency checks ("the same key with the same request"): canonical
 * JSON (object keys sorted, bigints as digits) hashed with SHA-256.
 */
export function requestHash(value: unknown): string {
  const canonical = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return v.toString();
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
  return createHash("sha256").update(canonical).digest("hex");
}
