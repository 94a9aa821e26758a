import { readdirSync, readFileSync } from "node:fs";
import type { RedisClient } from "./redis.js";

// The Lua scripts of ./scripts, loaded once. As in BullMQ, a script's file name carries its key
// count (`reserve-6.lua`: six KEYS; a name without a count, like rate_limit.lua, takes a variable
// number of keys that the caller passes first), its header comment lists KEYS, ARGV and the return
// values by name, and shared helpers come from ./scripts/includes through `--- @include "<name>"`
// lines. test/unit/lua-scripts.test.ts holds every header to the typed face in counters.ts.

const DIR = new URL("./scripts/", import.meta.url);
const INCLUDE = /^--- @include "([a-z_]+)"$/gm;

export interface ScriptSpec {
  name: string;
  /** From the file name; null when the caller passes the count (variadic keys). */
  numberOfKeys: number | null;
  /** KEYS[i] names, in order, from the header. */
  keys: string[];
  /** ARGV[i] names, in order, from the header ("name..." for a variadic tail). */
  argv: string[];
  /** Named return values (code → NAME) from the header's "Returns" list. */
  returns: Map<number, string>;
  /** The script with its includes expanded. */
  lua: string;
}

/** A script defined on a client: its KEYS (when the file name has a count) then ARGV. */
export type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

let files: string[] | undefined;

/** Reads, expands and describes ./scripts/<name>[-<keys>].lua. */
export function loadScript(name: string): ScriptSpec {
  files ??= readdirSync(DIR);
  const file = files.find((f) => f === `${name}.lua` || new RegExp(`^${name}-\\d+\\.lua$`).test(f));
  if (!file) throw new Error(`no Lua script named ${name} in src/counters/scripts`);
  const count = /-(\d+)\.lua$/.exec(file)?.[1];
  const source = readFileSync(new URL(file, DIR), "utf8");
  const lua = source.replace(INCLUDE, (_line, include: string) => readFileSync(new URL(`includes/${include}.lua`, DIR), "utf8"));
  const header = /^--\[\[([\s\S]*?)\]\]/.exec(source)?.[1] ?? "";
  const named = (kind: "KEYS" | "ARGV"): string[] =>
    [...header.matchAll(new RegExp(`^${kind}\\[(\\d+)\\]\\s+(\\S+)`, "gm"))].map((m) => m[2] ?? "");
  const returns = new Map<number, string>();
  for (const m of header.matchAll(/^ {2}(-?\d+)\s+([A-Z][A-Z_]+)\b/gm)) returns.set(Number(m[1]), m[2] ?? "");
  return { name, numberOfKeys: count === undefined ? null : Number(count), keys: named("KEYS"), argv: named("ARGV"), returns, lua };
}

/** Defines a script on the client as the command `prm_<name>` (EVALSHA, falling back to EVAL). */
export function defineScript(redis: RedisClient, name: string): ScriptFn {
  const spec = loadScript(name);
  const command = `prm_${name}`;
  redis.defineCommand(command, spec.numberOfKeys === null ? { lua: spec.lua } : { lua: spec.lua, numberOfKeys: spec.numberOfKeys });
  const fn = (redis as unknown as Record<string, ScriptFn | undefined>)[command];
  if (!fn) throw new Error(`script ${name} was not defined`);
  return fn.bind(redis);
}
