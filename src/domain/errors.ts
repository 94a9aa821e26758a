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
  /** How long the caller should wait before trying again (a rate limit), in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(kind: FailureKind, details: readonly Violation[], options?: { cause?: unknown; retryAfterMs?: number }) {
    super(summarize(details), options);
    this.name = "DomainError";
    this.kind = kind;
    this.details = details;
    this.retryAfterMs = options?.retryAfterMs;
  }

  /** A failure with a single detail. */
  static of(kind: FailureKind, code: string, message: string, param = ""): DomainError {
    return new DomainError(kind, [{ param, code, message }]);
  }
}

/** What each resource is called in a not-found message. */
const RESOURCE_NAMES = {
  promotion: "promotion",
  customer: "customer",
  subscription: "subscription",
  redemption: "redemption",
  code: "promotion code",
  invoice: "invoice",
} as const;

/** A resource that does not exist for the caller's tenant: NOT_FOUND `<kind>_not_found`, naming the field that named it. */
export function notFound(kind: keyof typeof RESOURCE_NAMES, id: string, param = "id"): DomainError {
  return DomainError.of("not_found", `${kind}_not_found`, `${RESOURCE_NAMES[kind]} ${id} does not exist`, param);
}

/** Every detail in one line (the first five, then a count), each led by the field it is about. */
function summarize(details: readonly Violation[]): string {
  if (details.length === 0) return "request failed";
  const shown = details.slice(0, 5).map((d) => (d.param ? `${d.param}: ${d.message}` : d.message));
  const rest = details.length - shown.length;
  return rest > 0 ? `${shown.join("; ")}; and ${rest} more` : shown.join("; ");
}
