// Where a JSON request body goes wrong, as a field path a client can act on. protobuf-es refuses an
// unknown key, an unknown enum name or a wrong type, but names only the message it was decoding;
// this walks the same JSON with the same descriptors to find the first offending field:
// `effects[0].percentage_discount.percent`, with a suggestion when a key is a near miss.
import { fromJson, type DescEnum, type DescField, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { nearest } from "./near-miss.js";

export interface JsonProblem {
  /** Field path as clients write it (proto names; a key the schema lacks as it was sent). */
  param: string;
  code: "unknown_field" | "invalid_enum" | "invalid_value";
  message: string;
}

/** The first problem fromJson would stumble on in `json`, or null when none is found field by field. */
export function findJsonProblem(schema: DescMessage, json: JsonValue): JsonProblem | null {
  return problemIn(schema, json, "", 0);
}

const MAX_DEPTH = 32;

function join(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

function isObject(value: JsonValue): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Well-known types have JSON forms of their own (a Timestamp is a string): judged whole, never walked. */
function isWellKnown(schema: DescMessage): boolean {
  return schema.typeName.startsWith("google.protobuf.");
}

function problemIn(schema: DescMessage, json: JsonValue, path: string, depth: number): JsonProblem | null {
  if (depth > MAX_DEPTH || isWellKnown(schema) || !isObject(json)) return judgedWhole(schema, json, path);
  for (const [key, value] of Object.entries(json)) {
    const field = schema.fields.find((f) => f.jsonName === key || f.name === key);
    if (field === undefined) return unknownKey(schema, key, path);
    const at = join(path, field.name);
    const found = problemInField(schema, field, key, value, at, depth);
    if (found !== null) return found;
  }
  return null;
}

function problemInField(parent: DescMessage, field: DescField, key: string, value: JsonValue, at: string, depth: number): JsonProblem | null {
  if (value === null) return null;
  switch (field.fieldKind) {
    case "message":
      return problemIn(field.message, value, at, depth + 1);
    case "list":
      if (!Array.isArray(value)) return singleField(parent, key, value, at, field);
      for (const [i, item] of value.entries()) {
        const found =
          field.listKind === "message" ? problemIn(field.message, item, `${at}[${i}]`, depth + 1) : singleField(parent, key, [item], `${at}[${i}]`, field);
        if (found !== null) return found;
      }
      return null;
    case "map":
      if (!isObject(value)) return singleField(parent, key, value, at, field);
      for (const [k, item] of Object.entries(value)) {
        const entryAt = `${at}[${JSON.stringify(k)}]`;
        const found = field.mapKind === "message" ? problemIn(field.message, item, entryAt, depth + 1) : singleField(parent, key, { [k]: item }, entryAt, field);
        if (found !== null) return found;
      }
      return null;
    default:
      return singleField(parent, key, value, at, field);
  }
}

/** Decodes `{ key: value }` alone as `parent`: the field's own verdict, wherever else the body is wrong. */
function singleField(parent: DescMessage, key: string, value: JsonValue, at: string, field: DescField): JsonProblem | null {
  try {
    fromJson(parent, { [key]: value });
    return null;
  } catch (error) {
    const enumOf = enumOfField(field);
    if (enumOf !== undefined && typeof firstScalar(value) === "string") {
      const names = enumOf.values.map((v) => v.name);
      return {
        param: at,
        code: "invalid_enum",
        message: `${JSON.stringify(firstScalar(value))} is not a value of ${enumOf.typeName} (one of ${names.join(", ")})`,
      };
    }
    return { param: at, code: "invalid_value", message: reason(error) };
  }
}

function judgedWhole(schema: DescMessage, json: JsonValue, path: string): JsonProblem | null {
  try {
    fromJson(schema, json);
    return null;
  } catch (error) {
    return { param: path, code: "invalid_value", message: reason(error) };
  }
}

function unknownKey(schema: DescMessage, key: string, path: string): JsonProblem {
  const near = nearest(key, schema.fields, (f) => [f.name, f.jsonName]);
  const hint = near === null ? "" : `; did you mean ${near.name}?`;
  return { param: join(path, key), code: "unknown_field", message: `${JSON.stringify(key)} is not a field of ${schema.typeName}${hint}` };
}

function enumOfField(field: DescField): DescEnum | undefined {
  if (field.fieldKind === "enum") return field.enum;
  if (field.fieldKind === "list" && field.listKind === "enum") return field.enum;
  if (field.fieldKind === "map" && field.mapKind === "enum") return field.enum;
  return undefined;
}

/** The value a list or map wrapper holds (singleField wraps one item), else the value itself. */
function firstScalar(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value[0] ?? null;
  if (isObject(value)) return Object.values(value)[0] ?? null;
  return value;
}

/** protobuf-es says "cannot decode field X.y from JSON: <why>"; the why is what a client needs. */
function reason(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/^cannot decode (message|field) \S+ from JSON:? ?/, "") || text;
}
