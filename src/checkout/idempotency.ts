import { DomainError } from "../domain/errors.js";
import type { RedeemRequest } from "../domain/redemption.js";
import { requestHash } from "../domain/request-hash.js";
import { normalizeCode } from "../domain/terms.js";

// What makes two checkout requests "the same" for idempotency, and the one check that a retry is.

/** A redeem request's digest: the code in its canonical form, the idempotency key itself left out. */
export function redeemRequestHash(input: RedeemRequest): string {
  return requestHash({ ...input, code: normalizeCode(input.code), idempotencyKey: undefined });
}

/** An ApplyPromotions request's digest (the whole request: invoice_id included). */
export function invoiceRequestHash(input: object): string {
  return requestHash(input);
}

/**
 * What a stored answer says to a retry: the answer itself when the request is the same, else
 * ALREADY_EXISTS naming the key that was reused.
 */
export function sameRequest<T>(stored: T, storedHash: string | null, hash: string, reused: { code: string; message: string; param: string }): T {
  if (storedHash !== hash) throw DomainError.of("already_exists", reused.code, reused.message, reused.param);
  return stored;
}
