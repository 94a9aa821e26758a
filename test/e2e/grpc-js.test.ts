// The service as another team's Node service sees it: a plain @grpc/grpc-js client built from the
// .proto files with @grpc/proto-loader (longs and enums as strings, oneofs as virtual fields), an
// API key in the `authorization` metadata, errors decoded from the `grpc-status-details-bin` trailer.
import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LANES, startTestApp, type TestApp } from "../support/app.js";
import { grpcJsService, grpcStatusDetails, type GrpcJsResult, type GrpcJsService } from "./support/clients.js";

// Shapes as proto-loader decodes them (camelCase fields, int64 as string, enums as names).
interface Timestamp {
  seconds: string;
  nanos: number;
}
interface Effect {
  kind?: string;
  percentageDiscount?: { percentBps: number } | null;
  fixedDiscount?: { amountMinor: string } | null;
}
interface Phase {
  name: string;
  duration: string;
  cycles: number;
  effects: Effect[];
}
interface Condition {
  kind?: string;
  minSpend?: { amountMinor: string } | null;
  customerSegments?: { anyOf: string[] } | null;
}
interface Promotion {
  id: string;
  organizationId: string;
  name: string;
  code: string;
  archetype: string;
  status: string;
  derivedStatus: string;
  priority: number;
  conditionMode: string;
  conditions: Condition[];
  isPhased: boolean;
  phases: Phase[];
  currency: string;
  maxRedemptions: string | null;
  currentRedemptions: string;
  validFrom: Timestamp | null;
  metadata: Record<string, string>;
  version: string;
  liveVersion: string;
  headVersionId: string;
}
interface PromotionResponse {
  promotion: Promotion;
}
interface ListPromotionsResponse {
  promotions: Promotion[];
  nextCursor: string;
}
interface PromotionVersion {
  id: string;
  promotionId: string;
  version: string;
  status: string;
  publishedAt: Timestamp | null;
}
interface ListPromotionVersionsResponse {
  versions: PromotionVersion[];
  nextCursor: string;
}
interface GetPromotionVersionResponse {
  version: PromotionVersion;
  terms: { name: string; priority: number; phases: Phase[] };
}

let t: TestApp;
let promotions: GrpcJsService;
let versions: GrpcJsService;
let acmeKey: string;
let globexKey: string;
let codes = 0;

// Every test below runs once per gRPC lane (GRPC_LANE): grpc-js and connect-node.
describe.each(LANES)("on the %s lane", (lane) => {
  beforeAll(async () => {
    t = await startTestApp(`grpc_js_${lane}`, { GRPC_LANE: lane });
    acmeKey = (await t.tenant("acme")).key;
    globexKey = (await t.tenant("globex")).key;
    const address = new URL(t.url).host;
    promotions = grpcJsService(address, ["promotions/v1/promotion_service.proto"], "promotions.v1.PromotionService");
    versions = grpcJsService(address, ["promotions/v1/promotion_version_service.proto"], "promotions.v1.PromotionVersionService");
  });
  afterAll(async () => {
    promotions?.close();
    versions?.close();
    await t?.stop();
  });

  /** The value of a call that must succeed; fails the test with the gRPC error otherwise. */
  function ok<T>(result: GrpcJsResult<T>): T {
    expect(result.error?.details ?? null).toBeNull();
    if (result.value === undefined) throw new Error("no response message");
    return result.value;
  }

  /** The error of a call that must fail. */
  function failed<T>(result: GrpcJsResult<T>): ServiceError {
    if (result.error === null) throw new Error(`expected an error, got ${JSON.stringify(result.value)}`);
    return result.error;
  }

  const validFrom = { seconds: String(Math.floor(Date.UTC(2026, 0, 1) / 1000)), nanos: 0 };

  /** A loyalty ladder (10% for three cycles, then 20% forever) for students spending at least $50. */
  function ladderRequest(code = `LADDER${++codes}`) {
    return {
      name: "Student loyalty ladder",
      description: "10% for three months, then 20%",
      code,
      archetype: "ARCHETYPE_LOYALTY_LADDER",
      priority: 7,
      conditionMode: "CONDITION_MODE_ALL",
      conditions: [{ minSpend: { amountMinor: "5000" } }, { customerSegments: { anyOf: ["students"] } }],
      isPhased: true,
      phases: [
        { name: "Welcome", duration: "PHASE_DURATION_REPEATING", cycles: 3, effects: [{ percentageDiscount: { percentBps: 1000 } }] },
        { name: "Loyal", duration: "PHASE_DURATION_FOREVER", effects: [{ percentageDiscount: { percentBps: 2000 } }] },
      ],
      currency: "USD",
      maxRedemptions: "100",
      validFrom,
      metadata: { campaign: "back-to-school" },
    };
  }

  async function createLadder(code?: string): Promise<Promotion> {
    return ok(await promotions.call<PromotionResponse>("CreatePromotion", ladderRequest(code), acmeKey)).promotion;
  }

  describe("PromotionService over a plain grpc-js client", () => {
    it("creates a DRAFT promotion at version 1 with its phases and conditions as sent", async () => {
      const promotion = await createLadder("WELCOME-LADDER");
      expect(promotion.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(promotion).toMatchObject({
        name: "Student loyalty ladder",
        code: "WELCOME-LADDER",
        archetype: "ARCHETYPE_LOYALTY_LADDER",
        status: "PROMOTION_STATUS_DRAFT",
        derivedStatus: "DERIVED_STATUS_DRAFT",
        priority: 7,
        conditionMode: "CONDITION_MODE_ALL",
        isPhased: true,
        currency: "USD",
        maxRedemptions: "100",
        currentRedemptions: "0",
        validFrom,
        metadata: { campaign: "back-to-school" },
        version: "1",
      });
      expect(promotion.phases).toMatchObject([
        { name: "Welcome", duration: "PHASE_DURATION_REPEATING", cycles: 3, effects: [{ kind: "percentageDiscount", percentageDiscount: { percentBps: 1000 } }] },
        { name: "Loyal", duration: "PHASE_DURATION_FOREVER", cycles: 0, effects: [{ kind: "percentageDiscount", percentageDiscount: { percentBps: 2000 } }] },
      ]);
      expect(promotion.conditions).toMatchObject([
        { kind: "minSpend", minSpend: { amountMinor: "5000" } },
        { kind: "customerSegments", customerSegments: { anyOf: ["students"] } },
      ]);
    });

    it("gets the promotion by id exactly as it was created", async () => {
      const created = await createLadder();
      const got = ok(await promotions.call<PromotionResponse>("GetPromotion", { id: created.id }, acmeKey));
      expect(got.promotion).toEqual(created);
    });

    it("updates only the fields that are set, and refuses a stale expected_version with ABORTED", async () => {
      const created = await createLadder();
      const updated = ok(
        await promotions.call<PromotionResponse>(
          "UpdatePromotion",
          { id: created.id, expectedVersion: created.version, name: "Student ladder (autumn)", priority: 9 },
          acmeKey,
        ),
      ).promotion;
      expect(updated).toMatchObject({ id: created.id, name: "Student ladder (autumn)", priority: 9, status: "PROMOTION_STATUS_DRAFT" });
      expect(updated.phases).toEqual(created.phases);
      expect(updated.conditions).toEqual(created.conditions);
      expect(updated.code).toBe(created.code);

      const stale = failed(
        await promotions.call("UpdatePromotion", { id: created.id, expectedVersion: String(Number(updated.version) + 1), priority: 1 }, acmeKey),
      );
      expect(stale.code).toBe(GrpcStatus.ABORTED);
      expect(grpcStatusDetails(stale)?.errorDetails).toEqual([expect.objectContaining({ type: "conflict", code: "version_conflict" })]);
    });

    it("activates a draft: status ACTIVE, live now", async () => {
      const created = await createLadder();
      const activated = ok(await promotions.call<PromotionResponse>("ActivatePromotion", { id: created.id }, acmeKey)).promotion;
      expect(activated).toMatchObject({ id: created.id, status: "PROMOTION_STATUS_ACTIVE", derivedStatus: "DERIVED_STATUS_LIVE" });
      const got = ok(await promotions.call<PromotionResponse>("GetPromotion", { id: created.id }, acmeKey)).promotion;
      expect(got.status).toBe("PROMOTION_STATUS_ACTIVE");
    });

    it("lists with filter status.eq=active: the active promotion, never a draft", async () => {
      const draft = await createLadder();
      const active = await createLadder();
      ok(await promotions.call<PromotionResponse>("ActivatePromotion", { id: active.id }, acmeKey));
      const page = ok(await promotions.call<ListPromotionsResponse>("ListPromotions", { filter: ["status.eq=active"], limit: 100 }, acmeKey));
      const ids = page.promotions.map((p) => p.id);
      expect(ids).toContain(active.id);
      expect(ids).not.toContain(draft.id);
      expect(new Set(page.promotions.map((p) => p.status))).toEqual(new Set(["PROMOTION_STATUS_ACTIVE"]));
    });

    it("reads the published version through PromotionVersionService", async () => {
      const created = await createLadder();
      const activated = ok(await promotions.call<PromotionResponse>("ActivatePromotion", { id: created.id }, acmeKey)).promotion;
      const list = ok(await versions.call<ListPromotionVersionsResponse>("ListPromotionVersions", { id: created.id }, acmeKey));
      expect(list.versions.length).toBeGreaterThanOrEqual(1);
      const [newest] = list.versions;
      expect(newest).toMatchObject({ promotionId: created.id, version: activated.version, status: "VERSION_STATUS_PUBLISHED" });
      expect(newest?.publishedAt).not.toBeNull();

      const one = ok(await versions.call<GetPromotionVersionResponse>("GetPromotionVersion", { id: created.id, version: activated.version }, acmeKey));
      expect(one.version).toEqual(newest);
      expect(one.terms).toMatchObject({ name: "Student loyalty ladder", priority: 7 });
      expect(one.terms.phases.map((p) => p.effects[0]?.percentageDiscount?.percentBps)).toEqual([1000, 2000]);
    });
  });

  describe("errors over a plain grpc-js client", () => {
    it("fails bad input once with INVALID_ARGUMENT and one ErrorDetail per field, param naming the field path", async () => {
      const request = ladderRequest();
      request.name = "";
      request.archetype = "ARCHETYPE_STANDARD"; // so the 200% phase is not also a falling loyalty ladder
      request.phases[0] = { ...request.phases[0]!, effects: [{ percentageDiscount: { percentBps: 20_000 } }] };
      const error = failed(await promotions.call("CreatePromotion", request, acmeKey));
      expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      const status = grpcStatusDetails(error);
      expect(status?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(status?.typeUrls.every((url) => url === "type.googleapis.com/promotions.v1.ErrorDetail")).toBe(true);
      const details = status?.errorDetails ?? [];
      expect(details.map((d) => d.param).sort()).toEqual(["name", "phases[0].effects[0].percentage_discount.percent_bps"]);
      const percent = details.find((d) => d.param === "phases[0].effects[0].percentage_discount.percent_bps");
      expect(percent).toMatchObject({ type: "invalid_request", code: "out_of_range" });
      expect(percent?.message).toContain("20000");
      expect(error.details).not.toMatch(/\n\s+at /); // no stack trace reaches the client
      // grpc-js shows grpc-message as decodeURI leaves it: exact only when the server escapes just
      // what the gRPC spec says to (not ':' or ';', which encodeURIComponent escapes).
      expect(error.details).toBe(
        "name: name is required; phases[0].effects[0].percentage_discount.percent_bps: percent_bps must be between 1 and 10000 (got 20000)",
      );
      expect(error.details).toBe(status?.message);
    });

    it("reads every character of a message exactly: reserved URI characters, '%' and non-ASCII", async () => {
      const customers = grpcJsService(new URL(t.url).host, ["promotions/v1/customer_service.proto"], "promotions.v1.CustomerService");
      try {
        const id = "kunde/ä?ö#x&y=z+1$,@:;%41 ü";
        const error = failed(await customers.call("GetCustomer", { id }, acmeKey));
        expect(error.code).toBe(GrpcStatus.NOT_FOUND);
        expect(error.details).toBe(`customer_id: customer ${id} does not exist`);
        expect(error.metadata.get("grpc-message")).toEqual([]); // grpc-js hands the decoded text over as details only
      } finally {
        customers.close();
      }
    });

    it("fails without an API key with UNAUTHENTICATED, telling how to send one", async () => {
      const created = await createLadder();
      const error = failed(await promotions.call("GetPromotion", { id: created.id }, null));
      expect(error.code).toBe(GrpcStatus.UNAUTHENTICATED);
      expect(grpcStatusDetails(error)?.errorDetails).toEqual([
        expect.objectContaining({ type: "authentication", code: "missing_api_key", message: expect.stringContaining("authorization: Bearer") }),
      ]);
    });

    it("fails with a key it does not know with UNAUTHENTICATED", async () => {
      const error = failed(await promotions.call("ListPromotions", {}, "prm_not-a-key-this-service-issued"));
      expect(error.code).toBe(GrpcStatus.UNAUTHENTICATED);
      expect(grpcStatusDetails(error)?.errorDetails[0]?.code).toBe("invalid_api_key");
    });

    it("answers NOT_FOUND for another tenant's promotion, to reads and writes alike", async () => {
      const acmes = await createLadder();
      for (const [method, request] of [
        ["GetPromotion", { id: acmes.id }],
        ["UpdatePromotion", { id: acmes.id, name: "hijacked" }],
        ["ActivatePromotion", { id: acmes.id }],
      ] as const) {
        const error = failed(await promotions.call(method, request, globexKey));
        expect(error.code, method).toBe(GrpcStatus.NOT_FOUND);
        expect(grpcStatusDetails(error)?.errorDetails[0], method).toMatchObject({ type: "not_found" });
      }
      const versionsError = failed(await versions.call("ListPromotionVersions", { id: acmes.id }, globexKey));
      expect(versionsError.code).toBe(GrpcStatus.NOT_FOUND);
      const globexList = ok(await promotions.call<ListPromotionsResponse>("ListPromotions", { limit: 100 }, globexKey));
      expect(globexList.promotions.map((p) => p.id)).not.toContain(acmes.id);
      // ...and the owner still sees it untouched.
      const own = ok(await promotions.call<PromotionResponse>("GetPromotion", { id: acmes.id }, acmeKey)).promotion;
      expect(own).toMatchObject({ name: "Student loyalty ladder", status: "PROMOTION_STATUS_DRAFT" });
    });
  });

  it(`answered every call on the ${lane} lane`, () => {
    expect(t.lanesServed()).toEqual([lane]);
  });

});
