// Responses that fit every client. grpc-js, grpc-go and grpcio refuse a response over 4 MiB by
// default (RESOURCE_EXHAUSTED on the client, after the server did all the work), so a page stops at
// a byte budget as well as at `limit`, and a request that would make a promotion too big to carry
// is refused up front. Budgets leave room for the envelope, JSON's longer spelling and gRPC-Web's
// base64.
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { DomainError } from "../domain/errors.js";
import { decodeCursor, encodeCursor, type TimeIdPosition } from "./cursor.js";
import { isUuid } from "../domain/checks.js";

/** The most bytes of items one page of any list carries. */
export const PAGE_BYTES = 2 * 1024 * 1024;
/** The most bytes of CreatePromotionCodes' `code_values`, and of its `codes` in full. */
export const CREATED_VALUES_BYTES = 2 * 1024 * 1024;
export const CREATED_CODES_BYTES = 1024 * 1024;
/** The most a CreatePromotion or UpdatePromotion request may weigh: a promotion then always fits a response. */
export const MAX_TERMS_REQUEST_BYTES = 1024 * 1024;

/** What one element of a repeated message field costs on the wire: its bytes, a tag and a length. */
export function messageBytes<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): number {
  return toBinary(schema, message).byteLength + 6;
}

/** How many of the leading `costs` fit `budget` together; at least one, so a page always moves on. */
export function fitting(costs: readonly number[], budget: number): number {
  let used = 0;
  for (const [i, cost] of costs.entries()) {
    used += cost;
    if (used > budget && i > 0) return i;
  }
  return costs.length;
}

/**
 * One page of a (created_at, id) list from `rows` (fetched with limit + 1): the messages that fit
 * both `limit` and PAGE_BYTES, and the next_cursor ("" on the last page). `scope` rides along in the
 * cursor when the list is narrowed by something a later page must keep (a batch of codes).
 */
export function sizedPage<T extends TimeIdPosition, Desc extends DescMessage>(
  kind: string,
  rows: readonly T[],
  limit: number,
  schema: Desc,
  toProto: (row: T) => MessageShape<Desc>,
  scope: string | null = null,
): { messages: MessageShape<Desc>[]; nextCursor: string } {
  const candidates = rows.slice(0, limit).map(toProto);
  const shown = fitting(
    candidates.map((m) => messageBytes(schema, m)),
    PAGE_BYTES,
  );
  const last = rows[shown - 1];
  const more = rows.length > shown && last !== undefined;
  const position = more ? [last.createdAt.toISOString(), last.id, ...(scope === null ? [] : [scope])] : [];
  return { messages: candidates.slice(0, shown), nextCursor: more ? encodeCursor(kind, position) : "" };
}

/** A (created_at, id) cursor that may carry a scope (see sizedPage); both null for the first page. */
export function decodeScopedCursor(kind: string, cursor: string): { after: TimeIdPosition | null; scope: string | null } {
  if (cursor === "") return { after: null, scope: null };
  const position = decodeCursor(kind, cursor);
  const [createdAt, id, scope] = position;
  const date = new Date(createdAt ?? "");
  if (position.length < 2 || position.length > 3 || id === undefined || Number.isNaN(date.getTime()) || !isUuid(id) || (scope !== undefined && !isUuid(scope))) {
    throw DomainError.of("invalid_argument", "invalid_cursor", "cursor is not one this service issued; pass next_cursor from the previous page unchanged", "cursor");
  }
  return { after: { createdAt: date, id }, scope: scope ?? null };
}

/**
 * Rows for one sized page, fetched `chunk` at a time so a page of large rows never reads more than
 * it can show: stops at `want` rows, or once their cost has passed `budget` (the row that crosses it
 * is kept, so the caller knows more follow).
 */
export async function gatherRows<T extends TimeIdPosition>(
  fetch: (after: TimeIdPosition | null, limit: number) => Promise<T[]>,
  after: TimeIdPosition | null,
  want: number,
  cost: (row: T) => number,
  budget: number,
  chunk = 100,
): Promise<T[]> {
  const rows: T[] = [];
  let used = 0;
  let from = after;
  while (rows.length < want && used <= budget) {
    const n = Math.min(chunk, want - rows.length);
    const got = await fetch(from, n);
    for (const row of got) {
      rows.push(row);
      used += cost(row);
      if (used > budget) break;
    }
    const last = got.at(-1);
    if (got.length < n || last === undefined) break;
    from = { createdAt: last.createdAt, id: last.id };
  }
  return rows;
}

/** Refuses a request too large for the promotion it makes to fit a response (INVALID_ARGUMENT `too_large`). */
export function checkTermsRequestSize<Desc extends DescMessage>(schema: Desc, request: MessageShape<Desc>): void {
  const bytes = toBinary(schema, request).byteLength;
  if (bytes > MAX_TERMS_REQUEST_BYTES) {
    throw DomainError.of(
      "invalid_argument",
      "too_large",
      `the request carries ${bytes} bytes of terms; a promotion may take at most ${MAX_TERMS_REQUEST_BYTES} (fewer phases, conditions or ids per list)`,
    );
  }
}
