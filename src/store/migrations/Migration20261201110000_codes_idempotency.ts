import { Migration } from "@mikro-orm/migrations";

/**
 * Promotion codes remember the CreatePromotionCodes call that made them.
 *
 * - batch_id groups the codes of one call, so a response too large to carry every created code can
 *   hand out a cursor that pages through exactly those (and a retry can be answered with them).
 * - idempotency_key and request_hash sit on the first code of a batch made with a key: a retry
 *   with the same key finds the batch, and the unique index keeps one batch per key and tenant.
 *   Codes made before this migration have none of the three.
 */
export class Migration20261201110000_codes_idempotency extends Migration {
  override name = "Migration20261201110000_codes_idempotency";

  override up(): void {
    this.addSql(
      `alter table promotion_codes add column batch_id uuid null, add column idempotency_key varchar(200) null, add column request_hash varchar(64) null`,
    );
    this.addSql(`create index promotion_codes_batch_index on promotion_codes (batch_id, created_at, id) where batch_id is not null`);
    this.addSql(
      `create unique index promotion_codes_idempotency_unique on promotion_codes (organization_id, idempotency_key) where idempotency_key is not null`,
    );
  }

  override down(): void {
    this.addSql(`drop index if exists promotion_codes_idempotency_unique`);
    this.addSql(`drop index if exists promotion_codes_batch_index`);
    this.addSql(`alter table promotion_codes drop column batch_id, drop column idempotency_key, drop column request_hash`);
  }
}
