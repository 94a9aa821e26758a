// A browser client of the service, as a web front end would write one: the generated services,
// connect-web over fetch, Connect or gRPC-Web. Bundled by esbuild (test/browser/bundle.ts) and
// driven in Chromium by test/e2e/browser.test.ts.
//
// Query string: api (base URL), key (API key), protocol ("connect" | "grpc-web"), code, customer,
// invoice (an Invoice in proto JSON) and, optionally, promotions (comma-separated ids to simulate;
// none = every active promotion). Each result is written into its <pre> as JSON:
// {"ok": <response in proto JSON>} or {"error": {"code": "...", "message": "..."}}; when both
// calls have settled, <body data-done="true">.
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { InvoiceSchema } from "../../gen/promotions/v1/invoice_pb.js";
import { RedemptionService, ValidateCodeResponseSchema } from "../../gen/promotions/v1/redemption_service_pb.js";
import { SimulatePromotionResponseSchema, SimulationService } from "../../gen/promotions/v1/simulation_service_pb.js";

// The sliver of the DOM this page touches. Declared here, module-scoped, so the project's
// Node-only tsconfig checks the page without putting lib.dom into every other file.
interface PageElement {
  textContent: string | null;
  dataset: Record<string, string | undefined>;
}
declare const document: { getElementById(id: string): PageElement | null; body: PageElement };
declare const location: { search: string };

export type Outcome = { ok: JsonValue } | { error: { code: string; message: string } };

const params = new URLSearchParams(location.search);
const param = (name: string): string => {
  const value = params.get(name);
  if (value === null || value === "") throw new Error(`query parameter "${name}" is missing`);
  return value;
};

function transportFor(protocol: string, baseUrl: string, key: string): Transport {
  const bearer: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  switch (protocol) {
    case "connect":
      return createConnectTransport({ baseUrl, interceptors: [bearer] });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, interceptors: [bearer] });
    default:
      throw new Error(`unknown protocol "${protocol}" (use "connect" or "grpc-web")`);
  }
}

function failure(error: unknown): Outcome {
  const e = ConnectError.from(error);
  return { error: { code: Code[e.code], message: e.rawMessage } };
}

function show(id: string, outcome: Outcome): void {
  const element = document.getElementById(id);
  if (element) element.textContent = JSON.stringify(outcome);
}

async function run(): Promise<void> {
  const transport = transportFor(param("protocol"), param("api"), param("key"));
  const redemptions = createClient(RedemptionService, transport);
  const simulation = createClient(SimulationService, transport);
  const customerId = param("customer");
  const invoice = fromJson(InvoiceSchema, JSON.parse(param("invoice")) as JsonValue);
  const promotionIds = (params.get("promotions") ?? "").split(",").filter((id) => id !== "");
  await Promise.all([
    redemptions
      .validateCode({ code: param("code"), customerId })
      .then((res): Outcome => ({ ok: toJson(ValidateCodeResponseSchema, res) }), failure)
      .then((outcome) => show("validate", outcome)),
    simulation
      .simulatePromotion({ customerId, invoice, promotionIds })
      .then((res): Outcome => ({ ok: toJson(SimulatePromotionResponseSchema, res) }), failure)
      .then((outcome) => show("simulate", outcome)),
  ]);
}

run()
  .catch((error: unknown) => {
    // A page that cannot even start (bad query string) says so in both places.
    const outcome = failure(error);
    show("validate", outcome);
    show("simulate", outcome);
  })
  .finally(() => {
    document.body.dataset["done"] = "true";
  });
