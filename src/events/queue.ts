import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { PgBoss, fromKysely, type Job, type KyselyTransactionLike } from "pg-boss";
import type { Logger } from "../observability/logger.js";

// The webhook job queue: pg-boss on the service's PostgreSQL (its own schema, `pgboss`, which
// pg-boss installs and migrates at start under an advisory lock), shared by every replica and
// worker process. Jobs are inserted inside the caller's transaction (the dispatcher's, or a
// manual retry's), so a delivery row and its job commit together. README.md says why pg-boss.
//
// Retries: exponential backoff from `retryBaseSeconds` (doubling, with jitter, capped at 3 h),
// `maxAttempts` in all: 17 attempts at a 10 s base span about a day (20.7 to 23.7 h). A job whose
// worker died (SIGKILL, OOM) is active with no one working on it; it expires after
// JOB_EXPIRE_SECONDS (an attempt takes at most 10 s) and the supervisor, every
// SUPERVISE_SECONDS on some process, retries it. A job that used up its attempts moves to the
// dead-letter queue, whose worker marks the delivery FAILED (and may disable the endpoint).

export const DELIVERY_QUEUE = "webhook-delivery";
export const FAILED_QUEUE = "webhook-delivery-failed";
const RETRY_DELAY_MAX_SECONDS = 3 * 60 * 60;
const JOB_EXPIRE_SECONDS = 15;
const SUPERVISE_SECONDS = 5;
const POLL_SECONDS = 1;
const KEEP_DONE_SECONDS = 7 * 24 * 60 * 60;

/** What a delivery job carries. */
export interface DeliveryJob {
  deliveryId: string;
  /** A RetryWebhookDelivery: one attempt, and its failure never disables the endpoint. */
  manual: boolean;
}

export interface QueueOptions {
  databaseUrl: string;
  retryBaseSeconds: number;
  maxAttempts: number;
  logger: Logger;
}

function isDeliveryJob(data: unknown): data is DeliveryJob {
  return typeof data === "object" && data !== null && typeof (data as { deliveryId?: unknown }).deliveryId === "string";
}

export class DeliveryQueue {
  private constructor(
    private readonly boss: PgBoss,
    private readonly opts: QueueOptions,
  ) {}

  static async start(opts: QueueOptions): Promise<DeliveryQueue> {
    const boss = new PgBoss({
      connectionString: opts.databaseUrl,
      max: 4,
      application_name: "promotions-webhooks",
      useListenNotify: true,
      schedule: false,
      superviseIntervalSeconds: SUPERVISE_SECONDS,
      monitorIntervalSeconds: SUPERVISE_SECONDS,
    });
    boss.on("error", (error: unknown) => opts.logger.warn({ error: error instanceof Error ? error.message : String(error) }, "webhook queue error"));
    await boss.start();
    const failedQueue = { retryLimit: 5, retryDelay: 5, retryBackoff: true, expireInSeconds: 60, deleteAfterSeconds: KEEP_DONE_SECONDS };
    const deliveryQueue = {
      retryLimit: opts.maxAttempts - 1,
      retryDelay: opts.retryBaseSeconds,
      retryBackoff: true,
      retryDelayMax: RETRY_DELAY_MAX_SECONDS,
      expireInSeconds: JOB_EXPIRE_SECONDS,
      deleteAfterSeconds: KEEP_DONE_SECONDS,
      deadLetter: FAILED_QUEUE,
      notify: true,
    };
    // createQueue leaves an existing queue as it is; updateQueue applies this release's settings.
    await boss.createQueue(FAILED_QUEUE, failedQueue);
    await boss.createQueue(DELIVERY_QUEUE, deliveryQueue);
    await boss.updateQueue(DELIVERY_QUEUE, deliveryQueue);
    return new DeliveryQueue(boss, opts);
  }

  /** The pg-boss instance, for the other queues of src/events (scheduled-versions.ts). */
  pgBoss(): PgBoss {
    return this.boss;
  }

  /** Enqueues deliveries inside `em`'s transaction: they exist once it commits, never without it. */
  async enqueue(em: EntityManager, jobs: readonly DeliveryJob[]): Promise<void> {
    if (jobs.length === 0) return;
    const trx = em.getTransactionContext<KyselyTransactionLike>();
    if (!trx) throw new Error("delivery jobs are enqueued inside the transaction that creates their deliveries");
    await this.boss.insert(
      DELIVERY_QUEUE,
      jobs.map((data) => ({
        id: randomUUID(),
        data,
        // A manual retry is one attempt; a dispatched delivery gets the whole backoff.
        retryLimit: data.manual ? 0 : this.opts.maxAttempts - 1,
        retryDelay: this.opts.retryBaseSeconds,
        retryBackoff: true,
        retryDelayMax: RETRY_DELAY_MAX_SECONDS,
        expireInSeconds: JOB_EXPIRE_SECONDS,
      })),
      { db: fromKysely(trx) },
    );
  }

  /** Runs `attempt` for each delivery job, `concurrency` at a time; a throw schedules the retry. */
  async work(concurrency: number, attempt: (job: DeliveryJob) => Promise<void>, giveUp: (job: DeliveryJob) => Promise<void>): Promise<void> {
    const each = (handler: (job: DeliveryJob) => Promise<void>) => async (jobs: Job<unknown>[]) => {
      for (const job of jobs) if (isDeliveryJob(job.data)) await handler(job.data);
    };
    // NOTIFY wakes workers for new jobs only; retries come due silently, so polling stays short too.
    await this.boss.work(DELIVERY_QUEUE, { localConcurrency: concurrency, pollingIntervalSeconds: POLL_SECONDS, notifyPollingIntervalSeconds: POLL_SECONDS }, each(attempt));
    await this.boss.work(FAILED_QUEUE, { pollingIntervalSeconds: POLL_SECONDS }, each(giveUp));
  }

  /** Stops taking jobs, lets the attempts in flight finish (up to `timeoutMs`), closes the pool. */
  async stop(timeoutMs: number): Promise<void> {
    await this.boss.stop({ graceful: true, timeout: timeoutMs, close: true });
  }
}
