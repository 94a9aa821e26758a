// Every Redis key the service uses is built here. All keys of one promotion carry the hash tag
// {p:<promotion id>}, so every script touches a single slot and runs unchanged on Redis Cluster.

/** Checked at start-up: a prefix with braces would move the hash tag. */
export function assertValidPrefix(prefix: string): void {
  if (/[{}]/.test(prefix)) throw new Error(`REDIS_KEY_PREFIX must not contain braces: ${JSON.stringify(prefix)}`);
}

export interface PromotionKeys {
  /** Hash: epoch, seq, n (redemptions), b (budget used). Its presence means "hydrated". */
  state: string;
  /** Hash: customer id -> redemptions. */
  customers: string;
  /** Hash: code id -> redemptions. */
  codes: string;
  /** Sorted set: pending reservation id -> deadline (ms). */
  pending: string;
  /** Hash: pending reservation id -> JSON details for giving it back. */
  details: string;
  /** String lock held while a rebuild from the ledger runs (short TTL, renewed by its holder). */
  rebuildLock: string;
  /**
   * Hashes a rebuild fills under its new epoch before switch-7.lua makes them the live per-customer
   * and per-code hashes in one step; they expire on their own if the rebuild never switches.
   */
  staged(epoch: bigint): { customers: string; codes: string };
  /** String: idempotency key -> "<epoch>:<reservation id>", kept for a day. */
  idempotency(key: string): string;
  /** String: set once the counter return with this id was applied (apply_return.lua), kept for a day. */
  applied(returnId: string): string;
}

export function promotionKeys(prefix: string, promotionId: string): PromotionKeys {
  return new KeysOf(`${prefix}{p:${promotionId}}`);
}

/** Built on every counter call: a class, so its three key makers are not three closures per call. */
class KeysOf implements PromotionKeys {
  readonly state: string;
  readonly customers: string;
  readonly codes: string;
  readonly pending: string;
  readonly details: string;
  readonly rebuildLock: string;

  constructor(private readonly base: string) {
    this.state = `${base}:s`;
    this.customers = `${base}:c`;
    this.codes = `${base}:k`;
    this.pending = `${base}:q`;
    this.details = `${base}:d`;
    this.rebuildLock = `${base}:lock`;
  }

  staged(epoch: bigint): { customers: string; codes: string } {
    return { customers: `${this.base}:st:${epoch}:c`, codes: `${this.base}:st:${epoch}:k` };
  }
  idempotency(key: string): string {
    return `${this.base}:i:${key}`;
  }
  applied(returnId: string): string {
    return `${this.base}:r:${returnId}`;
  }
}

/**
 * The token buckets of one API key (rate_limit.lua). They carry their own hash tag
 * {k:<api key id>}, so the buckets of one key share a slot and one script call can judge them all.
 */
export function rateLimitKey(prefix: string, apiKeyId: string, bucket: "calls" | "guesses"): string {
  return `${prefix}{k:${apiKeyId}}:rl:${bucket}`;
}
