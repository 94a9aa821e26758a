// The one page-cursor codec every List RPC uses. A cursor is base64url of a compact JSON body
// {"v":1,"k":kind,"p":[...position]}: opaque to clients, versioned so the format can change, and
// tagged with the list it came from so a cursor of one list is refused by another.
// It is not signed: the decoded position is client-controlled, so callers validate its parts
// (a UUID, a timestamp) like any other input before they use them.

import { isUuid } from "../domain/checks.js";
import { DomainError } from "../domain/errors.js";

const FORMAT_VERSION = 1;
// Far beyond any cursor this service issues; stops a huge string before it is decoded.
const MAX_CURSOR_LENGTH = 4096;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** The cursor that resumes list `kind` after the row at `position` (e.g. [created_at, id]). */
export function encodeCursor(kind: string, position: readonly string[]): string {
  return Buffer.from(JSON.stringify({ v: FORMAT_VERSION, k: kind, p: position }), "utf8").toString("base64url");
}

/**
 * The position inside a cursor that `encodeCursor(kind, …)` issued. Anything else — garbage, a
 * cursor of another list or format version — is INVALID_ARGUMENT (`invalid_cursor`) at `param`.
 * An empty cursor means "first page"; callers check for it and do not call this.
 */
export function decodeCursor(kind: string, cursor: string, param = "cursor"): readonly string[] {
  const body = readBody(cursor);
  if (body === null) {
    throw invalid(param, "cursor is not one this service issued; pass next_cursor from the previous page unchanged");
  }
  if (body.v !== FORMAT_VERSION) {
    throw invalid(param, "cursor is from an older format that is no longer supported; start again from the first page");
  }
  if (body.k !== kind) {
    throw invalid(param, "cursor was issued by a different list; pass the next_cursor this list returned");
  }
  return Object.freeze([...body.p]);
}

interface CursorBody {
  v: number;
  k: string;
  p: string[];
}

function readBody(cursor: string): CursorBody | null {
  if (cursor.length > MAX_CURSOR_LENGTH || !BASE64URL.test(cursor)) return null;
  const bytes = Buffer.from(cursor, "base64url");
  // Node's decoder skips what it cannot read; insisting on the canonical encoding rejects that.
  if (bytes.toString("base64url") !== cursor) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return null;
  }
  return isCursorBody(parsed) ? parsed : null;
}

function isCursorBody(value: unknown): value is CursorBody {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const { v, k, p } = value as Record<string, unknown>;
  return (
    typeof v === "number" &&
    typeof k === "string" &&
    Array.isArray(p) &&
    p.every((part): part is string => typeof part === "string")
  );
}

function invalid(param: string, message: string): DomainError {
  return new DomainError("invalid_argument", [{ param, code: "invalid_cursor", message }]);
}

/** A (created_at, id) keyset position — what every newest- or oldest-first list pages by. */
export interface TimeIdPosition {
  createdAt: Date;
  id: string;
}

/** The position in a (created_at, id) cursor of list `kind`; null for "" (the first page). */
export function decodeTimeIdCursor(kind: string, cursor: string): TimeIdPosition | null {
  if (cursor === "") return null;
  const position = decodeCursor(kind, cursor);
  const [createdAt, id] = position;
  const date = new Date(createdAt ?? "");
  if (position.length !== 2 || id === undefined || Number.isNaN(date.getTime()) || !isUuid(id)) {
    throw invalid("cursor", "cursor is not one this service issued; pass next_cursor from the previous page unchanged");
  }
  return { createdAt: date, id };
}
