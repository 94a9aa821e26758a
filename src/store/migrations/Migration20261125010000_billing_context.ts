import { Migration } from "@mikro-orm/migrations";

/** Customers and subscriptions pushed in by the billing system (external ids, per tenant). */
export class Migration20261125010000_billing_context extends Migration {
  override name = "Migration20261125010000_billing_context";

  override up(): void {
    this.addSql(`
      create table customers (
        organization_id uuid not null references organizations (id),
        id varchar(200) not null,
        segments text[] not null,
        has_paid_before boolean not null,
        created_at timestamptz(3) null,
        metadata jsonb not null,
        updated_at timestamptz(3) not null,
        stored_at timestamptz(3) not null,
        primary key (organization_id, id)
      )`);
    this.addSql(`
      create table subscriptions (
        organization_id uuid not null references organizations (id),
        id varchar(200) not null,
        customer_id varchar(200) not null,
        status varchar(16) not null check (status in ('TRIALING', 'ACTIVE', 'PAST_DUE', 'PAUSED', 'CANCELED')),
        currency varchar(3) not null,
        interval varchar(8) not null check (interval in ('DAY', 'WEEK', 'MONTH', 'YEAR')),
        current_period_start timestamptz(3) null,
        current_period_end timestamptz(3) null,
        trial_end timestamptz(3) null,
        items jsonb not null,
        updated_at timestamptz(3) not null,
        stored_at timestamptz(3) not null,
        primary key (organization_id, id)
      )`);
    this.addSql(`create index subscriptions_customer_index on subscriptions (organization_id, customer_id)`);
    // Impact forecasts stream a tenant's billable subscriptions in id order.
    this.addSql(`create index subscriptions_status_index on subscriptions (organization_id, status, id)`);
  }

  override down(): void {
    this.addSql(`drop table if exists subscriptions`);
    this.addSql(`drop table if exists customers`);
  }
}
