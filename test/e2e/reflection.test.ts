// Server reflection on the wire, v1 and v1alpha alike: what grpcurl, buf curl and Postman ask.
import { create, createFileRegistry, fromBinary, toBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { BinaryReader, base64Decode } from "@bufbuild/protobuf/wire";
import { AnySchema, FileDescriptorProtoSchema, FileDescriptorSetSchema, type Any, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { GetPromotionRequestSchema } from "../../gen/promotions/v1/promotion_service_pb.js";
import type { RunningServer } from "../../src/server/server.js";
import { grpcEnvelope, rawH2Request } from "./support/clients.js";
import { LANES } from "../support/app.js";
import { startTestServer } from "./support/test-server.js";

// Every test runs on both gRPC lanes (GRPC_LANE): grpc-js and connect-node.
describe.each(LANES)("on the %s lane", (lane) => {
  let server: RunningServer;
  beforeAll(async () => {
    ({ server } = await startTestServer({ grpcLane: lane }));
  });
  afterAll(async () => {
    await server.close();
  });

  type Query = v1.ServerReflectionRequest["messageRequest"];
  type Answer = v1.ServerReflectionResponse["messageResponse"];

  /** Sends the queries on one stream, in order, through the given version's service. */
  async function ask(version: "v1" | "v1alpha", queries: Query[]): Promise<Answer[]> {
    const transport = createGrpcTransport({ baseUrl: server.url });
    const answers: Answer[] = [];
    if (version === "v1") {
      const client = createClient(v1.ServerReflection, transport);
      const requests = queries.map((messageRequest) => create(v1.ServerReflectionRequestSchema, { messageRequest }));
      for await (const res of client.serverReflectionInfo(toStream(requests))) answers.push(res.messageResponse);
    } else {
      const client = createClient(v1alpha.ServerReflection, transport);
      // v1alpha's request differs from v1's only in its package; its answers are converted alike.
      const requests = queries.map((q) => create(v1alpha.ServerReflectionRequestSchema, { messageRequest: alphaQuery(q) }));
      for await (const res of client.serverReflectionInfo(toStream(requests))) {
        answers.push(fromAlpha(res.messageResponse));
      }
    }
    return answers;
  }

  async function* toStream<T>(items: T[]): AsyncIterable<T> {
    yield* items;
  }

  function alphaQuery(q: Query): v1alpha.ServerReflectionRequest["messageRequest"] {
    if (q.case === "fileContainingExtension") {
      const { containingType, extensionNumber } = q.value;
      return { case: q.case, value: create(v1alpha.ExtensionRequestSchema, { containingType, extensionNumber }) };
    }
    return q;
  }

  function fromAlpha(a: v1alpha.ServerReflectionResponse["messageResponse"]): Answer {
    switch (a.case) {
      case "fileDescriptorResponse":
        return { case: a.case, value: create(v1.FileDescriptorResponseSchema, { fileDescriptorProto: a.value.fileDescriptorProto }) };
      case "allExtensionNumbersResponse": {
        const { baseTypeName, extensionNumber } = a.value;
        return { case: a.case, value: create(v1.ExtensionNumberResponseSchema, { baseTypeName, extensionNumber }) };
      }
      case "listServicesResponse":
        return { case: a.case, value: create(v1.ListServiceResponseSchema, { service: a.value.service.map((s) => ({ name: s.name })) }) };
      case "errorResponse":
        return { case: a.case, value: create(v1.ErrorResponseSchema, { errorCode: a.value.errorCode, errorMessage: a.value.errorMessage }) };
      default:
        return { case: undefined };
    }
  }

  /** Orders files so each comes after what it imports; throws if an import was not sent. */
  function importsFirst(files: FileDescriptorProto[]): FileDescriptorProto[] {
    const byName = new Map(files.map((f) => [f.name, f]));
    const ordered: FileDescriptorProto[] = [];
    const visit = (file: FileDescriptorProto): void => {
      if (ordered.includes(file)) return;
      for (const name of file.dependency) {
        const dependency = byName.get(name);
        if (dependency === undefined) throw new Error(`${file.name} imports ${name}, which was not sent`);
        visit(dependency);
      }
      ordered.push(file);
    };
    files.forEach(visit);
    return ordered;
  }

  function fileNames(answer: Answer | undefined): string[] {
    if (answer?.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${answer?.case}`);
    return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
  }

  describe.each(["v1", "v1alpha"] as const)("ServerReflectionInfo (%s)", (version) => {
    it("lists every registered service, health and reflection included", async () => {
      const [answer] = await ask(version, [{ case: "listServices", value: "" }]);
      expect(answer?.case).toBe("listServicesResponse");
      const names = answer?.case === "listServicesResponse" ? answer.value.service.map((s) => s.name) : [];
      expect(names).toEqual([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "promotions.v1.PromotionService",
      ]);
    });

    it.each([
      ["a service", "promotions.v1.PromotionService", "promotions/v1/promotion_service.proto"],
      ["a method", "promotions.v1.PromotionService.GetPromotion", "promotions/v1/promotion_service.proto"],
      ["a message in an imported file", "promotions.v1.Promotion", "promotions/v1/promotion.proto"],
      ["a nested message (map entry)", "promotions.v1.Promotion.MetadataEntry", "promotions/v1/promotion.proto"],
      ["a field", "promotions.v1.Promotion.max_budget", "promotions/v1/promotion.proto"],
      ["a oneof", "promotions.v1.Effect.kind", "promotions/v1/types.proto"],
      ["a nested enum", "grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
      ["an enum value (scoped beside its enum)", "grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"],
      ["a well-known type", "google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
      ["a symbol with a leading dot", ".promotions.v1.GetPromotionRequest", "promotions/v1/promotion_service.proto"],
      ["the error detail every error carries (imported by no service file)", "promotions.v1.ErrorDetail", "promotions/v1/errors.proto"],
      ["a field of the error detail", "promotions.v1.ErrorDetail.param", "promotions/v1/errors.proto"],
    ])("finds the file containing %s", async (_, symbol, file) => {
      const [answer] = await ask(version, [{ case: "fileContainingSymbol", value: symbol }]);
      expect(fileNames(answer)[0]).toBe(file);
    });

    it("sends a file with its transitive imports, enough to build a registry", async () => {
      const [answer] = await ask(version, [{ case: "fileByFilename", value: "promotions/v1/promotion_service.proto" }]);
      expect(fileNames(answer)).toEqual(
        expect.arrayContaining([
          "promotions/v1/promotion_service.proto",
          "promotions/v1/promotion.proto",
          "promotions/v1/types.proto",
          "google/protobuf/timestamp.proto",
        ]),
      );
      const bytes = answer?.case === "fileDescriptorResponse" ? answer.value.fileDescriptorProto : [];
      const files = bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b));
      const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: importsFirst(files) }));
      expect(registry.getService("promotions.v1.PromotionService")?.methods.map((m) => m.name)).toContain("GetPromotion");
    });

    it("resolves every file of the contract by name, and everything each of them imports", async () => {
      const names = ["promotions/v1/errors.proto", "promotions/v1/promotion_service.proto", "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto"];
      for (const name of names) {
        const [answer] = await ask(version, [{ case: "fileByFilename", value: name }]);
        const files = (answer?.case === "fileDescriptorResponse" ? answer.value.fileDescriptorProto : []).map((b) => fromBinary(FileDescriptorProtoSchema, b));
        expect(files[0]?.name).toBe(name);
        // importsFirst throws when an import was not sent along.
        expect(() => createFileRegistry(create(FileDescriptorSetSchema, { file: importsFirst(files) }))).not.toThrow();
      }
    });

    it("does not resend imports already sent on the same stream, but always the file asked for", async () => {
      const [first, second] = await ask(version, [
        { case: "fileByFilename", value: "promotions/v1/promotion.proto" },
        { case: "fileContainingSymbol", value: "promotions.v1.Promotion" },
      ]);
      expect(fileNames(first).length).toBeGreaterThan(1);
      expect(fileNames(second)).toEqual(["promotions/v1/promotion.proto"]);
    });

    it("answers NOT_FOUND for unknowns and keeps the stream going", async () => {
      const answers = await ask(version, [
        { case: "fileContainingSymbol", value: "nope.v1.Nope" },
        { case: "fileByFilename", value: "nope/v1/nope.proto" },
        { case: "fileContainingExtension", value: create(v1.ExtensionRequestSchema, { containingType: "promotions.v1.Promotion", extensionNumber: 1000 }) },
        { case: "allExtensionNumbersOfType", value: "nope.v1.Nope" },
        { case: "listServices", value: "" },
      ]);
      expect(answers.slice(0, 4).map((a) => (a.case === "errorResponse" ? a.value.errorCode : a.case))).toEqual([
        Code.NotFound,
        Code.NotFound,
        Code.NotFound,
        Code.NotFound,
      ]);
      expect(answers[4]?.case).toBe("listServicesResponse");
    });

    it("is all a reflection-based client needs to decode an error's ErrorDetail (as grpcurl does)", async () => {
      // A call cut off by its deadline, from a client with no timer of its own: its status arrives
      // in grpc-status-details-bin as Any messages the client has no schema for.
      const res = await rawH2Request(
        server.url,
        { ":path": "/promotions.v1.PromotionService/GetPromotion", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "100m" },
        grpcEnvelope(toBinary(GetPromotionRequestSchema, create(GetPromotionRequestSchema, { id: "wait" }))),
      );
      const bin = res.trailers["grpc-status-details-bin"];
      if (typeof bin !== "string") throw new Error("no grpc-status-details-bin");
      const details: Any[] = [];
      const reader = new BinaryReader(base64Decode(bin));
      while (reader.pos < reader.len) {
        const [field, wireType] = reader.tag();
        if (field === 3) details.push(fromBinary(AnySchema, reader.bytes()));
        else reader.skip(wireType);
      }
      expect(details.length).toBeGreaterThan(0);
      const decoded: JsonValue[] = [];
      for (const any of details) {
        const typeName = any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
        const [answer] = await ask(version, [{ case: "fileContainingSymbol", value: typeName }]);
        const files = (answer?.case === "fileDescriptorResponse" ? answer.value.fileDescriptorProto : []).map((b) => fromBinary(FileDescriptorProtoSchema, b));
        const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: importsFirst(files) }));
        const schema = registry.getMessage(typeName);
        if (schema === undefined) throw new Error(`reflection did not describe ${typeName}`);
        decoded.push(toJson(schema, fromBinary(schema, any.value)));
      }
      expect(decoded).toEqual([expect.objectContaining({ type: "timeout", code: "deadline_exceeded" })]);
    });

    it("lists no extension numbers for a message nobody extends", async () => {
      const [answer] = await ask(version, [{ case: "allExtensionNumbersOfType", value: "promotions.v1.Promotion" }]);
      expect(answer).toMatchObject({
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: "promotions.v1.Promotion", extensionNumber: [] },
      });
    });

    it("answers INVALID_ARGUMENT to an empty request", async () => {
      const [answer] = await ask(version, [{ case: undefined }]);
      expect(answer).toMatchObject({ case: "errorResponse", value: { errorCode: Code.InvalidArgument } });
    });
  });
});
