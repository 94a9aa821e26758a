// gRPC server reflection, v1 and v1alpha, so `buf curl`, grpcurl and Postman work without the
// .proto files. The index is built from the descriptors compiled into gen/, so it is exactly the
// schema the server speaks, including the google/protobuf files it imports and the error details.
import { create, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { ErrorDetailSchema } from "../../../gen/promotions/v1/errors_pb.js";
import * as v1alpha from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/**
 * Files no service file imports but every client meets: promotions.v1.ErrorDetail rides in every
 * error's details as an Any, and `buf curl`, grpcurl and Postman decode it only if they can
 * resolve it here (otherwise they print base64).
 */
const ALWAYS_SERVED: readonly DescFile[] = [ErrorDetailSchema.file];

/** Both reflection services, for whoever must list or exempt them. */
export const REFLECTION_SERVICES: readonly DescService[] = [v1.ServerReflection, v1alpha.ServerReflection];

/** A request as both versions shape it (they differ only in package name). */
interface ReflectionRequest {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

/** The answer, as both versions shape it; each service wraps it in its own message type. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** Files, symbols and extensions reachable from a set of services, with their encoded descriptors. */
export class ReflectionIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly encoded = new Map<DescFile, Uint8Array>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly extensions = new Map<string, Map<number, DescFile>>();
  private readonly messages = new Set<string>();
  readonly serviceNames: readonly string[];

  constructor(services: readonly DescService[]) {
    for (const service of services) this.addFile(service.file);
    for (const file of ALWAYS_SERVED) this.addFile(file);
    this.serviceNames = [...new Set(services.map((s) => s.typeName))].sort();
  }

  /** Answers one request. `sent` is the stream's memory of files already sent, as grpc-go keeps it. */
  answer(request: ReflectionRequest["messageRequest"], sent: Set<string>): ReflectionAnswer {
    switch (request.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.serviceNames.map((name) => ({ name })) } };
      case "fileByFilename":
        return this.filesFor(this.files.get(request.value), sent, `file not found: ${request.value}`);
      case "fileContainingSymbol": {
        const symbol = request.value.replace(/^\./, "");
        return this.filesFor(this.symbols.get(symbol), sent, `symbol not found: ${symbol}`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = request.value;
        const file = this.extensions.get(containingType.replace(/^\./, ""))?.get(extensionNumber);
        return this.filesFor(file, sent, `extension not found: ${containingType} ${extensionNumber}`);
      }
      case "allExtensionNumbersOfType": {
        const typeName = request.value.replace(/^\./, "");
        if (!this.messages.has(typeName)) return notFound(`message type not found: ${typeName}`);
        const numbers = [...(this.extensions.get(typeName)?.keys() ?? [])].sort((a, b) => a - b);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: typeName, extensionNumber: numbers } };
      }
      default:
        return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "empty message_request" } };
    }
  }

  /** The file itself, always, followed by its transitive imports not yet sent on this stream. */
  private filesFor(file: DescFile | undefined, sent: Set<string>, missing: string): ReflectionAnswer {
    if (file === undefined) return notFound(missing);
    const out: Uint8Array[] = [];
    const queue = [file];
    const seen = new Set<DescFile>();
    for (let current = queue.shift(); current !== undefined; current = queue.shift()) {
      if (seen.has(current)) continue;
      seen.add(current);
      const name = current.proto.name;
      if (current === file || !sent.has(name)) {
        sent.add(name);
        out.push(this.bytesOf(current));
      }
      queue.push(...current.dependencies);
    }
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
  }

  private bytesOf(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file, bytes);
    }
    return bytes;
  }

  /**
   * Symbols come from the FileDescriptorProto rather than the Desc objects: it also holds what
   * protobuf-es hides, such as the synthetic map entry messages (`Promotion.MetadataEntry`).
   */
  private addFile(file: DescFile): void {
    const proto = file.proto;
    if (this.files.has(proto.name)) return;
    this.files.set(proto.name, file);
    const pkg = proto.package;
    const scoped = (name: string, scope: string): string => (scope === "" ? name : `${scope}.${name}`);
    const addEnum = (e: EnumDescriptorProto, scope: string): void => {
      this.symbols.set(scoped(e.name, scope), file);
      // Enum values are scoped beside their enum, not inside it (protobuf's C++ scoping rule).
      for (const value of e.value) this.symbols.set(scoped(value.name, scope), file);
    };
    const addExtension = (ext: FieldDescriptorProto, scope: string): void => {
      this.symbols.set(scoped(ext.name, scope), file);
      const extendee = ext.extendee.replace(/^\./, "");
      const byNumber = this.extensions.get(extendee) ?? new Map<number, DescFile>();
      byNumber.set(ext.number, file);
      this.extensions.set(extendee, byNumber);
    };
    const addMessage = (message: DescriptorProto, scope: string): void => {
      const name = scoped(message.name, scope);
      this.symbols.set(name, file);
      this.messages.add(name);
      for (const field of message.field) this.symbols.set(`${name}.${field.name}`, file);
      for (const oneof of message.oneofDecl) this.symbols.set(`${name}.${oneof.name}`, file);
      for (const nested of message.nestedType) addMessage(nested, name);
      for (const e of message.enumType) addEnum(e, name);
      for (const ext of message.extension) addExtension(ext, name);
    };
    for (const message of proto.messageType) addMessage(message, pkg);
    for (const e of proto.enumType) addEnum(e, pkg);
    for (const ext of proto.extension) addExtension(ext, pkg);
    for (const service of proto.service) {
      const name = scoped(service.name, pkg);
      this.symbols.set(name, file);
      for (const method of service.method) this.symbols.set(`${name}.${method.name}`, file);
    }
    for (const dependency of file.dependencies) this.addFile(dependency);
  }
}

function notFound(errorMessage: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } };
}

/**
 * Answers requests until the caller closes its side, or until the call's signal fires (the server
 * aborts reflection calls as soon as draining begins): a reflection stream idles between requests
 * and must not hold up a graceful shutdown.
 */
async function* serve<Req extends ReflectionRequest, Res>(
  requests: AsyncIterable<Req>,
  index: ReflectionIndex,
  signal: AbortSignal,
  wrap: (request: Req, answer: ReflectionAnswer) => Res,
): AsyncGenerator<Res> {
  const sent = new Set<string>();
  const it = requests[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await untilAborted(it.next(), signal);
      if (next === undefined || next.done === true) return;
      yield wrap(next.value, index.answer(next.value.messageRequest, sent));
    }
  } finally {
    // Not awaited: while a next() is pending, return() would wait for a message that may never come.
    it.return?.().catch(() => undefined);
  }
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Registers v1 and v1alpha over `services` (which should include the reflection services too). */
export function registerReflection(router: ConnectRouter, services: readonly DescService[]): void {
  const index = new ReflectionIndex(services);
  router.service(v1.ServerReflection, {
    serverReflectionInfo: (requests, ctx) =>
      serve(requests, index, ctx.signal, (request, answer) =>
        create(v1.ServerReflectionResponseSchema, { validHost: request.host, originalRequest: request, messageResponse: answer }),
      ),
  });
  router.service(v1alpha.ServerReflection, {
    serverReflectionInfo: (requests, ctx) =>
      serve(requests, index, ctx.signal, (request, answer) =>
        create(v1alpha.ServerReflectionResponseSchema, { validHost: request.host, originalRequest: request, messageResponse: answer }),
      ),
  });
}
