import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCodes, type CreateCodesInput } from "../../src/domain/codes.js";
import { DomainError } from "../../src/domain/errors.js";
import { defaultApplicationMethod, defaultTerms, type PromotionTerms } from "../../src/domain/terms.js";
import type { PromotionChangeHook } from "../../src/promotions/change-hook.js";
import { PromotionCodes } from "../../src/promotions/codes.js";
import { Promotions, type Actor } from "../../src/promotions/promotions.js";
import { CodeStore, type CodePosition, type PromotionCodeRecord } from "../../src/store/code-store.js";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { twoTenants } from "../support/tenants.js";

// The code use cases (src/promotions/codes.ts) and the primary-code rules of src/promotions/promotions.ts
// against a real PostgreSQL: uniqueness across promotion_codes and primary codes, retiring, concurrency,
// bulk generation, the checkout lookup (CodeStore.resolve), and the change notification (terms_seq + hook).

let db: TestDatabase;
let orm: MikroORM;
let actor: Actor;
let other: Actor;

/** Valid terms; a code makes it a CODE promotion, as a request that names no method would. */
const terms = (overrides: Partial<PromotionTerms> = {}): PromotionTerms => ({
  ...defaultTerms(),
  name: "Spring sale",
  phases: [{ name: "Default", duration: "FOREVER", cycles: null, effects: [{ kind: "percentage_discount", percentBps: 1000, appliesTo: null }] }],
  applicationMethod: defaultApplicationMethod(overrides.code ?? ""),
  ...overrides,
});

const input = (overrides: Partial<CreateCodesInput> = {}): CreateCodesInput => ({
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

const promotions = (hook?: PromotionChangeHook) => new Promotions(orm.em.fork(), undefined, { onChanged: hook });
const codes = (hook?: PromotionChangeHook) => new PromotionCodes(orm.em.fork(), undefined, { onChanged: hook });
/** The hot path's lookup of a code typed at checkout (persistence: src/store/code-store.ts). */
const lookup = () => new CodeStore(orm.em.fork());

async function failure(work: Promise<unknown>): Promise<DomainError> {
  try {
    await work;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected a DomainError");
}

/** A fresh promotion of the actor's tenant, activated unless `draft`. */
async function promotion(opts: { code?: string; draft?: boolean; as?: Actor } = {}): Promise<string> {
  const who = opts.as ?? actor;
  const created = await promotions().create(who, terms({ code: opts.code ?? "" }));
  if (!opts.draft) await promotions().activate(who, created.id);
  return created.id;
}

/** Every code of a promotion, paging through the store. */
async function allCodes(promotionId: string, active: boolean | null = null, pageSize = 1000): Promise<PromotionCodeRecord[]> {
  const out: PromotionCodeRecord[] = [];
  let after: CodePosition | null = null;
  for (;;) {
    const page = await codes().list(actor.organizationId, promotionId, { active, after, limit: pageSize });
    out.push(...page);
    const last = page.at(-1);
    if (page.length < pageSize || !last) return out;
    after = { createdAt: last.createdAt, id: last.id };
  }
}

async function termsSeq(promotionId: string): Promise<bigint> {
  const [row] = await orm.em.fork().getConnection().execute<{ terms_seq: string }[]>("select terms_seq from promotions where id = ?", [promotionId]);
  return BigInt(row?.terms_seq ?? "0");
}

beforeAll(async () => {
  db = await createTestDatabase("codes");
  orm = await openOrm({ databaseUrl: db.url });
  ({ actor, other } = await twoTenants(orm));
});

afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

describe("PromotionCodes.create with explicit codes", () => {
  it("stores codes upper-cased, in request order, with the shared attributes", async () => {
    const id = await promotion({ draft: true });
    const expiresAt = new Date("2031-01-01T00:00:00.000Z");
    const created = await codes().create(actor, id, input({ codes: ["zeta-1", "Alpha_2", "mid3"], maxRedemptions: 5n, minAmountMinor: 1000n, expiresAt, metadata: { batch: "a" } }));
    expect(created.createdCount).toBe(3);
    expect(created.codeValues).toEqual(["ZETA-1", "ALPHA_2", "MID3"]);
    expect(created.codes[0]).toMatchObject({ code: "ZETA-1", active: true, maxRedemptions: 5n, minAmountMinor: 1000n, expiresAt, metadata: { batch: "a" }, redemptionCount: 0n });
    const listed = await allCodes(id);
    expect(listed.map((c) => c.code)).toEqual(["ZETA-1", "ALPHA_2", "MID3"]);
    expect(listed[1]).toMatchObject({ id: created.codes[1]?.id, promotionId: id, maxRedemptions: 5n, expiresAt, metadata: { batch: "a" } });
  });

  it("refuses a code another live promotion holds, case-insensitively, and creates none of the batch", async () => {
    const holder = await promotion();
    await codes().create(actor, holder, input({ codes: ["SUMMER-A"] }));
    const id = await promotion();
    const error = await failure(codes().create(actor, id, input({ codes: ["fresh-one", "summer-a"] })));
    expect(error.kind).toBe("already_exists");
    expect(error.details).toEqual([expect.objectContaining({ param: "codes[1]", code: "code_taken" })]);
    expect(await allCodes(id)).toEqual([]);
    expect((await codes().create(actor, id, input({ codes: ["FRESH-ONE"] }))).createdCount).toBe(1);
  });

  it("refuses a code that is the primary code of a live promotion, even a draft", async () => {
    await promotion({ code: "PRIMARY-X", draft: true });
    const id = await promotion();
    const error = await failure(codes().create(actor, id, input({ codes: ["ok-code", "Primary-x"] })));
    expect(error.details).toEqual([expect.objectContaining({ param: "codes[1]", code: "code_taken" })]);
  });

  it("refuses a code equal to the promotion's own primary code", async () => {
    const id = await promotion({ code: "OWN-PRIMARY" });
    const error = await failure(codes().create(actor, id, input({ codes: ["own-primary"] })));
    expect(error.details[0]).toMatchObject({ param: "codes[0]", code: "code_taken" });
    expect(error.details[0]?.message).toContain("this promotion");
  });

  it("lets another tenant use the same code text", async () => {
    const mine = await promotion();
    await codes().create(actor, mine, input({ codes: ["SHARED-TEXT"] }));
    const theirs = await promotion({ as: other });
    expect((await codes().create(other, theirs, input({ codes: ["shared-text"] }))).codeValues).toEqual(["SHARED-TEXT"]);
  });

  it("treats another tenant's promotion as missing and an archived one as the wrong state", async () => {
    const mine = await promotion();
    expect((await failure(codes().create(other, mine, input({ codes: ["NOPE1"] })))).kind).toBe("not_found");
    await promotions().deactivate(actor, mine);
    const archived = await failure(codes().create(actor, mine, input({ codes: ["NOPE2"] })));
    expect(archived).toMatchObject({ kind: "failed_precondition" });
    expect((await failure(codes().create(actor, randomUUID(), input({ codes: ["NOPE3"] })))).kind).toBe("not_found");
  });

  it("lets exactly one of two promotions win a code created by both at the same time", async () => {
    for (let round = 0; round < 5; round++) {
      const [a, b] = await Promise.all([promotion(), promotion()]);
      const code = `RACE-${round}`;
      const results = await Promise.allSettled([
        codes().create(actor, a, input({ codes: [code, `ONLY-A-${round}`] })),
        codes().create(actor, b, input({ codes: [`ONLY-B-${round}`, code] })),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const lost = results.find((r) => r.status === "rejected");
      expect(lost?.status === "rejected" ? lost.reason : null).toMatchObject({ kind: "already_exists", details: [expect.objectContaining({ code: "code_taken" })] });
      const owner = await lookup().resolve(actor.organizationId, code);
      expect([a, b]).toContain(owner?.promotionId);
    }
  });

  it("lets exactly one of a new primary code and a new extra code win when both race", async () => {
    for (let round = 0; round < 5; round++) {
      const target = await promotion();
      const code = `DUEL-${round}`;
      const results = await Promise.allSettled([
        promotions().create(actor, terms({ code })),
        codes().create(actor, target, input({ codes: [code] })),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const lost = results.find((r) => r.status === "rejected");
      expect(lost?.status === "rejected" ? lost.reason : null).toMatchObject({ kind: "already_exists" });
    }
  });
});

describe("Promotions primary codes against promotion_codes", () => {
  it("refuses a primary code that is a live code of another promotion, on create, update and copy", async () => {
    const holder = await promotion();
    await codes().create(actor, holder, input({ codes: ["TAKEN-BY-ROW"] }));
    const onCreate = await failure(promotions().create(actor, terms({ code: "taken-by-row" })));
    expect(onCreate).toMatchObject({ kind: "already_exists", details: [expect.objectContaining({ param: "code", code: "code_taken" })] });

    const draft = await promotion({ draft: true, code: "BEFORE" });
    const onUpdate = await failure(promotions().update(actor, draft, { code: "Taken-By-Row" }, { expectedVersion: null, effectiveAt: null, saveAsDraft: false }));
    expect(onUpdate.details[0]).toMatchObject({ param: "code", code: "code_taken" });

    const onCopy = await failure(promotions().copy(actor, draft, { name: "Copy", code: "TAKEN-BY-ROW", validFrom: null, validTo: null }));
    expect(onCopy.details[0]).toMatchObject({ param: "code", code: "code_taken" });
  });
});

describe("retiring codes", () => {
  it("frees a promotion's codes when it is archived: another promotion may take them", async () => {
    const first = await promotion();
    await codes().create(actor, first, input({ codes: ["SEASONAL"] }));
    await promotions().deactivate(actor, first);
    const [row] = await orm.em.fork().getConnection().execute<{ retired: boolean }[]>("select retired_at is not null as retired from promotion_codes where promotion_id = ?", [first]);
    expect(row?.retired).toBe(true);
    expect(await lookup().resolve(actor.organizationId, "seasonal")).toBeNull();

    const second = await promotion();
    await codes().create(actor, second, input({ codes: ["seasonal"] }));
    expect(await lookup().resolve(actor.organizationId, "SEASONAL")).toMatchObject({ promotionId: second });
    // The archived promotion still lists its (retired) code.
    expect((await allCodes(first)).map((c) => c.code)).toEqual(["SEASONAL"]);
  });

  it("frees codes when a promotion is deleted, and the deleted promotion's codes are gone", async () => {
    const first = await promotion({ draft: true });
    const created = await codes().create(actor, first, input({ codes: ["GONE-SOON"] }));
    await promotions().softDelete(actor, first);
    expect(await lookup().resolve(actor.organizationId, "GONE-SOON")).toBeNull();
    expect((await failure(codes().list(actor.organizationId, first, { active: null, after: null, limit: 10 }))).kind).toBe("not_found");
    expect((await failure(codes().update(actor, created.codes[0]?.id ?? "", { active: false }))).kind).toBe("not_found");
    await promotion({ code: "gone-soon" });
    expect(await lookup().resolve(actor.organizationId, "GONE-SOON")).toMatchObject({ codeId: null });
  });
});

describe("PromotionCodes.create with generated codes", () => {
  it("generates 100,000 unique codes in one call", async () => {
    const id = await promotion();
    const started = performance.now();
    const created = await codes().create(actor, id, input({ count: 100_000, prefix: "bulk-", maxRedemptions: 1n }));
    const seconds = (performance.now() - started) / 1000;
    console.log(`CreatePromotionCodes: 100,000 generated codes in ${seconds.toFixed(2)} s`);
    expect(created.createdCount).toBe(100_000);
    expect(created.codeValues).toHaveLength(100_000);
    expect(new Set(created.codeValues).size).toBe(100_000);
    expect(created.codes).toHaveLength(1_000);
    for (const code of created.codeValues) expect(code).toMatch(/^BULK-[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{10}$/);
    const [stats] = await orm.em.fork().getConnection().execute<{ n: string; distinct_codes: string }[]>(
      "select count(*) as n, count(distinct code) as distinct_codes from promotion_codes where promotion_id = ?",
      [id],
    );
    expect(stats).toEqual({ n: "100000", distinct_codes: "100000" });
    // Listing walks them in creation order.
    const firstPage = await codes().list(actor.organizationId, id, { active: null, after: null, limit: 1000 });
    expect(firstPage.map((c) => c.code)).toEqual(created.codeValues.slice(0, 1000));
    expect(firstPage.map((c) => c.id)).toEqual(created.codes.map((c) => c.id));
  });

  it("draws again when generated codes collide with live codes or primary codes", async () => {
    const holder = await promotion({ code: "GEN-PRIMARY" });
    await codes().create(actor, holder, input({ codes: ["GEN-ROW-1", "GEN-ROW-2"] }));
    const rounds: string[][] = [];
    // The first draw hits a live code row, a live primary code and a repeat; later draws are random.
    const generate = (count: number, prefix: string, exclude?: ReadonlySet<string>): string[] => {
      const batch = rounds.length === 0 ? ["GEN-ROW-1", "GEN-NEW-1", "GEN-PRIMARY", "GEN-ROW-2", "GEN-NEW-2"].slice(0, count) : generateCodes(count, prefix, exclude);
      rounds.push(batch);
      return batch;
    };
    const id = await promotion();
    const created = await new PromotionCodes(orm.em.fork(), undefined, { generate }).create(actor, id, input({ count: 5, prefix: "GEN-" }));
    expect(created.createdCount).toBe(5);
    expect(created.codeValues.slice(0, 2)).toEqual(["GEN-NEW-1", "GEN-NEW-2"]);
    expect(rounds.map((r) => r.length)).toEqual([5, 3]);
    expect(rounds[1]?.every((c) => /^GEN-[A-Z2-9]{10}$/.test(c))).toBe(true);
    expect((await allCodes(id)).map((c) => c.code)).toEqual(created.codeValues);
    expect(await lookup().resolve(actor.organizationId, "GEN-ROW-1")).toMatchObject({ promotionId: holder });
  });
});

describe("PromotionCodes.list", () => {
  it("pages oldest first without gaps or repeats, and filters by active", async () => {
    const id = await promotion();
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push(...(await codes().create(actor, id, input({ codes: [`PAGE${i}A`, `PAGE${i}B`] }))).codeValues);
    const paged = await allCodes(id, null, 3);
    expect(paged.map((c) => c.code)).toEqual(made);
    const toDeactivate = paged.filter((_, i) => i % 3 === 0);
    for (const c of toDeactivate) await codes().update(actor, c.id, { active: false });
    expect((await allCodes(id, false, 2)).map((c) => c.code)).toEqual(toDeactivate.map((c) => c.code));
    expect((await allCodes(id, true, 2)).map((c) => c.code)).toEqual(made.filter((c) => !toDeactivate.some((d) => d.code === c)));
  });

  it("treats another tenant's promotion as missing", async () => {
    const id = await promotion();
    expect((await failure(codes().list(other.organizationId, id, { active: null, after: null, limit: 10 }))).kind).toBe("not_found");
  });
});

describe("PromotionCodes.update", () => {
  it("changes only the fields given; null clears a limit or the expiry", async () => {
    const id = await promotion();
    const expiresAt = new Date("2032-02-02T00:00:00.000Z");
    const [code] = (await codes().create(actor, id, input({ codes: ["EDIT-ME"], maxRedemptions: 10n, minAmountMinor: 500n, expiresAt, metadata: { a: "1" } }))).codes;
    if (!code) throw new Error("no code created");
    const limited = await codes().update(actor, code.id, { maxRedemptions: 3n, firstTimeCustomersOnly: true });
    expect(limited).toMatchObject({ maxRedemptions: 3n, minAmountMinor: 500n, firstTimeCustomersOnly: true, active: true, expiresAt, metadata: { a: "1" } });
    const cleared = await codes().update(actor, code.id, { maxRedemptions: null, minAmountMinor: null, expiresAt: null, metadata: { b: "2" }, active: false });
    expect(cleared).toMatchObject({ maxRedemptions: null, minAmountMinor: null, expiresAt: null, metadata: { b: "2" }, active: false, code: "EDIT-ME" });
    expect(await lookup().resolve(actor.organizationId, "edit-me")).toMatchObject({ active: false, codeId: code.id });
  });

  it("refuses another tenant (NOT_FOUND) and a code of an archived promotion (FAILED_PRECONDITION)", async () => {
    const id = await promotion();
    const [code] = (await codes().create(actor, id, input({ codes: ["LOCKED-CODE"] }))).codes;
    if (!code) throw new Error("no code created");
    expect((await failure(codes().update(other, code.id, { active: false }))).kind).toBe("not_found");
    await promotions().deactivate(actor, id);
    expect((await failure(codes().update(actor, code.id, { active: false }))).kind).toBe("failed_precondition");
  });

  it("counts ACTIVE redemptions made through the code", async () => {
    const id = await promotion();
    const [code] = (await codes().create(actor, id, input({ codes: ["COUNTED"] }))).codes;
    if (!code) throw new Error("no code created");
    const [version] = await orm.em.fork().getConnection().execute<{ id: string }[]>("select id from promotion_versions where promotion_id = ?", [id]);
    for (const status of ["ACTIVE", "ACTIVE", "RELEASED"]) {
      await orm.em.fork().getConnection().execute(
        `insert into redemptions (id, organization_id, promotion_id, status, kind, epoch, promotion_version_id, version, code_id, code, customer_id, created_at)
         values (?, ?, ?, ?, 'CODE', 1, ?, 1, ?, 'COUNTED', 'cus_1', now())`,
        [randomUUID(), actor.organizationId, id, status, version?.id, code.id],
      );
    }
    expect((await codes().get(actor.organizationId, code.id)).redemptionCount).toBe(2n);
    expect((await allCodes(id))[0]?.redemptionCount).toBe(2n);
  });
});

describe("CodeStore.resolve (checkout lookup)", () => {
  it("finds a code row with its limits, case-insensitively, and a primary code with none", async () => {
    const id = await promotion({ code: "MAIN-CODE" });
    const expiresAt = new Date("2033-03-03T00:00:00.000Z");
    const [row] = (await codes().create(actor, id, input({ codes: ["EXTRA-CODE"], maxRedemptions: 7n, minAmountMinor: 900n, firstTimeCustomersOnly: true, expiresAt }))).codes;
    expect(await lookup().resolve(actor.organizationId, " extra-code ")).toEqual({
      promotionId: id,
      codeId: row?.id,
      code: "EXTRA-CODE",
      active: true,
      maxRedemptions: 7n,
      minAmountMinor: 900n,
      firstTimeCustomersOnly: true,
      expiresAt,
      // created (1), activated (2), a code added (3): read in the same statement as the code
      termsSeq: 3n,
    });
    expect(await lookup().resolve(actor.organizationId, "main-code")).toEqual({
      promotionId: id,
      codeId: null,
      code: "MAIN-CODE",
      active: true,
      maxRedemptions: null,
      minAmountMinor: null,
      firstTimeCustomersOnly: false,
      expiresAt: null,
      termsSeq: 3n,
    });
  });

  it("finds nothing for unknown, malformed or another tenant's codes", async () => {
    const id = await promotion({ code: "TENANT-ONLY" });
    await codes().create(actor, id, input({ codes: ["TENANT-EXTRA"] }));
    expect(await lookup().resolve(other.organizationId, "TENANT-ONLY")).toBeNull();
    expect(await lookup().resolve(other.organizationId, "TENANT-EXTRA")).toBeNull();
    expect(await lookup().resolve(actor.organizationId, "NO-SUCH-CODE")).toBeNull();
    expect(await lookup().resolve(actor.organizationId, "bad code'; --")).toBeNull();
    expect(await lookup().resolve(actor.organizationId, "")).toBeNull();
  });
});

describe("change notification", () => {
  it("moves terms_seq once per change and calls the hook after commit with the new value", async () => {
    const calls: [string, string, bigint][] = [];
    const hook: PromotionChangeHook = async (organizationId, promotionId, seq) => {
      // After commit: a fresh connection already sees the new value.
      expect(await termsSeq(promotionId)).toBe(seq);
      calls.push([organizationId, promotionId, seq]);
    };
    const created = await promotions(hook).create(actor, terms());
    const id = created.id;
    expect(await termsSeq(id)).toBe(1n);
    await promotions(hook).update(actor, id, { priority: 3 }, { expectedVersion: null, effectiveAt: null, saveAsDraft: false });
    await promotions(hook).activate(actor, id);
    const [code] = (await codes(hook).create(actor, id, input({ codes: ["SEQ-CODE"] }))).codes;
    await codes(hook).update(actor, code?.id ?? "", { active: false });
    await promotions(hook).deactivate(actor, id);
    await promotions(hook).softDelete(actor, id);
    expect(calls).toEqual([2n, 3n, 4n, 5n, 6n, 7n].map((seq) => [actor.organizationId, id, seq]));
    expect(await termsSeq(id)).toBe(7n);
  });

  it("does not move terms_seq or call the hook when the change is refused", async () => {
    const calls: bigint[] = [];
    const hook: PromotionChangeHook = async (_o, _p, seq) => {
      calls.push(seq);
    };
    const holder = await promotion();
    await codes().create(actor, holder, input({ codes: ["HELD"] }));
    const id = await promotion();
    const before = await termsSeq(id);
    await failure(codes(hook).create(actor, id, input({ codes: ["HELD"] })));
    expect(await termsSeq(id)).toBe(before);
    expect(calls).toEqual([]);
  });

  it("keeps the change when the hook throws", async () => {
    const hook: PromotionChangeHook = async () => {
      throw new Error("redis is down");
    };
    const id = await promotion();
    const created = await codes(hook).create(actor, id, input({ codes: ["HOOK-FAILS"] }));
    expect(created.createdCount).toBe(1);
    expect(await lookup().resolve(actor.organizationId, "HOOK-FAILS")).toMatchObject({ promotionId: id });
    const archived = await promotions(hook).deactivate(actor, id);
    expect(archived.status).toBe("ARCHIVED");
  });
});
