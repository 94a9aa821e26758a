// Promotion codes beyond the primary one: the rules of the three code requests and the random
// generator behind bulk creation. Pure: validation collects every violation (see validation.ts);
// the generator only draws from node:crypto.

import { randomBytes } from "node:crypto";
import type { Violation } from "./errors.js";
import { normalizeCode } from "./terms.js";
import { checkCode, checkLimit, checkMetadata, checkPageLimit, checkText, checkUuid, LIMITS } from "./checks.js";

/** Bounds of the code requests; exported so the proto comments and tests quote the same numbers. */
export const CODE_LIMITS = {
  explicitCodes: 1_000,
  generatedCount: 100_000,
  prefixLength: 40,
  randomLength: 10,
  /** How many created codes a CreatePromotionCodes response carries in full. */
  fullCodesInResponse: 1_000,
  defaultPageLimit: 100,
  maxPageLimit: 1_000,
} as const;

/**
 * Characters of generated codes: A-Z and 2-9 without the look-alikes 0/O, 1/I/L, so a code read
 * aloud or typed from print is not mistaken for another. 31 symbols, ~49.5 bits per 10 characters.
 */
export const CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/** The attributes every code created by one request shares. */
export interface CodeAttributes {
  maxRedemptions: bigint | null;
  minAmountMinor: bigint | null;
  firstTimeCustomersOnly: boolean;
  expiresAt: Date | null;
  metadata: Record<string, string>;
}

/** What a CreatePromotionCodes request asks for, before validation (codes as the client sent them). */
export interface CreateCodesInput extends CodeAttributes {
  codes: readonly string[];
  count: number;
  prefix: string;
  /** "" for none; else a retry with the same key and request returns the first call's codes. */
  idempotencyKey: string;
}

/** Which codes to create: the explicit ones (normalised, in request order) or `count` random ones. */
export type CodeSource = { kind: "explicit"; codes: string[] } | { kind: "generated"; count: number; prefix: string };

/** The fields of an UpdatePromotionCode request; undefined = unchanged, null = cleared. */
export interface CodePatch {
  active?: boolean;
  maxRedemptions?: bigint | null;
  minAmountMinor?: bigint | null;
  firstTimeCustomersOnly?: boolean;
  expiresAt?: Date | null;
  metadata?: Record<string, string>;
}

/** An UpdatePromotionCode request as sent: 0 clears a limit, `clearExpiresAt` clears the expiry. */
export interface UpdateCodeInput {
  id: string;
  active?: boolean;
  maxRedemptions?: bigint;
  minAmountMinor?: bigint;
  firstTimeCustomersOnly?: boolean;
  expiresAt: Date | null;
  clearExpiresAt: boolean;
  metadata?: Record<string, string>;
}

/** Checks a CreatePromotionCodes request; returns every violation and, when there are none, what to create. */
export function validateCreateCodes(input: CreateCodesInput): { violations: Violation[]; source: CodeSource } {
  const out: Violation[] = [];
  const explicit = input.codes.length > 0;
  const codes = input.codes.map(normalizeCode);
  const prefix = normalizeCode(input.prefix);
  if (explicit && input.count !== 0) {
    out.push({ param: "count", code: "not_allowed", message: "give either codes or count, not both" });
  }
  if (!explicit && input.count === 0) {
    out.push({ param: "codes", code: "required", message: "give the codes to create, or a count of codes to generate" });
  }
  if (explicit) {
    checkExplicitCodes(out, codes);
    if (prefix !== "") {
      out.push({ param: "prefix", code: "not_allowed", message: "prefix applies only to generated codes (count); explicit codes are used as given" });
    }
  } else if (input.count !== 0) {
    if (!Number.isInteger(input.count) || input.count < 1 || input.count > CODE_LIMITS.generatedCount) {
      out.push({ param: "count", code: "out_of_range", message: `count must be between 1 and ${CODE_LIMITS.generatedCount} (got ${input.count})` });
    }
    checkPrefix(out, prefix);
  }
  checkLimit(out, input.maxRedemptions, "max_redemptions");
  checkLimit(out, input.minAmountMinor, "min_amount_minor", LIMITS.moneyMinor);
  checkMetadata(out, input.metadata);
  checkText(out, input.idempotencyKey, "idempotency_key", { max: LIMITS.idLength });
  const source: CodeSource = explicit ? { kind: "explicit", codes } : { kind: "generated", count: input.count, prefix };
  return { violations: out, source };
}

/** Checks an UpdatePromotionCode request; returns every violation and the patch it means. */
export function validateUpdateCode(input: UpdateCodeInput): { violations: Violation[]; patch: CodePatch } {
  const out: Violation[] = [];
  checkUuid(out, input.id, "id");
  const patch: CodePatch = {};
  if (input.active !== undefined) patch.active = input.active;
  if (input.firstTimeCustomersOnly !== undefined) patch.firstTimeCustomersOnly = input.firstTimeCustomersOnly;
  if (input.maxRedemptions !== undefined) {
    patch.maxRedemptions = clearedOrLimit(out, input.maxRedemptions, "max_redemptions");
  }
  if (input.minAmountMinor !== undefined) {
    patch.minAmountMinor = clearedOrLimit(out, input.minAmountMinor, "min_amount_minor", LIMITS.moneyMinor);
  }
  if (input.clearExpiresAt && input.expiresAt !== null) {
    out.push({ param: "clear_expires_at", code: "not_allowed", message: "give either expires_at or clear_expires_at, not both" });
  } else if (input.clearExpiresAt) {
    patch.expiresAt = null;
  } else if (input.expiresAt !== null) {
    patch.expiresAt = input.expiresAt;
  }
  if (input.metadata !== undefined) {
    checkMetadata(out, input.metadata, "metadata.entries");
    patch.metadata = input.metadata;
  }
  return { violations: out, patch };
}

/** Checks a ListPromotionCodes page size: 0 is the default (100), else 1..1000; returns the size to use. */
export function checkCodePageLimit(out: Violation[], limit: number): number {
  return checkPageLimit(out, limit, "limit", { defaultLimit: CODE_LIMITS.defaultPageLimit, maxLimit: CODE_LIMITS.maxPageLimit });
}

/**
 * `count` distinct random codes `prefix` + 10 characters of CODE_ALPHABET, none of them in
 * `exclude` (codes already tried). Uniform: bytes ≥ 248 (= 8 × 31) are drawn again, not folded.
 */
export function generateCodes(count: number, prefix: string, exclude: ReadonlySet<string> = new Set()): string[] {
  const out = new Set<string>();
  const n = CODE_ALPHABET.length;
  const ceiling = 256 - (256 % n);
  let pool = randomBytes(0);
  let at = 0;
  const nextSymbol = (): string => {
    for (;;) {
      if (at >= pool.length) {
        // Enough for the remaining codes with headroom for rejected bytes; refilled if not.
        pool = randomBytes(Math.max(64, (count - out.size) * CODE_LIMITS.randomLength * 2));
        at = 0;
      }
      const byte = pool[at++] ?? 255;
      if (byte < ceiling) return CODE_ALPHABET[byte % n] ?? "";
    }
  };
  while (out.size < count) {
    let code = prefix;
    for (let i = 0; i < CODE_LIMITS.randomLength; i++) code += nextSymbol();
    if (!exclude.has(code)) out.add(code);
  }
  return [...out];
}

// ---- Checks. ----

function checkExplicitCodes(out: Violation[], codes: readonly string[]): void {
  if (codes.length > CODE_LIMITS.explicitCodes) {
    // Per-code details of an oversized list would drown the one thing to fix.
    out.push({
      param: "codes",
      code: "too_many",
      message: `codes may list at most ${CODE_LIMITS.explicitCodes} codes (got ${codes.length}); use count to generate more`,
    });
    return;
  }
  const seen = new Map<string, number>();
  codes.forEach((code, i) => {
    const param = `codes[${i}]`;
    if (code === "") {
      out.push({ param, code: "required", message: `${param} must not be empty` });
      return;
    }
    checkCode(out, code, param);
    const first = seen.get(code);
    if (first === undefined) {
      seen.set(code, i);
    } else {
      out.push({
        param,
        code: "duplicate",
        message: `codes[${i}] repeats codes[${first}] (${JSON.stringify(code)}); codes are case-insensitive`,
      });
    }
  });
}

function checkPrefix(out: Violation[], prefix: string): void {
  const length = [...prefix].length;
  if (length > CODE_LIMITS.prefixLength) {
    out.push({ param: "prefix", code: "too_long", message: `prefix must be at most ${CODE_LIMITS.prefixLength} characters (got ${length})` });
  }
  if (!/^[A-Z0-9_-]*$/.test(prefix)) {
    out.push({ param: "prefix", code: "invalid_format", message: "prefix may contain only A-Z, 0-9, '_' and '-'" });
  }
}

/** An update's limit: 0 clears it (null), negative is refused, otherwise checked like a new limit. */
function clearedOrLimit(out: Violation[], value: bigint, param: string, max?: bigint): bigint | null {
  if (value === 0n) return null;
  if (value < 0n) {
    out.push({ param, code: "out_of_range", message: `${param} must be at least 1, or 0 to remove it (got ${value})` });
    return null;
  }
  checkLimit(out, value, param, max);
  return value;
}
