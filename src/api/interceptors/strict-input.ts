import type { DescField, DescMessage } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { DomainError } from "../../domain/errors.js";

// Strict input over the binary protocols. protobuf-es keeps a field number the contract does not
// have in `$unknown` and an enum number it does not name as the bare number, and a handler would
// never see either: a client built from another version of the contract would have its setting
// silently dropped (a limit, a budget behaviour). Both are INVALID_ARGUMENT naming the field.
// JSON gets the same from the JSON reader itself (unknown keys and enum names are errors there;
// src/api/json-problems.ts names the field), and an enum number sent as JSON is caught here.

export function strictInputInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) {
      const found = firstUnknown(req.method.input, req.message, "");
      if (found !== null) throw DomainError.of("invalid_argument", found.code, found.message, found.param);
    }
    return next(req);
  };
}

interface Unknown {
  param: string;
  code: "unknown_field" | "invalid_enum";
  message: string;
}

const join = (path: string, name: string): string => (path === "" ? name : `${path}.${name}`);

/** The first unknown field number or enum number under `message`, by field path; null when there is none. */
function firstUnknown(schema: DescMessage, message: unknown, path: string): Unknown | null {
  if (typeof message !== "object" || message === null) return null;
  const record = message as Record<string, unknown>;
  const unknown = record.$unknown;
  if (Array.isArray(unknown) && unknown.length > 0) {
    const no = Number((unknown[0] as { no?: unknown }).no);
    return {
      param: join(path, `#${no}`),
      code: "unknown_field",
      message: `field ${no} is not a field of ${schema.typeName} in this server's contract; the request is refused rather than have it ignored`,
    };
  }
  for (const member of schema.members) {
    if (member.kind === "oneof") {
      const chosen = record[member.localName] as { case?: string; value?: unknown } | undefined;
      const field = member.fields.find((f) => f.localName === chosen?.case);
      const found = field === undefined ? null : inField(field, chosen?.value, join(path, field.name));
      if (found !== null) return found;
      continue;
    }
    const found = inField(member, record[member.localName], join(path, member.name));
    if (found !== null) return found;
  }
  return null;
}

function inField(field: DescField, value: unknown, at: string): Unknown | null {
  if (value === undefined || value === null) return null;
  switch (field.fieldKind) {
    case "enum":
      return enumValue(field, value, at);
    case "message":
      return firstUnknown(field.message, value, at);
    case "list":
      if (!Array.isArray(value) || field.listKind === "scalar") return null;
      for (const [i, item] of value.entries()) {
        const found = field.listKind === "enum" ? enumValue(field, item, `${at}[${i}]`) : firstUnknown(field.message, item, `${at}[${i}]`);
        if (found !== null) return found;
      }
      return null;
    case "map":
      if (field.mapKind === "scalar") return null;
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        const entry = `${at}[${JSON.stringify(key)}]`;
        const found = field.mapKind === "enum" ? enumValue(field, item, entry) : firstUnknown(field.message, item, entry);
        if (found !== null) return found;
      }
      return null;
    default:
      return null;
  }
}

function enumValue(field: DescField, value: unknown, at: string): Unknown | null {
  const desc = field.enum;
  if (desc === undefined || typeof value !== "number" || desc.values.some((v) => v.number === value)) return null;
  return {
    param: at,
    code: "invalid_enum",
    message: `${value} is not a value of ${desc.typeName} (one of ${desc.values.map((v) => `${v.name} = ${v.number}`).join(", ")})`,
  };
}
