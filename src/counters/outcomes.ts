import { DomainError } from "../domain/errors.js";

// The return codes of reserve.lua, in one enum, and the one place they become errors.

export enum ReserveOutcome {
  Admitted = 0,
  NotHydrated = 1,
  StaleTerms = 2,
  Duplicate = 3,
  PromotionNotActive = 10,
  PromotionNotStarted = 11,
  PromotionExpired = 12,
  CodeInactive = 13,
  CodeExpired = 14,
  MaxRedemptionsReached = 20,
  CustomerLimitReached = 21,
  CodeLimitReached = 22,
  BudgetExhausted = 23,
}

/** Outcomes that are a refusal the caller sees (the others are handled inside the service). */
export type Refusal = Exclude<ReserveOutcome, ReserveOutcome.Admitted | ReserveOutcome.NotHydrated | ReserveOutcome.StaleTerms | ReserveOutcome.Duplicate>;

export function isRefusal(outcome: ReserveOutcome): outcome is Refusal {
  return outcome >= ReserveOutcome.PromotionNotActive;
}

const REFUSALS: Record<Refusal, { kind: "failed_precondition" | "resource_exhausted"; code: string; message: string }> = {
  [ReserveOutcome.PromotionNotActive]: { kind: "failed_precondition", code: "promotion_not_active", message: "the promotion is not active" },
  [ReserveOutcome.PromotionNotStarted]: { kind: "failed_precondition", code: "promotion_not_started", message: "the promotion has not started yet" },
  [ReserveOutcome.PromotionExpired]: { kind: "failed_precondition", code: "promotion_expired", message: "the promotion has ended" },
  [ReserveOutcome.CodeInactive]: { kind: "failed_precondition", code: "code_inactive", message: "the code is not active" },
  [ReserveOutcome.CodeExpired]: { kind: "failed_precondition", code: "code_expired", message: "the code has expired" },
  [ReserveOutcome.MaxRedemptionsReached]: { kind: "resource_exhausted", code: "max_redemptions_reached", message: "the promotion has no redemptions left" },
  [ReserveOutcome.CustomerLimitReached]: { kind: "resource_exhausted", code: "customer_limit_reached", message: "the customer has used this promotion as often as allowed" },
  [ReserveOutcome.CodeLimitReached]: { kind: "resource_exhausted", code: "code_limit_reached", message: "the code has no redemptions left" },
  [ReserveOutcome.BudgetExhausted]: { kind: "resource_exhausted", code: "budget_exhausted", message: "the promotion's budget is used up" },
};

/** The ErrorDetail code and message of a refusal (ValidateCode answers with these too). */
export function refusalOf(outcome: Refusal): { code: string; message: string } {
  const { code, message } = REFUSALS[outcome];
  return { code, message };
}

export function refusalError(outcome: Refusal): DomainError {
  const r = REFUSALS[outcome];
  return DomainError.of(r.kind, r.code, r.message);
}
