import { randomUUID } from "node:crypto";
import type { EntityManager, MikroORM } from "@mikro-orm/postgresql";
import { fromKysely, type Job, type KyselyTransactionLike, type PgBoss } from "pg-boss";
import type { Logger } from "../observability/logger.js";
import type { ScheduledVersion, VersionScheduler } from "../promotions/promotions.js";
import { findPromotionView } from "../store/promotion-views.js";
import { appendEvents } from "./outbox.js";
import { promotionPayload } from "./payloads.js";
import { sqlOf } from "./sql.js";

// A version published for later (UpdatePromotion with effective_at in the future) takes effect by
// itself: reads join the version in force at their own time, nothing rewrites a row. Its
// promotion.version_published is written by a pg-boss job enqueued in the scheduling transaction
// (it exists exactly when the schedule committed) and started at effective_at. The job writes the
// event only if that version is still the one scheduled: published, not cancelled before it took
// effect (replaced_before_effective, promotion_deactivated) and its promotion not deleted. The job
// may run more than once (a retry, a worker killed after commit): the dedupe key keeps one event.

export const VERSION_QUEUE = "promotion-version-published";
const POLL_SECONDS = 1;
/** How far ahead of effective_at a job may run (the database's clock against ours) before it waits instead. */
const MAX_EARLY_MS = 5_000;

interface VersionJob {
  organizationId: string;
  promotionId: string;
  versionId: string;
  /** ISO time. */
  effectiveAt: string;
}

function isVersionJob(data: unknown): data is VersionJob {
  const d = data as Partial<VersionJob> | null;
  return typeof d === "object" && d !== null && typeof d.versionId === "string" && typeof d.promotionId === "string" && typeof d.organizationId === "string";
}

export class ScheduledVersions implements VersionScheduler {
  private constructor(
    private readonly boss: PgBoss,
    private readonly orm: MikroORM,
    private readonly logger: Logger,
    private readonly clock: () => Date,
  ) {}

  static async start(boss: PgBoss, orm: MikroORM, logger: Logger, clock: () => Date = () => new Date()): Promise<ScheduledVersions> {
    const queue = { retryLimit: 20, retryDelay: 5, retryBackoff: true, retryDelayMax: 600, expireInSeconds: 60, deleteAfterSeconds: 7 * 24 * 60 * 60 };
    await boss.createQueue(VERSION_QUEUE, queue);
    const versions = new ScheduledVersions(boss, orm, logger, clock);
    await boss.work(VERSION_QUEUE, { pollingIntervalSeconds: POLL_SECONDS }, async (jobs: Job<unknown>[]) => {
      for (const job of jobs) if (isVersionJob(job.data)) await versions.publish(job.data);
    });
    return versions;
  }

  /** Enqueues the version's job inside `em`'s transaction, to start at its effective_at. */
  async schedule(em: EntityManager, v: ScheduledVersion): Promise<void> {
    const trx = em.getTransactionContext<KyselyTransactionLike>();
    if (!trx) throw new Error("a scheduled version's job is enqueued inside the transaction that schedules it");
    const data: VersionJob = { organizationId: v.organizationId, promotionId: v.promotionId, versionId: v.versionId, effectiveAt: v.effectiveAt.toISOString() };
    await this.boss.insert(VERSION_QUEUE, [{ id: randomUUID(), data, startAfter: v.effectiveAt }], { db: fromKysely(trx) });
  }

  /** The job: writes promotion.version_published if the version is still the one scheduled. */
  async publish(job: VersionJob): Promise<void> {
    const early = new Date(job.effectiveAt).getTime() - this.clock().getTime();
    if (early > MAX_EARLY_MS) throw new Error(`job of version ${job.versionId} ran ${early} ms early; retried later`);
    if (early > 0) await new Promise((r) => setTimeout(r, early));
    const written = await this.orm.em.fork().transactional(async (em) => {
      const sql = sqlOf(em);
      // The promotion's row lock orders this against an edit, a deactivation or a delete in flight.
      const [row] = await sql.rows<{ effective_from: Date | string }>(
        `select v.effective_from from promotions p join promotion_versions v on v.promotion_id = p.id
          where p.id = $1 and p.organization_id = $2 and v.id = $3
            and p.deleted_at is null and p.status = 'ACTIVE'
            and v.state = 'published' and v.archived_reason is null
          for update of p`,
        [job.promotionId, job.organizationId, job.versionId],
      );
      if (!row) return false;
      const effectiveAt = new Date(row.effective_from);
      const now = this.clock();
      const view = await findPromotionView(em, job.organizationId, job.promotionId, now < effectiveAt ? effectiveAt : now);
      if (!view) return false;
      const ids = await appendEvents(em, [
        {
          organizationId: job.organizationId,
          type: "promotion.version_published",
          payload: promotionPayload(view),
          createdAt: effectiveAt,
          requestId: null,
          dedupeKey: `promotion.version_published:${job.versionId}`,
        },
      ]);
      return ids.length > 0;
    });
    this.logger.info({ promotion_id: job.promotionId, version_id: job.versionId, written }, written ? "scheduled version published" : "scheduled version no longer scheduled (or announced already)");
  }
}
