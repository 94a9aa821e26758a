import { Code } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Archetype,
  DerivedStatus,
  PromotionStatus,
  type Promotion,
  VersionStatus,
  Visibility,
} from "../../gen/promotions/v1/promotion_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { PromotionVersionService } from "../../gen/promotions/v1/promotion_version_service_pb.js";
import { PhaseDuration } from "../../gen/promotions/v1/types_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CreatePromotionRequestSchema } from "../../gen/promotions/v1/promotion_service_pb.js";
import { ApiKeyStore } from "../../src/store/api-keys.js";
import { client, startTestApp, type Protocol, type TestApp } from "../support/app.js";
import { promo, refusal } from "../support/rpc.js";

// The whole promotion lifecycle through the real server with the Connect client, in JSON over
// HTTP/1.1 and binary over HTTP/2: versions, tenancy, keys, paging and bad input.

let t: TestApp;
let acme: { organizationId: string; key: string; keyId: string };
let globex: { organizationId: string; key: string; keyId: string };

beforeAll(async () => {
  t = await startTestApp("lifecycle");
  acme = await t.tenant("acme");
  globex = await t.tenant("globex");
});
afterAll(async () => t?.stop());

type CreateInit = MessageInitShape<typeof CreatePromotionRequestSchema>;
const tenPercent = (overrides: CreateInit = {}): CreateInit => ({
  name: "Spring sale",
  effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }],
  ...overrides,
});

/** The promotion a response carries; every successful promotion response has one. */


describe.each<Protocol>(["connect-json", "connect-binary"])("PromotionService over %s", (protocol) => {
  const promotions = () => client(PromotionService, t.url, acme.key, protocol);
  const versions = () => client(PromotionVersionService, t.url, acme.key, protocol);

  it("walks a promotion from draft to active to archived, keeping every version", async () => {
    const created = promo(
      await promotions().createPromotion(tenPercent({ code: `spring-${protocol}`, currency: "usd", maxRedemptions: 100n, visibility: Visibility.PUBLIC })),
    );
    expect(created).toMatchObject({
      code: `SPRING-${protocol.toUpperCase()}`,
      currency: "USD",
      status: PromotionStatus.DRAFT,
      derivedStatus: DerivedStatus.DRAFT,
      version: 1n,
      liveVersion: 1n,
      maxRedemptions: 100n,
      remainingRedemptions: 100n,
      currentRedemptions: 0n,
      organizationId: acme.organizationId,
    });
    expect(created.phases).toHaveLength(1);
    expect(created.phases[0]?.name).toBe("Default");

    // A draft is edited in place: same version.
    const edited = promo(await promotions().updatePromotion({ id: created.id, name: "Spring sale 2026", expectedVersion: 1n }));
    expect(edited).toMatchObject({ name: "Spring sale 2026", version: 1n });

    const active = promo(await promotions().activatePromotion({ id: created.id }));
    expect(active).toMatchObject({ status: PromotionStatus.ACTIVE, derivedStatus: DerivedStatus.LIVE, publishedBy: acme.keyId });
    expect(active.publishedAt).toBeDefined();

    // An active promotion gets a new version, live now.
    const v2 = promo(await promotions().updatePromotion({ id: created.id, priority: 7, expectedVersion: 1n }));
    expect(v2).toMatchObject({ version: 2n, liveVersion: 2n, priority: 7 });

    const archived = promo(await promotions().deactivatePromotion({ id: created.id }));
    expect(archived).toMatchObject({ status: PromotionStatus.ARCHIVED, derivedStatus: DerivedStatus.ARCHIVED });
    expect(archived.archivedAt).toBeDefined();

    const { versions: history } = await versions().listPromotionVersions({ id: created.id });
    expect(history.map((v) => [v.version, v.status])).toEqual([
      [2n, VersionStatus.ARCHIVED],
      [1n, VersionStatus.SUPERSEDED],
    ]);
    const { version, terms } = await versions().getPromotionVersion({ id: created.id, version: 1n });
    expect(version?.status).toBe(VersionStatus.SUPERSEDED);
    expect(terms).toMatchObject({ name: "Spring sale 2026", priority: 0, maxRedemptions: 100n });

    // Copy works from any status and yields a new draft with the newest terms.
    const copy = promo(await promotions().copyPromotion({ id: created.id, code: `again-${protocol}` }));
    expect(copy).toMatchObject({ status: PromotionStatus.DRAFT, version: 1n, name: "Spring sale 2026 (copy)", priority: 7, code: `AGAIN-${protocol.toUpperCase()}` });
    expect(copy.id).not.toBe(created.id);

    // Delete is soft: the promotion is gone from reads.
    const deleted = promo(await promotions().deletePromotion({ id: copy.id }));
    expect(deleted.deletedAt).toBeDefined();
    expect((await refusal(promotions().getPromotion({ id: copy.id }))).code).toBe(Code.NotFound);
  });

  it("refuses an update with a stale expected_version as ABORTED version_conflict", async () => {
    const promotion = promo(await promotions().createPromotion(tenPercent()));
    await promotions().activatePromotion({ id: promotion.id });
    await promotions().updatePromotion({ id: promotion.id, priority: 1, expectedVersion: 1n });
    const r = await refusal(promotions().updatePromotion({ id: promotion.id, priority: 2, expectedVersion: 1n }));
    expect(r.code).toBe(Code.Aborted);
    expect(r.details[0]).toMatchObject({ code: "version_conflict", param: "expected_version", type: "conflict" });
    expect((await promotions().getPromotion({ id: promotion.id })).promotion?.priority).toBe(1);
  });

  it("schedules a version at effective_at and makes it live when that time comes", async () => {
    const promotion = promo(await promotions().createPromotion(tenPercent({ priority: 1 })));
    await promotions().activatePromotion({ id: promotion.id });
    const at = new Date(Date.now() + 1500);
    const scheduled = promo(await promotions().updatePromotion({ id: promotion.id, priority: 9, effectiveAt: timestampFromDate(at) }));
    expect(scheduled).toMatchObject({ version: 2n, liveVersion: 1n, priority: 1 });
    const { versions: before } = await versions().listPromotionVersions({ id: promotion.id, status: [VersionStatus.SCHEDULED] });
    expect(before.map((v) => v.version)).toEqual([2n]);

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, at.getTime() - Date.now()) + 50));
    const after = promo(await promotions().getPromotion({ id: promotion.id }));
    expect(after).toMatchObject({ liveVersion: 2n, priority: 9 });
    const { versions: published } = await versions().listPromotionVersions({ id: promotion.id, status: [VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED] });
    expect(published.map((v) => [v.version, v.status])).toEqual([
      [2n, VersionStatus.PUBLISHED],
      [1n, VersionStatus.SUPERSEDED],
    ]);
  });

  it("keeps save_as_draft changes out of the live terms until a later update publishes them", async () => {
    const promotion = promo(await promotions().createPromotion(tenPercent({ priority: 1 })));
    await promotions().activatePromotion({ id: promotion.id });
    const drafted = promo(await promotions().updatePromotion({ id: promotion.id, priority: 5, saveAsDraft: true }));
    expect(drafted).toMatchObject({ version: 2n, liveVersion: 1n, priority: 1 });
    // A second save edits the same draft version.
    await promotions().updatePromotion({ id: promotion.id, name: "Renamed", saveAsDraft: true, expectedVersion: 2n });
    const { version: draftVersion, terms } = await versions().getPromotionVersion({ id: promotion.id, version: 2n });
    expect(draftVersion?.status).toBe(VersionStatus.DRAFT);
    expect(terms).toMatchObject({ priority: 5, name: "Renamed" });

    const published = promo(await promotions().updatePromotion({ id: promotion.id, expectedVersion: 2n }));
    expect(published).toMatchObject({ version: 2n, liveVersion: 2n, priority: 5, name: "Renamed" });
  });

  it("allows phases to change only while the promotion is a draft", async () => {
    const promotion = promo(await promotions().createPromotion(tenPercent()));
    const phases = { phases: [{ name: "Default", duration: PhaseDuration.ONCE, effects: [{ kind: { case: "percentageDiscount" as const, value: { percentBps: 5000 } } }] }] };
    const edited = promo(await promotions().updatePromotion({ id: promotion.id, phases }));
    expect(edited.phases[0]?.duration).toBe(PhaseDuration.ONCE);
    await promotions().activatePromotion({ id: promotion.id });
    const r = await refusal(promotions().updatePromotion({ id: promotion.id, phases }));
    expect(r.code).toBe(Code.FailedPrecondition);
    expect(r.details[0]).toMatchObject({ code: "invalid_status", param: "phases" });
  });

  it("refuses to activate twice, to deactivate a draft, and to edit an archived promotion", async () => {
    const promotion = promo(await promotions().createPromotion(tenPercent()));
    expect((await refusal(promotions().deactivatePromotion({ id: promotion.id }))).code).toBe(Code.FailedPrecondition);
    await promotions().activatePromotion({ id: promotion.id });
    expect((await refusal(promotions().activatePromotion({ id: promotion.id }))).code).toBe(Code.FailedPrecondition);
    await promotions().deactivatePromotion({ id: promotion.id });
    expect((await refusal(promotions().updatePromotion({ id: promotion.id, name: "x" }))).code).toBe(Code.FailedPrecondition);
  });

  it("reports an expired window as EXPIRED and a future one as SCHEDULED", async () => {
    const past = promo(await promotions().createPromotion(
      tenPercent({ validFrom: timestampFromDate(new Date("2020-01-01T00:00:00Z")), validTo: timestampFromDate(new Date("2020-02-01T00:00:00Z")) }),
    ));
    const future = promo(await promotions().createPromotion(tenPercent({ validFrom: timestampFromDate(new Date("2099-01-01T00:00:00Z")) })));
    expect((await promotions().activatePromotion({ id: past.id })).promotion?.derivedStatus).toBe(DerivedStatus.EXPIRED);
    expect((await promotions().activatePromotion({ id: future.id })).promotion?.derivedStatus).toBe(DerivedStatus.SCHEDULED);
  });
});

describe("tenancy", () => {
  it("makes another tenant's promotion NOT_FOUND for every read and write, and changes nothing", async () => {
    const mine = client(PromotionService, t.url, acme.key);
    const theirs = client(PromotionService, t.url, globex.key);
    const promotion = promo(await mine.createPromotion(tenPercent({ name: "Acme only" })));
    const id = promotion.id;
    const attempts: (() => Promise<unknown>)[] = [
      () => theirs.getPromotion({ id }),
      () => theirs.updatePromotion({ id, name: "stolen" }),
      () => theirs.activatePromotion({ id }),
      () => theirs.deactivatePromotion({ id }),
      () => theirs.copyPromotion({ id }),
      () => theirs.deletePromotion({ id }),
      () => client(PromotionVersionService, t.url, globex.key).listPromotionVersions({ id }),
      () => client(PromotionVersionService, t.url, globex.key).getPromotionVersion({ id, version: 1n }),
    ];
    for (const attempt of attempts) expect((await refusal(attempt())).code).toBe(Code.NotFound);
    const { promotions: visible } = await theirs.listPromotions({ filter: [`id.eq=${id}`] });
    expect(visible).toEqual([]);
    expect((await mine.getPromotion({ id })).promotion).toMatchObject({ name: "Acme only", status: PromotionStatus.DRAFT, version: 1n });
  });
});

describe("API keys", () => {
  it("refuses a call without a key as UNAUTHENTICATED", async () => {
    const r = await refusal(client(PromotionService, t.url, null).listPromotions({}));
    expect(r.code).toBe(Code.Unauthenticated);
    expect(r.details[0]).toMatchObject({ code: "missing_api_key", type: "authentication" });
  });
  it("refuses an unknown key as UNAUTHENTICATED", async () => {
    expect((await refusal(client(PromotionService, t.url, "prm_not-a-real-key").listPromotions({}))).code).toBe(Code.Unauthenticated);
  });
  it("accepts the key in x-api-key as well as authorization: Bearer", async () => {
    const res = await fetch(`${t.url}/promotions.v1.PromotionService/ListPromotions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": acme.key },
      body: "{}",
    });
    expect(res.status).toBe(200);
  });
  it("refuses a revoked key", async () => {
    const k = await t.tenant("revoked-co");
    await client(PromotionService, t.url, k.key).listPromotions({});
    await new ApiKeyStore(t.app.orm.em.fork()).revokeKey(k.keyId);
    expect((await refusal(client(PromotionService, t.url, k.key).listPromotions({}))).code).toBe(Code.Unauthenticated);
  });
  it("refuses writes with a read-only key and reads with a redeem-only key as PERMISSION_DENIED", async () => {
    const reader = await t.tenant("reader-co", ["read"]);
    const checkout = await t.tenant("checkout-co", ["redeem"]);
    const r = await refusal(client(PromotionService, t.url, reader.key).createPromotion(tenPercent()));
    expect(r.code).toBe(Code.PermissionDenied);
    expect(r.details[0]).toMatchObject({ code: "missing_scope" });
    expect(r.message).toContain('"write"');
    expect((await client(PromotionService, t.url, reader.key).listPromotions({})).promotions).toEqual([]);
    expect((await refusal(client(PromotionService, t.url, checkout.key).listPromotions({}))).code).toBe(Code.PermissionDenied);
  });
  it("never writes a key into the logs", () => {
    expect(t.rawLogs()).not.toContain(acme.key);
    expect(t.rawLogs()).not.toMatch(/prm_[A-Za-z0-9_-]{20,}/);
  });
});

describe("ListPromotions paging", () => {
  it("pages through 250 promotions with a filter, without gaps or duplicates, while inserts happen", async () => {
    const tenant = await t.tenant("paging-co");
    const api = client(PromotionService, t.url, tenant.key, "connect-binary");
    const ids = new Set<string>();
    for (let batch = 0; batch < 25; batch++) {
      const created = await Promise.all(
        Array.from({ length: 10 }, (_, i) => api.createPromotion(tenPercent({ name: `Promo ${batch * 10 + i}`, priority: 5, visibility: Visibility.PUBLIC }))),
      );
      for (const c of created) ids.add(promo(c).id);
    }
    // Noise the filter must exclude.
    await api.createPromotion(tenPercent({ priority: 1 }));

    const seen: string[] = [];
    let cursor = "";
    let pages = 0;
    do {
      const page = await api.listPromotions({ limit: 30, cursor, filter: ["priority.gte=5"], visibility: Visibility.PUBLIC });
      seen.push(...page.promotions.map((p) => p.id));
      // Concurrent inserts between pages must not shift what is left to read.
      await api.createPromotion(tenPercent({ priority: 5, visibility: Visibility.PUBLIC, name: `late ${pages}` }));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== "" && pages < 50);

    const original = seen.filter((id) => ids.has(id));
    expect(original).toHaveLength(250);
    expect(new Set(seen).size).toBe(seen.length);
    expect(pages).toBe(9);
  });

  it("filters by enum, bool, timestamp and null, and the status sugar", async () => {
    const tenant = await t.tenant("filters-co");
    const api = client(PromotionService, t.url, tenant.key);
    const a = promo(await api.createPromotion(tenPercent({ name: "A", stackable: true, maxRedemptions: 5n })));
    const b = promo(await api.createPromotion(tenPercent({ name: "B", archetype: Archetype.STANDARD })));
    await api.activatePromotion({ id: b.id });
    const names = async (req: Parameters<typeof api.listPromotions>[0]) => (await api.listPromotions(req)).promotions.map((p) => p.name).sort();
    expect(await names({ status: PromotionStatus.ACTIVE })).toEqual(["B"]);
    expect(await names({ filter: ["status.in=draft,archived"] })).toEqual(["A"]);
    expect(await names({ filter: ["stackable.eq=true"] })).toEqual(["A"]);
    expect(await names({ filter: ["max_redemptions.eq=null"] })).toEqual(["B"]);
    expect(await names({ filter: ["max_redemptions.ne=null"] })).toEqual(["A"]);
    expect(await names({ filter: [`created_at.gte=${new Date(Date.now() - 60_000).toISOString()}`, "name.in=A,B"] })).toEqual(["A", "B"]);
    expect(await names({ filter: ["created_at.lt=2000-01-01T00:00:00Z"] })).toEqual([]);
    expect(a.stackable).toBe(true);
  });

  it("names the unknown field or operator of a bad filter", async () => {
    const api = client(PromotionService, t.url, acme.key);
    const field = await refusal(api.listPromotions({ filter: ["colour.eq=red"] }));
    expect(field.code).toBe(Code.InvalidArgument);
    expect(field.details[0]?.param).toBe("filter[0]");
    expect(field.message).toContain("colour");
    const op = await refusal(api.listPromotions({ filter: ["priority.eq=1", "priority.like=2"] }));
    expect(op.details[0]?.param).toBe("filter[1]");
    expect(op.message).toContain("like");
    expect((await refusal(api.listPromotions({ cursor: "garbage!" }))).details[0]?.param).toBe("cursor");
    expect((await refusal(api.listPromotions({ limit: 101 }))).details[0]?.param).toBe("limit");
  });
});

describe("bad input", () => {
  const api = () => client(PromotionService, t.url, acme.key);
  const cases: [string, CreateInit, string][] = [
    ["a missing name", tenPercent({ name: "" }), "name"],
    ["a name over 200 characters", tenPercent({ name: "x".repeat(201) }), "name"],
    ["a code with spaces", tenPercent({ code: "SAVE 20" }), "code"],
    ["a code with punctuation", tenPercent({ code: "SAVE!20" }), "code"],
    ["a code over 64 characters", tenPercent({ code: "A".repeat(65) }), "code"],
    [
      "valid_from after valid_to",
      tenPercent({ validFrom: timestampFromDate(new Date("2026-02-01T00:00:00Z")), validTo: timestampFromDate(new Date("2026-01-01T00:00:00Z")) }),
      "valid_to",
    ],
    ["percent_bps 0", tenPercent({ effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 0 } } }] }), "effects[0].percentage_discount.percent_bps"],
    ["percent_bps above 10000", tenPercent({ effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 10001 } } }] }), "effects[0].percentage_discount.percent_bps"],
    ["a negative fixed amount", tenPercent({ currency: "USD", effects: [{ kind: { case: "fixedDiscount", value: { amountMinor: -5n } } }] }), "effects[0].fixed_discount.amount_minor"],
    ["money without a currency", tenPercent({ effects: [{ kind: { case: "creditGrant", value: { amountMinor: 500n } } }] }), "currency"],
    ["an unknown currency", tenPercent({ currency: "ABC" }), "currency"],
    ["a zero max_redemptions", tenPercent({ maxRedemptions: 0n }), "max_redemptions"],
    ["a negative budget", tenPercent({ currency: "USD", maxBudget: -1n }), "max_budget"],
    ["an effect of no kind", tenPercent({ effects: [{}] }), "effects[0]"],
    ["both effects and phases", tenPercent({ phases: [{ name: "P", duration: PhaseDuration.FOREVER, effects: [] }] }), "effects"],
    [
      "a ladder that is not phased",
      tenPercent({ archetype: Archetype.LOYALTY_LADDER }),
      "is_phased",
    ],
    [
      "a loyalty ladder whose discount falls",
      {
        name: "Ladder",
        archetype: Archetype.LOYALTY_LADDER,
        isPhased: true,
        phases: [
          { name: "Year one", duration: PhaseDuration.REPEATING, cycles: 12, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 2000 } } }] },
          { name: "After", duration: PhaseDuration.FOREVER, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }] },
        ],
      },
      "phases[1]",
    ],
    [
      "a FOREVER phase that is not last",
      {
        name: "Phased",
        isPhased: true,
        phases: [
          { name: "Forever", duration: PhaseDuration.FOREVER, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }] },
          { name: "Then", duration: PhaseDuration.ONCE, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }] },
        ],
      },
      "phases[0].duration",
    ],
    [
      "REPEATING without cycles",
      {
        name: "Phased",
        isPhased: true,
        phases: [{ name: "Intro", duration: PhaseDuration.REPEATING, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }] }],
      },
      "phases[0].cycles",
    ],
    [
      "a bad percent deep inside a phase",
      {
        name: "Phased",
        isPhased: true,
        phases: [
          {
            name: "Intro",
            duration: PhaseDuration.FOREVER,
            effects: [
              { kind: { case: "freeTrialExtension", value: { days: 7 } } },
              { kind: { case: "percentageDiscount", value: { percentBps: 20000 } } },
            ],
          },
        ],
      },
      "phases[0].effects[1].percentage_discount.percent_bps",
    ],
  ];

  it.each(cases)("refuses %s naming %s", async (_name, request, param) => {
    const r = await refusal(api().createPromotion(request));
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.details.map((d) => d.param)).toContain(param);
    expect(r.details.every((d) => d.type === "invalid_request")).toBe(true);
    expect(r.message).toContain(r.details[0]?.param ?? "?");
  });

  it("reports every violation of one request at once", async () => {
    const r = await refusal(
      api().createPromotion({
        name: "",
        code: "bad code",
        maxRedemptions: 0n,
        effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 0 } } }],
      }),
    );
    expect(r.details.map((d) => d.param).sort()).toEqual(["code", "effects[0].percentage_discount.percent_bps", "max_redemptions", "name"]);
  });

  it("names wrapped update fields the way the update request spells them", async () => {
    const promotion = promo(await api().createPromotion(tenPercent()));
    const r = await refusal(
      api().updatePromotion({
        id: promotion.id,
        phases: { phases: [{ name: "Default", duration: PhaseDuration.FOREVER, effects: [{ kind: { case: "percentageDiscount", value: { percentBps: -1 } } }] }] },
      }),
    );
    expect(r.details[0]?.param).toBe("phases.phases[0].effects[0].percentage_discount.percent_bps");
  });

  it("refuses an id that is not a UUID as INVALID_ARGUMENT, and an unknown one as NOT_FOUND", async () => {
    expect((await refusal(api().getPromotion({ id: "nope" }))).details[0]).toMatchObject({ param: "id" });
    expect((await refusal(api().getPromotion({ id: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.NotFound);
  });

  it("refuses a taken code as ALREADY_EXISTS", async () => {
    await api().createPromotion(tenPercent({ code: "TAKEN1" }));
    const r = await refusal(api().createPromotion(tenPercent({ code: "taken1" })));
    expect(r.code).toBe(Code.AlreadyExists);
    expect(r.details[0]).toMatchObject({ param: "code", code: "code_taken" });
  });

  it("logs one line per call with method, code (as the wire names it), duration and organization", async () => {
    await refusal(api().getPromotion({ id: "nope" }));
    const line = t.logs().filter((l) => l.msg === "rpc" && l.method === "/promotions.v1.PromotionService/GetPromotion").at(-1);
    // The name a Connect client reads in the error body and metrics carry: invalid_argument.
    expect(line).toMatchObject({ code: "invalid_argument", organization: acme.organizationId });
    expect(typeof line?.duration_ms).toBe("number");
    expect(typeof line?.request_id).toBe("string");
  });
});
