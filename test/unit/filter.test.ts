import { describe, expect, it } from "vitest";
import { DomainError, type Violation } from "../../src/domain/errors.js";
import {
  parseFilters,
  parseTimestamp,
  PROMOTION_FILTER_FIELDS,
  type FieldSpec,
  type FilterClause,
} from "../../src/domain/filter.js";
import { ARCHETYPES, PROMOTION_STATUSES } from "../../src/domain/terms.js";

const parse = (...raw: string[]): FilterClause[] => parseFilters(raw, PROMOTION_FILTER_FIELDS);

/** The violations parseFilters fails with; fails the test if it does not throw. */
function violationsOf(raw: readonly string[], fields: Readonly<Record<string, FieldSpec>> = PROMOTION_FILTER_FIELDS, param?: string): Violation[] {
  try {
    parseFilters(raw, fields, param);
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).kind).toBe("invalid_argument");
    return [...(error as DomainError).details];
  }
  throw new Error(`expected ${JSON.stringify(raw)} to be refused`);
}

const pairs = (violations: Violation[]): string[][] => violations.map((v) => [v.param, v.code]);
const UUID = "0190f5a2-7c1e-7d3a-9b2f-4c6d8e0a1b2c";

describe("parseFilters", () => {
  describe("accepts", () => {
    const accepted: { spec: string; raw: string; clause: FilterClause }[] = [
      { spec: "an int comparison as a bigint: priority.gte=10", raw: "priority.gte=10", clause: { field: "priority", op: "gte", values: [10n] } },
      { spec: "a negative int", raw: "priority.lt=-5", clause: { field: "priority", op: "lt", values: [-5n] } },
      {
        spec: "the smallest int64",
        raw: "version.gte=-9223372036854775808",
        clause: { field: "version", op: "gte", values: [-9223372036854775808n] },
      },
      {
        spec: "the largest int64",
        raw: "current_budget_used.lte=9223372036854775807",
        clause: { field: "current_budget_used", op: "lte", values: [9223372036854775807n] },
      },
      { spec: "an int list: version.nin=1,2,3", raw: "version.nin=1,2,3", clause: { field: "version", op: "nin", values: [1n, 2n, 3n] } },
      { spec: "a string equality", raw: "code.eq=SAVE20", clause: { field: "code", op: "eq", values: ["SAVE20"] } },
      { spec: "a value containing '=' (split at the first '=')", raw: "name.eq=a=b=c", clause: { field: "name", op: "eq", values: ["a=b=c"] } },
      { spec: "a value containing '.'", raw: "name.eq=v1.2", clause: { field: "name", op: "eq", values: ["v1.2"] } },
      { spec: "an empty string value", raw: "description.eq=", clause: { field: "description", op: "eq", values: [""] } },
      { spec: "a lexicographic string comparison", raw: "name.gt=M", clause: { field: "name", op: "gt", values: ["M"] } },
      { spec: "the text null on a non-nullable string field as text", raw: "name.eq=null", clause: { field: "name", op: "eq", values: ["null"] } },
      { spec: "null on the code: promotions without one", raw: "code.eq=null", clause: { field: "code", op: "eq", values: [null] } },
      { spec: "an application method in lower case", raw: "application_method.eq=automatic", clause: { field: "application_method", op: "eq", values: ["AUTOMATIC"] } },
      { spec: "null on a nullable int field: max_redemptions.eq=null", raw: "max_redemptions.eq=null", clause: { field: "max_redemptions", op: "eq", values: [null] } },
      { spec: "null with ne on a nullable timestamp", raw: "valid_to.ne=null", clause: { field: "valid_to", op: "ne", values: [null] } },
      { spec: "a bool in any case", raw: "stackable.eq=TRUE", clause: { field: "stackable", op: "eq", values: [true] } },
      { spec: "false", raw: "is_phased.ne=false", clause: { field: "is_phased", op: "ne", values: [false] } },
      { spec: "an enum in lower case", raw: "status.eq=active", clause: { field: "status", op: "eq", values: ["ACTIVE"] } },
      { spec: "an enum in upper case", raw: "status.eq=ACTIVE", clause: { field: "status", op: "eq", values: ["ACTIVE"] } },
      {
        spec: "an enum with its proto prefix",
        raw: "status.eq=promotion_status_active",
        clause: { field: "status", op: "eq", values: ["ACTIVE"] },
      },
      {
        spec: "an enum whose value holds '_', with its proto prefix",
        raw: "application_timing.eq=APPLICATION_TIMING_NEXT_PERIOD",
        clause: { field: "application_timing", op: "eq", values: ["NEXT_PERIOD"] },
      },
      {
        spec: "an enum list: status.in=active,archived",
        raw: "status.in=active,archived",
        clause: { field: "status", op: "in", values: ["ACTIVE", "ARCHIVED"] },
      },
      { spec: "a UUID, normalized to lower case", raw: `id.eq=${UUID.toUpperCase()}`, clause: { field: "id", op: "eq", values: [UUID] } },
      {
        spec: "a UTC timestamp",
        raw: "created_at.lt=2026-01-01T00:00:00Z",
        clause: { field: "created_at", op: "lt", values: [new Date("2026-01-01T00:00:00Z")] },
      },
      {
        spec: "a timestamp with an offset",
        raw: "updated_at.gte=2026-01-01T02:00:00+02:00",
        clause: { field: "updated_at", op: "gte", values: [new Date("2026-01-01T00:00:00Z")] },
      },
      {
        spec: "a timestamp list",
        raw: "published_at.in=2026-01-01T00:00:00Z,2026-01-02T00:00:00.5Z",
        clause: {
          field: "published_at",
          op: "in",
          values: [new Date("2026-01-01T00:00:00Z"), new Date("2026-01-02T00:00:00.500Z")],
        },
      },
      { spec: "field and operator in any case", raw: "PRIORITY.GTE=1", clause: { field: "priority", op: "gte", values: [1n] } },
    ];
    for (const { spec, raw, clause } of accepted) {
      it(spec, () => {
        expect(parse(raw)).toEqual([clause]);
      });
    }

    it("no filters at all", () => {
      expect(parse()).toEqual([]);
    });

    it("20 filters, in order", () => {
      const raw = Array.from({ length: 20 }, (_, i) => `priority.ne=${i}`);
      expect(parse(...raw).map((c) => c.values[0])).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i)));
    });

    it("a 500-character value", () => {
      expect(parse(`name.eq=${"a".repeat(500)}`)[0]?.values).toEqual(["a".repeat(500)]);
    });
  });

  describe("refuses", () => {
    const refused: { spec: string; raw: string; expected: string[][]; message?: string }[] = [
      {
        spec: "a filter without '='",
        raw: "priority",
        expected: [["filter[0]", "invalid_format"]],
        message: 'a filter must look like field.op=value (got "priority")',
      },
      { spec: "a filter without an operator", raw: "priority=1", expected: [["filter[0]", "invalid_format"]] },
      { spec: "a filter whose only '.' is inside the value", raw: "priority=1.5", expected: [["filter[0]", "invalid_format"]] },
      { spec: "an unknown field, naming it", raw: "colour.eq=red", expected: [["filter[0]", "unknown_field"]] },
      { spec: "an empty field name", raw: ".eq=1", expected: [["filter[0]", "unknown_field"]] },
      { spec: "an inherited property name as a field (__proto__)", raw: "__proto__.eq=1", expected: [["filter[0]", "unknown_field"]] },
      { spec: "an inherited property name as a field (constructor)", raw: "constructor.eq=1", expected: [["filter[0]", "unknown_field"]] },
      {
        spec: "an unknown operator, naming it and listing the operators",
        raw: "priority.like=1",
        expected: [["filter[0]", "unknown_operator"]],
        message: 'unknown filter operator "like"; operators: eq, ne, in, nin, gt, gte, lt, lte',
      },
      { spec: "an unknown field and an unknown operator, both", raw: "colour.like=red", expected: [["filter[0]", "unknown_field"], ["filter[0]", "unknown_operator"]] },
      {
        spec: "gt on a bool field",
        raw: "stackable.gt=true",
        expected: [["filter[0]", "not_allowed"]],
        message: "operator gt does not apply to stackable (bool); use eq, ne, in or nin",
      },
      { spec: "gte on an enum field", raw: "status.gte=active", expected: [["filter[0]", "not_allowed"]] },
      { spec: "lt on a uuid field", raw: `id.lt=${UUID}`, expected: [["filter[0]", "not_allowed"]] },
      { spec: "null on a non-nullable int field", raw: "priority.eq=null", expected: [["filter[0]", "not_allowed"]], message: "priority is never null" },
      { spec: "null on a non-nullable timestamp field", raw: "created_at.eq=null", expected: [["filter[0]", "not_allowed"]] },
      {
        spec: "null with gt on a nullable field",
        raw: "max_redemptions.gt=null",
        expected: [["filter[0]", "not_allowed"]],
        message: "null only works with eq and ne (got gt)",
      },
      { spec: "null inside an in list", raw: "max_budget.in=1,null", expected: [["filter[0]", "not_allowed"]] },
      {
        spec: "a non-integer for an int field",
        raw: "priority.eq=abc",
        expected: [["filter[0]", "invalid_format"]],
        message: 'priority expects an integer (got "abc")',
      },
      { spec: "a decimal for an int field", raw: "priority.eq=1.5", expected: [["filter[0]", "invalid_format"]] },
      { spec: "an int with surrounding space", raw: "priority.eq= 10", expected: [["filter[0]", "invalid_format"]] },
      { spec: "an int with a plus sign", raw: "priority.eq=+10", expected: [["filter[0]", "invalid_format"]] },
      { spec: "an int above int64", raw: "version.eq=9223372036854775808", expected: [["filter[0]", "out_of_range"]] },
      { spec: "an int below int64", raw: "version.eq=-9223372036854775809", expected: [["filter[0]", "out_of_range"]] },
      { spec: "yes for a bool", raw: "stackable.eq=yes", expected: [["filter[0]", "invalid_format"]], message: 'stackable expects true or false (got "yes")' },
      { spec: "1 for a bool", raw: "stackable.eq=1", expected: [["filter[0]", "invalid_format"]] },
      {
        spec: "a date with month 13",
        raw: "created_at.lt=2026-13-01",
        expected: [["filter[0]", "invalid_format"]],
        message: 'created_at expects an RFC 3339 timestamp such as 2026-01-01T00:00:00Z (got "2026-13-01")',
      },
      { spec: "an unknown enum value, listing the values", raw: "status.eq=deleted", expected: [["filter[0]", "invalid_value"]], message: 'status expects one of DRAFT, ACTIVE, ARCHIVED (got "deleted")' },
      { spec: "the UNSPECIFIED enum value", raw: "status.eq=PROMOTION_STATUS_UNSPECIFIED", expected: [["filter[0]", "invalid_value"]] },
      { spec: "an enum value with trailing text", raw: "status.eq=active_now", expected: [["filter[0]", "invalid_value"]] },
      { spec: "an invalid UUID", raw: "id.eq=123", expected: [["filter[0]", "invalid_format"]], message: 'id expects a UUID (got "123")' },
      { spec: "an empty in list", raw: "status.in=", expected: [["filter[0]", "required"]], message: "in needs at least one comma-separated value" },
      { spec: "an empty nin list", raw: "priority.nin=", expected: [["filter[0]", "required"]] },
      { spec: "an empty element in an in list", raw: "status.in=active,,archived", expected: [["filter[0]", "invalid_value"]] },
      { spec: "each bad element of an in list", raw: "status.in=active,bogus,nope", expected: [["filter[0]", "invalid_value"], ["filter[0]", "invalid_value"]] },
      {
        spec: "a 501-character value",
        raw: `name.eq=${"a".repeat(501)}`,
        expected: [["filter[0]", "too_long"]],
        message: "a filter value must be at most 500 characters (got 501)",
      },
    ];
    for (const { spec, raw, expected, message } of refused) {
      it(spec, () => {
        const violations = violationsOf([raw]);
        expect(pairs(violations)).toEqual(expected);
        if (message !== undefined) expect(violations[0]?.message).toBe(message);
      });
    }

    it("an unknown field, with a message that names it and lists the known fields", () => {
      const [violation] = violationsOf(["colour.eq=red"]);
      expect(violation?.message).toMatch(/^unknown filter field "colour"; known fields: id, name, code, /);
      expect(violation?.message).toContain("max_redemptions_per_customer");
    });

    it("21 filters", () => {
      const raw = Array.from({ length: 21 }, () => "priority.gte=1");
      expect(pairs(violationsOf(raw))).toEqual([["filter", "too_many"]]);
    });

    it("every bad filter at once, each at its own index", () => {
      const violations = violationsOf(["priority.eq=x", "status.eq=active", "colour.eq=red", "stackable.lt=true"]);
      expect(pairs(violations)).toEqual([
        ["filter[0]", "invalid_format"],
        ["filter[2]", "unknown_field"],
        ["filter[3]", "not_allowed"],
      ]);
    });

    it("at the param it is given", () => {
      expect(pairs(violationsOf(["colour.eq=red"], PROMOTION_FILTER_FIELDS, "where"))).toEqual([["where[0]", "unknown_field"]]);
    });
  });

  describe("with another list's catalogue", () => {
    const fields: Record<string, FieldSpec> = {
      kind: { type: { enum: ["percentage_discount", "fixed_discount"] } },
      timing: { type: { enum: ["PERIOD", "NEXT_PERIOD"] } },
      note: { type: "string", nullable: true },
    };

    it("returns the catalogue's spelling of an enum value", () => {
      expect(parseFilters(["kind.eq=FIXED_DISCOUNT", "kind.eq=effect_kind_fixed_discount"], fields)).toEqual([
        { field: "kind", op: "eq", values: ["fixed_discount"] },
        { field: "kind", op: "eq", values: ["fixed_discount"] },
      ]);
    });

    it("prefers the longest enum value a prefixed input fits", () => {
      expect(parseFilters(["timing.eq=next_period", "timing.eq=timing_period"], fields).map((c) => c.values[0])).toEqual([
        "NEXT_PERIOD",
        "PERIOD",
      ]);
    });

    it("reads null as NULL on a nullable string field", () => {
      expect(parseFilters(["note.eq=null"], fields)).toEqual([{ field: "note", op: "eq", values: [null] }]);
    });

    it("names only this catalogue's fields when one is unknown", () => {
      expect(violationsOf(["status.eq=active"], fields)[0]?.message).toBe('unknown filter field "status"; known fields: kind, timing, note');
    });
  });
});

describe("parseTimestamp", () => {
  const valid: [string, string][] = [
    ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000Z"],
    ["2026-01-01t00:00:00z", "2026-01-01T00:00:00.000Z"],
    ["2025-12-31T19:00:00-05:00", "2026-01-01T00:00:00.000Z"],
    ["2026-01-01T05:30:00+05:30", "2026-01-01T00:00:00.000Z"],
    ["2026-01-01T00:00:00.1Z", "2026-01-01T00:00:00.100Z"],
    ["2026-01-01T00:00:00.123456789Z", "2026-01-01T00:00:00.123Z"],
    ["2024-02-29T12:00:00Z", "2024-02-29T12:00:00.000Z"],
    ["2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z"],
    ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"],
    ["0099-06-15T00:00:00Z", "0099-06-15T00:00:00.000Z"],
    ["9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"],
  ];
  it.each(valid)("reads %s as %s", (text, iso) => {
    expect(parseTimestamp(text)?.toISOString()).toBe(iso);
  });

  const invalid = [
    "",
    "2026-13-01",
    "2026-01-01",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2025-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:60:00Z",
    "2026-01-01T23:59:60Z",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+0200",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00:00.Z",
    "2026-01-01T00:00:00.1234567891Z",
    "0000-01-01T00:00:00Z",
    "1767225600",
    " 2026-01-01T00:00:00Z",
    "2026-1-1T00:00:00Z",
  ];
  it.each(invalid)("refuses %j", (text) => {
    expect(parseTimestamp(text)).toBeNull();
  });
});

describe("PROMOTION_FILTER_FIELDS", () => {
  it("covers exactly the promotion's filterable scalar fields", () => {
    expect(Object.keys(PROMOTION_FILTER_FIELDS).sort()).toEqual(
      [
        "id", "name", "code", "description", "public_description", "currency",
        "archetype", "status", "visibility", "application_method", "application_timing", "condition_mode", "budget_behavior",
        "stackable", "is_phased", "requires_continuous_coverage",
        "priority", "version", "live_version", "current_redemptions", "current_budget_used",
        "max_budget", "max_redemptions", "max_redemptions_per_customer",
        "valid_from", "valid_to", "archived_at", "published_at",
        "created_at", "updated_at",
      ].sort(),
    );
  });

  it.each([
    ["id", { type: "uuid" }],
    ["currency", { type: "string" }],
    ["archetype", { type: { enum: ARCHETYPES } }],
    ["status", { type: { enum: PROMOTION_STATUSES } }],
    ["requires_continuous_coverage", { type: "bool" }],
    ["current_redemptions", { type: "int" }],
    ["max_redemptions_per_customer", { type: "int", nullable: true }],
    ["archived_at", { type: "timestamp", nullable: true }],
    ["updated_at", { type: "timestamp" }],
  ] as const)("types %s as %j", (field, spec) => {
    expect(PROMOTION_FILTER_FIELDS[field]).toEqual(spec);
  });

  it("is frozen", () => {
    expect(Object.isFrozen(PROMOTION_FILTER_FIELDS)).toBe(true);
  });
});
