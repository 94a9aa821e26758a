// What another TypeScript service writes, importing this package by its name. package-exports.test.ts
// runs it inside this repository (Node's self-reference through "exports") and from a separate project.
import { PromotionService, createPromotionsClient } from "promotions-service/client";
import { RedemptionService } from "promotions-service/gen/promotions/v1/redemption_service_pb.js";

const baseUrl = process.argv[2] ?? "http://127.0.0.1:8080";
const apiKey = process.env.PROMOTIONS_API_KEY ?? "";

// The three lines the README shows.
const promotions = createPromotionsClient(PromotionService, { baseUrl, apiKey });
const { promotions: live } = process.argv[2] ? await promotions.listPromotions({ filter: ["status.eq=active"] }) : { promotions: [] };
const redemptions = createPromotionsClient(RedemptionService, { baseUrl, apiKey, protocol: "connect" });

process.stdout.write(
  JSON.stringify({
    resolved: {
      client: import.meta.resolve("promotions-service/client"),
      gen: import.meta.resolve("promotions-service/gen/promotions/v1/promotion_service_pb.js"),
      proto: import.meta.resolve("promotions-service/proto/promotions/v1/promotion_service.proto"),
    },
    methods: [typeof promotions.createPromotion, typeof redemptions.redeemPromotion],
    live: live.map((p) => p.name),
  }),
);
