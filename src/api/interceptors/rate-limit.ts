import { isMessage, type DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../../gen/promotions/v1/errors_pb.js";
import {
  RedeemPromotionRequestSchema,
  RedemptionService,
  ValidateCodeRequestSchema,
  ValidateCodeResponseSchema,
} from "../../../gen/promotions/v1/redemption_service_pb.js";
import type { LookupOutcome, RateLimiter, Refusal } from "../../counters/rate-limiter.js";
import { DomainError } from "../../domain/errors.js";
import type { Logger } from "../../observability/logger.js";
import { principalKey } from "../context-keys.js";

// Per-API-key abuse limits on the checkout methods, after auth (the buckets are the caller key's).
//
// Code guessing: a lookup of a code the key has not found lately reserves a token of the key's
// small `guesses` bucket before it runs; an answer of "no such code" spends it, any other answer
// gives it back. While the bucket is empty EVERY lookup of such a code from the key is refused
// (too_many_invalid_codes), valid codes included, until it refills: letting valid codes through
// would tell an enumerator exactly which guesses hit, so the refusal must not depend on the code.
// Codes the key found in the last minute, and calls by promotion_id (random UUIDs, nothing to
// enumerate), are not guesses and pass; should such a code have gone meanwhile, its "no such
// code" answer still needs a token or is refused. So the unknown-code answers a key gets never
// exceed its bucket, however many calls it has in flight (src/counters/rate-limiter.ts).
//
// If Redis cannot be reached each process judges on buckets of its own (going on from the levels
// Redis last reported) and logs one warning per outage: the limits hold, per process.

const UNKNOWN_CODE = "code_not_found";

/** A rate-limited method: where its request names a code, and what its answer says about it. */
interface LimitedMethod {
  /** The code the request looks up; "" when it names none. */
  code(request: unknown): string;
  /** Whether the call answered that the code does not exist, that it does, or neither. */
  outcome(answer: { response: unknown } | { error: unknown }): LookupOutcome;
}

/** The limited methods, by descriptor (the router hands interceptors these same objects); add a row to limit another one. */
const LIMITED = new Map<DescMethod, LimitedMethod>([
  [
    RedemptionService.method.validateCode,
    {
      code: (req) => (isMessage(req, ValidateCodeRequestSchema) ? normalized(req.code) : ""),
      outcome: (a) => {
        if (!("response" in a) || !isMessage(a.response, ValidateCodeResponseSchema)) return "undecided";
        return a.response.reason === UNKNOWN_CODE ? "unknown" : a.response.promotionId !== "" ? "found" : "undecided";
      },
    },
  ],
  [
    RedemptionService.method.redeemPromotion,
    {
      code: (req) => (isMessage(req, RedeemPromotionRequestSchema) ? normalized(req.code) : ""),
      outcome: (a) => {
        if ("response" in a) return "found";
        const code = errorCode(a.error);
        if (code === UNKNOWN_CODE) return "unknown";
        // A limit or a precondition of the promotion refused it (sold out, inactive, not eligible):
        // the code was found. Anything else (a bad request, an outage) says nothing about it.
        return refusedAfterLookup(a.error) ? "found" : "undecided";
      },
    },
  ],
]);

/** Codes are case-insensitive: one code is one guess however it is spelled. */
function normalized(code: string): string {
  return code.trim().toUpperCase();
}

function refusedAfterLookup(error: unknown): boolean {
  if (error instanceof DomainError) return error.kind === "resource_exhausted" || error.kind === "failed_precondition";
  if (error instanceof ConnectError) return error.code === Code.ResourceExhausted || error.code === Code.FailedPrecondition;
  return false;
}

function errorCode(error: unknown): string | undefined {
  if (error instanceof DomainError) return error.details[0]?.code;
  if (error instanceof ConnectError) return error.findDetails(ErrorDetailSchema)[0]?.code;
  return undefined;
}

function refusalError(r: Refusal): DomainError {
  const wait = `retry in ${r.retryAfterMs} ms`;
  const message =
    r.reason === "rate_limited"
      ? `too many calls with this API key; ${wait}`
      : `too many unknown codes were looked up with this API key; code lookups are paused; ${wait}`;
  return new DomainError("resource_exhausted", [{ param: "", code: r.reason, message }], { retryAfterMs: r.retryAfterMs });
}

export function rateLimitInterceptor(limiter: RateLimiter, logger: Logger): Interceptor {
  limiter.events = {
    redisDown: (error) =>
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, "rate limiter cannot reach Redis; judging every key on this process's own buckets until it can"),
    redisBack: () => logger.info("rate limiter reaches Redis again"),
  };

  return (next) => async (req) => {
    const method = LIMITED.get(req.method);
    const principal = req.contextValues.get(principalKey);
    if (!method || !principal || req.stream || limiter.disabled) return next(req);

    const admission = await limiter.admit(principal.keyId, method.code(req.message), req.signal);
    if (admission.refused) throw refusalError(admission.refused);
    let res;
    try {
      res = await next(req);
    } catch (error) {
      const refusal = await admission.settle(method.outcome({ error }));
      throw refusal ? refusalError(refusal) : error;
    }
    const refusal = await admission.settle(res.stream ? "undecided" : method.outcome({ response: res.message }));
    if (refusal) throw refusalError(refusal);
    return res;
  };
}
