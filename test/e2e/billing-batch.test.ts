// UpsertCustomers / UpsertSubscriptions: the billing context pushed a thousand at a time, each
// record ordered by its own updated_at exactly as the single upserts are, all or nothing.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BillingInterval, SubscriptionStatus } from "../../gen/promotions/v1/customer_pb.js";
import { CustomerService } from "../../gen/promotions/v1/customer_service_pb.js";
import { client, startTestApp, type TestApp } from "../support/app.js";
import { refusal } from "../support/rpc.js";

let t: TestApp;
let key: string;
const at = (iso: string) => timestampFromDate(new Date(iso));

beforeAll(async () => {
  t = await startTestApp("billing_batch");
  ({ key } = await t.tenant("batch-co"));
});
afterAll(async () => {
  await t?.stop();
});

const customer = (i: number, updatedAt: string, segment = "smb") => ({ id: `cus-${i}`, segments: [segment], hasPaidBefore: i % 2 === 0, updatedAt: at(updatedAt) });

describe("UpsertCustomers", () => {
  it("writes a thousand customers in one call, each read back as sent", async () => {
    const customers = client(CustomerService, t.url, key, "grpc");
    const res = await customers.upsertCustomers({ customers: Array.from({ length: 1_000 }, (_, i) => customer(i, "2026-03-01T00:00:00Z")) });
    expect(res.applied).toEqual(Array<boolean>(1_000).fill(true));
    const { customer: stored } = await customers.getCustomer({ id: "cus-998" });
    expect(stored).toMatchObject({ id: "cus-998", segments: ["smb"], hasPaidBefore: true });
  });

  it("orders each record by its own updated_at: equal or older changes nothing, newer replaces", async () => {
    const customers = client(CustomerService, t.url, key);
    const res = await customers.upsertCustomers({
      customers: [customer(1, "2026-03-01T00:00:00Z", "equal"), customer(2, "2026-02-01T00:00:00Z", "older"), customer(3, "2026-04-01T00:00:00Z", "newer")],
    });
    expect(res.applied).toEqual([false, false, true]);
    expect((await customers.getCustomer({ id: "cus-1" })).customer?.segments).toEqual(["smb"]);
    expect((await customers.getCustomer({ id: "cus-2" })).customer?.segments).toEqual(["smb"]);
    expect((await customers.getCustomer({ id: "cus-3" })).customer?.segments).toEqual(["newer"]);
  });

  it("refuses the whole batch when one record is invalid, naming it by its place, and writes none", async () => {
    const customers = client(CustomerService, t.url, key, "connect-binary");
    const r = await refusal(customers.upsertCustomers({ customers: [customer(5000, "2026-05-01T00:00:00Z"), { id: "", updatedAt: at("2026-05-01T00:00:00Z") }, { id: "cus-5001" }] }));
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.details.map((d) => d.param)).toEqual(["customers[1].id", "customers[2].updated_at"]);
    await expect(customers.getCustomer({ id: "cus-5000" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("refuses an id sent twice, an empty batch and more than 1,000", async () => {
    const customers = client(CustomerService, t.url, key);
    const twice = await refusal(customers.upsertCustomers({ customers: [customer(7, "2026-05-01T00:00:00Z"), customer(8, "2026-05-01T00:00:00Z"), customer(7, "2026-05-02T00:00:00Z")] }));
    expect(twice.details).toEqual([expect.objectContaining({ param: "customers[2].id", code: "duplicate" })]);
    expect((await refusal(customers.upsertCustomers({ customers: [] }))).details[0]).toMatchObject({ param: "customers", code: "required" });
    const many = await refusal(customers.upsertCustomers({ customers: Array.from({ length: 1_001 }, (_, i) => customer(i, "2026-05-01T00:00:00Z")) }));
    expect(many.details[0]).toMatchObject({ param: "customers", code: "too_many" });
  });
});

describe("UpsertSubscriptions", () => {
  it("writes subscriptions in one call, ordered by updated_at, all or nothing", async () => {
    const customers = client(CustomerService, t.url, key, "grpc");
    const subscription = (i: number, updatedAt: string, quantity = 1) => ({
      id: `sub-${i}`,
      customerId: `cus-${i}`,
      status: SubscriptionStatus.ACTIVE,
      currency: "USD",
      interval: BillingInterval.MONTH,
      currentPeriodStart: at("2026-03-01T00:00:00Z"),
      currentPeriodEnd: at("2026-04-01T00:00:00Z"),
      items: [{ planId: "pro", productId: "app", unitAmountMinor: 4_900n, quantity }],
      updatedAt: at(updatedAt),
    });
    const first = await customers.upsertSubscriptions({ subscriptions: Array.from({ length: 500 }, (_, i) => subscription(i, "2026-03-01T00:00:00Z")) });
    expect(first.applied.every(Boolean)).toBe(true);
    const again = await customers.upsertSubscriptions({ subscriptions: [subscription(1, "2026-03-01T00:00:00Z", 9), subscription(2, "2026-03-02T00:00:00Z", 7)] });
    expect(again.applied).toEqual([false, true]);
    expect((await customers.getSubscription({ id: "sub-2" })).subscription?.items[0]?.quantity).toBe(7);
    expect((await customers.getSubscription({ id: "sub-1" })).subscription?.items[0]?.quantity).toBe(1);
    const bad = await refusal(customers.upsertSubscriptions({ subscriptions: [subscription(600, "2026-03-01T00:00:00Z"), { ...subscription(601, "2026-03-01T00:00:00Z"), currency: "" }] }));
    expect(bad.details[0]).toMatchObject({ param: "subscriptions[1].currency" });
    await expect(customers.getSubscription({ id: "sub-600" })).rejects.toMatchObject({ code: Code.NotFound });
  });
});
