import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { ErrorDetailSchema } from "../../gen/promotions/v1/errors_pb.js";
import { DomainError, type FailureKind } from "../domain/errors.js";
import { isDatabaseUnreachable } from "../store/unreachable.js";
import { encodeRetryInfo, RETRY_INFO_TYPE } from "./retry-info.js";

// The one place failures become Connect errors. Every error a client sees carries
// promotions.v1.ErrorDetail entries; unexpected errors become INTERNAL with no internals attached.

const CODES: Record<FailureKind, { code: Code; type: string }> = {
  invalid_argument: { code: Code.InvalidArgument, type: "invalid_request" },
  not_found: { code: Code.NotFound, type: "not_found" },
  already_exists: { code: Code.AlreadyExists, type: "conflict" },
  failed_precondition: { code: Code.FailedPrecondition, type: "state" },
  resource_exhausted: { code: Code.ResourceExhausted, type: "limit" },
  aborted: { code: Code.Aborted, type: "conflict" },
  unauthenticated: { code: Code.Unauthenticated, type: "authentication" },
  permission_denied: { code: Code.PermissionDenied, type: "permission" },
  unavailable: { code: Code.Unavailable, type: "unavailable" },
};

const TYPE_OF_CODE = new Map<Code, string>([
  [Code.InvalidArgument, "invalid_request"],
  [Code.NotFound, "not_found"],
  [Code.AlreadyExists, "conflict"],
  [Code.FailedPrecondition, "state"],
  [Code.ResourceExhausted, "limit"],
  [Code.Aborted, "conflict"],
  [Code.Unauthenticated, "authentication"],
  [Code.PermissionDenied, "permission"],
  [Code.DeadlineExceeded, "timeout"],
  [Code.Canceled, "canceled"],
  [Code.Unavailable, "unavailable"],
  [Code.Unimplemented, "not_found"],
]);

// Errors travel in headers and trailers (gRPC), which HTTP/2 caps: a message echoing a client's
// 60,000-character id would break the response itself. Every error is clipped to these sizes.
const MAX_MESSAGE = 300;
const MAX_PARAM = 200;
const MAX_DETAILS = 20;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Turns any thrown value into the ConnectError a client should see; the original stays in `cause` for logs. */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof DomainError) {
    const { code, type } = CODES[error.kind];
    const details = error.details.slice(0, MAX_DETAILS).map((d) => ({
      desc: ErrorDetailSchema,
      value: create(ErrorDetailSchema, { type, code: d.code, param: clip(d.param, MAX_PARAM), message: clip(d.message, MAX_MESSAGE) }),
    }));
    const message = clip(error.message, MAX_MESSAGE * 3);
    if (error.retryAfterMs === undefined) return new ConnectError(message, code, undefined, details, error);
    // A retry hint travels twice: as the standard google.rpc.RetryInfo detail, and as a
    // `retry-after-ms` header (trailer in gRPC) for clients that read no details.
    const retryAfterMs = Math.max(1, Math.ceil(error.retryAfterMs));
    const withRetry = new ConnectError(message, code, { "retry-after-ms": String(retryAfterMs) }, details, error);
    withRetry.details.push({ type: RETRY_INFO_TYPE, value: encodeRetryInfo(retryAfterMs) });
    return withRetry;
  }
  if (error instanceof ConnectError) {
    if (error.findDetails(ErrorDetailSchema).length > 0 || error.code === Code.Internal || error.code === Code.Unknown) {
      return error.code === Code.Unknown ? internal(error) : error;
    }
    const type = TYPE_OF_CODE.get(error.code) ?? "internal";
    const message = clip(error.rawMessage, MAX_MESSAGE);
    const detail = create(ErrorDetailSchema, { type, code: codeToString(error.code), message });
    return new ConnectError(message, error.code, error.metadata, [{ desc: ErrorDetailSchema, value: detail }], error);
  }
  if (isDatabaseUnreachable(error)) {
    return toConnectError(new DomainError("unavailable", [{ param: "", code: "database_unavailable", message: "the database is unreachable; retry" }], { cause: error }));
  }
  return internal(error);
}

/** The ErrorDetail `type` of a code: the broad class a client switches on. */
export function errorTypeOf(code: Code): string {
  return TYPE_OF_CODE.get(code) ?? "internal";
}

/** True when `error` carries a promotions.v1.ErrorDetail, as built here or as read off the wire. */
export function hasErrorDetail(error: ConnectError): boolean {
  return error.details.some((d) => ("desc" in d ? d.desc.typeName : d.type) === ErrorDetailSchema.typeName);
}

/**
 * `error` as a client should get it when it was raised before any interceptor (a body connect-es
 * could not decode, say): the same code, `message` instead of its own when given, and one
 * ErrorDetail `{type of the code, code, message, param}` ahead of whatever details it had.
 */
export function withErrorDetail(error: ConnectError, detail: { code: string; message?: string; param?: string }, message?: string): ConnectError {
  const text = clip(message ?? error.rawMessage, MAX_MESSAGE * 3);
  const value = create(ErrorDetailSchema, {
    type: errorTypeOf(error.code),
    code: detail.code,
    message: clip(detail.message ?? error.rawMessage, MAX_MESSAGE),
    param: clip(detail.param ?? "", MAX_PARAM),
  });
  const settled = new ConnectError(text, error.code, undefined, [{ desc: ErrorDetailSchema, value }], error);
  settled.details.push(...error.details);
  return settled;
}

function internal(cause: unknown): ConnectError {
  const detail = create(ErrorDetailSchema, { type: "internal", code: "internal", message: "internal error; it has been logged" });
  return new ConnectError("internal error; it has been logged", Code.Internal, undefined, [{ desc: ErrorDetailSchema, value: detail }], cause);
}
