import { createHash } from "node:crypto";
import { AUTOMATIC_KEY_PREFIX } from "../domain/redemption.js";

// An automatic promotion reaches a customer once: the redemption its first application takes
// carries an idempotency key derived from the promotion and the customer, so concurrent invoices
// of one customer take one redemption (reserve.lua's marker, then the ledger's unique key), and a
// later invoice finds it instead of taking another. The migration that introduced automatic
// redemptions derives the same key in SQL (Migration20261201130000_billing_lifecycle).

/** The idempotency key of a customer's redemption of an automatic promotion. */
export function automaticRedemptionKey(promotionId: string, customerId: string): string {
  return AUTOMATIC_KEY_PREFIX + createHash("sha256").update(`${promotionId}:${customerId}`, "utf8").digest("hex").slice(0, 40);
}
