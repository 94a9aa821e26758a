import http from "node:http";
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { RedemptionService } from "../../gen/promotions/v1/redemption_service_pb.js";
import { SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";
import { refusal } from "../support/rpc.js";
import { client, startTestApp, transport, type TestApp } from "../support/app.js";
import { codeName, envelope, messageArb, mayPassArb, mustFailArb, mutatedArb, sendRaw, toMessage, withDetail, type Init, type Outcome, type RawInput, type RawProtocol } from "./support/hostile.js";
import { promotionsRpcs, type Rpc } from "./support/rpcs.js";
import { snapshotDiff, snapshotRedis, takeSnapshot, withoutOrganizations } from "./support/snapshot.js";
import { seedRequests, seedWorld, worldValues, type World } from "./support/world.js";

// Hostile input for every RPC of every promotions.v1 service (read from the descriptors in gen/),
// over Connect JSON, Connect binary and gRPC. Every input gets a proper code (never INTERNAL or
// UNKNOWN, never a hang) and every refusal a promotions.v1.ErrorDetail, the server still answers
// health checks, and nothing is written that a valid call did not write:
// - bodies that must fail go out with the key of a seeded, frozen tenant, and afterwards every
//   table and every Redis key under the app's prefix is byte for byte what it was;
// - random and mutated messages (which may well be valid) go out with a sandbox tenant's key,
//   drawing ids and codes from both tenants, and afterwards everything outside the sandbox
//   tenant is byte for byte what it was.

const PROTOCOLS: readonly RawProtocol[] = ["connect-json", "connect-binary", "grpc"];
const TIMEOUT_MS = 10_000;
/** Runs per RPC and protocol; the whole file stays within about a minute on two cores. */
const RUNS = { mustFail: 50, typed: 80, mayPass: 30 };
// npm test replays the same inputs every run (a red CI must be reproducible); FUZZ_SEED=random
// explores new ones, FUZZ_SEED=<n> replays a reported failure.
const BASE_SEED = process.env.FUZZ_SEED === "random" ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED ?? 20_261_125);
let runIndex = 0;
/** What a server may answer hostile input with. */
const PROPER = new Set(["ok", "invalid_argument", "not_found", "already_exists", "failed_precondition", "resource_exhausted", "aborted", "out_of_range", "permission_denied"]);

let t: TestApp;
let redis: Redis;
let rpcs: Rpc[];
let frozen: { key: string; world: World };
let sandbox: { key: string; organizationId: string; world: World };
let pool: string[];

/** Inputs and answers, for the summary line and for failure messages. */
const tally = { protocol: new Map<string, number>(), family: new Map<string, number>(), code: new Map<string, number>(), kind: new Map<string, number>(), total: 0 };
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

function record(rpc: Rpc, protocol: string, kind: string, outcome: Outcome): void {
  tally.total++;
  bump(tally.protocol, protocol);
  bump(tally.family, rpc.service.name);
  bump(tally.code, outcome);
  bump(tally.kind, kind);
}

function proper(kind: string, outcome: Outcome): boolean {
  // A second message on a unary gRPC call: connect-go answers UNIMPLEMENTED too.
  if (kind === "grpc:two-messages" && outcome === "unimplemented") return true;
  // Oversized uploads sent without a length may be cut off once the server has answered.
  return PROPER.has(outcome) || (kind.endsWith("oversized-chunked") && outcome === "closed_while_uploading");
}

const bearer =
  (key: string): Interceptor =>
  (next) =>
  async (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };

async function callTyped(tr: Transport, rpc: Rpc, init: Init): Promise<Outcome> {
  try {
    await tr.unary(rpc.method, AbortSignal.timeout(TIMEOUT_MS), TIMEOUT_MS, undefined, toMessage(rpc.method.input, init));
    return "ok";
  } catch (error) {
    const e = ConnectError.from(error);
    return withDetail(codeName(e.code), e.findDetails(ErrorDetailSchema).length > 0);
  }
}

function preview(value: unknown): string {
  const text = JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `<${v.length} bytes: ${Buffer.from(v.subarray(0, 120)).toString("latin1")}>` : v));
  return text.length > 300 ? `${text.slice(0, 300)}…(${text.length} chars)` : text;
}

/** Runs one property per RPC and protocol (protocols in parallel); returns one line per failed property. */
async function fuzz<T>(
  arbitrary: (rpc: Rpc, protocol: RawProtocol) => fc.Arbitrary<T>,
  send: (rpc: Rpc, protocol: RawProtocol, input: T) => Promise<{ kind: string; outcome: Outcome; ok: boolean }>,
  numRuns: number,
): Promise<string[]> {
  const failures: string[] = [];
  for (const rpc of rpcs) {
    await Promise.all(
      PROTOCOLS.map(async (protocol) => {
        let last = "";
        const details = await fc.check(
          fc.asyncProperty(arbitrary(rpc, protocol), async (input) => {
            const started = Date.now();
            const { kind, outcome, ok } = await send(rpc, protocol, input);
            if (process.env.FUZZ_DEBUG && Date.now() - started > 500) console.log(`slow ${Date.now() - started}ms ${rpc.label} ${protocol} ${kind} ${outcome} ${preview(input).slice(0, 200)}`);
            record(rpc, protocol, kind, outcome);
            last = `${kind} -> ${outcome}`;
            return ok;
          }),
          { numRuns, endOnFailure: true, seed: BASE_SEED + runIndex++ },
        );
        if (details.failed) failures.push(`${rpc.label} over ${protocol}: ${last} (seed ${details.seed}, path ${details.counterexamplePath}) input ${preview(details.counterexample?.[0])}`);
      }),
    );
  }
  return failures;
}

async function expectHealthy(): Promise<void> {
  for (const protocol of ["grpc", "connect-json"] as const) {
    const res = await client(Health, t.url, null, protocol).check({ service: "" }, { timeoutMs: 5_000 });
    expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  }
}

beforeAll(async () => {
  // Endpoints on loopback only, and no DNS query leaves the machine (nothing answers on port 9).
  t = await startTestApp("fuzz", { MAX_BODY_BYTES: "65536", WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true", WEBHOOK_DNS_SERVERS: "127.0.0.1:9" });
  redis = snapshotRedis();
  rpcs = await promotionsRpcs();
  const f = await t.tenant("frozen-co");
  frozen = { key: f.key, world: await seedWorld(t.url, f.key, f.organizationId, "frozen") };
  const s = await t.tenant("sandbox-co");
  sandbox = { key: s.key, organizationId: s.organizationId, world: await seedWorld(t.url, s.key, s.organizationId, "sandbox") };
  pool = [...worldValues(sandbox.world), ...worldValues(frozen.world), "00000000-0000-0000-0000-000000000000", "not-a-uuid"];
});

afterAll(async () => {
  const line = (m: Map<string, number>) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(" ");
  console.log(
    `fuzz (FUZZ_SEED=${BASE_SEED}): ${tally.total} inputs over ${rpcs?.length ?? 0} RPCs | per protocol: ${line(tally.protocol)} | per family: ${line(tally.family)} | codes: ${line(tally.code)} | kinds: ${line(tally.kind)}`,
  );
  redis?.disconnect();
  await t?.stop();
});

describe("hostile input", () => {
  it("covers every RPC of every promotions.v1 service", () => {
    expect(rpcs.length).toBeGreaterThanOrEqual(26);
    const seeds = seedRequests(frozen.world);
    // A new RPC is fuzzed anyway (from an empty seed), but its mutations start nowhere useful.
    expect(rpcs.map((r) => r.method.name).filter((name) => !(name in seeds))).toEqual([]);
  });

  it("refuses malformed, mistyped, out-of-range and oversized bodies with a proper code, and writes nothing", async () => {
    const before = await takeSnapshot(t, redis);
    const seeds = seedRequests(frozen.world);
    const failures = await fuzz<RawInput>(
      (rpc, protocol) => mustFailArb(rpc.method.input, seeds[rpc.method.name] ?? {}, protocol),
      async (rpc, protocol, input) => {
        const outcome = await sendRaw(t.url, protocol, rpc.path, frozen.key, input, TIMEOUT_MS);
        return { kind: input.kind, outcome, ok: outcome !== "ok" && proper(input.kind, outcome) };
      },
      RUNS.mustFail,
    );
    expect(failures).toEqual([]);
    await expectHealthy();
    const after = await takeSnapshot(t, redis);
    expect(snapshotDiff(before, after)).toEqual([]);
    expect(after).toEqual(before);
  }, 240_000);

  it("answers random and mutated messages with a proper code, and touches nothing outside the caller's tenant", async () => {
    const others = new Set([sandbox.organizationId]);
    const before = withoutOrganizations(await takeSnapshot(t, redis), others);
    const seeds = seedRequests(sandbox.world);
    const transports = Object.fromEntries(PROTOCOLS.map((p) => [p, transport(t.url, p, sandbox.key)])) as Record<RawProtocol, Transport>;
    // Connect JSON goes over HTTP/1.1 without keep-alive: after an oversized body sent without a
    // Content-Length, the next call on the same kept-alive socket stalls ~6 s and ends ECONNRESET
    // (the server refuses before reading the body but keeps the connection; see src/server.ts).
    transports["connect-json"] = createConnectTransport({ baseUrl: t.url, httpVersion: "1.1", interceptors: [bearer(sandbox.key)], nodeOptions: { agent: new http.Agent({ keepAlive: false }) } });
    const typed = await fuzz<{ kind: string; init: Init }>(
      (rpc) =>
        fc.oneof(
          messageArb(rpc.method.input, pool).map((init) => ({ kind: "random", init })),
          mutatedArb(rpc.method.input, seeds[rpc.method.name] ?? {}, pool).map((init) => ({ kind: "mutated", init })),
        ),
      async (rpc, protocol, input) => {
        const outcome = await callTyped(transports[protocol], rpc, input.init);
        return { kind: input.kind, outcome, ok: proper(input.kind, outcome) };
      },
      RUNS.typed,
    );
    const raw = await fuzz<RawInput>(
      (rpc, protocol) => mayPassArb(rpc.method.input, seeds[rpc.method.name] ?? {}, protocol),
      async (rpc, protocol, input) => {
        const outcome = await sendRaw(t.url, protocol, rpc.path, sandbox.key, input, TIMEOUT_MS);
        return { kind: input.kind, outcome, ok: proper(input.kind, outcome) };
      },
      RUNS.mayPass,
    );
    expect([...typed, ...raw]).toEqual([]);
    await expectHealthy();
    const after = withoutOrganizations(await takeSnapshot(t, redis), others);
    expect(snapshotDiff(before, after)).toEqual([]);
    expect(after).toEqual(before);
  }, 240_000);

  // connect-es raises its binary parse error as INTERNAL before any interceptor runs;
  // src/api/wire-answers.ts rewrites exactly those answers where the handlers are built.
  it("answers malformed protobuf with INVALID_ARGUMENT over Connect binary, gRPC and gRPC-Web", async () => {
    const rpc = rpcs.find((r) => r.method.name === "GetPromotion");
    if (!rpc) throw new Error("GetPromotion not found");
    const body = Uint8Array.from([0x0a, 0x64, 0x61]); // field 1, length 100, one byte
    expect(await sendRaw(t.url, "connect-binary", rpc.path, frozen.key, { kind: "proto:length-overrun", body }, TIMEOUT_MS)).toBe("invalid_argument");
    expect(await sendRaw(t.url, "grpc", rpc.path, frozen.key, { kind: "proto:length-overrun", body: envelope(body) }, TIMEOUT_MS)).toBe("invalid_argument");
    // gRPC-Web carries the status in a trailer frame (flag 0x80) at the end of the body.
    const res = await fetch(`${t.url}${rpc.path}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", authorization: `Bearer ${frozen.key}` },
      body: envelope(body),
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    let trailer = "";
    for (let at = 0; at + 5 <= bytes.length; ) {
      const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
      if ((bytes[at] ?? 0) & 0x80) trailer = new TextDecoder().decode(bytes.subarray(at + 5, at + 5 + length));
      at += 5 + length;
    }
    expect(trailer).toMatch(/grpc-status: ?3\r?\n/);
  });

  it("refuses a NUL in GetCustomer and GetSubscription ids as INVALID_ARGUMENT, not as an unreachable database", async () => {
    const customers = client(CustomerService, t.url, sandbox.key, "grpc");
    await expect(customers.getCustomer({ id: "a\u0000b" })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(customers.getSubscription({ id: "\u0000" })).rejects.toMatchObject({ code: Code.InvalidArgument });
    // An error never echoes unbounded input: a 60,000-character id once broke the gRPC trailers.
    for (const protocol of ["grpc", "grpc-web", "connect-json"] as const) {
      const huge = await refusal(client(SimulationService, t.url, sandbox.key, protocol).simulatePromotion({ subscriptionId: "y".repeat(60_000) }));
      expect(huge.code).toBe(Code.NotFound);
      expect(huge.message.length).toBeLessThan(1_000);
    }
    // Any string of any request: one guard names the field.
    const redemptions = client(RedemptionService, t.url, sandbox.key, "connect-binary");
    const listed = await refusal(redemptions.listRedemptions({ customerId: "a\u0000b" }));
    expect(listed).toMatchObject({ code: Code.InvalidArgument, detail: { param: "customer_id", code: "invalid_character" } });
    const created = await refusal(client(PromotionService, t.url, sandbox.key).createPromotion({ name: "ok", metadata: { k: "v\u0000" } }));
    expect(created).toMatchObject({ code: Code.InvalidArgument, detail: { param: 'metadata["k"]' } });
    const nested = await refusal(
      client(PromotionService, t.url, sandbox.key).createPromotion({ name: "ok", conditions: [{ kind: { case: "plans", value: { include: ["p\u0000"] } } }] }),
    );
    expect(nested.detail?.param).toBe("conditions[0].plans.include[0]");
  });
});
