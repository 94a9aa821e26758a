import { Migration } from "@mikro-orm/migrations";

/**
 * The transactional outbox (events) and webhook delivery (endpoints, deliveries, attempts).
 * src/events/README.md has the argument; in short:
 *
 * - events.txid is the writing transaction's id (pg_current_xact_id(), a default, so a CTE over
 *   a ledger INSERT fills it too). Readers hand out only events whose transaction is older than
 *   their snapshot's xmin, in (txid, seq) order: every event that can still appear sorts after
 *   every event already handed out, so "after the last one I saw" never skips a late commit.
 * - events.seq orders events of one transaction; it is internal. Clients see the random id, so
 *   ids say nothing about other tenants' volume.
 * - events.dedupe_key (unique per organization when set) makes "once per exhaustion" and "once
 *   per threshold" events idempotent: a second insert with the same key does nothing.
 * - events has no foreign key on purpose, like the ledger: the hot path writes events in the same
 *   statement as its ledger rows, and a foreign key would lock the organization row per checkout.
 * - webhook_dispatch_cursor is where the dispatcher (one at a time, advisory lock) stands in that
 *   order; deliveries are unique per (endpoint, event), so dispatching twice sends nothing twice.
 * - The delivery jobs themselves live in pg-boss's own schema (`pgboss`), which pg-boss installs
 *   and migrates when the service starts.
 */
export class Migration20261201120000_events_and_webhooks extends Migration {
  override name = "Migration20261201120000_events_and_webhooks";

  override up(): void {
    this.addSql(`
      create table events (
        seq bigserial primary key,
        id uuid not null default gen_random_uuid() unique,
        organization_id uuid not null,
        txid xid8 not null default pg_current_xact_id(),
        type varchar(64) not null,
        created_at timestamptz(3) not null,
        request_id varchar(128) null,
        resource_id varchar(200) not null,
        payload jsonb not null,
        dedupe_key varchar(300) null
      )`);
    this.addSql(`create unique index events_org_dedupe_unique on events (organization_id, dedupe_key) where dedupe_key is not null`);
    this.addSql(`create index events_org_order_index on events (organization_id, txid, seq)`);
    this.addSql(`create index events_org_type_order_index on events (organization_id, type, txid, seq)`);
    this.addSql(`create index events_order_index on events (txid, seq)`);
    this.addSql(`
      create table webhook_endpoints (
        id uuid primary key,
        organization_id uuid not null references organizations (id),
        url varchar(2048) not null,
        description varchar(500) not null default '',
        event_types text[] not null default '{}',
        secret varchar(100) not null,
        previous_secret varchar(100) null,
        previous_secret_expires_at timestamptz(3) null,
        disabled_at timestamptz(3) null,
        disabled_reason varchar(32) null check (disabled_reason in ('MANUAL', 'PERSISTENT_FAILURE')),
        created_at timestamptz(3) not null,
        updated_at timestamptz(3) not null,
        deleted_at timestamptz(3) null,
        constraint webhook_endpoints_disabled_reason check ((disabled_at is null) = (disabled_reason is null))
      )`);
    this.addSql(`create index webhook_endpoints_org_index on webhook_endpoints (organization_id, created_at desc, id desc) where deleted_at is null`);
    this.addSql(`
      create table webhook_deliveries (
        id uuid primary key,
        organization_id uuid not null,
        endpoint_id uuid not null references webhook_endpoints (id),
        event_id uuid not null references events (id),
        event_type varchar(64) not null,
        status varchar(16) not null check (status in ('PENDING', 'SUCCEEDED', 'FAILED')),
        attempt_count int not null default 0,
        created_at timestamptz(3) not null,
        updated_at timestamptz(3) not null,
        delivered_at timestamptz(3) null,
        constraint webhook_deliveries_endpoint_event_unique unique (endpoint_id, event_id)
      )`);
    this.addSql(`create index webhook_deliveries_org_index on webhook_deliveries (organization_id, created_at desc, id desc)`);
    this.addSql(`create index webhook_deliveries_endpoint_index on webhook_deliveries (endpoint_id, created_at desc, id desc)`);
    this.addSql(`create index webhook_deliveries_event_index on webhook_deliveries (event_id)`);
    this.addSql(`
      create table webhook_attempts (
        delivery_id uuid not null references webhook_deliveries (id),
        attempt int not null check (attempt >= 1),
        status varchar(16) not null check (status in ('SUCCEEDED', 'FAILED')),
        response_status_code int null,
        latency_ms int not null check (latency_ms >= 0),
        error varchar(300) null,
        started_at timestamptz(3) not null,
        primary key (delivery_id, attempt)
      )`);
    this.addSql(`
      create table webhook_dispatch_cursor (
        id int primary key check (id = 1),
        txid xid8 not null,
        seq bigint not null
      )`);
    this.addSql(`insert into webhook_dispatch_cursor (id, txid, seq) values (1, '0', 0)`);
  }

  override down(): void {
    this.addSql(`drop table if exists webhook_dispatch_cursor`);
    this.addSql(`drop table if exists webhook_attempts`);
    this.addSql(`drop table if exists webhook_deliveries`);
    this.addSql(`drop table if exists webhook_endpoints`);
    this.addSql(`drop table if exists events`);
  }
}
