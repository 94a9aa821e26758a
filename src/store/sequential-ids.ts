import { randomBytes } from "node:crypto";

// UUIDv7-shaped ids (RFC 9562) that increase within one batch: 48 bits of Unix milliseconds, then
// a 74-bit counter seeded at random. Rows written together with one created_at then sort, by
// (created_at, id), in the order they were made — what keyset lists "oldest first" show.

/** A generator of strictly increasing UUIDs stamped with `at`. */
export function sequentialUuids(at: Date): () => string {
  const ms = BigInt(Math.max(0, at.getTime())) & 0xffff_ffff_ffffn;
  // 64 random bits in a 74-bit counter: billions of ids fit before it could carry into the timestamp.
  let counter = randomBytes(8).readBigUInt64BE();
  const randBMask = (1n << 62n) - 1n;
  return () => {
    counter += 1n;
    const hi = (ms << 16n) | (0x7n << 12n) | (counter >> 62n);
    const lo = (0b10n << 62n) | (counter & randBMask);
    const hex = hi.toString(16).padStart(16, "0") + lo.toString(16).padStart(16, "0");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  };
}
