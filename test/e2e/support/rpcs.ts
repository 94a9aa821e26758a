// Every RPC of every promotions.v1 service, read from the generated descriptors in gen/, so a new
// service or RPC is fuzzed and put through the authorization matrix without anyone listing it.
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { DescMethod, DescMethodUnary, DescService } from "@bufbuild/protobuf";

export interface Rpc {
  service: DescService;
  method: DescMethodUnary;
  /** `Service/Method`, e.g. `PromotionService/GetPromotion`. */
  label: string;
  /** The URL path Connect, gRPC and gRPC-Web use: `/promotions.v1.PromotionService/GetPromotion`. */
  path: string;
}

const GEN_DIR = new URL("../../../gen/promotions/v1/", import.meta.url);

function isService(value: unknown): value is DescService {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "service";
}

function isUnary(method: DescMethod): method is DescMethodUnary {
  return method.methodKind === "unary";
}

/** The services exported by gen/promotions/v1/*_pb.ts, sorted by name. */
export async function promotionsServices(): Promise<DescService[]> {
  const files = readdirSync(fileURLToPath(GEN_DIR)).filter((f) => f.endsWith("_pb.ts"));
  const found = new Map<string, DescService>();
  for (const file of files) {
    const mod = (await import(new URL(file, GEN_DIR).href)) as Record<string, unknown>;
    for (const value of Object.values(mod)) if (isService(value)) found.set(value.typeName, value);
  }
  return [...found.values()].sort((a, b) => a.typeName.localeCompare(b.typeName));
}

/**
 * Server-streaming RPCs the unary matrix leaves to their own tests, with where those tests are;
 * any other streaming RPC fails loudly.
 */
export const STREAMING_RPCS: Readonly<Record<string, string>> = {
  "promotions.v1.EventService/StreamEvents": "test/e2e/webhooks.test.ts (keys and scopes, another tenant's after_id, every protocol)",
};

/** Every unary RPC of promotions.v1 (streaming ones listed in STREAMING_RPCS are tested elsewhere). */
export async function promotionsRpcs(): Promise<Rpc[]> {
  const rpcs: Rpc[] = [];
  for (const service of await promotionsServices()) {
    for (const method of service.methods) {
      if (!isUnary(method)) {
        if (`${service.typeName}/${method.name}` in STREAMING_RPCS) continue;
        throw new Error(`${service.typeName}/${method.name} is ${method.methodKind}: extend test/e2e/support/rpcs.ts`);
      }
      rpcs.push({ service, method, label: `${service.name}/${method.name}`, path: `/${service.typeName}/${method.name}` });
    }
  }
  return rpcs;
}
