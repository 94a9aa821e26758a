// Converters for raw SQL row values (the driver may hand back a Date or a string, a bigint column
// as a string or a number): null and undefined stay null.

export const asDate = (v: unknown): Date | null => (v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v)));
export const asBig = (v: unknown): bigint | null => (v === null || v === undefined ? null : BigInt(String(v)));
