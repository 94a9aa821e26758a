import { describe, expect, it } from "vitest";
import { Redeemer } from "../../../src/checkout/redeemer.js";
import { TermsCache } from "../../../src/checkout/terms-cache.js";
import { ReserveOutcome } from "../../../src/counters/outcomes.js";
import { DomainError } from "../../../src/domain/errors.js";
import type { RedeemRequest } from "../../../src/domain/redemption.js";
import { AT } from "../support/pricing.js";
import { admitted, MemoryCatalog, MemoryLedger, ORG, outcome, PROMOTION, ScriptedCounters, stores } from "./fakes.js";

// The decisions of the checkout use case (src/checkout/redeemer.ts), each on a scripted counters
// face and an in-memory ledger: what it does when the counters or the ledger answer "not now".

const request = (over: Partial<RedeemRequest> = {}): RedeemRequest => ({
  code: "SAVE10",
  promotionId: "",
  customerId: "cus_1",
  subscriptionId: "",
  invoice: null,
  idempotencyKey: "order-1",
  metadata: {},
  ...over,
});

function setup(answers = [admitted()]) {
  const counters = new ScriptedCounters(answers);
  const ledger = new MemoryLedger();
  const catalog = new MemoryCatalog();
  const outcomes: string[] = [];
  const redeemer = new Redeemer({ counters, cache: new TermsCache(), clock: () => AT, reservationTtlMs: 200, onOutcome: (r) => outcomes.push(r) });
  return { counters, ledger, catalog, outcomes, redeemer, s: stores(ledger, catalog) };
}

async function refusal(work: Promise<unknown>): Promise<DomainError> {
  try {
    await work;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected a DomainError");
}

describe("RedeemPromotion decisions", () => {
  it("writes an admitted reservation under the id and epoch it was admitted with, and confirms it later", async () => {
    const { counters, ledger, redeemer, s, outcomes } = setup([admitted(7n)]);
    const row = await redeemer.redeem(s, ORG, request());
    expect(ledger.rows.get(row.id)).toMatchObject({ promotionId: PROMOTION, epoch: 7n, customerId: "cus_1", idempotencyKey: "order-1", status: "ACTIVE" });
    expect(counters.reserves).toHaveLength(1);
    expect(counters.reserves[0]).toMatchObject({ mode: "redeem", reservationId: row.id, idempotencyKey: "order-1" });
    expect(counters.confirmed).toEqual([{ promotionId: PROMOTION, reservationId: row.id }]);
    expect(counters.givenBack).toEqual([]);
    expect(outcomes).toEqual(["admitted"]);
  });

  it("on stale terms drops the cached terms, reloads them, and reserves again with the newer seq", async () => {
    const { counters, catalog, redeemer, s } = setup([admitted(), outcome(ReserveOutcome.StaleTerms), admitted()]);
    await redeemer.validate(s, ORG, request()); // warms the cache at seq 1
    const loadsBefore = catalog.termsLoads;
    catalog.seq = 5n; // another replica changed the terms
    await redeemer.redeem(s, ORG, request());
    expect(catalog.termsLoads).toBe(loadsBefore + 1);
    // validate at seq 1; redeem with the cached seq 1 (refused as stale), then with the reloaded seq 5
    expect(counters.reserves.map((r) => [r.mode, r.termsSeq])).toEqual([["check", 1n], ["redeem", 1n], ["redeem", 5n]]);
  });

  it("rebuilds the counters from the ledger when they are not hydrated, then decides again", async () => {
    const { counters, ledger, redeemer, s } = setup([outcome(ReserveOutcome.NotHydrated), admitted(2n)]);
    counters.hydrated = false;
    const row = await redeemer.redeem(s, ORG, request());
    expect(ledger.rebuilds).toBe(1);
    expect(counters.installed).toHaveLength(1);
    expect(row.epoch).toBe(2n);
    expect(counters.reserves).toHaveLength(2);
  });

  it("gives the reservation back when its ledger write was fenced (the epoch moved), learns the ledger's epoch as the counters' floor, and decides afresh", async () => {
    const { counters, ledger, redeemer, s } = setup([admitted(1n), admitted(2n)]);
    ledger.writes = ["fenced", "written"];
    ledger.epoch = 2n;
    const row = await redeemer.redeem(s, ORG, request());
    // Counters older than epoch 2 now answer NOT_HYDRATED (reserve-6.lua's epoch_floor): no wedge.
    expect(counters.floors).toEqual([{ promotionId: PROMOTION, epoch: 2n }]);
    const [first, second] = counters.reserves;
    expect(counters.givenBack).toEqual([{ promotionId: PROMOTION, reservationId: first?.reservationId, marker: counters.keys(PROMOTION).idempotency("order-1") }]);
    expect(row.id).toBe(second?.reservationId);
    expect(row.epoch).toBe(2n);
    expect([...ledger.rows.keys()]).toEqual([row.id]);
  });

  it("gives the reservation back and answers UNAVAILABLE (nothing redeemed) when the ledger cannot be written", async () => {
    const { counters, ledger, redeemer, s, outcomes } = setup();
    ledger.writes = [new Error("connection terminated")];
    const error = await refusal(redeemer.redeem(s, ORG, request()));
    expect(error.kind).toBe("unavailable");
    expect(error.details[0]?.code).toBe("ledger_unavailable");
    expect(counters.givenBack.map((g) => g.reservationId)).toEqual([counters.reserves[0]?.reservationId]);
    expect(counters.confirmed).toEqual([]);
    expect(ledger.rows.size).toBe(0);
    expect(outcomes).toEqual([]);
  });

  it("answers a write that lost the idempotency key to another redemption with that redemption, giving its own slot back", async () => {
    const { counters, ledger, redeemer, s } = setup();
    const earlier = await redeemer.redeem(s, ORG, request());
    ledger.writes = ["duplicate_key"];
    const again = await redeemer.redeem(s, ORG, request());
    expect(again).toEqual(earlier);
    expect(counters.givenBack).toHaveLength(1);
    expect(counters.givenBack[0]?.reservationId).toBe(counters.reserves[1]?.reservationId);
  });

  it("waits for an earlier call holding the same idempotency key and answers with its redemption", async () => {
    const { ledger, redeemer, s, outcomes } = setup();
    const earlier = await redeemer.redeem(s, ORG, request());
    // The earlier call's row "is not written yet": hide it, and let it land on the third poll.
    ledger.rows.delete(earlier.id);
    ledger.onFindReservation = (_id, polls) => {
      if (polls === 3) ledger.rows.set(earlier.id, earlier);
    };
    const waiting = setup([outcome(ReserveOutcome.Duplicate, earlier.id)]);
    const answer = await waiting.redeemer.redeem(stores(ledger, waiting.catalog), ORG, request());
    expect(answer).toEqual(earlier);
    expect(waiting.counters.reserves).toHaveLength(1);
    expect(waiting.counters.givenBack).toEqual([]);
    expect(waiting.outcomes).toEqual(["duplicate"]);
    expect(outcomes).toEqual(["admitted"]);
  });

  it("refuses the same idempotency key with a different request, whether the earlier call is in flight or done", async () => {
    const { ledger, redeemer, s } = setup();
    const earlier = await redeemer.redeem(s, ORG, request());
    const waiting = setup([outcome(ReserveOutcome.Duplicate, earlier.id)]);
    const error = await refusal(waiting.redeemer.redeem(stores(ledger, waiting.catalog), ORG, request({ customerId: "cus_2" })));
    expect(error.kind).toBe("already_exists");
    expect(error.details[0]).toMatchObject({ code: "idempotency_key_reused", param: "idempotency_key" });
  });

  it("decides afresh when the earlier reservation with its key was given back by the sweeper", async () => {
    const earlierId = "00000000-0000-4000-8000-0000000000e1";
    const { counters, ledger, redeemer, s } = setup([outcome(ReserveOutcome.Duplicate, earlierId), admitted()]);
    ledger.abandoned.add(earlierId);
    const row = await redeemer.redeem(s, ORG, request());
    expect(counters.reserves).toHaveLength(2);
    expect(row.id).toBe(counters.reserves[1]?.reservationId);
  });

  it("answers a refused limit with its ErrorDetail, unless an earlier redemption holds the key", async () => {
    const { ledger, redeemer, s } = setup([admitted(), outcome(ReserveOutcome.CustomerLimitReached)]);
    const earlier = await redeemer.redeem(s, ORG, request());
    expect(await redeemer.redeem(s, ORG, request())).toEqual(earlier);
    const error = await refusal(redeemer.redeem(s, ORG, request({ idempotencyKey: "order-2" })));
    expect(error.kind).toBe("resource_exhausted");
    expect(error.details[0]?.code).toBe("customer_limit_reached");
    expect(ledger.rows.size).toBe(1);
  });

  it("gives up with UNAVAILABLE counters_busy when the counters never settle", async () => {
    const { counters, redeemer, s } = setup([outcome(ReserveOutcome.StaleTerms)]);
    const error = await refusal(redeemer.redeem(s, ORG, request()));
    expect(error.details[0]?.code).toBe("counters_busy");
    expect(counters.reserves.length).toBe(50);
  });

  it("releases in the ledger first, then frees the slot in the counters of the epoch the release saw", async () => {
    const { counters, ledger, redeemer, s } = setup([admitted(3n)]);
    const row = await redeemer.release(s, ORG, (await redeemer.redeem(s, ORG, request())).id);
    expect(row.status).toBe("RELEASED");
    expect(counters.returned).toEqual([expect.objectContaining({ promotionId: PROMOTION, epoch: 3n, kind: "RELEASE", customerId: "cus_1", codeId: null })]);
    expect(ledger.settledReturns).toEqual([counters.returned[0]?.id]);
    await redeemer.release(s, ORG, row.id);
    expect(counters.returned).toHaveLength(1); // a second release changes nothing
  });
});
