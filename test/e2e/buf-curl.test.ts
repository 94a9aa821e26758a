// An engineer poking the service with `buf curl`: no schema on their machine, only server
// reflection; JSON in with --data, JSON out; errors printed with the decoded ErrorDetail.
import { fileURLToPath } from "node:url";
import { fromBinary, toJson } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema, type ErrorDetail } from "../../gen/promotions/v1/errors_pb.js";
import { startTestApp, type Replica, type TestApp } from "../support/app.js";
import { bufCurl, type BufCurlResult } from "./support/clients.js";

const PROTO_DIR = fileURLToPath(new URL("../../proto", import.meta.url));

let t: TestApp;
/** The same data on a server whose gRPC lane is connect-node (t's is grpc-js). */
let connectLane: Replica;
beforeAll(async () => {
  t = await startTestApp("buf_curl", { GRPC_LANE: "grpc-js" });
  connectLane = await t.replica({ GRPC_LANE: "connect" });
});
afterAll(async () => {
  await t?.stop();
});

// buf curl exits with the gRPC code shifted left by three bits when the RPC itself fails.
const exitCodeFor = (grpcCode: number) => grpcCode << 3;
const INVALID_ARGUMENT = 3;
const UNAUTHENTICATED = 16;

interface PromotionJson {
  id: string;
  name: string;
  code?: string;
  status: string;
  priority?: number;
  version: string;
  phases: { name: string; effects: { percentageDiscount?: { percentBps: number } }[] }[];
  conditions?: { minSpend?: { amountMinor: string } }[];
}

interface ErrorJson {
  code: string;
  message: string;
  details: { type: string; value: string; debug?: Record<string, string> }[];
}

interface Mode {
  /** Flags that pick the protocol and HTTP version. */
  flags: string[];
  /** The HTTP version every response must have come over, when checked (needs -v). */
  httpVersion?: string;
  /**
   * Whether error details arrive with a JSON `debug` rendering. Only the Connect protocol's JSON
   * error body carries one; over gRPC buf curl prints the detail's type and base64 bytes. That is
   * buf curl's own doing (1.75: it prints errors through connect-go's ErrorWriter, which resolves
   * an Any only from Go's global registry, so neither reflection nor --schema helps); the server
   * serves promotions.v1.ErrorDetail through reflection (reflection.test.ts decodes one that way).
   */
  debugJson: boolean;
  /** Call the connect-lane replica instead of the grpc-js-lane server (gRPC runs on both lanes). */
  connectLane?: true;
}

const modes: [string, Mode][] = [
  // Reflection is a bidi stream, so buf curl speaks h2c whenever it reflects.
  ["Connect (the default protocol) over h2c, schema from reflection", { flags: ["--http2-prior-knowledge"], debugJson: true }],
  ["gRPC over h2c, schema from reflection (grpc-js lane)", { flags: ["--http2-prior-knowledge", "--protocol", "grpc"], debugJson: false }],
  ["gRPC over h2c, schema from reflection (connect lane)", { flags: ["--http2-prior-knowledge", "--protocol", "grpc"], debugJson: false, connectLane: true }],
  // Plain HTTP/1.1 cannot carry the reflection stream (buf curl silently upgrades to h2c when it
  // reflects), so this case gives buf curl the schema from proto/ instead, the way an engineer
  // with a checkout of the contract would; -v lets the test see the HTTP version on the wire.
  ["Connect over plain HTTP/1.1, schema from proto/", { flags: ["--schema", PROTO_DIR, "-v"], httpVersion: "HTTP/1.1 200 OK", debugJson: true }],
];

/** Runs one RPC with buf curl and the tenant's key; returns the parsed stdout of a success. */
async function call<T>(mode: Mode, key: string | null, method: string, data: unknown): Promise<T> {
  const res = await run(mode, key, method, data);
  expect(res, `buf curl ${method} failed:\n${res.stderr}`).toMatchObject({ code: 0 });
  if (mode.httpVersion !== undefined) {
    expect(res.stderr).toContain(`< (#1) ${mode.httpVersion}`);
    expect(res.stderr).not.toContain("HTTP/2.0");
  }
  return JSON.parse(res.stdout) as T;
}

/** The ErrorDetail entries of a printed error, decoded from their bytes; their `debug` JSON must agree. */
function errorDetails(mode: Mode, error: ErrorJson): ErrorDetail[] {
  expect(error.details.map((d) => d.type)).toEqual(error.details.map(() => "promotions.v1.ErrorDetail"));
  return error.details.map((d) => {
    const detail = fromBinary(ErrorDetailSchema, base64Decode(d.value));
    if (mode.debugJson) expect(d.debug).toEqual(toJson(ErrorDetailSchema, detail));
    else expect(d.debug).toBeUndefined();
    return detail;
  });
}

/** The error buf curl prints on stderr: a JSON document after any -v lines. */
function errorJson(res: BufCurlResult): ErrorJson {
  const start = res.stderr.search(/^\{$/m);
  expect(start, res.stderr).toBeGreaterThanOrEqual(0);
  return JSON.parse(res.stderr.slice(start)) as ErrorJson;
}

function run(mode: Mode, key: string | null, method: string, data: unknown): Promise<BufCurlResult> {
  const auth = key === null ? [] : ["-H", `authorization: Bearer ${key}`];
  return bufCurl([...mode.flags, ...auth, "--data", JSON.stringify(data), `${mode.connectLane ? connectLane.url : t.url}/${method}`]);
}

describe("buf curl --list-methods (reflection, no schema)", () => {
  it("lists every RPC of PromotionService and PromotionVersionService, plus health and reflection, without a key", async () => {
    const res = await bufCurl(["--http2-prior-knowledge", "--list-methods", t.url]);
    expect(res.code).toBe(0);
    expect(res.stderr).toBe("");
    const methods = res.stdout.trim().split("\n");
    expect(methods).toEqual(
      expect.arrayContaining([
        "promotions.v1.PromotionService/CreatePromotion",
        "promotions.v1.PromotionService/GetPromotion",
        "promotions.v1.PromotionService/ListPromotions",
        "promotions.v1.PromotionService/UpdatePromotion",
        "promotions.v1.PromotionService/ActivatePromotion",
        "promotions.v1.PromotionService/DeactivatePromotion",
        "promotions.v1.PromotionService/CopyPromotion",
        "promotions.v1.PromotionService/DeletePromotion",
        "promotions.v1.PromotionVersionService/ListPromotionVersions",
        "promotions.v1.PromotionVersionService/GetPromotionVersion",
        "grpc.health.v1.Health/Check",
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      ]),
    );
  });
});

describe.each(modes)("a buf curl session: %s", (_, mode) => {
  it("creates promotions from --data JSON, activates them, and lists with status.eq=active and priority.gte=5", async () => {
    // A tenant per mode, so the list holds exactly this session's promotions.
    const { key } = await t.tenant(`bufcurl-${modes.findIndex(([, m]) => m === mode)}`);
    const terms = (name: string, code: string, priority: number) => ({
      name,
      code,
      priority,
      currency: "USD",
      conditions: [{ minSpend: { amountMinor: "2500" } }],
      effects: [{ percentageDiscount: { percentBps: 1500 } }],
    });
    const S = "promotions.v1.PromotionService";

    const spring = (await call<{ promotion: PromotionJson }>(mode, key, `${S}/CreatePromotion`, terms("Spring sale", "spring15", 7))).promotion;
    expect(spring).toMatchObject({
      name: "Spring sale",
      code: "SPRING15",
      status: "PROMOTION_STATUS_DRAFT",
      priority: 7,
      version: "1",
      conditions: [{ minSpend: { amountMinor: "2500" } }],
      phases: [{ name: "Default", effects: [{ percentageDiscount: { percentBps: 1500 } }] }],
    });
    const lowPriority = (await call<{ promotion: PromotionJson }>(mode, key, `${S}/CreatePromotion`, terms("Low priority", "LOW15", 3))).promotion;
    // High priority but never activated: status.eq=active must leave it out.
    await call<{ promotion: PromotionJson }>(mode, key, `${S}/CreatePromotion`, terms("Still a draft", "DRAFT15", 9));

    for (const promotion of [spring, lowPriority]) {
      const activated = await call<{ promotion: PromotionJson }>(mode, key, `${S}/ActivatePromotion`, { id: promotion.id });
      expect(activated.promotion).toMatchObject({ id: promotion.id, status: "PROMOTION_STATUS_ACTIVE" });
    }

    const page = await call<{ promotions?: PromotionJson[]; nextCursor?: string }>(mode, key, `${S}/ListPromotions`, {
      filter: ["status.eq=active", "priority.gte=5"],
    });
    expect(page.promotions?.map((p) => p.id)).toEqual([spring.id]);
    expect(page.promotions?.[0]).toMatchObject({ status: "PROMOTION_STATUS_ACTIVE", priority: 7 });
    expect(page.nextCursor).toBeUndefined(); // empty = last page, and buf curl omits empty fields
  });

  it("prints INVALID_ARGUMENT with one ErrorDetail per bad field, and exits with the gRPC code << 3", async () => {
    const { key } = await t.tenant("bufcurl-errors");
    const res = await run(mode, key, "promotions.v1.PromotionService/CreatePromotion", {
      name: "Too generous",
      code: "AB",
      effects: [{ percentageDiscount: { percentBps: 20000 } }],
    });
    expect(res.code).toBe(exitCodeFor(INVALID_ARGUMENT));
    expect(res.stdout).toBe("");
    const error = errorJson(res);
    expect(error.code).toBe("invalid_argument");
    const details = errorDetails(mode, error);
    expect(details).toHaveLength(2);
    expect(details).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "invalid_request", code: "too_short", param: "code" }),
        expect.objectContaining({
          type: "invalid_request",
          code: "out_of_range",
          param: "effects[0].percentage_discount.percent_bps",
          message: expect.stringContaining("20000"),
        }),
      ]),
    );
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it("prints UNAUTHENTICATED when no key is sent", async () => {
    const res = await run(mode, null, "promotions.v1.PromotionService/ListPromotions", {});
    expect(res.code).toBe(exitCodeFor(UNAUTHENTICATED));
    const error = errorJson(res);
    expect(error.code).toBe("unauthenticated");
    expect(errorDetails(mode, error)).toEqual([expect.objectContaining({ type: "authentication", code: "missing_api_key" })]);
  });
});

describe("gRPC on both lanes", () => {
  it("buf curl's gRPC sessions were answered by the grpc-js lane on one server and connect-node on the other", () => {
    expect(t.lanesServed()).toContain("grpc-js");
    expect(connectLane.lanesServed()).toEqual(["connect"]);
  });
});
