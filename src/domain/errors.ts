// Domain failures, independent of any transport. src/api/errors.ts turns them into Connect codes
// with promotions.v1.ErrorDetail entries, in one place.

/** What kind of failure this is; each maps to exactly one Connect/gRPC code. */
export type FailureKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "aborted"
  | "unauthenticated"
  | "permission_denied"
  | "unavailable";

/** One problem with a request, named by the field path a client sent. */
export interface Violation {
  /** Field path, e.g. "phases[0].effects[1].percentage_discount.percent_bps"; "" if none. */
  param: string;
  /** Stable machine-readable code, e.g. "out_of_range". */
  code: string;
  message: string;
}

/** A failure the caller can act on; `details` say exactly what to fix. */
export class DomainError extends Error {
  readonly kind: FailureKind;
  readonly details: readonly Violation[];

  constructor(kind: FailureKind, details: readonly Violation[], options?: { cause?: unknown }) {
    super(summarize(details), options);
    this.name = "DomainError";
    this.kind = kind;
    this.details = details;
  }

  /** A failure with a single detail. */
  static of(kind: FailureKind, code: string, message: string, param = ""): DomainError {
    return new DomainError(kind, [{ param, code, message }]);
  }
}

function summarize(details: readonly Violation[]): string {
  const first = details[0];
  if (!first) return "request failed";
  const head = first.param ? `${first.param}: ${first.message}` : first.message;
  return details.length === 1 ? head : `${head} (and ${details.length - 1} more)`;
}
