import type { BillingInterval } from "./billing.js";

// Billing period arithmetic in UTC. Months clamp to the last day (Jan 31 + 1 month = Feb 28/29),
// as billing systems do.

/** `date` moved forward by `count` billing intervals. */
export function addInterval(date: Date, interval: BillingInterval, count = 1): Date {
  const d = new Date(date.getTime());
  switch (interval) {
    case "DAY":
      d.setUTCDate(d.getUTCDate() + count);
      return d;
    case "WEEK":
      d.setUTCDate(d.getUTCDate() + 7 * count);
      return d;
    case "MONTH":
    case "YEAR": {
      const months = interval === "MONTH" ? count : 12 * count;
      const day = d.getUTCDate();
      d.setUTCDate(1);
      d.setUTCMonth(d.getUTCMonth() + months);
      const lastDay = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
      d.setUTCDate(Math.min(day, lastDay));
      return d;
    }
  }
}
