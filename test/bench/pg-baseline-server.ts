// The redeem bench's baseline: promotions.v1.RedemptionService/RedeemPromotion with the limits
// enforced by nothing but Postgres row locks, served through the same startServer (gRPC over h2c)
// as the real service. Started as a child process by redeem.ts; not part of the product.
//
// One transaction per call: lock the promotion's counter row, claim the idempotency key with the
// redemption row, check the global limit and the budget against the locked row, count the
// customer's redemptions in a per-customer row, move the counters, commit. Any refusal rolls back.
//
// env: DATABASE_URL (a database of its own; tables are created here), PORT, BASELINE_PROMOTION_ID,
// BASELINE_MAX_REDEMPTIONS, BASELINE_MAX_PER_CUSTOMER, BASELINE_MAX_BUDGET.
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import { RedemptionKind, RedemptionService, RedemptionStatus, type RedeemPromotionResponse } from "../../gen/promotions/v1/redemption_service_pb.js";
import { createLogger, drainLogs } from "../../src/observability/logger.js";
import { startServer } from "../../src/server/server.js";
import { openOrm } from "../../src/store/orm.js";

const SCHEMA = [
  `create table if not exists bench_counters (
     promotion_id uuid primary key,
     redemptions bigint not null default 0,
     max_redemptions bigint,
     max_per_customer bigint,
     budget_used bigint not null default 0,
     max_budget bigint)`,
  `create table if not exists bench_customer_redemptions (
     promotion_id uuid not null,
     customer_id text not null,
     redemptions bigint not null,
     primary key (promotion_id, customer_id))`,
  `create table if not exists bench_redemptions (
     id uuid primary key,
     promotion_id uuid not null,
     customer_id text not null,
     idempotency_key text unique,
     created_at timestamptz not null)`,
];

type Row = Record<string, unknown>;

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`${name} is required`);
  return value;
}

const optionalBigint = (raw: string | undefined): string | null => (raw === undefined || raw === "" ? null : BigInt(raw).toString());

function refused(code: string): ConnectError {
  return new ConnectError(code, Code.ResourceExhausted);
}

interface Redeemed {
  id: string;
  promotionId: string;
  customerId: string;
  idempotencyKey: string | null;
  createdAt: Date;
}

async function redeem(em: EntityManager, promotionId: string, customerId: string, idempotencyKey: string | null): Promise<Redeemed> {
  return em.transactional(async (tx) => {
    const conn = tx.getConnection();
    const ctx = tx.getTransactionContext();
    const locked = await conn.execute<Row[]>(
      `select redemptions, max_redemptions, max_per_customer, budget_used, max_budget from bench_counters where promotion_id = ? for update`,
      [promotionId],
      "all",
      ctx,
    );
    const counters = locked[0];
    if (!counters) throw new ConnectError(`promotion ${promotionId} does not exist`, Code.NotFound);
    const row: Redeemed = { id: randomUUID(), promotionId, customerId, idempotencyKey, createdAt: new Date() };
    const inserted = await conn.execute<Row[]>(
      `insert into bench_redemptions (id, promotion_id, customer_id, idempotency_key, created_at) values (?, ?, ?, ?, ?)
       on conflict (idempotency_key) do nothing returning id`,
      [row.id, promotionId, customerId, idempotencyKey, row.createdAt],
      "all",
      ctx,
    );
    if (inserted.length === 0) {
      // A retry: the first call counted already; answer with its row and move nothing.
      const earlier = await conn.execute<Row[]>(`select id, customer_id, created_at from bench_redemptions where idempotency_key = ?`, [idempotencyKey], "all", ctx);
      const first = earlier[0];
      if (!first) throw new ConnectError("idempotency key vanished", Code.Aborted);
      return { ...row, id: String(first.id), customerId: String(first.customer_id), createdAt: new Date(String(first.created_at)) };
    }
    const n = BigInt(String(counters.redemptions));
    if (counters.max_redemptions !== null && n >= BigInt(String(counters.max_redemptions))) throw refused("max_redemptions_reached");
    if (counters.max_budget !== null && BigInt(String(counters.budget_used)) >= BigInt(String(counters.max_budget))) throw refused("budget_exhausted");
    const perCustomer = await conn.execute<Row[]>(
      `insert into bench_customer_redemptions (promotion_id, customer_id, redemptions) values (?, ?, 1)
       on conflict (promotion_id, customer_id) do update set redemptions = bench_customer_redemptions.redemptions + 1
       returning redemptions`,
      [promotionId, customerId],
      "all",
      ctx,
    );
    const used = BigInt(String(perCustomer[0]?.redemptions ?? 0));
    if (counters.max_per_customer !== null && used > BigInt(String(counters.max_per_customer))) throw refused("customer_limit_reached");
    await conn.execute(`update bench_counters set redemptions = redemptions + 1 where promotion_id = ?`, [promotionId], "run", ctx);
    return row;
  });
}

const logger = createLogger("warn");
const orm = await openOrm({ databaseUrl: env("DATABASE_URL") });
const setup = orm.em.fork().getConnection();
for (const statement of SCHEMA) await setup.execute(statement, [], "run");
const hotPromotion = env("BASELINE_PROMOTION_ID");
await setup.execute(
  `insert into bench_counters (promotion_id, max_redemptions, max_per_customer, max_budget) values (?, ?, ?, ?) on conflict (promotion_id) do nothing`,
  [hotPromotion, optionalBigint(process.env.BASELINE_MAX_REDEMPTIONS), optionalBigint(process.env.BASELINE_MAX_PER_CUSTOMER), optionalBigint(process.env.BASELINE_MAX_BUDGET)],
  "run",
);

const server = await startServer({
  host: "127.0.0.1",
  port: Number(process.env.PORT ?? "0"),
  corsOrigins: [],
  maxBodyBytes: 4 * 1024 * 1024,
  shutdownGraceMs: 2_000,
  logger,
  routes: (router) => {
    // Only RedeemPromotion; the router answers UNIMPLEMENTED for every other method.
    router.service(RedemptionService, {
      async redeemPromotion(req): Promise<RedeemPromotionResponse> {
        if (req.customerId === "" || req.promotionId === "") throw new ConnectError("promotion_id and customer_id are required", Code.InvalidArgument);
        const r = await redeem(orm.em.fork(), req.promotionId, req.customerId, req.idempotencyKey === "" ? null : req.idempotencyKey);
        return {
          $typeName: "promotions.v1.RedeemPromotionResponse",
          redemption: {
            $typeName: "promotions.v1.Redemption",
            kind: RedemptionKind.CODE,
            endReason: "",
            id: r.id,
            promotionId: r.promotionId,
            version: 1,
            promotionVersionId: "",
            code: req.code.toUpperCase(),
            customerId: r.customerId,
            subscriptionId: req.subscriptionId,
            status: RedemptionStatus.ACTIVE,
            idempotencyKey: r.idempotencyKey ?? "",
            cyclesUsed: 0,
            metadata: {},
            createdAt: timestampFromDate(r.createdAt),
          },
        };
      },
    });
  },
});
process.stdout.write(`${JSON.stringify({ url: server.url, msg: "pg baseline listening" })}\n`);

const stop = (): void => {
  server
    .close()
    .then(() => orm.close())
    .then(
      () => void drainLogs().then(() => process.exit(0)),
      () => process.exit(1),
    );
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
