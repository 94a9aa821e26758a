import { COUNTED_STATUSES } from "../domain/redemption.js";

// Named SQL fragments of the ledger's statuses, so "a counted redemption" means one thing in every
// query. A redemption row is ACTIVE, COMPLETED, RELEASED, ENDED or ABANDONED (the sweeper's
// tombstone: the reservation was given back and the real write can never land); an invoice
// application is APPLIED, REVERSED or ABANDONED.

/** A redemption that holds its slot in every limit (domain/redemption.ts COUNTED_STATUSES). */
export const COUNTED_REDEMPTION = `status in (${COUNTED_STATUSES.map((s) => `'${s}'`).join(", ")})`;
/** A redemption that applies to invoices. */
export const APPLYING_REDEMPTION = "status = 'ACTIVE'";
/** A redemption that was really made (whatever became of it since), as opposed to a tombstone. */
export const MADE_REDEMPTION = "status <> 'ABANDONED'";
/** An invoice application whose budget counts. */
export const APPLIED_APPLICATION = "status = 'APPLIED'";

/** The same fragments for a table alias (`r.status = 'ACTIVE'`). */
export const on = (alias: string, fragment: string): string => `${alias}.${fragment}`;
