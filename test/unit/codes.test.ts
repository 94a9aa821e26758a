import { describe, expect, it } from "vitest";
import {
  CODE_ALPHABET,
  checkCodePageLimit,
  generateCodes,
  validateCreateCodes,
  validateUpdateCode,
  type CreateCodesInput,
  type UpdateCodeInput,
} from "../../src/domain/codes.js";
import type { Violation } from "../../src/domain/errors.js";

// The rules of CreatePromotionCodes / UpdatePromotionCode / ListPromotionCodes, and the generator.

const create = (overrides: Partial<CreateCodesInput> = {}): CreateCodesInput => ({
  codes: [],
  count: 0,
  prefix: "",
  idempotencyKey: "",
  maxRedemptions: null,
  minAmountMinor: null,
  firstTimeCustomersOnly: false,
  expiresAt: null,
  metadata: {},
  ...overrides,
});

const update = (overrides: Partial<UpdateCodeInput> = {}): UpdateCodeInput => ({
  id: "7d3f0f8e-3b0a-4a7c-9a53-0b6f7c0c2c11",
  expiresAt: null,
  clearExpiresAt: false,
  ...overrides,
});

const found = (violations: readonly Violation[]) => violations.map((v) => [v.param, v.code]);

describe("validateCreateCodes", () => {
  // Every case: what the request holds, and every [param, code] it must be refused with (none = valid).
  const cases: [string, Partial<CreateCodesInput>, [string, string][]][] = [
    ["explicit codes of 3..64 allowed characters pass", { codes: ["abc", "SPRING_2026-X", "a".repeat(64)] }, []],
    ["a generated batch with a prefix passes", { count: 100_000, prefix: "spring-" }, []],
    ["neither codes nor count is refused at codes", {}, [["codes", "required"]]],
    ["codes and count together are refused at count", { codes: ["ABC"], count: 5 }, [["count", "not_allowed"]]],
    ["a prefix with explicit codes is refused at prefix", { codes: ["ABC"], prefix: "X" }, [["prefix", "not_allowed"]]],
    ["a count above 100,000 is refused", { count: 100_001 }, [["count", "out_of_range"]]],
    ["a negative count is refused", { count: -1 }, [["count", "out_of_range"]]],
    ["a prefix over 40 characters is refused", { count: 1, prefix: "P".repeat(41) }, [["prefix", "too_long"]]],
    ["a prefix with a space is refused", { count: 1, prefix: "MY CODE" }, [["prefix", "invalid_format"]]],
    ["a code too short is refused at its index", { codes: ["ABC", "AB"] }, [["codes[1]", "too_short"]]],
    ["a code too long is refused at its index", { codes: ["X".repeat(65)] }, [["codes[0]", "too_long"]]],
    ["a code with a character outside A-Z0-9_- is refused", { codes: ["SAVE!", "ÄBC"] }, [["codes[0]", "invalid_format"], ["codes[1]", "invalid_format"]]],
    ["an empty code is refused", { codes: ["ABC", "  "] }, [["codes[1]", "required"]]],
    ["a duplicate differing only in case is refused at the later index", { codes: ["Summer", "WINTER", "summer"] }, [["codes[2]", "duplicate"]]],
    ["more than 1,000 codes are refused once, at codes", { codes: Array.from({ length: 1001 }, (_, i) => `CODE${i}`) }, [["codes", "too_many"]]],
    ["max_redemptions of 0 is refused", { count: 1, maxRedemptions: 0n }, [["max_redemptions", "out_of_range"]]],
    ["min_amount_minor of 0 is refused", { count: 1, minAmountMinor: 0n }, [["min_amount_minor", "out_of_range"]]],
    ["min_amount_minor above 10^15 is refused", { count: 1, minAmountMinor: 10n ** 15n + 1n }, [["min_amount_minor", "out_of_range"]]],
    ["a metadata key over 40 characters is refused", { count: 1, metadata: { ["k".repeat(41)]: "v" } }, [[`metadata["${"k".repeat(41)}"]`, "too_long"]]],
    [
      "every problem is reported at once",
      { codes: ["ok1", "x", "OK1"], count: 3, maxRedemptions: -1n },
      [["count", "not_allowed"], ["codes[1]", "too_short"], ["codes[2]", "duplicate"], ["max_redemptions", "out_of_range"]],
    ],
  ];
  it.each(cases)("%s", (_name, input, expected) => {
    expect(found(validateCreateCodes(create(input)).violations)).toEqual(expected);
  });

  it("names both indexes of a duplicate in the message", () => {
    const [violation] = validateCreateCodes(create({ codes: ["a-1", "B-2", "A-1"] })).violations;
    expect(violation?.message).toContain("codes[2]");
    expect(violation?.message).toContain("codes[0]");
  });

  it("upper-cases and trims explicit codes and the prefix", () => {
    expect(validateCreateCodes(create({ codes: [" spring ", "Fall_1"] })).source).toEqual({ kind: "explicit", codes: ["SPRING", "FALL_1"] });
    expect(validateCreateCodes(create({ count: 3, prefix: "vip-" })).source).toEqual({ kind: "generated", count: 3, prefix: "VIP-" });
  });
});

describe("validateUpdateCode", () => {
  const cases: [string, Partial<UpdateCodeInput>, [string, string][]][] = [
    ["a plain deactivation passes", { active: false }, []],
    ["0 clears both limits", { maxRedemptions: 0n, minAmountMinor: 0n }, []],
    ["a negative limit is refused", { maxRedemptions: -5n }, [["max_redemptions", "out_of_range"]]],
    ["a negative minimum is refused", { minAmountMinor: -1n }, [["min_amount_minor", "out_of_range"]]],
    ["expires_at with clear_expires_at is refused", { expiresAt: new Date("2030-01-01T00:00:00Z"), clearExpiresAt: true }, [["clear_expires_at", "not_allowed"]]],
    ["an id that is not a UUID is refused", { id: "code-1" }, [["id", "invalid_format"]]],
    ["a missing id is refused", { id: "" }, [["id", "required"]]],
    ["bad metadata is named under metadata.entries", { metadata: { "": "v" } }, [['metadata.entries[""]', "required"]]],
  ];
  it.each(cases)("%s", (_name, input, expected) => {
    expect(found(validateUpdateCode(update(input)).violations)).toEqual(expected);
  });

  it("turns the request into a patch: 0 and clear_expires_at become null, unset fields stay out", () => {
    expect(validateUpdateCode(update({ maxRedemptions: 0n, minAmountMinor: 250n, clearExpiresAt: true })).patch).toEqual({
      maxRedemptions: null,
      minAmountMinor: 250n,
      expiresAt: null,
    });
    const at = new Date("2031-05-01T00:00:00Z");
    expect(validateUpdateCode(update({ active: true, expiresAt: at, metadata: { a: "b" } })).patch).toEqual({ active: true, expiresAt: at, metadata: { a: "b" } });
    expect(validateUpdateCode(update()).patch).toEqual({});
  });
});

describe("checkCodePageLimit", () => {
  it.each([
    [0, 100, 0],
    [1, 1, 0],
    [1000, 1000, 0],
    [1001, 100, 1],
    [-1, 100, 1],
  ])("limit %i is used as %i with %i violations", (limit, used, violations) => {
    const out: Violation[] = [];
    expect(checkCodePageLimit(out, limit)).toBe(used);
    expect(out).toHaveLength(violations);
  });
});

describe("generateCodes", () => {
  it("makes the asked number of distinct codes: the prefix, then 10 characters of the unambiguous alphabet", () => {
    const codes = generateCodes(20_000, "SPRING-");
    expect(codes).toHaveLength(20_000);
    expect(new Set(codes).size).toBe(20_000);
    for (const code of codes) expect(code).toMatch(/^SPRING-[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{10}$/);
  });

  it("never uses the look-alikes 0, O, 1, I or L, and uses every other symbol", () => {
    expect(CODE_ALPHABET).toHaveLength(31);
    expect(CODE_ALPHABET).not.toMatch(/[0O1IL]/);
    const used = new Set(generateCodes(2_000, "").join(""));
    expect([...used].sort().join("")).toBe([...CODE_ALPHABET].sort().join(""));
  });

  it("draws symbols uniformly (no modulo bias)", () => {
    const text = generateCodes(31_000, "").join("");
    const counts = new Map<string, number>();
    for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    const expected = text.length / 31;
    // 10,000 draws per symbol: a biased mod-256 fold would make 8 symbols ~3% more frequent.
    for (const n of counts.values()) expect(Math.abs(n - expected) / expected).toBeLessThan(0.06);
  });

  it("skips codes already tried", () => {
    const first = generateCodes(50, "X");
    const next = generateCodes(50, "X", new Set(first));
    expect(next.filter((c) => first.includes(c))).toEqual([]);
  });
});
