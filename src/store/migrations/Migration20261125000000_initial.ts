import { Migration } from "@mikro-orm/migrations";

/** Organizations, hashed API keys, promotions and their versions (edit-as-publish). */
export class Migration20261125000000_initial extends Migration {
  override name = "Migration20261125000000_initial";

  override up(): void {
    this.addSql(`
      create table organizations (
        id uuid primary key,
        slug varchar(64) not null unique,
        name varchar(200) not null,
        created_at timestamptz(3) not null
      )`);
    this.addSql(`
      create table api_keys (
        id uuid primary key,
        organization_id uuid not null references organizations (id),
        name varchar(200) not null,
        prefix varchar(32) not null,
        key_hash varchar(64) not null unique,
        scopes text[] not null,
        created_at timestamptz(3) not null,
        revoked_at timestamptz(3) null
      )`);
    this.addSql(`create index api_keys_organization_id_index on api_keys (organization_id)`);
    this.addSql(`
      create table promotions (
        id uuid primary key,
        organization_id uuid not null references organizations (id),
        status varchar(16) not null check (status in ('DRAFT', 'ACTIVE', 'ARCHIVED')),
        code varchar(64) null,
        version int not null check (version >= 1),
        head_version_id uuid not null,
        current_redemptions bigint not null default 0 check (current_redemptions >= 0),
        current_budget_used bigint not null default 0 check (current_budget_used >= 0),
        created_at timestamptz(3) not null,
        updated_at timestamptz(3) not null,
        archived_at timestamptz(3) null,
        deleted_at timestamptz(3) null
      )`);
    // Keyset paging: newest first within a tenant.
    this.addSql(`create index promotions_org_created_index on promotions (organization_id, created_at desc, id desc) where deleted_at is null`);
    // A code belongs to at most one live (draft or active, not deleted) promotion per tenant.
    this.addSql(`create unique index promotions_org_code_unique on promotions (organization_id, code) where code is not null and deleted_at is null and status <> 'ARCHIVED'`);
    this.addSql(`
      create table promotion_versions (
        id uuid primary key,
        promotion_id uuid not null references promotions (id),
        organization_id uuid not null references organizations (id),
        version int not null check (version >= 1),
        state varchar(16) not null check (state in ('draft', 'published')),
        effective_from timestamptz(3) null,
        published_at timestamptz(3) null,
        published_by varchar(64) null,
        created_at timestamptz(3) not null,
        created_by varchar(64) null,
        archived_at timestamptz(3) null,
        archived_reason varchar(64) null,
        usage_count bigint not null default 0 check (usage_count >= 0),
        name varchar(200) not null,
        description text not null,
        public_description text not null,
        code varchar(64) null,
        archetype varchar(32) not null,
        visibility varchar(16) not null,
        stackable boolean not null,
        priority int not null,
        application_timing varchar(16) not null,
        condition_mode varchar(8) not null,
        conditions jsonb not null,
        is_phased boolean not null,
        phases jsonb not null,
        currency varchar(3) null,
        max_budget bigint null,
        budget_behavior varchar(16) not null,
        max_redemptions bigint null,
        max_redemptions_per_customer bigint null,
        valid_from timestamptz(3) null,
        valid_to timestamptz(3) null,
        requires_continuous_coverage boolean not null,
        metadata jsonb not null,
        constraint promotion_versions_number_unique unique (promotion_id, version),
        constraint promotion_versions_published_has_effective check (state = 'draft' or effective_from is not null)
      )`);
  }

  override down(): void {
    this.addSql(`drop table if exists promotion_versions`);
    this.addSql(`drop table if exists promotions`);
    this.addSql(`drop table if exists api_keys`);
    this.addSql(`drop table if exists organizations`);
  }
}
