import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultTerms } from "../../src/domain/terms.js";
import { ApiKeyStore } from "../../src/store/api-keys.js";
import { Ledger, type RedemptionRow } from "../../src/store/ledger.js";
import { LedgerBatcher } from "../../src/store/ledger-batch.js";
import { openOrm, type MikroORM } from "../../src/store/orm.js";
import { Promotions, type Actor } from "../../src/promotions/promotions.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// The ledger's fences against a real PostgreSQL: a rebuild waits for every ledger write that
// passed the old epoch's check, a write of an old epoch is refused afterwards, and the sweeper's
// tombstone and the real write can never both land.

let db: TestDatabase;
let orm: MikroORM;
let actor: Actor;
let promotionId: string;
let versionId: string;

function row(epoch: bigint, overrides: Partial<RedemptionRow> = {}): RedemptionRow {
  return {
    id: randomUUID(),
    organizationId: actor.organizationId,
    promotionId,
    status: "ACTIVE",
    kind: "CODE",
    epoch,
    promotionVersionId: versionId,
    version: 1,
    codeId: null,
    code: null,
    customerId: `c-${randomUUID()}`,
    subscriptionId: null,
    idempotencyKey: null,
    requestHash: null,
    cyclesUsed: 0,
    cyclesTotal: null,
    metadata: {},
    createdAt: new Date(),
    releasedAt: null,
    completedAt: null,
    endedAt: null,
    endReason: null,
    ...overrides,
  };
}

beforeAll(async () => {
  db = await createTestDatabase("ledger");
  orm = await openOrm({ databaseUrl: db.url });
  const org = await new ApiKeyStore(orm.em.fork()).ensureOrganization("ledger-co");
  actor = { organizationId: org.id, keyId: "test" };
  const view = await new Promotions(orm.em.fork()).create(actor, {
    ...defaultTerms(),
    name: "Fenced",
    phases: [{ name: "Default", duration: "FOREVER", cycles: null, effects: [{ kind: "percentage_discount", percentBps: 1000, appliesTo: null }] }],
  });
  promotionId = view.id;
  versionId = view.liveVersionId;
});

afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

describe("counter epoch fence", () => {
  it("a rebuild waits for a ledger write that already passed the epoch check, and counts it", async () => {
    const ledger = new Ledger(orm.em.fork());
    const before = await ledger.rebuild(promotionId);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const inFlight = orm.em.fork().transactional(async (em) => {
      const conn = em.getConnection();
      const ctx = em.getTransactionContext();
      const ok = await conn.execute(`select 1 from promotions where id = ? and counter_epoch = ? for key share`, [promotionId, before.epoch.toString()], "all", ctx);
      expect(ok).toHaveLength(1);
      const r = row(before.epoch);
      await conn.execute(
        `insert into redemptions (id, organization_id, promotion_id, status, kind, epoch, promotion_version_id, version, customer_id, created_at) values (?, ?, ?, 'ACTIVE', 'CODE', ?, ?, 1, ?, now())`,
        [r.id, r.organizationId, r.promotionId, r.epoch.toString(), r.promotionVersionId, r.customerId],
        "run",
        ctx,
      );
      await held;
    });
    await new Promise((r) => setTimeout(r, 100));
    const done: { rebuilt: Awaited<ReturnType<Ledger["rebuild"]>> | null } = { rebuilt: null };
    const rebuilding = new Ledger(orm.em.fork()).rebuild(promotionId).then((r) => (done.rebuilt = r));
    await new Promise((r) => setTimeout(r, 300));
    expect(done.rebuilt).toBeNull(); // still waiting for the in-flight write
    release();
    await inFlight;
    await rebuilding;
    expect(done.rebuilt?.epoch).toBe(before.epoch + 1n);
    expect(done.rebuilt?.redemptions).toBe(before.redemptions + 1n);
  });

  it("refuses a write made under an older epoch", async () => {
    const ledger = new Ledger(orm.em.fork());
    const current = await ledger.rebuild(promotionId);
    expect(await ledger.writeRedemption(row(current.epoch - 1n))).toEqual({ kind: "fenced" });
    expect(await ledger.writeRedemption(row(current.epoch))).toEqual({ kind: "written" });
  });
});

describe("sweeper tombstones", () => {
  it("a tombstone first: the late write lands nowhere; a write first: the sweeper confirms it", async () => {
    const ledger = new Ledger(orm.em.fork());
    const { epoch } = await ledger.rebuild(promotionId);
    const late = row(epoch);
    expect(await ledger.settleRedemptionReservation(promotionId, late.id)).toBe("abandoned");
    expect(await ledger.settleRedemptionReservation(promotionId, late.id)).toBe("abandoned");
    expect(await ledger.writeRedemption(late)).toEqual({ kind: "tombstoned" });
    expect(await ledger.findRedemption(actor.organizationId, late.id)).toBeNull();

    const written = row(epoch);
    expect(await ledger.writeRedemption(written)).toEqual({ kind: "written" });
    expect(await ledger.settleRedemptionReservation(promotionId, written.id)).toBe("written");
    expect((await ledger.findRedemption(actor.organizationId, written.id))?.status).toBe("ACTIVE");
  });

  it("an idempotency key already used returns the existing redemption", async () => {
    const ledger = new Ledger(orm.em.fork());
    const { epoch } = await ledger.rebuild(promotionId);
    const first = row(epoch, { idempotencyKey: "key-1", requestHash: "h1" });
    expect(await ledger.writeRedemption(first)).toEqual({ kind: "written" });
    const second = await ledger.writeRedemption(row(epoch, { idempotencyKey: "key-1", requestHash: "h2" }));
    expect(second.kind).toBe("duplicate_key");
    if (second.kind === "duplicate_key") expect(second.existing.id).toBe(first.id);
  });

  it("release records, in its own transaction, the slot to give back under the epoch it saw, and is idempotent", async () => {
    const ledger = new Ledger(orm.em.fork());
    const { epoch } = await ledger.rebuild(promotionId);
    const r = row(epoch, { codeId: randomUUID() });
    await ledger.writeRedemption(r);
    const first = await ledger.releaseRedemption(actor.organizationId, r.id, new Date());
    expect(first).toMatchObject({ changed: true, returned: { kind: "RELEASE", epoch, promotionId, customerId: r.customerId, codeId: r.codeId } });
    expect(first.row.status).toBe("RELEASED");
    const pending = await ledger.pendingReturns(new Date(Date.now() + 1_000));
    expect(pending.map((p) => p.id)).toContain(first.returned?.id);
    const again = await ledger.releaseRedemption(actor.organizationId, r.id, new Date());
    expect(again).toMatchObject({ changed: false, returned: null });
    await ledger.markReturnsApplied([first.returned?.id ?? ""], new Date());
    expect((await ledger.pendingReturns(new Date(Date.now() + 1_000))).map((p) => p.id)).not.toContain(first.returned?.id);
  });

  it("refuses to release a redemption that completed or ended: it was used, its slot stays taken", async () => {
    const ledger = new Ledger(orm.em.fork());
    const { epoch } = await ledger.rebuild(promotionId);
    for (const status of ["COMPLETED", "ENDED"] as const) {
      const r = row(epoch);
      await ledger.writeRedemption(r);
      await orm.em.getConnection().execute(`update redemptions set status = ? where id = ?`, [status, r.id]);
      await expect(ledger.releaseRedemption(actor.organizationId, r.id, new Date())).rejects.toMatchObject({ kind: "failed_precondition", details: [{ code: "redemption_not_active" }] });
    }
  });
});

describe("group commit (LedgerBatcher)", () => {
  it("writes concurrent rows together and still tells fenced, tombstoned and duplicate-key rows apart", async () => {
    const batcher = new LedgerBatcher(orm);
    const ledger = new Ledger(orm.em.fork());
    const { epoch } = await ledger.rebuild(promotionId);
    const first = row(epoch, { idempotencyKey: "batch-key", requestHash: "h" });
    await ledger.writeRedemption(first);
    const tombstoned = row(epoch);
    await ledger.settleRedemptionReservation(promotionId, tombstoned.id);
    const good = Array.from({ length: 50 }, () => row(epoch));
    const results = await Promise.all([
      ...good.map((r) => batcher.write(r)),
      batcher.write(row(epoch - 1n)),
      batcher.write(tombstoned),
      batcher.write(row(epoch, { idempotencyKey: "batch-key", requestHash: "h2" })),
    ]);
    expect(results.slice(0, 50).every((w) => w.kind === "written")).toBe(true);
    expect(results.slice(50).map((w) => w.kind)).toEqual(["fenced", "tombstoned", "duplicate_key"]);
    for (const r of good) expect((await ledger.findRedemption(actor.organizationId, r.id))?.status).toBe("ACTIVE");
  });
});
