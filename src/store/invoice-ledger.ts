import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { CandidatePromotion, PricedInvoice, RedemptionHistory } from "../domain/billing.js";
import { DomainError, notFound } from "../domain/errors.js";
import { END_REASONS, type RedemptionKind } from "../domain/redemption.js";
import type { PromotionStatus } from "../domain/terms.js";
import { traced } from "../observability/tracing.js";
import { Promotion, PromotionVersion, Redemption } from "./entities.js";
import { APPLIED_APPLICATION, COUNTED_REDEMPTION, on } from "./ledger-sql.js";
import { asBig, asDate } from "./row-values.js";
import { termsFromColumns } from "./terms-codec.js";
import { violatedUnique } from "./unique-violation.js";
import { recordReturns, REDEMPTION_COLUMNS, toRedemptionRow, type CounterReturn } from "./ledger.js";
import { appendEvents, type NewEvent } from "../events/outbox.js";
import { budgetThresholdPayload, invoicePayload, promotionPayload, redemptionPayload } from "../events/payloads.js";
import { findPromotionView, withCounts } from "./promotion-views.js";

// The invoice side of the ledger: what ApplyPromotions reads (the customer's redemptions with the
// terms of the version each was made under and what their earlier invoices did) and writes (the
// invoice, one application per applied promotion, one row per discounted line, the redemptions'
// cycles, completion and coverage ends) in one transaction, fenced by each promotion's counter
// epoch; and what ReverseInvoice undoes, under the same fence.

export interface StoredInvoice {
  requestHash: string;
  priced: PricedInvoice;
  status: "APPLIED" | "REVERSED";
  reversedAt: Date | null;
  reverseReason: string | null;
}

export interface RedemptionCandidate {
  redemptionId: string;
  kind: RedemptionKind;
  cyclesUsed: number;
  redeemedAt: Date;
  /** The promotion with the terms of the version the redemption pinned and its live counts. */
  promotion: CandidatePromotion;
  history: RedemptionHistory;
}

export interface ApplicationWrite {
  id: string;
  promotionId: string;
  /** The epoch the budget reservation was made under; null when no budget was reserved. */
  epoch: bigint | null;
  /** The redemption it applied; its cycle advances in the same transaction, only while it is ACTIVE. */
  redemptionId: string | null;
  version: number;
  phaseName: string;
  discountMinor: bigint;
  creditMinor: bigint;
  budgetConsumedMinor: bigint;
  trialDays: number;
  lines: { lineId: string; amountMinor: bigint }[];
}

/** What the invoice transaction changes besides the applications. */
export interface InvoiceEffects {
  /** Redemptions whose continuous coverage broke on this invoice: ENDED (coverage_gap). */
  coverageEnded: readonly string[];
  /** STRICT promotions whose budget refused a grant: EXHAUSTED at the max_budget they had. */
  budgetExhausted: readonly { promotionId: string; maxBudget: bigint }[];
  /** Budget thresholds the invoice's grants crossed: promotion.budget_threshold (and promotion.exhausted at 100 %). */
  budgetCrossings: readonly BudgetCrossing[];
}

/** A promotion's budget thresholds one invoice's grant crossed, under the max_budget it had. */
export interface BudgetCrossing {
  promotionId: string;
  maxBudget: bigint;
  /** Percent of max_budget: 50, 80, 100. */
  thresholds: readonly number[];
  /** The grant used the budget up. */
  exhausted: boolean;
  /** Budget used right after the grant, as the counters counted it (concurrent grants not committed yet included). */
  budgetUsed: bigint;
}

export type InvoiceWrite =
  | { kind: "written"; termsChanged: { promotionId: string; termsSeq: bigint }[] }
  | { kind: "exists"; stored: StoredInvoice }
  | { kind: "fenced" };

/** What a reversal did: the stored invoice, and the budget to give back in Redis under the epoch it saw. */
export interface Reversal {
  stored: StoredInvoice;
  /** False when the invoice had been reversed already (nothing moved). */
  changed: boolean;
  returned: CounterReturn[];
}

type Row = Record<string, unknown>;

class Fenced extends Error {}

export class InvoiceLedger {
  constructor(private readonly em: EntityManager) {}

  async find(organizationId: string, invoiceId: string): Promise<StoredInvoice | null> {
    const rows = await this.em
      .getConnection()
      .execute<Row[]>(`select request_hash, priced, status, reversed_at, reverse_reason from invoices where organization_id = ? and id = ?`, [organizationId, invoiceId], "all", this.em.getTransactionContext());
    const row = rows[0];
    return row ? storedInvoice(row) : null;
  }

  /**
   * The customer's ACTIVE redemptions, oldest first, each with the terms of the version it pinned,
   * its promotion's status and counts now (the pipeline lets a redemption apply after its
   * promotion is archived or its window closes: domain/pipeline.ts), and its history.
   */
  async redemptionCandidates(organizationId: string, customerId: string): Promise<RedemptionCandidate[]> {
    const em = this.em.fork();
    const redemptions = await em.find(Redemption, { organizationId, customerId, status: "ACTIVE" }, { orderBy: { createdAt: "asc", id: "asc" } });
    if (redemptions.length === 0) return [];
    const versionIds = [...new Set(redemptions.map((r) => r.promotionVersionId ?? ""))];
    const promotionIds = [...new Set(redemptions.map((r) => r.promotionId))];
    const versions = new Map((await em.find(PromotionVersion, { id: { $in: versionIds } })).map((v) => [v.id, v]));
    const promotions = new Map((await em.find(Promotion, { id: { $in: promotionIds }, deletedAt: null })).map((p) => [p.id, p]));
    const conn = em.getConnection();
    const counted = new Map(
      (await conn.execute<Row[]>(
        `select promotion_id, count(*) as n from redemptions where promotion_id in (?) and ${COUNTED_REDEMPTION} group by promotion_id`,
        [promotionIds],
        "all",
      )).map((r) => [String(r.promotion_id), BigInt(String(r.n))]),
    );
    const history = new Map(
      (await conn.execute<Row[]>(
        `select a.redemption_id, bool_or(a.trial_days > 0) as trial_extended, max(i.period_end) as last_period_end
           from invoice_applications a join invoices i on i.organization_id = a.organization_id and i.id = a.invoice_id
          where a.organization_id = ? and a.redemption_id in (?) and ${on("a", APPLIED_APPLICATION)}
          group by a.redemption_id`,
        [organizationId, redemptions.map((r) => r.id)],
        "all",
      )).map((r) => [String(r.redemption_id), { trialExtended: Boolean(r.trial_extended), lastPeriodEnd: asDate(r.last_period_end) }]),
    );
    return redemptions.flatMap((r) => {
      const v = versions.get(r.promotionVersionId ?? "");
      const p = promotions.get(r.promotionId);
      if (!v || !p) return [];
      const terms = termsFromColumns(v);
      const exhaustedAt = p.budgetExhaustedMax ?? null;
      return [
        {
          redemptionId: r.id,
          kind: (r.kind ?? "CODE") as RedemptionKind,
          cyclesUsed: r.cyclesUsed,
          redeemedAt: r.createdAt,
          history: history.get(r.id) ?? { trialExtended: false, lastPeriodEnd: null },
          promotion: {
            id: p.id,
            createdAt: p.createdAt,
            status: p.status as PromotionStatus,
            version: v.version,
            terms,
            currentRedemptions: counted.get(p.id) ?? 0n,
            currentBudgetUsed: 0n,
            budgetExhausted: exhaustedAt !== null && terms.maxBudget !== null && terms.maxBudget <= exhaustedAt,
          },
        },
      ];
    });
  }

  /** Promotions the customer ever held a redemption of (whatever became of it): an automatic promotion reaches a customer once. */
  async redeemedPromotions(organizationId: string, customerId: string): Promise<Set<string>> {
    const rows = await this.em.getConnection().execute<Row[]>(
      `select distinct promotion_id from redemptions where organization_id = ? and customer_id = ? and status <> 'ABANDONED'`,
      [organizationId, customerId],
      "all",
    );
    return new Set(rows.map((r) => String(r.promotion_id)));
  }

  /**
   * Writes the invoice and its applications in one transaction. "exists" when another call wrote
   * this invoice id first; "fenced" when a promotion's counter epoch moved since its budget was
   * reserved, the sweeper tombstoned a reservation, or a redemption it applies stopped being ACTIVE
   * (released, ended) meanwhile — nothing is written then.
   */
  async write(
    organizationId: string,
    invoice: {
      id: string;
      requestHash: string;
      customerId: string | null;
      subscriptionId: string | null;
      priced: PricedInvoice;
      periodStart: Date;
      periodEnd: Date;
      now: Date;
      /** The call's x-request-id: the events of this invoice carry it. */
      requestId?: string | null;
    },
    applications: readonly ApplicationWrite[],
    effects: InvoiceEffects,
  ): Promise<InvoiceWrite> {
    try {
      const termsChanged = await traced("InvoiceLedger.write", () => this.em.transactional(async (em) => {
        const conn = em.getConnection();
        const ctx = em.getTransactionContext();
        const events: NewEvent[] = [];
        const event = { organizationId, createdAt: invoice.now, requestId: invoice.requestId ?? null };
        await conn.execute(
          `insert into invoices (organization_id, id, request_hash, customer_id, subscription_id, priced, created_at, status, period_start, period_end)
           values (?, ?, ?, ?, ?, ?::jsonb, ?, 'APPLIED', ?, ?)`,
          [organizationId, invoice.id, invoice.requestHash, invoice.customerId, invoice.subscriptionId, serializePriced(invoice.priced), invoice.now, invoice.periodStart, invoice.periodEnd],
          "run",
          ctx,
        );
        for (const a of applications) {
          const values = [
            a.id, organizationId, a.promotionId, (a.epoch ?? 0n).toString(), invoice.id, a.redemptionId, a.version, a.phaseName,
            a.discountMinor.toString(), a.creditMinor.toString(), a.budgetConsumedMinor.toString(), a.trialDays, invoice.now,
          ];
          const insert = `insert into invoice_applications (id, organization_id, promotion_id, status, epoch, invoice_id, redemption_id, version,
              phase_name, discount_minor, credit_minor, budget_consumed_minor, trial_days, created_at)
            select ?, ?, ?, 'APPLIED', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?`;
          const rows = a.epoch === null
            ? await conn.execute<Row[]>(`${insert} returning id`, values, "all", ctx)
            : await conn.execute<Row[]>(
                `${insert} where exists (select 1 from promotions where id = ? and organization_id = ? and counter_epoch = ? for key share) returning id`,
                [...values, a.promotionId, organizationId, a.epoch.toString()],
                "all",
                ctx,
              );
          if (rows.length !== 1) throw new Fenced();
          for (const line of a.lines) {
            await conn.execute(`insert into invoice_discount_lines (application_id, line_id, amount_minor) values (?, ?, ?)`, [a.id, line.lineId, line.amountMinor.toString()], "run", ctx);
          }
          if (a.redemptionId !== null) {
            // One more billing period used; the last one completes the redemption.
            const advanced = await conn.execute<Row[]>(
              `update redemptions
                  set cycles_used = cycles_used + 1,
                      status = case when cycles_total is not null and cycles_used + 1 >= cycles_total then 'COMPLETED' else status end,
                      completed_at = case when cycles_total is not null and cycles_used + 1 >= cycles_total then ? else completed_at end
                where id = ? and status = 'ACTIVE'
                returning ${REDEMPTION_COLUMNS}`,
              [invoice.now, a.redemptionId],
              "all",
              ctx,
            );
            if (advanced.length !== 1 || !advanced[0]) throw new Fenced();
            const row = toRedemptionRow(advanced[0]);
            if (row.status === "COMPLETED") events.push({ ...event, type: "redemption.completed", payload: redemptionPayload(row) });
          }
        }
        for (const id of effects.coverageEnded) {
          const ended = await conn.execute<Row[]>(
            `update redemptions set status = 'ENDED', end_reason = ?, ended_at = ? where id = ? and organization_id = ? and status = 'ACTIVE'
             returning ${REDEMPTION_COLUMNS}`,
            [END_REASONS.coverageGap, invoice.now, id, organizationId],
            "all",
            ctx,
          );
          for (const r of ended) events.push({ ...event, type: "redemption.ended", payload: redemptionPayload(toRedemptionRow(r)) });
        }
        const changed: { promotionId: string; termsSeq: bigint }[] = [];
        for (const e of effects.budgetExhausted) {
          // The terms change (the promotion reads EXHAUSTED; checkout refuses it): caches are told by terms_seq.
          const [row] = await conn.execute<Row[]>(
            `update promotions set budget_exhausted_max = greatest(coalesce(budget_exhausted_max, 0), ?), terms_seq = terms_seq + 1
              where id = ? and organization_id = ? and (budget_exhausted_max is null or budget_exhausted_max < ?)
              returning terms_seq`,
            [e.maxBudget.toString(), e.promotionId, organizationId, e.maxBudget.toString()],
            "all",
            ctx,
          );
          if (row) changed.push({ promotionId: e.promotionId, termsSeq: BigInt(String(row.terms_seq)) });
        }
        // An invoice no promotion applied to changed nothing anyone reconciles: no event.
        if (invoice.priced.promotions.some((o) => o.applied)) {
          events.push({
            ...event,
            type: "invoice.promotions_applied",
            payload: invoicePayload({ invoiceId: invoice.id, customerId: invoice.customerId, subscriptionId: invoice.subscriptionId, priced: invoice.priced }),
          });
        }
        events.push(...(await budgetEvents(em, organizationId, invoice.now, event.requestId, effects)));
        await appendEvents(em, events);
        return changed;
      }));
      return { kind: "written", termsChanged };
    } catch (error) {
      if (error instanceof Fenced) return { kind: "fenced" };
      const constraint = violatedUnique(error);
      if (constraint !== null) {
        if (constraint === "invoice_applications_pkey") return { kind: "fenced" };
        if (constraint === "invoices_pkey") {
          const stored = await this.find(organizationId, invoice.id);
          if (stored) return { kind: "exists", stored };
        }
      }
      throw error;
    }
  }

  /**
   * Marks an invoice REVERSED with its applications, un-uses the billing periods they advanced (a
   * redemption they completed is ACTIVE again), and tells the caller how much budget to give back
   * under which counter epoch: read under FOR KEY SHARE, so a rebuild either counted these
   * applications as APPLIED before this commit (and the epoch matches) or counts them as REVERSED
   * after it (and the epoch moved: the counters already left them out).
   */
  async reverse(organizationId: string, invoiceId: string, reason: string, now: Date, requestId: string | null = null): Promise<Reversal> {
    return traced("InvoiceLedger.reverse", () => this.em.transactional(async (em) => {
      const conn = em.getConnection();
      const ctx = em.getTransactionContext();
      const [invoice] = await conn.execute<Row[]>(
        `select request_hash, priced, status, reversed_at, reverse_reason from invoices where organization_id = ? and id = ? for update`,
        [organizationId, invoiceId],
        "all",
        ctx,
      );
      if (!invoice) throw notFound("invoice", invoiceId, "invoice_id");
      if (invoice.status === "REVERSED") return { stored: storedInvoice(invoice), changed: false, returned: [] };
      const applications = await conn.execute<Row[]>(
        `update invoice_applications set status = 'REVERSED'
          where organization_id = ? and invoice_id = ? and status = 'APPLIED'
          returning promotion_id, redemption_id, budget_consumed_minor`,
        [organizationId, invoiceId],
        "all",
        ctx,
      );
      const returned: CounterReturn[] = [];
      for (const a of applications) {
        const amount = asBig(a.budget_consumed_minor) ?? 0n;
        if (amount > 0n) {
          const [promotion] = await conn.execute<Row[]>(`select counter_epoch from promotions where id = ? for key share`, [a.promotion_id], "all", ctx);
          returned.push({
            id: randomUUID(),
            organizationId,
            promotionId: String(a.promotion_id),
            epoch: BigInt(String(promotion?.counter_epoch ?? 0)),
            kind: "REVERSAL",
            customerId: null,
            codeId: null,
            amountMinor: amount,
          });
        }
        if (a.redemption_id != null) {
          await conn.execute(
            `update redemptions
                set cycles_used = greatest(cycles_used - 1, 0),
                    status = case when status = 'COMPLETED' then 'ACTIVE' else status end,
                    completed_at = case when status = 'COMPLETED' then null else completed_at end
              where id = ?`,
            [a.redemption_id],
            "run",
            ctx,
          );
        }
      }
      const [reversed] = await conn.execute<Row[]>(
        `update invoices set status = 'REVERSED', reversed_at = ?, reverse_reason = ? where organization_id = ? and id = ?
         returning request_hash, priced, status, reversed_at, reverse_reason, customer_id, subscription_id`,
        [now, reason, organizationId, invoiceId],
        "all",
        ctx,
      );
      if (!reversed) throw new Error(`invoice ${invoiceId} vanished inside its own transaction`);
      await recordReturns(em, returned, now);
      const stored = storedInvoice(reversed);
      await appendEvents(em, [
        {
          organizationId,
          type: "invoice.reversed",
          createdAt: now,
          requestId,
          payload: invoicePayload({
            invoiceId,
            customerId: reversed.customer_id == null ? null : String(reversed.customer_id),
            subscriptionId: reversed.subscription_id == null ? null : String(reversed.subscription_id),
            priced: stored.priced,
            reversedAt: stored.reversedAt,
            reversalReason: stored.reverseReason,
          }),
        },
      ]);
      return { stored, changed: true, returned };
    }));
  }
}

/**
 * promotion.budget_threshold for each threshold the invoice's grants crossed and promotion.exhausted
 * for a budget used up (a grant reaching max_budget, or a STRICT refusal), each with the promotion
 * as this transaction sees it and a key that keeps one per max_budget (a raised budget re-arms them).
 */
async function budgetEvents(em: EntityManager, organizationId: string, now: Date, requestId: string | null, effects: InvoiceEffects): Promise<NewEvent[]> {
  const exhausted = new Map<string, bigint>();
  for (const e of effects.budgetExhausted) exhausted.set(e.promotionId, e.maxBudget);
  for (const c of effects.budgetCrossings) if (c.exhausted) exhausted.set(c.promotionId, c.maxBudget);
  const ids = new Set([...effects.budgetCrossings.map((c) => c.promotionId), ...exhausted.keys()]);
  const events: NewEvent[] = [];
  for (const id of ids) {
    const read = await findPromotionView(em, organizationId, id, now);
    if (!read) continue;
    // The ledger this transaction sees lags the counters by the grants of invoices still being
    // written; the promotion is shown with the budget used the grant that crossed saw.
    const seen = effects.budgetCrossings.filter((x) => x.promotionId === id).reduce((m, c) => (c.budgetUsed > m ? c.budgetUsed : m), read.currentBudgetUsed);
    const view = withCounts(read, read.currentRedemptions, seen, now);
    for (const c of effects.budgetCrossings.filter((x) => x.promotionId === id)) {
      for (const t of c.thresholds) {
        events.push({
          organizationId,
          type: "promotion.budget_threshold",
          payload: budgetThresholdPayload(view, t),
          createdAt: now,
          requestId,
          dedupeKey: `promotion.budget_threshold:${id}:${c.maxBudget}:${t}`,
        });
      }
    }
    const max = exhausted.get(id);
    if (max !== undefined) {
      events.push({ organizationId, type: "promotion.exhausted", payload: promotionPayload(view), createdAt: now, requestId, dedupeKey: `promotion.exhausted:${id}:budget:${max}` });
    }
  }
  return events;
}

/** ApplyPromotions of an invoice that was reversed is refused: its discounts were undone for a reason. */
export function refuseReversed(stored: StoredInvoice, invoiceId: string): void {
  if (stored.status === "REVERSED") {
    throw DomainError.of("failed_precondition", "invoice_reversed", `invoice ${invoiceId} was reversed; price a new invoice id instead`, "invoice_id");
  }
}

function storedInvoice(row: Row): StoredInvoice {
  return {
    requestHash: String(row.request_hash),
    priced: revivePriced(row.priced),
    status: row.status === "REVERSED" ? "REVERSED" : "APPLIED",
    reversedAt: asDate(row.reversed_at),
    reverseReason: row.reverse_reason == null ? null : String(row.reverse_reason),
  };
}

// PricedInvoice holds bigints and dates; stored as JSON with each bigint as {"$bigint": "<digits>"}
// and each date as {"$date": "<iso>"}.
function serializePriced(priced: PricedInvoice): string {
  return JSON.stringify(priced, function (this: Record<string, unknown>, key, v: unknown) {
    const raw = this[key];
    if (raw instanceof Date) return { $date: raw.toISOString() };
    return typeof v === "bigint" ? { $bigint: v.toString() } : v;
  });
}

function revivePriced(raw: unknown): PricedInvoice {
  const text = typeof raw === "string" ? raw : JSON.stringify(raw);
  return JSON.parse(text, (_k, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1) {
      if ("$bigint" in v && typeof v.$bigint === "string") return BigInt(v.$bigint);
      if ("$date" in v && typeof v.$date === "string") return new Date(v.$date);
    }
    return v;
  }) as PricedInvoice;
}
