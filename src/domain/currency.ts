// ISO-4217 currencies a promotion may be priced in, and how many minor units each has.
//
// The list is ISO-4217 "List One" (current currency and funds codes). Codes in a published
// transition (ANG -> XCG, ZWL -> ZWG, SLL -> SLE, BGN -> EUR) stay accepted until they are
// withdrawn, because refusing a code a customer still bills in is worse than accepting one a
// little longer. Precious metals (XAU, XAG, XPD, XPT), bond-market units (XBA..XBD), XDR, XSU, XUA
// and the testing / no-currency codes (XTS, XXX) are not money a business charges in, so they are
// left out.

const ACTIVE_CODES = [
  "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN",
  "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV",
  "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF",
  "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP", "CVE",
  "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD",
  "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
  "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
  "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD",
  "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA",
  "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV",
  "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB",
  "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB",
  "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL",
  "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
  "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN",
  "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF",
  "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
] as const;

/** Every accepted currency code, upper case. */
export const CURRENCIES: ReadonlySet<string> = new Set<string>(ACTIVE_CODES);

// ISO-4217 exponents that differ from the usual 2.
const ZERO_DECIMALS: ReadonlySet<string> = new Set([
  "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
  "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
]);
const THREE_DECIMALS: ReadonlySet<string> = new Set(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]);
const FOUR_DECIMALS: ReadonlySet<string> = new Set(["CLF", "UYW"]);

/** Whether `code` is an accepted ISO-4217 code; case-sensitive, since terms store upper case. */
export function isKnownCurrency(code: string): boolean {
  return CURRENCIES.has(code);
}

/** Digits after the decimal point in `currency` (JPY 0, USD 2, KWD 3, CLF 4), per ISO-4217. */
export function minorUnits(currency: string): number {
  if (!CURRENCIES.has(currency)) throw new RangeError(`unknown currency ${JSON.stringify(currency)}`);
  if (ZERO_DECIMALS.has(currency)) return 0;
  if (THREE_DECIMALS.has(currency)) return 3;
  if (FOUR_DECIMALS.has(currency)) return 4;
  return 2;
}
