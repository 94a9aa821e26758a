import { createLogger, type Logger } from "../observability/logger.js";

// Change notification: the promotion use cases call this after a transaction that changed a
// promotion or its codes has committed, with the promotion's new `terms_seq`, so caches of terms
// and codes (this process's and, through Redis, every replica's) drop what they hold. A failing
// hook never fails the write: the row is committed, and caches compare `terms_seq` anyway; the
// failure is logged.

/** Called after commit with the promotion's new `terms_seq`. */
export type PromotionChangeHook = (organizationId: string, promotionId: string, termsSeq: bigint) => Promise<void>;

/** What the use cases that change promotions and codes accept besides the EntityManager and clock. */
export interface ChangeNotification {
  onChanged?: PromotionChangeHook;
  /** The x-request-id of the call making the changes: the events they write carry it. */
  requestId?: string | null;
  /** Where hook failures are logged; a process-wide logger when absent. */
  logger?: Logger;
}

let fallbackLogger: Logger | undefined;

/** Runs the hook, if any, and logs instead of throwing when it fails. */
export async function notifyChanged(
  options: ChangeNotification,
  organizationId: string,
  promotionId: string,
  termsSeq: bigint,
): Promise<void> {
  if (!options.onChanged) return;
  try {
    await options.onChanged(organizationId, promotionId, termsSeq);
  } catch (error) {
    const logger = options.logger ?? (fallbackLogger ??= createLogger("info"));
    logger.error(
      {
        organization: organizationId,
        promotion_id: promotionId,
        terms_seq: termsSeq.toString(),
        error: error instanceof Error ? { name: error.name, message: error.message } : String(error),
      },
      "promotion change hook failed; the change is committed",
    );
  }
}
