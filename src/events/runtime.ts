import type { MikroORM } from "@mikro-orm/postgresql";
import type { Registry } from "prom-client";
import type { Config } from "../config.js";
import type { Logger } from "../observability/logger.js";
import { hostResolver, type ResolveHost } from "./addresses.js";
import { Deliverer } from "./deliverer.js";
import { Dispatcher } from "./dispatcher.js";
import { EventFeed } from "./feed.js";
import { createEventMetrics } from "./metrics.js";
import { DeliveryQueue } from "./queue.js";
import { ScheduledVersions } from "./scheduled-versions.js";
import type { WebhookDeps } from "./webhooks.js";

// The background side of events, one per server process: the StreamEvents feed, the webhook
// dispatcher, and the delivery workers on the shared pg-boss queue. None of it runs on a request:
// a slow or failing receiver costs a pooled socket and a timer, never a call's latency.

export interface EventsRuntime {
  feed: EventFeed;
  webhooks: WebhookDeps;
  /** Announces versions scheduled for later when they take effect. */
  versions: ScheduledVersions;
  /** Shutdown, first step: open streams end (UNAVAILABLE, resume with after_id). */
  endStreams(): void;
  /** Shutdown, last step: no new fan-out, attempts in flight finish (up to `graceMs`), the queue's pool closes. */
  close(graceMs: number): Promise<void>;
}

export interface EventsOptions {
  /** Overrides the DNS resolution of endpoint hosts (tests point it at a DNS server of their own). */
  resolve?: ResolveHost;
}

export async function startEvents(orm: MikroORM, config: Config, logger: Logger, registry: Registry, opts: EventsOptions = {}): Promise<EventsRuntime> {
  const metrics = createEventMetrics(registry);
  const resolve = opts.resolve ?? hostResolver(config.webhooks.dnsServers);
  const allowPrivateNetworks = config.webhooks.allowPrivateNetworks;
  const queue = await DeliveryQueue.start({
    databaseUrl: config.databaseUrl,
    retryBaseSeconds: config.webhooks.retryBaseSeconds,
    maxAttempts: config.webhooks.maxAttempts,
    logger,
  });
  const deliverer = new Deliverer(orm, { resolve, allowPrivateNetworks }, metrics, logger);
  await queue.work(config.webhooks.concurrency, (job) => deliverer.attempt(job), (job) => deliverer.giveUp(job));
  const versions = await ScheduledVersions.start(queue.pgBoss(), orm, logger);
  const dispatcher = new Dispatcher(orm, queue, metrics, logger, config.eventsPollMs);
  dispatcher.start();
  const feed = new EventFeed(orm, config.eventsPollMs, logger);
  return {
    feed,
    webhooks: { queue, resolve, allowPrivateNetworks },
    versions,
    endStreams: () => feed.close(),
    async close(graceMs) {
      feed.close();
      await dispatcher.stop();
      await queue.stop(graceMs);
    },
  };
}
