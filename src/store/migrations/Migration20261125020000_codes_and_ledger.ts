import { Migration } from "@mikro-orm/migrations";

/**
 * Extra promotion codes, the redemption ledger and the invoice ledger.
 *
 * - promotions.counter_epoch fences the Redis counters: a rebuild from the ledger bumps it, and a
 *   ledger write made under an older epoch is refused (see src/counters/README.md).
 * - promotions.terms_seq moves on every change of a promotion or its codes, so caches of terms and
 *   codes can tell they are stale.
 * - redemptions and invoice_applications use their id as the reservation id: the sweeper writes an
 *   ABANDONED row with the same id to make sure a late ledger write can never land after the
 *   reservation was given back.
 * - The ledger tables have no foreign keys to promotions/organizations on purpose: every ledger
 *   write already checks the promotion (and its organization and epoch) under FOR KEY SHARE, and a
 *   foreign key would lock the same hot promotion row (and the organization row) once more per
 *   checkout. Promotions are never deleted (soft delete), so the references cannot dangle.
 */
export class Migration20261125020000_codes_and_ledger extends Migration {
  override name = "Migration20261125020000_codes_and_ledger";

  override up(): void {
    this.addSql(`alter table promotions add column counter_epoch bigint not null default 1, add column terms_seq bigint not null default 1`);
    // Counters are read from the ledger (and enforced in Redis), never kept in a hot row.
    this.addSql(`alter table promotions drop column current_redemptions, drop column current_budget_used`);
    this.addSql(`alter table promotion_versions drop column usage_count`);
    this.addSql(`
      create table promotion_codes (
        id uuid primary key,
        organization_id uuid not null references organizations (id),
        promotion_id uuid not null references promotions (id),
        code varchar(64) not null,
        active boolean not null,
        max_redemptions bigint null check (max_redemptions > 0),
        min_amount_minor bigint null check (min_amount_minor >= 0),
        first_time_customers_only boolean not null,
        expires_at timestamptz(3) null,
        metadata jsonb not null,
        created_at timestamptz(3) not null,
        updated_at timestamptz(3) not null,
        retired_at timestamptz(3) null
      )`);
    // A code is unique per tenant among live promotions: retiring (archive, delete) frees it.
    this.addSql(`create unique index promotion_codes_org_code_unique on promotion_codes (organization_id, code) where retired_at is null`);
    this.addSql(`create index promotion_codes_promotion_index on promotion_codes (promotion_id, created_at, id)`);
    this.addSql(`
      create table redemptions (
        id uuid primary key,
        organization_id uuid not null,
        promotion_id uuid not null,
        status varchar(16) not null check (status in ('ACTIVE', 'RELEASED', 'ABANDONED')),
        epoch bigint not null,
        promotion_version_id uuid null,
        version int null,
        code_id uuid null,
        code varchar(64) null,
        customer_id varchar(200) null,
        subscription_id varchar(200) null,
        idempotency_key varchar(200) null,
        request_hash varchar(64) null,
        cycles_used int not null default 0 check (cycles_used >= 0),
        metadata jsonb not null default '{}',
        created_at timestamptz(3) not null,
        released_at timestamptz(3) null,
        constraint redemptions_active_complete check (status = 'ABANDONED' or (customer_id is not null and promotion_version_id is not null))
      )`);
    this.addSql(`create unique index redemptions_org_idempotency_unique on redemptions (organization_id, idempotency_key) where idempotency_key is not null`);
    this.addSql(`create index redemptions_promotion_index on redemptions (organization_id, promotion_id, created_at desc, id desc)`);
    this.addSql(`create index redemptions_customer_index on redemptions (organization_id, customer_id, created_at desc, id desc)`);
    this.addSql(`create index redemptions_active_index on redemptions (promotion_id, customer_id, code_id) where status = 'ACTIVE'`);
    this.addSql(`
      create table invoices (
        organization_id uuid not null references organizations (id),
        id varchar(200) not null,
        request_hash varchar(64) not null,
        customer_id varchar(200) null,
        subscription_id varchar(200) null,
        priced jsonb not null,
        created_at timestamptz(3) not null,
        primary key (organization_id, id)
      )`);
    this.addSql(`
      create table invoice_applications (
        id uuid primary key,
        organization_id uuid not null,
        promotion_id uuid not null,
        status varchar(16) not null check (status in ('APPLIED', 'ABANDONED')),
        epoch bigint not null,
        invoice_id varchar(200) null,
        redemption_id uuid null,
        version int null,
        phase_name varchar(200) null,
        discount_minor bigint not null default 0 check (discount_minor >= 0),
        credit_minor bigint not null default 0 check (credit_minor >= 0),
        budget_consumed_minor bigint not null default 0 check (budget_consumed_minor >= 0),
        trial_days int not null default 0,
        created_at timestamptz(3) not null
      )`);
    this.addSql(`create index invoice_applications_promotion_index on invoice_applications (promotion_id) include (budget_consumed_minor) where status = 'APPLIED'`);
    this.addSql(`create index invoice_applications_invoice_index on invoice_applications (organization_id, invoice_id)`);
    this.addSql(`
      create table invoice_discount_lines (
        application_id uuid not null references invoice_applications (id),
        line_id varchar(200) not null,
        amount_minor bigint not null check (amount_minor > 0),
        primary key (application_id, line_id)
      )`);
  }

  override down(): void {
    this.addSql(`drop table if exists invoice_discount_lines`);
    this.addSql(`drop table if exists invoice_applications`);
    this.addSql(`drop table if exists invoices`);
    this.addSql(`drop table if exists redemptions`);
    this.addSql(`drop table if exists promotion_codes`);
    this.addSql(`alter table promotions drop column counter_epoch, drop column terms_seq`);
    this.addSql(`alter table promotions add column current_redemptions bigint not null default 0, add column current_budget_used bigint not null default 0`);
    this.addSql(`alter table promotion_versions add column usage_count bigint not null default 0`);
  }
}
