import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { RESERVE_ARGV, SCRIPT_NAMES } from "../../src/counters/counters.js";
import { ReserveOutcome } from "../../src/counters/outcomes.js";
import { loadScript } from "../../src/counters/scripts.js";

// The Lua scripts describe themselves (file name: key count; header: KEYS, ARGV and return values
// by name). These tests hold the headers to the files and to the typed face that calls them, so a
// script and its caller cannot drift apart unnoticed.

const DIR = new URL("../../src/counters/scripts/", import.meta.url);
const FILES = readdirSync(DIR).filter((f) => f.endsWith(".lua"));
const NAMES = FILES.map((f) => f.replace(/(-\d+)?\.lua$/, ""));
const upperSnake = (camel: string) => camel.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

describe("Lua scripts", () => {
  it.each(NAMES)("%s: the key count in its file name is the number of KEYS its header lists, in order", (name) => {
    const spec = loadScript(name);
    const header = readFileSync(new URL(FILES[NAMES.indexOf(name)] ?? "", DIR), "utf8");
    const indexes = [...header.matchAll(/^KEYS\[(\d+)\]/gm)].map((m) => Number(m[1]));
    if (spec.numberOfKeys === null) {
      expect(header).toMatch(/^KEYS\[1\.\.n\]/m); // a variadic script says so
    } else {
      expect(spec.keys).toHaveLength(spec.numberOfKeys);
      expect(indexes).toEqual(Array.from({ length: spec.numberOfKeys }, (_, i) => i + 1));
    }
  });

  it.each(NAMES)("%s: ARGV is numbered 1..n with a name each, and every include is expanded", (name) => {
    const spec = loadScript(name);
    const header = readFileSync(new URL(FILES[NAMES.indexOf(name)] ?? "", DIR), "utf8").split("]]")[0] ?? "";
    const indexes = [...header.matchAll(/^ARGV\[(\d+)\]/gm)].map((m) => Number(m[1]));
    if (name !== "rate_limit") {
      expect(indexes).toEqual(Array.from({ length: indexes.length }, (_, i) => i + 1));
      expect(spec.argv.every((a) => /^[a-z_]+(\.\.\.)?$/.test(a))).toBe(true);
    }
    expect(spec.lua).not.toMatch(/--- @include/);
    expect(header).toMatch(/^Returns/m);
  });

  it("the face calls only scripts that exist", () => {
    for (const name of SCRIPT_NAMES) expect(NAMES).toContain(name);
  });

  it("reserve's arguments are encoded from the same names, in the same order, as its header lists", () => {
    expect(loadScript("reserve").argv).toEqual([...RESERVE_ARGV]);
  });

  it("reserve's return codes are exactly the ReserveOutcome values, under the same names", () => {
    const outcomes = Object.entries(ReserveOutcome)
      .filter(([, v]) => typeof v === "number")
      .map(([k, v]) => [v as number, upperSnake(k)] as const);
    expect([...loadScript("reserve").returns].sort((a, b) => a[0] - b[0])).toEqual(outcomes.sort((a, b) => a[0] - b[0]));
  });

  it.each(["give_back", "apply_return"])("%s takes a redemption's slot back through the one shared helper", (name) => {
    const source = readFileSync(new URL(FILES[NAMES.indexOf(name)] ?? "", DIR), "utf8");
    expect(source).toContain('--- @include "take_back"');
    expect(source).not.toMatch(/HINCRBY", [SCK], [^,]+, -1/);
    expect(loadScript(name).lua).toContain("local function take_back_redemption");
  });
});
