// Named SQL fragments of the ledger's statuses, so "a live redemption" means one thing in every
// query. A redemption row is ACTIVE, RELEASED or ABANDONED (the sweeper's tombstone: the
// reservation was given back and the real write can never land); an invoice application is
// APPLIED or ABANDONED.

/** A redemption that holds its slot in every limit and applies to invoices. */
export const LIVE_REDEMPTION = "status = 'ACTIVE'";
/** A redemption that was really made (live or given back since), as opposed to a tombstone. */
export const LIVE_REDEMPTION_OR_RELEASED = "status <> 'ABANDONED'";
/** An invoice application whose budget counts. */
export const APPLIED_APPLICATION = "status = 'APPLIED'";

/** The same fragments for a table alias (`r.status = 'ACTIVE'`). */
export const on = (alias: string, fragment: string): string => `${alias}.${fragment}`;
