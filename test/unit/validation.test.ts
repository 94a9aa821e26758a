import { describe, expect, it } from "vitest";
import { CURRENCIES, isKnownCurrency, minorUnits } from "../../src/domain/currency.js";
import { DomainError, type Violation } from "../../src/domain/errors.js";
import { defaultApplicationMethod, defaultTerms, type Archetype, type Effect, type Phase, type PromotionTerms } from "../../src/domain/terms.js";
import { validateTerms } from "../../src/domain/validation.js";
import { assertValid, checkCode, checkPageLimit, checkTimestampNotPast, checkUuid } from "../../src/domain/checks.js";

// ---- Builders: a valid promotion, and the pieces cases swap into it. ----

const pct = (percentBps: number): Effect => ({ kind: "percentage_discount", percentBps, appliesTo: null });
const fixed = (amountMinor: bigint): Effect => ({ kind: "fixed_discount", amountMinor, appliesTo: null });
const credit = (amountMinor: bigint): Effect => ({ kind: "credit_grant", amountMinor, appliesTo: null });
const trial = (days: number): Effect => ({ kind: "free_trial_extension", days, appliesTo: null });
const unsetEffect: Effect = { kind: "unset", appliesTo: null };

function phase(name: string, effects: Effect[], duration: Phase["duration"] = "FOREVER", cycles: number | null = null): Phase {
  return { name, duration, cycles, effects };
}

function validTerms(): PromotionTerms {
  return { ...defaultTerms(), name: "Spring sale", phases: [phase("Default", [pct(2000)])] };
}

/** A ladder whose phases each hold the given effects; every phase but the last is ONCE. */
function ladder(archetype: Archetype, effectsPerPhase: Effect[][]): (t: PromotionTerms) => void {
  return (t) => {
    t.archetype = archetype;
    t.isPhased = true;
    t.currency = "USD";
    t.phases = effectsPerPhase.map((effects, i) =>
      phase(`Step ${i + 1}`, effects, i === effectsPerPhase.length - 1 ? "FOREVER" : "ONCE"),
    );
  };
}

function phased(...phases: Phase[]): (t: PromotionTerms) => void {
  return (t) => {
    t.isPhased = true;
    t.phases = phases;
  };
}

/** The terms after `mutate`; a case that sets a code but no application method gets the one a request would (CODE). */
function run(mutate: (t: PromotionTerms) => void, options?: { effectsShorthand?: boolean }): Violation[] {
  const terms = validTerms();
  const method = terms.applicationMethod;
  mutate(terms);
  if (terms.applicationMethod === method) terms.applicationMethod = defaultApplicationMethod(terms.code);
  return validateTerms(terms, options);
}

const pairs = (violations: Violation[]): string[][] => violations.map((v) => [v.param, v.code]);
const text = (n: number, char = "a"): string => char.repeat(n);

interface Refusal {
  spec: string;
  mutate: (t: PromotionTerms) => void;
  /** Exactly the [param, code] pairs expected, in order. */
  expected: string[][];
  message?: string;
  shorthand?: boolean;
}

interface Acceptance {
  spec: string;
  mutate: (t: PromotionTerms) => void;
}

// Plain loops rather than it.each so the spec sentence is the test name, unquoted.
function refusals(rows: Refusal[]): void {
  for (const { spec, mutate, expected, message, shorthand } of rows) {
    it(spec, () => {
      const violations = run(mutate, { effectsShorthand: shorthand === true });
      expect(pairs(violations)).toEqual(expected);
      if (message !== undefined) expect(violations[0]?.message).toBe(message);
    });
  }
}

function acceptances(rows: Acceptance[]): void {
  for (const { spec, mutate } of rows) {
    it(spec, () => {
      expect(run(mutate)).toEqual([]);
    });
  }
}

describe("validateTerms", () => {
  it("accepts a minimal valid promotion: a name and one Default phase with a percentage discount", () => {
    expect(validateTerms(validTerms())).toEqual([]);
  });

  describe("name and descriptions", () => {
    refusals([
      { spec: "refuses an empty name at name", mutate: (t) => { t.name = ""; }, expected: [["name", "required"]], message: "name is required" },
      { spec: "refuses a name of only spaces as missing", mutate: (t) => { t.name = "   "; }, expected: [["name", "required"]] },
      {
        spec: "refuses a 201-character name",
        mutate: (t) => { t.name = text(201); },
        expected: [["name", "too_long"]],
        message: "name must be at most 200 characters (got 201)",
      },
      { spec: "refuses a NUL in name", mutate: (t) => { t.name = "Spring\u0000sale"; }, expected: [["name", "invalid_format"]] },
      { spec: "refuses a newline in name", mutate: (t) => { t.name = "Spring\nsale"; }, expected: [["name", "invalid_format"]] },
      { spec: "refuses a C1 control character in name", mutate: (t) => { t.name = "Spring\u0085sale"; }, expected: [["name", "invalid_format"]] },
      { spec: "refuses a 2001-character description", mutate: (t) => { t.description = text(2001); }, expected: [["description", "too_long"]] },
      {
        spec: "refuses a 2001-character public_description",
        mutate: (t) => { t.publicDescription = text(2001); },
        expected: [["public_description", "too_long"]],
      },
      {
        spec: "refuses a NUL in description",
        mutate: (t) => { t.description = "a\u0000b"; },
        expected: [["description", "invalid_format"]],
        message: "description must not contain control characters other than newline and tab",
      },
      { spec: "refuses an escape character in public_description", mutate: (t) => { t.publicDescription = "\u001b[31mred"; }, expected: [["public_description", "invalid_format"]] },
      { spec: "refuses a carriage return in description (only \\n and \\t are allowed)", mutate: (t) => { t.description = "a\r\nb"; }, expected: [["description", "invalid_format"]] },
      {
        spec: "reports both length and control characters of one field",
        mutate: (t) => { t.name = `${text(200)}\u0000`; },
        expected: [["name", "too_long"], ["name", "invalid_format"]],
      },
    ]);
    acceptances([
      { spec: "accepts a 200-character name", mutate: (t) => { t.name = text(200); } },
      { spec: "counts characters, not UTF-16 units: accepts a name of 200 emoji", mutate: (t) => { t.name = text(200, "🎉"); } },
      { spec: "accepts empty descriptions", mutate: (t) => { t.description = ""; t.publicDescription = ""; } },
      { spec: "accepts 2000-character descriptions", mutate: (t) => { t.description = text(2000); t.publicDescription = text(2000); } },
      { spec: "accepts newlines and tabs in descriptions", mutate: (t) => { t.description = "line one\n\tline two"; t.publicDescription = "a\nb"; } },
    ]);
  });

  describe("code", () => {
    refusals([
      { spec: "refuses a 2-character code", mutate: (t) => { t.code = "AB"; }, expected: [["code", "too_short"]], message: "code must be at least 3 characters (got 2)" },
      { spec: "refuses a 65-character code", mutate: (t) => { t.code = text(65, "A"); }, expected: [["code", "too_long"]] },
      {
        spec: "refuses a space in code",
        mutate: (t) => { t.code = "SAVE 20"; },
        expected: [["code", "invalid_format"]],
        message: "code may contain only A-Z, 0-9, '_' and '-'",
      },
      { spec: "refuses '!' in code", mutate: (t) => { t.code = "SAVE20!"; }, expected: [["code", "invalid_format"]] },
      { spec: "refuses lower case in code (terms hold the normalized, upper-cased code)", mutate: (t) => { t.code = "save20"; }, expected: [["code", "invalid_format"]] },
      { spec: "refuses letters outside A-Z in code", mutate: (t) => { t.code = "ÄPFEL"; }, expected: [["code", "invalid_format"]] },
      { spec: "refuses a short code with a bad character twice over", mutate: (t) => { t.code = "A!"; }, expected: [["code", "too_short"], ["code", "invalid_format"]] },
      { spec: "refuses a CODE promotion without a code", mutate: (t) => { t.code = ""; t.applicationMethod = "CODE"; }, expected: [["code", "code_required"]] },
      { spec: "refuses a code on an ASSIGNED promotion", mutate: (t) => { t.code = "SAVE20"; t.applicationMethod = "ASSIGNED"; }, expected: [["code", "not_allowed"]] },
    ]);
    acceptances([
      { spec: "accepts an empty code (an automatic promotion)", mutate: (t) => { t.code = ""; } },
      { spec: "accepts an ASSIGNED promotion without a code", mutate: (t) => { t.code = ""; t.applicationMethod = "ASSIGNED"; } },
      { spec: "accepts a 3-character code", mutate: (t) => { t.code = "ABC"; } },
      { spec: "accepts a 64-character code", mutate: (t) => { t.code = text(64, "Z"); } },
      { spec: "accepts digits, '_' and '-' in code", mutate: (t) => { t.code = "SAVE_20-OFF9"; } },
    ]);
  });

  describe("priority and validity window", () => {
    refusals([
      {
        spec: "refuses priority 1000001",
        mutate: (t) => { t.priority = 1_000_001; },
        expected: [["priority", "out_of_range"]],
        message: "priority must be between -1000000 and 1000000 (got 1000001)",
      },
      { spec: "refuses priority -1000001", mutate: (t) => { t.priority = -1_000_001; }, expected: [["priority", "out_of_range"]] },
      { spec: "refuses a fractional priority", mutate: (t) => { t.priority = 1.5; }, expected: [["priority", "out_of_range"]] },
      {
        spec: "refuses valid_to equal to valid_from at valid_to",
        mutate: (t) => { t.validFrom = new Date("2026-01-01T00:00:00Z"); t.validTo = new Date("2026-01-01T00:00:00Z"); },
        expected: [["valid_to", "invalid_order"]],
        message: "valid_to (2026-01-01T00:00:00.000Z) must be after valid_from (2026-01-01T00:00:00.000Z)",
      },
      {
        spec: "refuses valid_to before valid_from",
        mutate: (t) => { t.validFrom = new Date("2026-02-01T00:00:00Z"); t.validTo = new Date("2026-01-01T00:00:00Z"); },
        expected: [["valid_to", "invalid_order"]],
      },
    ]);
    acceptances([
      { spec: "accepts priority -1000000", mutate: (t) => { t.priority = -1_000_000; } },
      { spec: "accepts priority 1000000", mutate: (t) => { t.priority = 1_000_000; } },
      { spec: "accepts valid_from before valid_to", mutate: (t) => { t.validFrom = new Date("2026-01-01T00:00:00Z"); t.validTo = new Date("2026-01-01T00:00:00.001Z"); } },
      { spec: "accepts only valid_from", mutate: (t) => { t.validFrom = new Date("2026-01-01T00:00:00Z"); } },
      { spec: "accepts only valid_to", mutate: (t) => { t.validTo = new Date("2026-01-01T00:00:00Z"); } },
    ]);
  });

  describe("limits", () => {
    refusals([
      {
        spec: "refuses max_budget 0",
        mutate: (t) => { t.currency = "USD"; t.maxBudget = 0n; },
        expected: [["max_budget", "out_of_range"]],
        message: "max_budget must be at least 1 (got 0); leave it unset for no limit",
      },
      { spec: "refuses max_budget above 10^15", mutate: (t) => { t.currency = "USD"; t.maxBudget = 10n ** 15n + 1n; }, expected: [["max_budget", "out_of_range"]] },
      { spec: "refuses max_redemptions 0", mutate: (t) => { t.maxRedemptions = 0n; }, expected: [["max_redemptions", "out_of_range"]] },
      { spec: "refuses negative max_redemptions", mutate: (t) => { t.maxRedemptions = -5n; }, expected: [["max_redemptions", "out_of_range"]] },
      {
        spec: "refuses max_redemptions_per_customer 0",
        mutate: (t) => { t.maxRedemptionsPerCustomer = 0n; },
        expected: [["max_redemptions_per_customer", "out_of_range"]],
      },
      {
        spec: "refuses max_redemptions_per_customer above max_redemptions",
        mutate: (t) => { t.maxRedemptions = 3n; t.maxRedemptionsPerCustomer = 5n; },
        expected: [["max_redemptions_per_customer", "out_of_range"]],
        message: "max_redemptions_per_customer (5) must not exceed max_redemptions (3)",
      },
    ]);
    acceptances([
      { spec: "accepts no limits at all (null is unlimited)", mutate: () => {} },
      { spec: "accepts max_redemptions_per_customer equal to max_redemptions", mutate: (t) => { t.maxRedemptions = 3n; t.maxRedemptionsPerCustomer = 3n; } },
      { spec: "accepts max_redemptions_per_customer without max_redemptions", mutate: (t) => { t.maxRedemptionsPerCustomer = 1n; } },
      { spec: "accepts max_budget 10^15", mutate: (t) => { t.currency = "USD"; t.maxBudget = 10n ** 15n; } },
    ]);
  });

  describe("effects", () => {
    const withEffects = (...effects: Effect[]) => (t: PromotionTerms) => {
      t.currency = "USD";
      t.phases = [phase("Default", effects)];
    };
    refusals([
      {
        spec: "refuses percent_bps 0 at phases[0].effects[0].percentage_discount.percent_bps",
        mutate: withEffects(pct(0)),
        expected: [["phases[0].effects[0].percentage_discount.percent_bps", "out_of_range"]],
        message: "percent_bps must be between 1 and 10000 (got 0)",
      },
      {
        spec: "refuses percent_bps 10001 at phases[0].effects[1].percentage_discount.percent_bps",
        mutate: withEffects(pct(100), pct(10_001)),
        expected: [["phases[0].effects[1].percentage_discount.percent_bps", "out_of_range"]],
      },
      {
        spec: "refuses a fixed_discount of 0",
        mutate: withEffects(fixed(0n)),
        expected: [["phases[0].effects[0].fixed_discount.amount_minor", "out_of_range"]],
        message: "amount_minor must be between 1 and 1000000000000000 (got 0)",
      },
      { spec: "refuses a negative fixed_discount", mutate: withEffects(fixed(-100n)), expected: [["phases[0].effects[0].fixed_discount.amount_minor", "out_of_range"]] },
      { spec: "refuses a fixed_discount above 10^15", mutate: withEffects(fixed(10n ** 15n + 1n)), expected: [["phases[0].effects[0].fixed_discount.amount_minor", "out_of_range"]] },
      { spec: "refuses a credit_grant of 0", mutate: withEffects(credit(0n)), expected: [["phases[0].effects[0].credit_grant.amount_minor", "out_of_range"]] },
      { spec: "refuses a free_trial_extension of 0 days", mutate: withEffects(trial(0)), expected: [["phases[0].effects[0].free_trial_extension.days", "out_of_range"]] },
      {
        spec: "refuses a free_trial_extension of 3651 days",
        mutate: withEffects(trial(3651)),
        expected: [["phases[0].effects[0].free_trial_extension.days", "out_of_range"]],
        message: "days must be between 1 and 3650 (got 3651)",
      },
      {
        spec: "refuses an effect with no kind set",
        mutate: withEffects(pct(100), unsetEffect),
        expected: [["phases[0].effects[1]", "required"]],
        message: "must set one of percentage_discount, fixed_discount, free_trial_extension, credit_grant",
      },
      {
        spec: "refuses an empty plan id in applies_to",
        mutate: withEffects({ ...pct(100), appliesTo: { planIds: [""], productIds: [] } }),
        expected: [["phases[0].effects[0].applies_to.plan_ids[0]", "required"]],
      },
      {
        spec: "refuses a 201-character product id in applies_to",
        mutate: withEffects({ ...pct(100), appliesTo: { planIds: [], productIds: [text(201)] } }),
        expected: [["phases[0].effects[0].applies_to.product_ids[0]", "too_long"]],
      },
      {
        spec: "refuses a repeated plan id in applies_to at the repeat",
        mutate: withEffects({ ...pct(100), appliesTo: { planIds: ["pro", "team", "pro"], productIds: [] } }),
        expected: [["phases[0].effects[0].applies_to.plan_ids[2]", "duplicate"]],
      },
    ]);
    acceptances([
      { spec: "accepts percent_bps 1 and 10000", mutate: withEffects(pct(1), pct(10_000)) },
      { spec: "accepts amounts of 1 and 10^15", mutate: withEffects(fixed(1n), credit(10n ** 15n)) },
      { spec: "accepts free_trial_extension of 1 and 3650 days", mutate: withEffects(trial(1), trial(3650)) },
      {
        spec: "accepts applies_to with distinct plan and product ids",
        mutate: withEffects({ ...pct(100), appliesTo: { planIds: ["pro", "team"], productIds: ["pro"] } }),
      },
      { spec: "accepts an empty applies_to (every line)", mutate: withEffects({ ...pct(100), appliesTo: { planIds: [], productIds: [] } }) },
    ]);
  });

  describe("currency", () => {
    refusals([
      {
        spec: "requires currency when a fixed_discount is set, naming it",
        mutate: (t) => { t.phases = [phase("Default", [pct(100), fixed(500n)])]; },
        expected: [["currency", "required"]],
        message: "currency is required because phases[0].effects[1].fixed_discount is an amount of money",
      },
      { spec: "requires currency when a credit_grant is set", mutate: (t) => { t.phases = [phase("Default", [credit(500n)])]; }, expected: [["currency", "required"]] },
      {
        spec: "requires currency when a min_spend condition is set",
        mutate: (t) => { t.conditions = [{ kind: "min_spend", amountMinor: 1000n }]; },
        expected: [["currency", "required"]],
        message: "currency is required because conditions[0].min_spend is an amount of money",
      },
      { spec: "requires currency when max_budget is set", mutate: (t) => { t.maxBudget = 10_000n; }, expected: [["currency", "required"]] },
      { spec: "refuses a lower-case currency", mutate: (t) => { t.currency = "usd"; }, expected: [["currency", "invalid_format"]] },
      { spec: "refuses a two-letter currency", mutate: (t) => { t.currency = "US"; }, expected: [["currency", "invalid_format"]] },
      {
        spec: "refuses an unknown three-letter currency",
        mutate: (t) => { t.currency = "ABC"; },
        expected: [["currency", "invalid_value"]],
        message: 'currency "ABC" is not an active ISO-4217 currency',
      },
      { spec: "refuses gold (XAU), which is not money a business charges in", mutate: (t) => { t.currency = "XAU"; }, expected: [["currency", "invalid_value"]] },
    ]);
    acceptances([
      { spec: "accepts no currency when only percentages are set", mutate: (t) => { t.currency = ""; } },
      { spec: "accepts USD with a fixed discount", mutate: (t) => { t.currency = "USD"; t.phases = [phase("Default", [fixed(500n)])]; } },
      { spec: "accepts JPY", mutate: (t) => { t.currency = "JPY"; } },
      { spec: "accepts a currency even when no amount needs one", mutate: (t) => { t.currency = "EUR"; } },
    ]);
  });

  describe("phases", () => {
    refusals([
      { spec: "refuses a promotion with no phases", mutate: (t) => { t.phases = []; }, expected: [["phases", "required"]] },
      {
        spec: "refuses two phases on a promotion that is not phased",
        mutate: (t) => { t.phases = [phase("Default", [pct(100)], "ONCE"), phase("Later", [pct(100)])]; },
        expected: [["phases", "too_many"]],
      },
      {
        spec: "refuses a non-phased promotion whose phase is not named Default",
        mutate: (t) => { t.phases = [phase("Welcome", [pct(100)])]; },
        expected: [["phases[0].name", "invalid_value"]],
        message: 'the phase of a promotion that is not phased must be named "Default" (got "Welcome")',
      },
      { spec: "refuses an empty phase name", mutate: phased(phase("", [pct(100)])), expected: [["phases[0].name", "required"]] },
      { spec: "refuses a 101-character phase name", mutate: phased(phase(text(101), [pct(100)])), expected: [["phases[0].name", "too_long"]] },
      {
        spec: "refuses phase names that repeat, ignoring case",
        mutate: phased(phase("Year one", [pct(100)], "ONCE"), phase("year one", [pct(100)])),
        expected: [["phases[1].name", "duplicate"]],
      },
      {
        spec: "refuses a phase without a duration",
        mutate: (t) => { t.phases = [phase("Default", [pct(100)], null)]; },
        expected: [["phases[0].duration", "required"]],
        message: "duration is required (ONCE, REPEATING or FOREVER)",
      },
      {
        spec: "refuses a REPEATING phase without cycles",
        mutate: (t) => { t.phases = [phase("Default", [pct(100)], "REPEATING", null)]; },
        expected: [["phases[0].cycles", "required"]],
        message: "cycles is required for a REPEATING phase",
      },
      { spec: "refuses a REPEATING phase with 0 cycles", mutate: (t) => { t.phases = [phase("Default", [pct(100)], "REPEATING", 0)]; }, expected: [["phases[0].cycles", "required"]] },
      { spec: "refuses a REPEATING phase with 1201 cycles", mutate: (t) => { t.phases = [phase("Default", [pct(100)], "REPEATING", 1201)]; }, expected: [["phases[0].cycles", "out_of_range"]] },
      { spec: "refuses a REPEATING phase with -1 cycles", mutate: (t) => { t.phases = [phase("Default", [pct(100)], "REPEATING", -1)]; }, expected: [["phases[0].cycles", "out_of_range"]] },
      {
        spec: "refuses cycles on a ONCE phase",
        mutate: (t) => { t.phases = [phase("Default", [pct(100)], "ONCE", 3)]; },
        expected: [["phases[0].cycles", "not_allowed"]],
        message: "cycles is only allowed on a REPEATING phase (got 3 on a ONCE phase)",
      },
      { spec: "refuses cycles on a FOREVER phase", mutate: (t) => { t.phases = [phase("Default", [pct(100)], "FOREVER", 2)]; }, expected: [["phases[0].cycles", "not_allowed"]] },
      {
        spec: "refuses a FOREVER phase that is not the last",
        mutate: phased(phase("Welcome", [pct(100)], "FOREVER"), phase("After", [pct(100)], "FOREVER")),
        expected: [["phases[0].duration", "not_allowed"]],
        message: "only the last phase may be FOREVER",
      },
      {
        spec: "refuses a phase without effects at phases[0].effects",
        mutate: (t) => { t.phases = [phase("Default", [])]; },
        expected: [["phases[0].effects", "required"]],
        message: 'phase "Default" needs at least one effect',
      },
      {
        spec: "refuses 11 effects in one phase",
        mutate: (t) => { t.phases = [phase("Default", Array.from({ length: 11 }, () => pct(100)))]; },
        expected: [["phases[0].effects", "too_many"]],
      },
    ]);
    acceptances([
      { spec: "accepts a REPEATING phase with 1 cycle", mutate: (t) => { t.phases = [phase("Default", [pct(100)], "REPEATING", 1)]; } },
      { spec: "accepts a REPEATING phase with 1200 cycles", mutate: (t) => { t.phases = [phase("Default", [pct(100)], "REPEATING", 1200)]; } },
      { spec: "accepts cycles 0 on a ONCE phase (proto's unset)", mutate: (t) => { t.phases = [phase("Default", [pct(100)], "ONCE", 0)]; } },
      { spec: "accepts 10 effects in one phase", mutate: (t) => { t.phases = [phase("Default", Array.from({ length: 10 }, () => pct(100)))]; } },
      {
        spec: "accepts a phased STANDARD promotion: ONCE, REPEATING, then FOREVER",
        mutate: phased(phase("Welcome", [pct(5000)], "ONCE"), phase("Middle", [pct(2000)], "REPEATING", 11), phase("After", [pct(1000)])),
      },
      { spec: "accepts a phased promotion with a single phase of any name", mutate: phased(phase("Only", [pct(100)])) },
    ]);
  });

  describe("the effects shorthand (top-level effects instead of phases)", () => {
    refusals([
      {
        spec: "refuses percent_bps 0 at effects[0].percentage_discount.percent_bps",
        mutate: (t) => { t.phases = [phase("Default", [pct(0)])]; },
        expected: [["effects[0].percentage_discount.percent_bps", "out_of_range"]],
        shorthand: true,
      },
      { spec: "refuses an empty effects list at effects", mutate: (t) => { t.phases = [phase("Default", [])]; }, expected: [["effects", "required"]], shorthand: true },
      {
        spec: "names effects[1].fixed_discount when currency is missing",
        mutate: (t) => { t.phases = [phase("Default", [pct(100), fixed(100n)])]; },
        expected: [["currency", "required"]],
        message: "currency is required because effects[1].fixed_discount is an amount of money",
        shorthand: true,
      },
      {
        spec: "refuses an empty plan id at effects[1].applies_to.plan_ids[0]",
        mutate: (t) => { t.phases = [phase("Default", [pct(100), { ...pct(100), appliesTo: { planIds: [""], productIds: [] } }])]; },
        expected: [["effects[1].applies_to.plan_ids[0]", "required"]],
        shorthand: true,
      },
    ]);
  });

  describe("ladders", () => {
    refusals([
      {
        spec: "refuses a LOYALTY_LADDER that is not phased",
        mutate: (t) => { ladder("LOYALTY_LADDER", [[pct(1000)], [pct(2000)]])(t); t.isPhased = false; t.phases[0]!.name = "Default"; },
        expected: [["phases", "too_many"], ["is_phased", "invalid_value"]],
      },
      {
        spec: "refuses a GROWTH_LADDER with a single phase",
        mutate: ladder("GROWTH_LADDER", [[pct(1000)]]),
        expected: [["phases", "too_few"]],
        message: "a GROWTH_LADDER needs at least 2 phases (got 1)",
      },
      {
        spec: "refuses a ladder phase that carries no percentage or fixed discount",
        mutate: ladder("LOYALTY_LADDER", [[pct(1000)], [trial(30)]]),
        expected: [["phases[1].effects", "required"]],
      },
      {
        spec: "refuses a LOYALTY_LADDER whose percentage falls, at the later phase, naming both",
        mutate: ladder("LOYALTY_LADDER", [[pct(2000)], [pct(1000)]]),
        expected: [["phases[1]", "invalid_order"]],
        message:
          'a LOYALTY_LADDER\'s discount must never fall from one phase to the next: phase "Step 2" (phases[1]) gives 10.00% off, less than the 20.00% of phase "Step 1" (phases[0])',
      },
      {
        spec: "refuses a LOYALTY_LADDER whose fixed discount falls",
        mutate: ladder("LOYALTY_LADDER", [[fixed(500n)], [fixed(500n)], [fixed(300n)]]),
        expected: [["phases[2]", "invalid_order"]],
      },
      {
        spec: "compares per kind: a LOYALTY_LADDER going from a percentage to a fixed amount falls in percentage",
        mutate: ladder("LOYALTY_LADDER", [[pct(1000)], [fixed(500n)]]),
        expected: [["phases[1]", "invalid_order"]],
      },
      {
        spec: "refuses a GROWTH_LADDER whose percentage rises",
        mutate: ladder("GROWTH_LADDER", [[pct(1000)], [pct(2000)]]),
        expected: [["phases[1]", "invalid_order"]],
      },
      {
        spec: "refuses a GROWTH_LADDER whose fixed discount rises",
        mutate: ladder("GROWTH_LADDER", [[fixed(300n)], [fixed(500n)]]),
        expected: [["phases[1]", "invalid_order"]],
      },
      {
        spec: "compares per kind: a GROWTH_LADDER adding a percentage to an equal fixed amount rises",
        mutate: ladder("GROWTH_LADDER", [[fixed(500n)], [fixed(500n), pct(1000)]]),
        expected: [["phases[1]", "invalid_order"]],
      },
      {
        spec: "reports a ladder that breaks on both kinds once per kind",
        mutate: ladder("LOYALTY_LADDER", [[pct(2000), fixed(500n)], [pct(1000), fixed(100n)]]),
        expected: [["phases[1]", "invalid_order"], ["phases[1]", "invalid_order"]],
      },
    ]);
    acceptances([
      { spec: "accepts a LOYALTY_LADDER that rises or holds", mutate: ladder("LOYALTY_LADDER", [[pct(1000)], [pct(1000)], [pct(2000)]]) },
      { spec: "accepts a GROWTH_LADDER that tapers", mutate: ladder("GROWTH_LADDER", [[pct(3000)], [pct(2000)], [pct(1000)]]) },
      {
        spec: "compares totals: a LOYALTY_LADDER phase of 10% + 5% is matched by one of 15%",
        mutate: ladder("LOYALTY_LADDER", [[pct(1000), pct(500)], [pct(1500)]]),
      },
      { spec: "accepts ladder phases carrying other effects beside the discount", mutate: ladder("LOYALTY_LADDER", [[pct(1000), trial(14)], [pct(1000), credit(100n)]]) },
      {
        spec: "does not apply ladder rules to a phased STANDARD promotion",
        mutate: phased(phase("High", [pct(5000)], "ONCE"), phase("Low", [pct(100)])),
      },
    ]);
  });

  describe("conditions", () => {
    const withConditions = (...conditions: PromotionTerms["conditions"]) => (t: PromotionTerms) => {
      t.currency = "USD";
      t.conditions = conditions;
    };
    refusals([
      {
        spec: "refuses 21 conditions",
        mutate: withConditions(...Array.from({ length: 21 }, () => ({ kind: "first_time_customer" as const }))),
        expected: [["conditions", "too_many"]],
        message: "at most 20 conditions are allowed (got 21)",
      },
      {
        spec: "refuses a condition with no kind set",
        mutate: withConditions({ kind: "first_time_customer" }, { kind: "unset" }),
        expected: [["conditions[1]", "required"]],
        message: "must set one of min_spend, plans, products, customer_segments, first_time_customer, date_range",
      },
      { spec: "refuses a min_spend of 0", mutate: withConditions({ kind: "min_spend", amountMinor: 0n }), expected: [["conditions[0].min_spend.amount_minor", "out_of_range"]] },
      {
        spec: "refuses a plans condition with neither include nor exclude",
        mutate: withConditions({ kind: "plans", include: [], exclude: [] }),
        expected: [["conditions[0].plans", "required"]],
        message: "plans needs at least one id in include or exclude",
      },
      { spec: "refuses a products condition with neither include nor exclude", mutate: withConditions({ kind: "products", include: [], exclude: [] }), expected: [["conditions[0].products", "required"]] },
      {
        spec: "refuses a plan id in both include and exclude, at the exclude entry",
        mutate: withConditions({ kind: "plans", include: ["pro", "team"], exclude: ["free", "team"] }),
        expected: [["conditions[0].plans.exclude[1]", "not_allowed"]],
        message: '"team" cannot be in both include and exclude',
      },
      { spec: "refuses an empty plan id", mutate: withConditions({ kind: "plans", include: [""], exclude: [] }), expected: [["conditions[0].plans.include[0]", "required"]] },
      {
        spec: "refuses a 201-character product id",
        mutate: withConditions({ kind: "products", include: [], exclude: [text(201)] }),
        expected: [["conditions[0].products.exclude[0]", "too_long"]],
      },
      {
        spec: "refuses customer_segments with an empty any_of",
        mutate: withConditions({ kind: "customer_segments", anyOf: [] }),
        expected: [["conditions[0].customer_segments.any_of", "required"]],
      },
      {
        spec: "refuses a date_range with neither start nor end",
        mutate: withConditions({ kind: "date_range", start: null, end: null }),
        expected: [["conditions[0].date_range", "required"]],
        message: "date_range needs a start, an end or both",
      },
      {
        spec: "refuses a date_range whose end is not after its start, at conditions[2].date_range.end",
        mutate: withConditions(
          { kind: "first_time_customer" },
          { kind: "first_time_customer" },
          { kind: "date_range", start: new Date("2026-03-01T00:00:00Z"), end: new Date("2026-02-01T00:00:00Z") },
        ),
        expected: [["conditions[2].date_range.end", "invalid_order"]],
        message: "end (2026-02-01T00:00:00.000Z) must be after start (2026-03-01T00:00:00.000Z)",
      },
    ]);
    acceptances([
      { spec: "accepts 20 conditions", mutate: withConditions(...Array.from({ length: 20 }, () => ({ kind: "first_time_customer" as const }))) },
      {
        spec: "accepts one of each kind of condition",
        mutate: withConditions(
          { kind: "min_spend", amountMinor: 1000n },
          { kind: "plans", include: ["pro"], exclude: [] },
          { kind: "products", include: [], exclude: ["legacy"] },
          { kind: "customer_segments", anyOf: ["students"] },
          { kind: "first_time_customer" },
          { kind: "date_range", start: new Date("2026-01-01T00:00:00Z"), end: null },
          { kind: "date_range", start: null, end: new Date("2026-01-01T00:00:00Z") },
        ),
      },
    ]);
  });

  describe("metadata", () => {
    const withMetadata = (metadata: Record<string, string>) => (t: PromotionTerms) => {
      t.metadata = metadata;
    };
    const manyKeys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
    refusals([
      { spec: "refuses 51 metadata keys", mutate: withMetadata(manyKeys(51)), expected: [["metadata", "too_many"]] },
      { spec: "refuses an empty metadata key at metadata[\"\"]", mutate: withMetadata({ "": "v" }), expected: [['metadata[""]', "required"]] },
      { spec: "refuses a 41-character metadata key", mutate: withMetadata({ [text(41)]: "v" }), expected: [[`metadata["${text(41)}"]`, "too_long"]] },
      {
        spec: 'refuses a 501-character value at metadata["the key"]',
        mutate: withMetadata({ "the key": text(501) }),
        expected: [['metadata["the key"]', "too_long"]],
        message: 'metadata value of "the key" must be at most 500 characters (got 501)',
      },
      { spec: "refuses a NUL in a metadata value", mutate: withMetadata({ note: "a\u0000b" }), expected: [['metadata["note"]', "invalid_format"]] },
      { spec: "refuses a newline in a metadata key", mutate: withMetadata({ "a\nb": "v" }), expected: [['metadata["a\\nb"]', "invalid_format"]] },
      { spec: "escapes quotes of a key inside the param", mutate: withMetadata({ 'say "hi"': text(501) }), expected: [['metadata["say \\"hi\\""]', "too_long"]] },
    ]);
    acceptances([
      { spec: "accepts 50 metadata keys", mutate: withMetadata(manyKeys(50)) },
      { spec: "accepts a 40-character key and a 500-character value", mutate: withMetadata({ [text(40)]: text(500) }) },
      { spec: "accepts newlines and tabs in metadata values", mutate: withMetadata({ note: "a\n\tb" }) },
    ]);
  });

  it("refuses a code on an AUTOMATIC promotion: a code would be a second way in", () => {
    expect(pairs(validateTerms({ ...validTerms(), code: "SAVE20", applicationMethod: "AUTOMATIC" }))).toEqual([["code", "not_allowed"]]);
  });

  it("reports every violation of a request at once, none short-circuiting", () => {
    const violations = run((t) => {
      t.name = "";
      t.code = "NO WAY";
      t.priority = 2_000_000;
      t.maxRedemptions = 0n;
      t.phases = [phase("Default", [pct(0), fixed(0n)])];
      t.conditions = [{ kind: "unset" }];
      t.metadata = { "": "x" };
    });
    expect(pairs(violations)).toEqual([
      ["name", "required"],
      ["code", "invalid_format"],
      ["priority", "out_of_range"],
      ["max_redemptions", "out_of_range"],
      ["phases[0].effects[0].percentage_discount.percent_bps", "out_of_range"],
      ["phases[0].effects[1].fixed_discount.amount_minor", "out_of_range"],
      ["conditions[0]", "required"],
      ['metadata[""]', "required"],
      ["currency", "required"],
    ]);
  });
});

describe("assertValid", () => {
  it("does nothing when there are no violations", () => {
    expect(() => assertValid([])).not.toThrow();
  });

  it("throws one invalid_argument DomainError carrying every violation", () => {
    const violations: Violation[] = [
      { param: "name", code: "required", message: "name is required" },
      { param: "code", code: "too_short", message: "code must be at least 3 characters (got 2)" },
    ];
    let caught: unknown;
    try {
      assertValid(violations);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DomainError);
    const error = caught as DomainError;
    expect(error.kind).toBe("invalid_argument");
    expect(error.details).toEqual(violations);
    expect(error.message).toBe("name: name is required; code: code must be at least 3 characters (got 2)");
  });
});

describe("field checks for other requests", () => {
  describe("checkUuid", () => {
    it.each([
      { value: "", code: "required" },
      { value: "not-a-uuid", code: "invalid_format" },
      { value: "0190f5a27c1e7d3a9b2f4c6d8e0a1b2c", code: "invalid_format" },
      { value: "{0190f5a2-7c1e-7d3a-9b2f-4c6d8e0a1b2c}", code: "invalid_format" },
      { value: "0190f5a2-7c1e-7d3a-9b2f-4c6d8e0a1b2g", code: "invalid_format" },
    ])("refuses $value with $code", ({ value, code }) => {
      const out: Violation[] = [];
      checkUuid(out, value, "id");
      expect(pairs(out)).toEqual([["id", code]]);
    });

    it.each(["0190f5a2-7c1e-7d3a-9b2f-4c6d8e0a1b2c", "0190F5A2-7C1E-7D3A-9B2F-4C6D8E0A1B2C", "00000000-0000-0000-0000-000000000000"])(
      "accepts %s",
      (value) => {
        const out: Violation[] = [];
        checkUuid(out, value, "id");
        expect(out).toEqual([]);
      },
    );
  });

  describe("checkPageLimit", () => {
    it.each([
      { limit: 0, used: 20 },
      { limit: 1, used: 1 },
      { limit: 57, used: 57 },
      { limit: 100, used: 100 },
    ])("uses $used for limit $limit", ({ limit, used }) => {
      const out: Violation[] = [];
      expect(checkPageLimit(out, limit)).toBe(used);
      expect(out).toEqual([]);
    });

    it.each([101, -1, 1000])("refuses limit %d and falls back to 20", (limit) => {
      const out: Violation[] = [];
      expect(checkPageLimit(out, limit)).toBe(20);
      expect(out).toEqual([
        { param: "limit", code: "out_of_range", message: `limit must be between 1 and 100 (got ${limit}); 0 means the default 20` },
      ]);
    });

    it("reports at the param it is given", () => {
      const out: Violation[] = [];
      checkPageLimit(out, 500, "page_size");
      expect(pairs(out)).toEqual([["page_size", "out_of_range"]]);
    });
  });

  describe("checkTimestampNotPast", () => {
    const now = new Date("2026-06-01T12:00:00Z");
    const accepted: { spec: string; value: Date | null }[] = [
      { spec: "accepts an unset time", value: null },
      { spec: "accepts exactly now", value: now },
      { spec: "accepts a future time", value: new Date("2026-06-01T12:00:01Z") },
    ];
    for (const { spec, value } of accepted) {
      it(spec, () => {
        const out: Violation[] = [];
        checkTimestampNotPast(out, value, now, "effective_at");
        expect(out).toEqual([]);
      });
    }

    it("refuses a time one millisecond in the past at effective_at", () => {
      const out: Violation[] = [];
      checkTimestampNotPast(out, new Date(now.getTime() - 1), now, "effective_at");
      expect(out).toEqual([
        {
          param: "effective_at",
          code: "out_of_range",
          message: "effective_at must not be in the past (got 2026-06-01T11:59:59.999Z, now 2026-06-01T12:00:00.000Z)",
        },
      ]);
    });
  });

  describe("checkCode", () => {
    it("reports at a nested param for bulk codes", () => {
      const out: Violation[] = [];
      checkCode(out, "A B", "codes[3]");
      expect(out).toEqual([{ param: "codes[3]", code: "invalid_format", message: "codes[3] may contain only A-Z, 0-9, '_' and '-'" }]);
    });
  });
});

describe("currency", () => {
  it.each([
    ["JPY", 0],
    ["KRW", 0],
    ["CLP", 0],
    ["USD", 2],
    ["EUR", 2],
    ["GBP", 2],
    ["KWD", 3],
    ["BHD", 3],
    ["JOD", 3],
    ["OMR", 3],
    ["TND", 3],
    ["LYD", 3],
    ["IQD", 3],
    ["CLF", 4],
  ] as const)("%s has %d minor units", (code, units) => {
    expect(minorUnits(code)).toBe(units);
  });

  it("throws for a currency it does not know", () => {
    expect(() => minorUnits("ABC")).toThrow(RangeError);
  });

  it("knows only upper-case, three-letter codes", () => {
    expect(isKnownCurrency("USD")).toBe(true);
    expect(isKnownCurrency("usd")).toBe(false);
    for (const code of CURRENCIES) expect(code).toMatch(/^[A-Z]{3}$/);
  });

  it.each(["XAU", "XAG", "XPT", "XPD", "XTS", "XXX", "XDR", "HRK"])("does not accept %s", (code) => {
    expect(isKnownCurrency(code)).toBe(false);
  });
});
