// Connect GET for the side-effect-free RPCs (idempotency_level = NO_SIDE_EFFECTS): the gets, lists,
// previews, simulations and ValidateCode answer a GET with the request in the URL, so browsers,
// CDNs and caches can use them; every other RPC still takes POST only.
import { toJsonString } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import * as web from "@connectrpc/connect-web";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { promotionsRpcs, type Rpc } from "./support/rpcs.js";
import { toMessage } from "./support/hostile.js";
import { seedRequests, seedWorld, type World } from "./support/world.js";

const SIDE_EFFECT_FREE = [
  "CustomerService/GetCustomer",
  "CustomerService/GetSubscription",
  "PromotionService/GetPromotion",
  "PromotionService/ListPromotionCodes",
  "PromotionService/ListPromotions",
  "PromotionService/PreviewPromotionEligibility",
  "PromotionVersionService/GetPromotionVersion",
  "PromotionVersionService/ListPromotionVersions",
  "RedemptionService/GetRedemption",
  "RedemptionService/ListRedemptions",
  "RedemptionService/ValidateCode",
  "SimulationService/SimulatePromotion",
  "SimulationService/SimulatePromotionImpact",
];

let t: TestApp;
let key: string;
let world: World;
let rpcs: Rpc[];

beforeAll(async () => {
  t = await startTestApp("http_get", { WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true", WEBHOOK_DNS_SERVERS: "127.0.0.1:9" });
  const tenant = await t.tenant("get-co");
  key = tenant.key;
  world = await seedWorld(t.url, key, tenant.organizationId, "get");
  rpcs = await promotionsRpcs();
});
afterAll(async () => {
  await t?.stop();
});

const noSideEffects = (rpc: Rpc) => rpc.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;

describe("Connect GET", () => {
  it("is offered by exactly the gets, lists, previews, simulations and ValidateCode", () => {
    expect(rpcs.filter(noSideEffects).map((r) => r.label).sort()).toEqual(SIDE_EFFECT_FREE);
  });

  it("answers each side-effect-free RPC from a plain fetch GET, the request JSON in the URL", async () => {
    const seeds = seedRequests(world);
    const getable = rpcs.filter(noSideEffects);
    expect(getable).toHaveLength(SIDE_EFFECT_FREE.length);
    for (const rpc of getable) {
      const message = toJsonString(rpc.method.input, toMessage(rpc.method.input, seeds[rpc.method.name] ?? {}));
      const res = await fetch(`${t.url}${rpc.path}?connect=v1&encoding=json&message=${encodeURIComponent(message)}`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status, `${rpc.label}: ${await res.clone().text()}`).toBe(200);
      expect(res.headers.get("content-type"), rpc.label).toBe("application/json");
    }
  });

  it("is what connect-web sends with useHttpGet (as in a browser), and the answer is the same as over POST", async () => {
    const methods: string[] = [];
    const recording: typeof fetch = (input, init) => {
      methods.push(init?.method ?? "GET");
      return fetch(input, init);
    };
    const auth: Interceptor = (next) => async (req) => {
      req.header.set("authorization", `Bearer ${key}`);
      return next(req);
    };
    const get = web.createConnectTransport({ baseUrl: t.url, useHttpGet: true, fetch: recording, interceptors: [auth] });
    const post = web.createConnectTransport({ baseUrl: t.url, fetch: recording, interceptors: [auth] });
    const byGet = await createClient(PromotionService, get).getPromotion({ id: world.promotionId });
    const byPost = await createClient(PromotionService, post).getPromotion({ id: world.promotionId });
    expect(byGet).toEqual(byPost);
    const validated = await createClient(RedemptionService, get).validateCode({ code: world.code, customerId: world.customerId });
    expect(validated.valid).toBe(true);
    // A write through the GET transport still goes as POST.
    await createClient(PromotionService, get).updatePromotion({ id: world.draftId, name: "renamed by POST" });
    expect(methods).toEqual(["GET", "POST", "GET", "POST"]);
  });

  it("is refused for every RPC that changes state: 405, allow: POST", async () => {
    for (const rpc of rpcs.filter((r) => !noSideEffects(r))) {
      const res = await fetch(`${t.url}${rpc.path}?connect=v1&encoding=json&message=%7B%7D`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status, rpc.label).toBe(405);
      expect(res.headers.get("allow"), rpc.label).toBe("POST");
    }
  });
});
