import { Migration } from "@mikro-orm/migrations";

/**
 * The billing lifecycle (DESIGN §8):
 *
 * - promotion_versions.application_method: how a promotion reaches customers (CODE, AUTOMATIC,
 *   ASSIGNED). Existing code-less promotions were applied to everyone: they become AUTOMATIC; the
 *   others CODE.
 * - promotions.budget_exhausted_max: the max_budget in force when a STRICT budget refused a grant
 *   it could no longer pay. The promotion reads EXHAUSTED while max_budget is not above it.
 * - redemptions: kind (CODE, ASSIGNED, AUTOMATIC), the statuses COMPLETED and ENDED (with
 *   end_reason), cycles_total (the pinned terms' billing periods; null when a phase is FOREVER),
 *   completed_at, ended_at. Existing redemptions that used all their cycles become COMPLETED.
 * - Automatic promotions applied before this migration had no redemption: each (promotion,
 *   customer) that had one gets its AUTOMATIC redemption, with the cycles its applications used
 *   and the idempotency key checkout derives (src/checkout/automatic.ts), and those applications
 *   point at it. Their promotions' counter epoch moves, so counters are rebuilt from the ledger
 *   with these redemptions counted.
 * - invoices: status (APPLIED, REVERSED), the billing period priced, and the reversal's time and
 *   reason; invoice_applications may be REVERSED.
 * - counter_returns: what a release or a reversal gives back to the Redis counters, written in the
 *   ledger transaction that made it (under the counter epoch it saw) and applied to Redis after
 *   commit, exactly once; the sweeper applies the ones a crash or an outage left pending.
 * - Redemptions of promotions deleted before this migration stopped applying silently: they are
 *   ENDED (promotion_deleted).
 */
export class Migration20261201130000_billing_lifecycle extends Migration {
  override name = "Migration20261201130000_billing_lifecycle";

  override up(): void {
    this.addSql(`alter table promotion_versions add column application_method varchar(16) null check (application_method in ('CODE', 'AUTOMATIC', 'ASSIGNED'))`);
    this.addSql(`update promotion_versions set application_method = case when code is null then 'AUTOMATIC' else 'CODE' end`);
    this.addSql(`alter table promotion_versions alter column application_method set not null`);
    this.addSql(`alter table promotions add column budget_exhausted_max bigint null`);

    this.addSql(`alter table redemptions drop constraint redemptions_status_check`);
    this.addSql(`alter table redemptions add constraint redemptions_status_check check (status in ('ACTIVE', 'COMPLETED', 'RELEASED', 'ENDED', 'ABANDONED'))`);
    this.addSql(`
      alter table redemptions
        add column kind varchar(16) null check (kind in ('CODE', 'ASSIGNED', 'AUTOMATIC')),
        add column end_reason varchar(32) null,
        add column cycles_total int null check (cycles_total >= 0),
        add column completed_at timestamptz(3) null,
        add column ended_at timestamptz(3) null`);
    this.addSql(`update redemptions set kind = case when code is null then 'ASSIGNED' else 'CODE' end where status <> 'ABANDONED'`);
    this.addSql(`alter table redemptions add constraint redemptions_kind_set check (status = 'ABANDONED' or kind is not null)`);

    this.addSql(`
      alter table invoices
        add column status varchar(16) not null default 'APPLIED' check (status in ('APPLIED', 'REVERSED')),
        add column period_start timestamptz(3) null,
        add column period_end timestamptz(3) null,
        add column reversed_at timestamptz(3) null,
        add column reverse_reason varchar(200) null`);
    this.addSql(`alter table invoice_applications drop constraint invoice_applications_status_check`);
    this.addSql(`alter table invoice_applications add constraint invoice_applications_status_check check (status in ('APPLIED', 'REVERSED', 'ABANDONED'))`);
    this.addSql(`create index invoice_applications_redemption_index on invoice_applications (redemption_id) where redemption_id is not null`);

    // The automatic applications of before: one AUTOMATIC redemption per (promotion, customer).
    this.addSql(`
      insert into redemptions (id, organization_id, promotion_id, status, epoch, promotion_version_id, version, customer_id,
                               idempotency_key, cycles_used, metadata, created_at, kind)
      select gen_random_uuid(), l.organization_id, l.promotion_id, 'ACTIVE', p.counter_epoch, v.id, l.version, l.customer_id,
             'automatic:' || left(encode(sha256(convert_to(l.promotion_id::text || ':' || l.customer_id, 'UTF8')), 'hex'), 40),
             l.n, '{}', l.first_at, 'AUTOMATIC'
        from (
          select a.organization_id, a.promotion_id, i.customer_id, count(*) as n, min(a.created_at) as first_at,
                 (array_agg(a.version order by a.created_at, a.id))[1] as version
            from invoice_applications a
            join invoices i on i.organization_id = a.organization_id and i.id = a.invoice_id
           where a.redemption_id is null and a.status = 'APPLIED' and i.customer_id is not null
           group by a.organization_id, a.promotion_id, i.customer_id
        ) l
        join promotions p on p.id = l.promotion_id
        join promotion_versions v on v.promotion_id = l.promotion_id and v.version = l.version`);
    this.addSql(`
      update invoice_applications a set redemption_id = r.id
        from invoices i, redemptions r
       where a.redemption_id is null and a.status = 'APPLIED'
         and i.organization_id = a.organization_id and i.id = a.invoice_id
         and r.organization_id = a.organization_id and r.promotion_id = a.promotion_id and r.customer_id = i.customer_id
         and r.kind = 'AUTOMATIC'`);
    this.addSql(`update promotions set counter_epoch = counter_epoch + 1 where id in (select distinct promotion_id from redemptions where kind = 'AUTOMATIC')`);

    // Billing periods each redemption's pinned terms last (null: a FOREVER phase), and the
    // redemptions that used them all.
    this.addSql(`
      update redemptions r set cycles_total = t.total
        from (
          select v.id,
                 case when bool_or(ph->>'duration' = 'FOREVER') then null
                      else sum(case when ph->>'duration' = 'REPEATING' then greatest(coalesce((ph->>'cycles')::int, 0), 0) else 1 end)::int end as total
            from promotion_versions v cross join lateral jsonb_array_elements(v.phases) ph
           group by v.id
        ) t
       where t.id = r.promotion_version_id`);
    this.addSql(`update redemptions set status = 'COMPLETED', completed_at = now() where status = 'ACTIVE' and cycles_total is not null and cycles_used >= cycles_total`);
    this.addSql(`create index redemptions_counted_index on redemptions (promotion_id, customer_id, code_id) where status in ('ACTIVE', 'COMPLETED', 'ENDED')`);
    this.addSql(`
      update redemptions set status = 'ENDED', end_reason = 'promotion_deleted', ended_at = p.deleted_at
        from promotions p
       where p.id = redemptions.promotion_id and p.deleted_at is not null and redemptions.status = 'ACTIVE'`);

    this.addSql(`
      create table counter_returns (
        id uuid primary key,
        organization_id uuid not null,
        promotion_id uuid not null,
        epoch bigint not null,
        kind varchar(16) not null check (kind in ('RELEASE', 'REVERSAL')),
        customer_id varchar(200) null,
        code_id uuid null,
        amount_minor bigint not null default 0 check (amount_minor >= 0),
        created_at timestamptz(3) not null,
        applied_at timestamptz(3) null
      )`);
    this.addSql(`create index counter_returns_pending_index on counter_returns (created_at) where applied_at is null`);
  }

  override down(): void {
    this.addSql(`drop table if exists counter_returns`);
    this.addSql(`drop index if exists redemptions_counted_index`);
    this.addSql(`drop index if exists invoice_applications_redemption_index`);
    this.addSql(`update invoice_applications set redemption_id = null where redemption_id in (select id from redemptions where kind = 'AUTOMATIC')`);
    this.addSql(`delete from redemptions where kind = 'AUTOMATIC'`);
    this.addSql(`update redemptions set status = 'ACTIVE' where status in ('COMPLETED', 'ENDED')`);
    this.addSql(`update invoice_applications set status = 'APPLIED' where status = 'REVERSED'`);
    this.addSql(`alter table invoice_applications drop constraint invoice_applications_status_check`);
    this.addSql(`alter table invoice_applications add constraint invoice_applications_status_check check (status in ('APPLIED', 'ABANDONED'))`);
    this.addSql(`alter table invoices drop column status, drop column period_start, drop column period_end, drop column reversed_at, drop column reverse_reason`);
    this.addSql(`alter table redemptions drop constraint redemptions_kind_set`);
    this.addSql(`alter table redemptions drop column kind, drop column end_reason, drop column cycles_total, drop column completed_at, drop column ended_at`);
    this.addSql(`alter table redemptions drop constraint redemptions_status_check`);
    this.addSql(`alter table redemptions add constraint redemptions_status_check check (status in ('ACTIVE', 'RELEASED', 'ABANDONED'))`);
    this.addSql(`alter table promotions drop column budget_exhausted_max`);
    this.addSql(`alter table promotion_versions drop column application_method`);
  }
}
