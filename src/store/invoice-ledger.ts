import type { EntityManager } from "@mikro-orm/postgresql";
import type { CandidatePromotion, PricedInvoice } from "../domain/billing.js";
import type { PromotionStatus } from "../domain/terms.js";
import { Promotion, PromotionVersion, Redemption } from "./entities.js";
import { termsFromColumns } from "./terms-codec.js";
import { traced } from "../observability/tracing.js";
import { violatedUnique } from "./unique-violation.js";
import { APPLIED_APPLICATION, LIVE_REDEMPTION, on } from "./ledger-sql.js";

// The invoice side of the ledger: what ApplyPromotions reads (the customer's redemptions with the
// terms of the version each was made under; how often automatic promotions already applied) and
// writes (the invoice, one application per applied promotion, one row per discounted line, and
// the redemptions' cycles) in one transaction, fenced by each promotion's counter epoch.

export interface StoredInvoice {
  requestHash: string;
  priced: PricedInvoice;
}

export interface RedemptionCandidate {
  redemptionId: string;
  cyclesUsed: number;
  redeemedAt: Date;
  promotion: CandidatePromotion;
}

export interface ApplicationWrite {
  id: string;
  promotionId: string;
  /** The epoch the budget reservation was made under; null when no budget was reserved. */
  epoch: bigint | null;
  redemptionId: string | null;
  version: number;
  phaseName: string;
  discountMinor: bigint;
  creditMinor: bigint;
  budgetConsumedMinor: bigint;
  trialDays: number;
  lines: { lineId: string; amountMinor: bigint }[];
}

export type InvoiceWrite = { kind: "written" } | { kind: "exists"; stored: StoredInvoice } | { kind: "fenced" };

type Row = Record<string, unknown>;

class Fenced extends Error {}

export class InvoiceLedger {
  constructor(private readonly em: EntityManager) {}

  async find(organizationId: string, invoiceId: string): Promise<StoredInvoice | null> {
    const rows = await this.em
      .getConnection()
      .execute<Row[]>(`select request_hash, priced from invoices where organization_id = ? and id = ?`, [organizationId, invoiceId], "all");
    const row = rows[0];
    return row ? { requestHash: String(row.request_hash), priced: revivePriced(row.priced) } : null;
  }

  /**
   * The customer's ACTIVE redemptions, oldest first, each with the terms of the version it pinned
   * and its promotion's status now (the pipeline lets a redemption apply after its promotion is
   * archived or its window closes: domain/pipeline.ts).
   */
  async redemptionCandidates(organizationId: string, customerId: string): Promise<RedemptionCandidate[]> {
    const em = this.em.fork();
    const redemptions = await em.find(Redemption, { organizationId, customerId, status: "ACTIVE" }, { orderBy: { createdAt: "asc", id: "asc" } });
    if (redemptions.length === 0) return [];
    const versionIds = [...new Set(redemptions.map((r) => r.promotionVersionId ?? ""))];
    const promotionIds = [...new Set(redemptions.map((r) => r.promotionId))];
    const versions = new Map((await em.find(PromotionVersion, { id: { $in: versionIds } })).map((v) => [v.id, v]));
    const promotions = new Map((await em.find(Promotion, { id: { $in: promotionIds }, deletedAt: null })).map((p) => [p.id, p]));
    return redemptions.flatMap((r) => {
      const v = versions.get(r.promotionVersionId ?? "");
      const p = promotions.get(r.promotionId);
      if (!v || !p) return [];
      const candidate: RedemptionCandidate = {
        redemptionId: r.id,
        cyclesUsed: r.cyclesUsed,
        redeemedAt: r.createdAt,
        promotion: {
          id: p.id,
          createdAt: p.createdAt,
          status: p.status as PromotionStatus,
          version: v.version,
          terms: termsFromColumns(v),
          currentRedemptions: 0n,
          currentBudgetUsed: 0n,
        },
      };
      return [candidate];
    });
  }

  /** How many invoices of this customer each automatic promotion already applied to (selects its phase). */
  async automaticCycles(organizationId: string, customerId: string): Promise<Map<string, number>> {
    const rows = await this.em.getConnection().execute<Row[]>(
      `select a.promotion_id, count(*) as n
         from invoice_applications a join invoices i on i.organization_id = a.organization_id and i.id = a.invoice_id
        where a.organization_id = ? and i.customer_id = ? and a.redemption_id is null and ${on("a", APPLIED_APPLICATION)}
        group by a.promotion_id`,
      [organizationId, customerId],
      "all",
    );
    return new Map(rows.map((r) => [String(r.promotion_id), Number(r.n)]));
  }

  /**
   * Writes the invoice and its applications in one transaction. "exists" when another call wrote
   * this invoice id first; "fenced" when a promotion's counter epoch moved since its budget was
   * reserved, or the sweeper tombstoned a reservation (nothing is written then).
   */
  async write(
    organizationId: string,
    invoice: { id: string; requestHash: string; customerId: string | null; subscriptionId: string | null; priced: PricedInvoice; now: Date },
    applications: readonly ApplicationWrite[],
  ): Promise<InvoiceWrite> {
    try {
      await traced("InvoiceLedger.write", () => this.em.transactional(async (em) => {
        const conn = em.getConnection();
        const ctx = em.getTransactionContext();
        await conn.execute(
          `insert into invoices (organization_id, id, request_hash, customer_id, subscription_id, priced, created_at) values (?, ?, ?, ?, ?, ?::jsonb, ?)`,
          [organizationId, invoice.id, invoice.requestHash, invoice.customerId, invoice.subscriptionId, serializePriced(invoice.priced), invoice.now],
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
            await conn.execute(`update redemptions set cycles_used = cycles_used + 1 where id = ? and ${LIVE_REDEMPTION}`, [a.redemptionId], "run", ctx);
          }
        }
      }));
      return { kind: "written" };
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
}

// PricedInvoice holds bigints; stored as JSON with each bigint as {"$bigint": "<digits>"}.
function serializePriced(priced: PricedInvoice): string {
  return JSON.stringify(priced, (_k, v: unknown) => (typeof v === "bigint" ? { $bigint: v.toString() } : v));
}

function revivePriced(raw: unknown): PricedInvoice {
  const text = typeof raw === "string" ? raw : JSON.stringify(raw);
  return JSON.parse(text, (_k, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && "$bigint" in v && typeof v.$bigint === "string") return BigInt(v.$bigint);
    return v;
  }) as PricedInvoice;
}
