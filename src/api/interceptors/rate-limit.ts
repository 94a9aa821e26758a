import { isMessage, type DescMethod } from "@bufbuild/protobuf";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../../gen/promotions/v1/errors_pb.js";
import {
  RedeemPromotionRequestSchema,
  RedemptionService,
  ValidateCodeRequestSchema,
  ValidateCodeResponseSchema,
} from "../../../gen/promotions/v1/redemption_service_pb.js";
import type { RateLimiter, Refusal } from "../../counters/rate-limiter.js";
import { DomainError } from "../../domain/errors.js";
import type { Logger } from "../../observability/logger.js";
import { principalKey } from "../context-keys.js";

// Per-API-key abuse limits on the checkout methods, after auth (the buckets are the caller key's).
//
// Code guessing: a code lookup that finds no code drains the key's small `guesses` bucket. While
// that bucket is empty, EVERY lookup by code from the key is refused (too_many_invalid_codes),
// valid codes included, until it refills. Letting valid codes through would tell an enumerator
// exactly which guesses hit, so the refusal must not depend on the code. Calls by promotion_id
// are not code lookups (ids are random UUIDs, nothing to enumerate) and pass. The bucket is
// looked at before the call and charged after it (only unknown codes cost), so a key with many
// calls in flight can overshoot by at most that many guesses.
//
// If Redis cannot be reached the limiter fails open (a warning is logged, at most every 10 s): the
// counters refuse checkout calls on their own then, and a limiter outage must not add a second
// one. After a failure the limiter is skipped for a second, so an outage does not also make every
// call wait for the limiter's Redis timeout before the counters' one.

const UNKNOWN_CODE = "code_not_found";
const WARN_EVERY_MS = 10_000;
const SKIP_AFTER_FAILURE_MS = 1_000;

/** A rate-limited method: where its request names a code, and how its outcome says "no such code". */
interface LimitedMethod {
  /** The code the request looks up; "" when it names none. */
  code(request: unknown): string;
  /** True when the call answered that the code does not exist. */
  unknownCode(outcome: { response: unknown } | { error: unknown }): boolean;
}

/** The limited methods, by descriptor (the router hands interceptors these same objects); add a row to limit another one. */
const LIMITED = new Map<DescMethod, LimitedMethod>([
  [
    RedemptionService.method.validateCode,
    {
      code: (req) => (isMessage(req, ValidateCodeRequestSchema) ? req.code.trim() : ""),
      unknownCode: (o) => "response" in o && isMessage(o.response, ValidateCodeResponseSchema) && o.response.reason === UNKNOWN_CODE,
    },
  ],
  [
    RedemptionService.method.redeemPromotion,
    {
      code: (req) => (isMessage(req, RedeemPromotionRequestSchema) ? req.code.trim() : ""),
      unknownCode: (o) => "error" in o && errorCode(o.error) === UNKNOWN_CODE,
    },
  ],
]);

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
  let lastWarning = 0;
  let suppressed = 0;
  let skipUntil = 0;
  const failOpen = (error: unknown): void => {
    const now = Date.now();
    skipUntil = now + SKIP_AFTER_FAILURE_MS;
    if (now - lastWarning < WARN_EVERY_MS) {
      suppressed++;
      return;
    }
    logger.warn({ err: error instanceof Error ? error.message : String(error), suppressed }, "rate limiter unavailable; admitting calls unlimited");
    lastWarning = now;
    suppressed = 0;
  };
  const countUnknownCode = async (apiKeyId: string): Promise<void> => {
    await limiter.countUnknownCode(apiKeyId).catch(failOpen);
  };

  return (next) => async (req) => {
    const method = LIMITED.get(req.method);
    const principal = req.contextValues.get(principalKey);
    if (!method || !principal || req.stream || limiter.disabled || Date.now() < skipUntil) return next(req);

    const code = method.code(req.message);
    let refusal: Refusal | null = null;
    try {
      refusal = await limiter.admit(principal.keyId, code !== "");
    } catch (error) {
      failOpen(error);
    }
    if (refusal) throw refusalError(refusal);
    if (code === "") return next(req);

    let res;
    try {
      res = await next(req);
    } catch (error) {
      if (method.unknownCode({ error })) await countUnknownCode(principal.keyId);
      throw error;
    }
    if (!res.stream && method.unknownCode({ response: res.message })) await countUnknownCode(principal.keyId);
    return res;
  };
}
