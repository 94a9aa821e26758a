import type { Interceptor } from "@connectrpc/connect";
import { DomainError } from "../../domain/errors.js";

// A NUL character is valid UTF-8 and valid protobuf, but Postgres cannot store it in text and
// answers with a protocol error. One guard refuses it in any string of any request, naming the
// field, so no handler has to remember (and a bad byte is never mistaken for an outage).

export function nulGuardInterceptor(): Interceptor {
  return (next) => async (req) => {
    // The plain search runs on every call; the path is worked out only for a request that has one.
    if (!req.stream && containsNul(req.message)) {
      const path = findNul(req.message, "");
      if (path !== null) {
        throw DomainError.of("invalid_argument", "invalid_character", `${path || "request"} contains a NUL character`, path);
      }
    }
    return next(req);
  };
}

/** True when any string (or object key) under `value` holds U+0000; builds nothing on the way. */
function containsNul(value: unknown): boolean {
  if (typeof value === "string") return value.includes("\u0000");
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return false;
  if (Array.isArray(value)) return value.some(containsNul);
  for (const key in value) {
    if (key.includes("\u0000") || containsNul((value as Record<string, unknown>)[key])) return true;
  }
  return false;
}

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The field path (as a client writes it) of the first string holding U+0000, or null. */
function findNul(value: unknown, path: string): string | null {
  if (typeof value === "string") return value.includes("\u0000") ? path : null;
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return null;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = findNul(item, `${path}[${i}]`);
      if (found !== null) return found;
    }
    return null;
  }
  const record = value as Record<string, unknown>;
  if ("$typeName" in record) {
    for (const [key, field] of Object.entries(record)) {
      if (key.startsWith("$")) continue;
      // A oneof ({case, value}) is named by its case alone, as clients write it.
      const oneof = field !== null && typeof field === "object" && !("$typeName" in field) && "case" in field;
      const found = findNul(field, oneof ? path : path ? `${path}.${snake(key)}` : snake(key));
      if (found !== null) return found;
    }
    return null;
  }
  if ("case" in record && "value" in record) {
    return typeof record.case === "string" ? findNul(record.value, path ? `${path}.${snake(record.case)}` : snake(record.case)) : null;
  }
  // A map field: its keys are strings too.
  for (const [key, item] of Object.entries(record)) {
    if (key.includes("\u0000")) return path;
    const found = findNul(item, `${path}[${JSON.stringify(key)}]`);
    if (found !== null) return found;
  }
  return null;
}
