import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor } from "../../src/api/cursor.js";
import { DomainError } from "../../src/domain/errors.js";

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64url");

/** The DomainError decodeCursor throws; fails the test if it returns. */
function refusal(kind: string, cursor: string, param?: string): DomainError {
  try {
    decodeCursor(kind, cursor, param);
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    return error as DomainError;
  }
  throw new Error(`expected cursor ${JSON.stringify(cursor)} to be refused`);
}

// Sets the unused low bits of the last character: Node's decoder ignores them, so the bytes (and
// the JSON) are those of a valid cursor, yet no encoder would ever produce this text.
// encodeCursor("promotions", []) is 31 bytes of JSON, so its last character ("Q") has 4 spare bits.
const NON_CANONICAL = `${encodeCursor("promotions", []).slice(0, -1)}R`;

describe("page cursors", () => {
  it("round-trips any kind and position", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary" }),
        fc.array(fc.string({ unit: "binary" }), { maxLength: 5 }),
        (kind, position) => {
          const cursor = encodeCursor(kind, position);
          expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
          expect(decodeCursor(kind, cursor)).toEqual(position);
        },
      ),
    );
  });

  it("round-trips a typical [created_at, id] position", () => {
    const position = ["2026-01-01T00:00:00.000Z", "0190f5a2-7c1e-7d3a-9b2f-4c6d8e0a1b2c"];
    expect(decodeCursor("promotions", encodeCursor("promotions", position))).toEqual(position);
  });

  it("is URL-safe and carries no padding", () => {
    const cursor = encodeCursor("promotions", ["a", "b?c/d+e"]);
    expect(cursor).not.toMatch(/[+/=]/);
  });

  it("returns a position the caller cannot mutate into the next decode", () => {
    const position = decodeCursor("promotions", encodeCursor("promotions", ["x"]));
    expect(Object.isFrozen(position)).toBe(true);
  });

  it("refuses a cursor of another list", () => {
    const error = refusal("promotion_codes", encodeCursor("promotions", ["x"]));
    expect(error.kind).toBe("invalid_argument");
    expect(error.details).toEqual([
      {
        param: "cursor",
        code: "invalid_cursor",
        message: "cursor was issued by a different list; pass the next_cursor this list returned",
      },
    ]);
  });

  it("refuses a cursor of another format version", () => {
    const error = refusal("promotions", b64(JSON.stringify({ v: 2, k: "promotions", p: ["x"] })));
    expect(error.details[0]?.message).toMatch(/no longer supported/);
  });

  it("has a non-canonical sample that Node alone would decode to a valid body", () => {
    expect(encodeCursor("promotions", []).at(-1)).toBe("Q");
    expect(Buffer.from(NON_CANONICAL, "base64url").toString("utf8")).toBe('{"v":1,"k":"promotions","p":[]}');
  });

  it("reports at the param it is given", () => {
    expect(refusal("promotions", "garbage!", "page_token").details[0]?.param).toBe("page_token");
  });

  const garbage: [string, string][] = [
    ["characters outside base64url", "abc+/=="],
    ["padding", `${b64('{"v":1,"k":"promotions","p":[]}')}=`],
    ["whitespace", ` ${encodeCursor("promotions", [])}`],
    ["a non-canonical tail that Node would still decode to a valid body", NON_CANONICAL],
    ["base64url of non-JSON", b64("hello world")],
    ["base64url of invalid UTF-8", Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString("base64url")],
    ["a JSON array", b64('[1,"promotions",["x"]]')],
    ["a JSON string", b64('"promotions"')],
    ["JSON null", b64("null")],
    ["a body without a version", b64('{"k":"promotions","p":["x"]}')],
    ["a version that is a string", b64('{"v":"1","k":"promotions","p":["x"]}')],
    ["a body without a kind", b64('{"v":1,"p":["x"]}')],
    ["a position that is not a list", b64('{"v":1,"k":"promotions","p":"x"}')],
    ["a position holding a number", b64('{"v":1,"k":"promotions","p":["x",1]}')],
    ["a position holding null", b64('{"v":1,"k":"promotions","p":[null]}')],
    ["a cursor longer than any the service issues", "A".repeat(4100)],
  ];
  it.each(garbage)("refuses %s as invalid_cursor", (_spec, cursor) => {
    const error = refusal("promotions", cursor);
    expect(error.kind).toBe("invalid_argument");
    expect(error.details.map((d) => [d.param, d.code])).toEqual([["cursor", "invalid_cursor"]]);
  });

  it("refuses arbitrary strings without crashing", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (cursor) => {
        try {
          decodeCursor("promotions", cursor);
        } catch (error) {
          expect(error).toBeInstanceOf(DomainError);
          expect((error as DomainError).details[0]?.code).toBe("invalid_cursor");
        }
      }),
    );
  });
});
