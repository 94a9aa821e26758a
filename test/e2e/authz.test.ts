import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection, ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { requiredScope } from "../../src/api/method-scopes.js";
import { ApiKeyStore, hashKey, SCOPES, type Scope } from "../../src/store/api-keys.js";
import { client, startTestApp, transport, type Protocol, type TestApp } from "../support/app.js";
import { codeName, toMessage, type Init } from "./support/hostile.js";
import { promotionsRpcs, type Rpc } from "./support/rpcs.js";
import { snapshotDiff, snapshotRedis, takeSnapshot, withoutOrganizations } from "./support/snapshot.js";
import { seedRequests, seedWorld, type World } from "./support/world.js";

// The authorization matrix, for every RPC of every promotions.v1 service (read from gen/), over
// every protocol: no key and a revoked key are UNAUTHENTICATED, a key without the scope scopes.ts
// requires is PERMISSION_DENIED, another tenant's key naming tenant A's resources finds nothing,
// and no refused call writes a row or a Redis key. No key or key hash ever reaches the logs.

const PROTOCOLS: readonly Protocol[] = ["connect-json", "connect-binary", "grpc", "grpc-web"];
const TIMEOUT_MS = 10_000;

let t: TestApp;
let redis: Redis;
let rpcs: Rpc[];
let worldA: World;
let orgB: string;
/** Tenant A's keys by the scopes they carry ("read", "read+write", …); all scopes under "all". */
const keysA = new Map<string, string>();
const keysB = new Map<string, string>();
let revokedA: string;
const everyKey: string[] = [];
let refusalsChecked = 0;

const label = (scopes: readonly Scope[]) => (scopes.length === SCOPES.length ? "all" : [...scopes].sort().join("+"));

async function call(rpc: Rpc, protocol: Protocol, key: string | null, init: Init): Promise<{ code: string; message?: unknown }> {
  try {
    const res = await transport(t.url, protocol, key).unary(rpc.method, AbortSignal.timeout(TIMEOUT_MS), TIMEOUT_MS, undefined, toMessage(rpc.method.input, init));
    return { code: "ok", message: res.message };
  } catch (error) {
    return { code: codeName(ConnectError.from(error).code) };
  }
}

/**
 * What tenant B gets for tenant A's resources. Lookups of A's ids and codes are NOT_FOUND; RPCs
 * that name no resource of A answer for B alone, checked here not to show anything of A.
 */
const CROSS_TENANT: Record<string, "not_found" | ((res: { code: string; message?: unknown }) => void)> = {
  GetPromotion: "not_found",
  UpdatePromotion: "not_found",
  ActivatePromotion: "not_found",
  DeactivatePromotion: "not_found",
  CopyPromotion: "not_found",
  DeletePromotion: "not_found",
  PreviewPromotionEligibility: "not_found",
  CreatePromotionCodes: "not_found",
  ListPromotionCodes: "not_found",
  UpdatePromotionCode: "not_found",
  ListPromotionVersions: "not_found",
  GetPromotionVersion: "not_found",
  SimulatePromotion: "not_found",
  SimulatePromotionImpact: "not_found",
  RedeemPromotion: "not_found",
  ReleaseRedemption: "not_found",
  GetRedemption: "not_found",
  // A filter naming an unknown promotion lists nothing, as it does for an id that never existed.
  ListRedemptions: (res) => {
    expect(res.code).toBe("ok");
    expect(res.message).toMatchObject({ redemptions: [], nextCursor: "" });
  },
  ApplyPromotions: "not_found",
  ReverseInvoice: "not_found",
  GetCustomer: "not_found",
  GetSubscription: "not_found",
  ValidateCode: (res) => {
    expect(res.code).toBe("ok");
    expect(res.message).toMatchObject({ valid: false, reason: "code_not_found", promotionId: "" });
  },
  ListPromotions: (res) => {
    expect(res.code).toBe("ok");
    expect(JSON.stringify(res.message, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))).not.toContain(worldA.promotionId);
  },
  // Writes that name nothing of A's: B gets its own (or a conflict with its own earlier call).
  CreatePromotion: (res) => expect(["ok", "already_exists"]).toContain(res.code),
  UpsertCustomer: (res) => expect(res.code).toBe("ok"),
  UpsertSubscription: (res) => expect(res.code).toBe("ok"),
  ListEvents: (res) => {
    expect(res.code).toBe("ok");
    expect(JSON.stringify(res.message, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))).not.toContain(worldA.organizationId);
  },
  CreateWebhookEndpoint: (res) => expect(res.code).toBe("ok"),
  ListWebhookEndpoints: (res) => {
    expect(res.code).toBe("ok");
    expect(JSON.stringify(res.message, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))).not.toContain(worldA.webhookEndpointId);
  },
  UpdateWebhookEndpoint: "not_found",
  DeleteWebhookEndpoint: "not_found",
  RotateWebhookSecret: "not_found",
  ListWebhookDeliveries: "not_found",
  RetryWebhookDelivery: "not_found",
  UpsertCustomers: (res) => expect(res.code).toBe("ok"),
  UpsertSubscriptions: (res) => expect(res.code).toBe("ok"),
};

beforeAll(async () => {
  // Endpoints on loopback only, and no DNS query leaves the machine (nothing answers on port 9).
  t = await startTestApp("authz", { WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true", WEBHOOK_DNS_SERVERS: "127.0.0.1:9" });
  redis = snapshotRedis();
  rpcs = await promotionsRpcs();
  const a = await t.tenant("authz-a");
  worldA = await seedWorld(t.url, a.key, a.organizationId, "alpha");
  const b = await t.tenant("authz-b");
  orgB = b.organizationId;
  await seedWorld(t.url, b.key, b.organizationId, "beta");
  everyKey.push(a.key, b.key);
  const store = new ApiKeyStore(t.app.orm.em.fork());
  const scopeSets: Scope[][] = [["read"], ["write"], ["redeem"], ["read", "write"], ["read", "redeem"], ["write", "redeem"], ["read", "write", "redeem"]];
  for (const scopes of scopeSets) {
    const forA = await store.createKey(a.organizationId, `a ${label(scopes)}`, scopes);
    const forB = await store.createKey(b.organizationId, `b ${label(scopes)}`, scopes);
    keysA.set(label(scopes), forA.key);
    keysB.set(label(scopes), forB.key);
    everyKey.push(forA.key, forB.key);
  }
  const revoked = await store.createKey(a.organizationId, "a revoked", ["read", "write", "redeem"]);
  expect(await store.revokeKey(revoked.id)).toBe(true);
  revokedA = revoked.key;
  everyKey.push(revoked.key);
});

afterAll(async () => {
  console.log(`authz: ${rpcs?.length ?? 0} RPCs x ${PROTOCOLS.length} protocols, ${refusalsChecked} refusals checked with nothing written`);
  redis?.disconnect();
  await t?.stop();
});

describe("authorization matrix", () => {
  it("has a cross-tenant expectation for every RPC", () => {
    expect(rpcs.map((r) => r.method.name).filter((name) => !(name in CROSS_TENANT))).toEqual([]);
  });

  it("refuses every RPC without a key, with a revoked key and without its scope, and writes nothing", async () => {
    const requests = seedRequests(worldA);
    for (const rpc of rpcs) {
      const needed = requiredScope(rpc.method.name);
      const lacking = [...keysA.entries()].filter(([scopes]) => scopes !== "all" && !scopes.split("+").includes(needed));
      expect(lacking).toHaveLength(3); // the two other single scopes and the pair without it
      const init = requests[rpc.method.name] ?? {};
      const before = await takeSnapshot(t, redis);
      for (const protocol of PROTOCOLS) {
        const cases: { who: string; key: string | null; expected: string }[] = [
          { who: "no key", key: null, expected: "unauthenticated" },
          { who: "revoked key", key: revokedA, expected: "unauthenticated" },
          { who: "unknown key", key: "prm_not-a-key-at-all", expected: "unauthenticated" },
          ...lacking.map(([scopes, key]) => ({ who: `key with ${scopes}`, key, expected: "permission_denied" })),
        ];
        const got = await Promise.all(cases.map(async (c) => ({ ...c, code: (await call(rpc, protocol, c.key, init)).code })));
        expect(got.map((g) => `${g.who}: ${g.code}`), `${rpc.label} over ${protocol}`).toEqual(got.map((g) => `${g.who}: ${g.expected}`));
        refusalsChecked += got.length;
      }
      const after = await takeSnapshot(t, redis);
      expect(snapshotDiff(before, after), rpc.label).toEqual([]);
      expect(after).toEqual(before);
    }
  }, 180_000);

  it("lets the key with exactly the required scope through, and another tenant's key finds none of tenant A's resources", async () => {
    const requests = seedRequests(worldA);
    // Lookups first: B's upserts of A's external ids create B's own customer and subscription.
    const ordered = [...rpcs].sort((x, y) => Number(CROSS_TENANT[x.method.name] !== "not_found") - Number(CROSS_TENANT[y.method.name] !== "not_found"));
    for (const rpc of ordered) {
      const needed = requiredScope(rpc.method.name);
      const keyB = keysB.get(needed);
      if (keyB === undefined) throw new Error(`no key for scope ${needed}`);
      const expectation = CROSS_TENANT[rpc.method.name];
      const init = requests[rpc.method.name] ?? {};
      const full = await takeSnapshot(t, redis);
      const outsideB = withoutOrganizations(full, new Set([orgB]));
      for (const protocol of PROTOCOLS) {
        const res = await call(rpc, protocol, keyB, init);
        if (expectation === "not_found") {
          expect(res.code, `${rpc.label} over ${protocol}`).toBe("not_found");
          refusalsChecked++;
        } else {
          expectation?.(res);
        }
      }
      const after = await takeSnapshot(t, redis);
      if (expectation === "not_found") {
        expect(snapshotDiff(full, after), rpc.label).toEqual([]);
        expect(after).toEqual(full);
      } else {
        // B may have written its own rows; nothing of A's (or anyone else's) changed.
        const afterOutsideB = withoutOrganizations(after, new Set([orgB]));
        expect(snapshotDiff(outsideB, afterOutsideB), rpc.label).toEqual([]);
      }
    }
  }, 180_000);

  it("serves health and reflection without a key", async () => {
    for (const protocol of PROTOCOLS) {
      const res = await client(Health, t.url, null, protocol).check({ service: "" });
      expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    }
    const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl: t.url }));
    const services: string[] = [];
    async function* ask() {
      yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
    }
    for await (const res of reflection.serverReflectionInfo(ask())) {
      if (res.messageResponse.case === "listServicesResponse") services.push(...res.messageResponse.value.service.map((s) => s.name));
    }
    expect(services).toEqual(expect.arrayContaining(rpcs.map((r) => r.service.typeName)));
  });

  it("never logs a key or a key hash", () => {
    const logs = t.rawLogs();
    expect(logs.length).toBeGreaterThan(0);
    expect(everyKey.length).toBe(17);
    for (const key of everyKey) {
      expect(logs.includes(key), "a key in the logs").toBe(false);
      expect(logs.includes(hashKey(key)), "a key hash in the logs").toBe(false);
      expect(logs.includes(key.slice(4)), "a key's secret part in the logs").toBe(false);
    }
  });
});
