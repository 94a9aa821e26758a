// Hostile input for any protobuf request, driven by its descriptor: random and mutated messages for
// typed clients, raw bodies (malformed JSON and protobuf, wrong JSON types, out-of-range numbers,
// deep nesting, invalid UTF-8, oversized) and the raw senders for them over Connect and gRPC.
import http2 from "node:http2";
import { ScalarType, create, toBinary, toJson, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import fc from "fast-check";

export type Init = Record<string, unknown>;

/** Big enough that one such string alone is over the fuzz app's 64 KiB body limit. */
export const HUGE = "x".repeat(100_000);
/** Under the limit on its own: reaches the handlers. */
export const LARGE = "y".repeat(60_000);

const INT32_EDGES = [-2_147_483_648, 2_147_483_647, -1, 0, 1];
const INT64_EDGES = [-(2n ** 63n), 2n ** 63n - 1n, -1n, 0n, 1n];
const NASTY_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\uD800",
  "\u202Eevil",
  "ＳＡＶＥ１０",
  "'; drop table promotions; --",
  "%s%n%x",
  "../../etc/passwd",
  "a".repeat(201),
  "z".repeat(5_000),
  "status.eq=ACTIVE",
  "id.in=a,b,c",
  "name.zz=1",
  "__proto__",
  "{p:x}",
  "*",
];

/** Any string: the pool's ids and codes (this tenant's and others'), random text, and nasty edge cases. */
function stringArb(pool: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 16, arbitrary: fc.constantFrom(...pool) },
    { weight: 12, arbitrary: fc.string({ maxLength: 24 }) },
    { weight: 4, arbitrary: fc.string({ unit: "binary", maxLength: 24 }) },
    { weight: 6, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
    { weight: 1, arbitrary: fc.constantFrom(HUGE, LARGE) },
  );
}

function scalarArb(type: ScalarType, pool: readonly string[]): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return stringArb(pool);
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 32 });
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(fc.double(), fc.constantFrom(Number.NaN, Infinity, -Infinity, -0));
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(fc.integer({ min: -5, max: 12 }), fc.constantFrom(...INT32_EDGES), fc.integer());
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom(0, 4_294_967_295), fc.integer({ min: 0, max: 4_294_967_295 }));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(fc.bigInt({ min: 0n, max: 12n }), fc.constantFrom(0n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    default: // INT64, SINT64, SFIXED64
      return fc.oneof(fc.bigInt({ min: -5n, max: 5_000n }), fc.constantFrom(...INT64_EDGES), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
  }
}

const TIMESTAMP = "google.protobuf.Timestamp";

function valueArb(field: DescField, kind: "scalar" | "enum" | "message", pool: readonly string[], depth: number): fc.Arbitrary<unknown> {
  if (kind === "enum" && field.enum) {
    return fc.oneof(fc.constantFrom(...field.enum.values.map((v) => v.number)), fc.integer({ min: -3, max: 40 }));
  }
  if (kind === "message" && field.message) {
    if (field.message.typeName === TIMESTAMP) {
      // Every instant a Timestamp can hold (years 1 to 9999); the typed JSON client cannot send others.
      return fc.record({ seconds: fc.oneof(fc.bigInt({ min: 1_700_000_000n, max: 1_900_000_000n }), fc.bigInt({ min: -62_135_596_800n, max: 253_402_300_799n })), nanos: fc.integer({ min: 0, max: 999_999_999 }) });
    }
    return depth >= 4 ? fc.constant({}) : messageArb(field.message, pool, depth + 1);
  }
  return scalarArb(field.scalar ?? ScalarType.STRING, pool);
}

function fieldArb(field: DescField, pool: readonly string[], depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case "list": {
      const element = valueArb(field, field.listKind, pool, depth);
      if (field.listKind === "message") return fc.array(element, { maxLength: 3 });
      // Long lists of scalars only: long lists of messages of lists would outgrow any body limit.
      return fc.oneof({ weight: 8, arbitrary: fc.array(element, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.array(element, { minLength: 50, maxLength: 120 }) });
    }
    case "map":
      return fc.dictionary(stringArb(pool).filter((k) => k.length < 100), valueArb(field, field.mapKind, pool, depth), { maxKeys: 4 });
    default:
      return valueArb(field, field.fieldKind, pool, depth);
  }
}

/** A random message of `schema` as an init object: any subset of fields, one case per oneof. */
export function messageArb(schema: DescMessage, pool: readonly string[], depth = 0): fc.Arbitrary<Init> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const member of schema.members) {
    if (member.kind === "oneof") {
      model[member.localName] = fc.oneof(...member.fields.map((f) => fieldArb(f, pool, depth).map((value) => ({ case: f.localName, value }))));
    } else {
      model[member.localName] = fieldArb(member, pool, depth);
    }
  }
  return fc.record(model, { requiredKeys: [] });
}

/** `seed` with some fields replaced by random values or dropped; nested messages mutate the same way. */
export function mutatedArb(schema: DescMessage, seed: Init, pool: readonly string[], depth = 0): fc.Arbitrary<Init> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const member of schema.members) {
    const kept = seed[member.localName];
    let random: fc.Arbitrary<unknown>;
    if (member.kind === "oneof") {
      random = fc.oneof(...member.fields.map((f) => fieldArb(f, pool, depth).map((value) => ({ case: f.localName, value }))));
    } else if (member.fieldKind === "message" && member.message && typeof kept === "object" && kept !== null && member.message.typeName !== TIMESTAMP) {
      random = fc.oneof(mutatedArb(member.message, kept as Init, pool, depth + 1), fieldArb(member, pool, depth));
    } else {
      random = fieldArb(member, pool, depth);
    }
    model[member.localName] = fc.oneof({ weight: 5, arbitrary: fc.constant(kept) }, { weight: 2, arbitrary: random }, { weight: 1, arbitrary: fc.constant(undefined) });
  }
  return fc.record(model, { requiredKeys: [] }).map((m) => Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined)));
}

export function toMessage(schema: DescMessage, init: Init) {
  return create(schema, init as MessageInitShape<DescMessage>);
}

/* ---------------------------------------------------------------- raw bodies ------------------------ */

export type RawProtocol = "connect-json" | "connect-binary" | "grpc";

export interface RawInput {
  /** What kind of hostility, for the summary and for failure messages. */
  kind: string;
  body: Uint8Array | { stream: Uint8Array };
  /** Extra request headers (e.g. grpc-encoding). */
  headers?: Record<string, string>;
}

interface FieldPath {
  /** JSON names from the root; `list` marks a repeated message whose first element is walked into. */
  steps: { name: string; list: boolean }[];
  field: DescField;
}

/** Every field reachable from `schema` (messages to `depth`), for placing bad values anywhere. */
export function fieldPaths(schema: DescMessage, depth = 2, prefix: FieldPath["steps"] = []): FieldPath[] {
  const out: FieldPath[] = [];
  for (const field of schema.fields) {
    out.push({ steps: [...prefix, { name: field.jsonName, list: false }], field });
    const nested = field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message") ? field.message : undefined;
    if (nested && nested.typeName !== TIMESTAMP && depth > 0) {
      out.push(...fieldPaths(nested, depth - 1, [...prefix, { name: field.jsonName, list: field.fieldKind === "list" }]));
    }
  }
  return out;
}

function setAtPath(root: JsonObject, path: FieldPath, value: JsonValue): JsonObject {
  const copy = structuredClone(root);
  let node: JsonObject = copy;
  path.steps.forEach((step, i) => {
    if (i === path.steps.length - 1) {
      node[step.name] = value;
      return;
    }
    const existing = node[step.name];
    let next: JsonObject;
    if (step.list) {
      const first = Array.isArray(existing) ? existing[0] : undefined;
      next = typeof first === "object" && first !== null && !Array.isArray(first) ? first : {};
      node[step.name] = [next];
    } else {
      next = typeof existing === "object" && existing !== null && !Array.isArray(existing) ? existing : {};
      node[step.name] = next;
    }
    node = next;
  });
  return copy;
}

/** JSON values a field of this kind must refuse (wrong types, out-of-range and non-finite numbers). */
function wrongJsonValues(field: DescField): JsonValue[] {
  const containers: JsonValue[] = [{}, [], [true]];
  if (field.fieldKind === "list") return ["x", 1, true, { a: 1 }];
  if (field.fieldKind === "map") return ["x", 1, true, ["a"]];
  if (field.fieldKind === "message") {
    return field.message?.typeName === TIMESTAMP ? [1, true, [], "not a time", "10000-01-01T00:00:00Z", "2026-13-45T99:00:00Z"] : [1, "x", true, []];
  }
  if (field.fieldKind === "enum") return [true, {}, [], 1.5];
  switch (field.scalar) {
    case ScalarType.STRING:
      return [1, true, ...containers];
    case ScalarType.BOOL:
      return ["yes", 1, ...containers];
    case ScalarType.BYTES:
      return [1, true, ...containers];
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return ["abc", true, ...containers];
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return ["abc", true, 1.5, 2_147_483_648, -2_147_483_649, "NaN", "Infinity", "-Infinity", "1e400", ...containers];
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return ["abc", -1, 4_294_967_296, "NaN", "Infinity", ...containers];
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return ["abc", -1, "18446744073709551616", "NaN", "Infinity", 1.5, ...containers];
    default:
      return ["abc", true, 1.5, "9223372036854775808", "-9223372036854775809", "1e400", "NaN", "Infinity", "-Infinity", ...containers];
  }
}

const enc = new TextEncoder();
const text = (s: string) => enc.encode(s);

function deepArray(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

const UNKNOWN_FIELD = 2_000;
const tag = (field: number, wireType: number) => varint(field * 8 + wireType);

function groups(depth: number, balanced: boolean): Uint8Array {
  const start = tag(UNKNOWN_FIELD, 3);
  const end = tag(UNKNOWN_FIELD, 4);
  const bytes: number[] = [];
  for (let i = 0; i < depth; i++) bytes.push(...start);
  if (balanced) for (let i = 0; i < depth; i++) bytes.push(...end);
  return Uint8Array.from(bytes);
}

function concat(...parts: (Uint8Array | readonly number[])[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/** The gRPC length-prefixed envelope; `declared` lies about the length when given. */
export function envelope(message: Uint8Array, flags = 0, declared = message.length): Uint8Array {
  const head = new Uint8Array(5);
  head[0] = flags;
  new DataView(head.buffer).setUint32(1, declared);
  return concat(head, message);
}

/**
 * Bodies no server may accept, whatever the tenant's data: each is malformed on the wire, of the
 * wrong JSON type, out of range, or over the size limit. Sent with a tenant's own key, they must
 * leave every table and key as it was.
 */
export function mustFailArb(schema: DescMessage, seed: Init, protocol: RawProtocol): fc.Arbitrary<RawInput> {
  const seedJson = toJson(schema, toMessage(schema, seed)) as JsonObject;
  const seedJsonText = JSON.stringify(seedJson);
  const seedBinary = toBinary(schema, toMessage(schema, seed));
  const paths = fieldPaths(schema);
  const firstString = paths.find((p) => p.field.fieldKind === "scalar" && p.field.scalar === ScalarType.STRING && p.steps.length === 1);
  if (protocol === "connect-json") {
    const wrongType = fc
      .constantFrom(...paths)
      .chain((path) => fc.constantFrom(...wrongJsonValues(path.field)).map((value) => ({ kind: "json:wrong-type", body: text(JSON.stringify(setAtPath(seedJson, path, value))) })));
    const syntax = fc.oneof(
      fc.integer({ min: 1, max: Math.max(1, seedJsonText.length - 1) }).map((n) => ({ kind: "json:truncated", body: text(seedJsonText.slice(0, n)) })),
      fc.constantFrom("[]", '"x"', "1", "true", "{,}", "{'a':1}", '{"a":1,}', "{\"limit\": NaN}", "{\"limit\": Infinity}", "{\"limit\": -Infinity}", "{\"a\": 01}").map((s) => ({ kind: "json:syntax", body: text(s) })),
    );
    const nested = fc.constantFrom(...paths).chain((path) =>
      fc.integer({ min: 1_000, max: 20_000 }).map((depth) => ({ kind: "json:deep-nesting", body: text(JSON.stringify(setAtPath(seedJson, path, "@@")).replace('"@@"', deepArray(depth))) })),
    );
    const oversized = fc.constantFrom(
      { kind: "json:oversized", body: text(JSON.stringify({ ...seedJson, [firstString?.steps[0]?.name ?? "x"]: HUGE })) },
      { kind: "json:oversized-chunked", body: { stream: text(JSON.stringify({ ...seedJson, [firstString?.steps[0]?.name ?? "x"]: HUGE })) } },
      { kind: "json:deep-oversized", body: text(deepArray(40_000)) },
    );
    return fc.oneof({ weight: 6, arbitrary: wrongType }, { weight: 3, arbitrary: syntax }, { weight: 2, arbitrary: nested }, { weight: 1, arbitrary: oversized });
  }
  const malformed = fc.oneof(
    fc.constant({ kind: "proto:bad-wire-type", body: concat(seedBinary, tag(UNKNOWN_FIELD, 7)) }),
    fc.constant({ kind: "proto:bad-wire-type", body: concat(seedBinary, tag(UNKNOWN_FIELD, 6), [1]) }),
    fc.constant({ kind: "proto:field-zero", body: concat([0x00, 0x01], seedBinary) }),
    fc.integer({ min: 10, max: 10_000 }).map((n) => ({ kind: "proto:length-overrun", body: concat(seedBinary, tag(UNKNOWN_FIELD, 2), varint(n), [1, 2, 3]) })),
    fc.constant({ kind: "proto:truncated-varint", body: concat(seedBinary, tag(UNKNOWN_FIELD, 0), [0xff, 0xff, 0xff]) }),
    fc.constant({ kind: "proto:stray-end-group", body: concat(seedBinary, tag(UNKNOWN_FIELD, 4)) }),
    fc.integer({ min: 1, max: 15_000 }).map((depth) => ({ kind: "proto:deep-groups-unclosed", body: concat(seedBinary, groups(depth, false)) })),
  );
  const oversized = fc.constantFrom(
    { kind: "proto:oversized", body: concat(seedBinary, tag(UNKNOWN_FIELD, 2), varint(HUGE.length), text(HUGE)) },
    { kind: "proto:oversized-chunked", body: { stream: concat(seedBinary, tag(UNKNOWN_FIELD, 2), varint(HUGE.length), text(HUGE)) } },
  );
  if (protocol === "connect-binary") {
    return fc.oneof({ weight: 8, arbitrary: malformed }, { weight: 1, arbitrary: oversized });
  }
  const framing = fc.oneof(
    fc.constant({ kind: "grpc:short-frame", body: envelope(seedBinary, 0, seedBinary.length + 10) }),
    fc.constant({ kind: "grpc:huge-declared-length", body: envelope(seedBinary, 0, 0x7fffffff) }),
    fc.constant({ kind: "grpc:compressed-without-encoding", body: envelope(seedBinary, 1) }),
    fc.constant({ kind: "grpc:two-messages", body: concat(envelope(seedBinary), envelope(seedBinary)) }),
    fc.constant({ kind: "grpc:partial-header", body: Uint8Array.from([0, 0]) }),
    fc.constant({ kind: "grpc:bad-gzip", body: envelope(Uint8Array.from([1, 2, 3, 4]), 1), headers: { "grpc-encoding": "gzip" } }),
  );
  return fc.oneof(
    { weight: 6, arbitrary: malformed.map((m) => ({ ...m, body: envelope(m.body) })) },
    { weight: 3, arbitrary: framing },
    { weight: 1, arbitrary: oversized.map((m) => ({ ...m, body: "stream" in m.body ? { stream: envelope(m.body.stream) } : envelope(m.body) })) },
  );
}

/**
 * Raw bodies a server might accept (random bytes can be a valid message; invalid UTF-8 may be read
 * leniently; unknown fields are skipped): sent with the sandbox tenant's key only.
 */
export function mayPassArb(schema: DescMessage, seed: Init, protocol: RawProtocol): fc.Arbitrary<RawInput> {
  const seedJson = toJson(schema, toMessage(schema, seed)) as JsonObject;
  const seedBinary = toBinary(schema, toMessage(schema, seed));
  const strings = fieldPaths(schema).filter((p) => p.field.fieldKind === "scalar" && p.field.scalar === ScalarType.STRING);
  const badUtf8 = fc.constantFrom([0xff], [0xfe, 0xfe], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]);
  if (protocol === "connect-json") {
    const invalidUtf8 = fc.tuple(fc.constantFrom(...strings), badUtf8).map(([path, bytes]) => {
      const [before = "", after = ""] = JSON.stringify(setAtPath(seedJson, path, "@@")).split("@@");
      return { kind: "json:invalid-utf8", body: concat(text(before), bytes, text(after)) };
    });
    const unknownDeep = fc.integer({ min: 100, max: 5_000 }).map((depth) => ({
      kind: "json:deep-unknown-field",
      body: text(JSON.stringify({ ...seedJson, zz: "@@" }).replace('"@@"', '{"a":'.repeat(depth) + "1" + "}".repeat(depth))),
    }));
    const randomText = fc.string({ unit: "binary", maxLength: 200 }).map((s) => ({ kind: "json:random-text", body: text(s) }));
    return fc.oneof(invalidUtf8, unknownDeep, randomText);
  }
  const stringFields = schema.fields.filter((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);
  const invalidUtf8 = fc.tuple(fc.constantFrom(...(stringFields.length > 0 ? stringFields : schema.fields)), badUtf8).map(([field, bytes]) => ({
    kind: "proto:invalid-utf8",
    body: concat(seedBinary, tag(field.number, 2), varint(bytes.length + 2), [0x61], bytes, [0x62]),
  }));
  const random = fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ kind: "proto:random-bytes", body: bytes }));
  const truncated = fc.integer({ min: 0, max: Math.max(0, seedBinary.length - 1) }).map((n) => ({ kind: "proto:truncated", body: seedBinary.slice(0, n) }));
  const deepGroups = fc.integer({ min: 100, max: 15_000 }).map((depth) => ({ kind: "proto:deep-groups", body: concat(seedBinary, groups(depth, true)) }));
  const flipped = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, mask]) => {
    const copy = Uint8Array.from(seedBinary);
    if (copy.length > 0) copy[at % copy.length] = (copy[at % copy.length] ?? 0) ^ mask;
    return { kind: "proto:bit-flip", body: copy };
  });
  const any = fc.oneof(invalidUtf8, random, truncated, deepGroups, flipped);
  return protocol === "grpc" ? any.map((m) => ({ ...m, body: envelope(m.body as Uint8Array) })) : any;
}

/* ---------------------------------------------------------------- raw senders ----------------------- */

/** The Connect code name of a result (`ok` for success), or a label for an improper answer. */
export type Outcome = string;

export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

const GRPC_CODES = new Map<number, string>([[0, "ok"], ...Object.values(Code).filter((v): v is Code => typeof v === "number").map((c): [number, string] => [c, codeName(c)])]);

/** One raw request; resolves with the code the server answered, or a label for what went wrong. */
export async function sendRaw(url: string, protocol: RawProtocol, path: string, key: string | null, input: RawInput, timeoutMs: number): Promise<Outcome> {
  return protocol === "grpc" ? sendGrpc(url, path, key, input, timeoutMs) : sendConnect(url, protocol, path, key, input, timeoutMs);
}

async function sendConnect(url: string, protocol: "connect-json" | "connect-binary", path: string, key: string | null, input: RawInput, timeoutMs: number): Promise<Outcome> {
  const headers: Record<string, string> = { "content-type": protocol === "connect-json" ? "application/json" : "application/proto", "connect-protocol-version": "1", ...input.headers };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const streamed = "stream" in input.body ? input.body.stream : null;
  const body = streamed
    ? new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < streamed.length; i += 16_384) controller.enqueue(streamed.slice(i, i + 16_384));
          controller.close();
        },
      })
    : (input.body as Uint8Array);
  let res: Response;
  try {
    res = await fetch(new URL(path, url), { method: "POST", headers, body, duplex: "half", signal: AbortSignal.timeout(timeoutMs) } as RequestInit);
  } catch (error) {
    const cause = error instanceof Error ? `${error.name}: ${String((error as { cause?: unknown }).cause ?? error.message)}` : String(error);
    // The server may answer an oversized upload and close before the client finished sending it.
    return streamed !== null && !/TimeoutError/.test(cause) ? "closed_while_uploading" : `fetch_failed(${cause})`;
  }
  const answer = await res.text();
  if (res.status === 200) return "ok";
  try {
    const parsed = JSON.parse(answer) as { code?: unknown; details?: { type?: unknown }[] };
    if (typeof parsed.code !== "string") return `http_${res.status}`;
    return withDetail(parsed.code, (parsed.details ?? []).some((d) => d.type === ERROR_DETAIL));
  } catch {
    return `http_${res.status}`;
  }
}

const ERROR_DETAIL = "promotions.v1.ErrorDetail";

/** Every error must carry a promotions.v1.ErrorDetail; one without gets a label no test accepts. */
export function withDetail(code: string, hasDetail: boolean): Outcome {
  return code === "ok" || hasDetail ? code : `${code}+without_error_detail`;
}

function sendGrpc(url: string, path: string, key: string | null, input: RawInput, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const session = http2.connect(url);
    let settled = false;
    const finish = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    session.on("error", (err) => finish(`session_error(${err.message})`));
    const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": path, "content-type": "application/grpc+proto", te: "trailers", ...input.headers };
    if (key !== null) headers.authorization = `Bearer ${key}`;
    const stream = session.request(headers);
    let status: string | undefined;
    let details = "";
    let httpStatus = 0;
    const read = (h: http2.IncomingHttpHeaders): void => {
      if (typeof h["grpc-status"] === "string") status = h["grpc-status"];
      if (typeof h["grpc-status-details-bin"] === "string") details = Buffer.from(h["grpc-status-details-bin"], "base64").toString("latin1");
    };
    stream.on("response", (h) => {
      httpStatus = Number(h[":status"]);
      read(h);
    });
    stream.on("trailers", read);
    stream.on("data", () => undefined);
    stream.on("error", () => undefined); // the close below reports what happened
    stream.on("close", () => {
      if (status !== undefined) finish(withDetail(GRPC_CODES.get(Number(status)) ?? `grpc_status_${status}`, details.includes(`type.googleapis.com/${ERROR_DETAIL}`)));
      else finish(httpStatus === 0 ? `reset(${stream.rstCode})` : `http_${httpStatus}_without_grpc_status`);
    });
    const body = "stream" in input.body ? input.body.stream : input.body;
    if ("stream" in input.body) {
      for (let i = 0; i < body.length; i += 16_384) stream.write(body.slice(i, i + 16_384));
      stream.end();
    } else {
      stream.end(body);
    }
  });
}
