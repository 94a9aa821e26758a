// Plain-text output for the demo: headings, aligned tables, money and a bar chart. No colours, so
// the output reads the same in a terminal, a CI log or a README.

/** A section heading: a blank line, the title, and a rule under it. */
export function heading(title: string): string {
  return `\n${title}\n${"═".repeat(width(title))}\n`;
}

export type Align = "left" | "right";

/** Rows under a header, columns padded to their widest cell; `align` per column (default left). */
export function table(header: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[] = []): string {
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ""))));
  const line = (cells: readonly string[]) =>
    "  " +
    cells
      .map((cell, i) => {
        const pad = " ".repeat((widths[i] ?? 0) - width(cell));
        return align[i] === "right" ? pad + cell : cell + pad;
      })
      .join("  ")
      .trimEnd();
  const rule = "  " + widths.map((w) => "─".repeat(w)).join("  ");
  return [line(header), rule, ...rows.map(line)].join("\n") + "\n";
}

/** Display width: every character here is one column wide (box drawing and blocks included). */
function width(text: string): number {
  return [...text].length;
}

/** Minor units as money, e.g. 123456n USD -> "$1,234.56". Integer arithmetic only. */
export function money(minor: bigint, currency: string): string {
  const symbol = currency === "USD" ? "$" : currency === "EUR" ? "€" : currency === "GBP" ? "£" : `${currency} `;
  const negative = minor < 0n;
  const abs = negative ? -minor : minor;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const cents = (abs % 100n).toString().padStart(2, "0");
  return `${negative ? "-" : ""}${symbol}${whole}.${cents}`;
}

/** 1000 -> "1,000". */
export function count(n: number | bigint): string {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A bar of █ for `value` out of `max`, `cells` wide at full scale (partial cells in eighths). */
export function bar(value: bigint, max: bigint, cells: number): string {
  if (max <= 0n || value <= 0n) return "";
  const eighths = Number((value * BigInt(cells * 8)) / max);
  const partial = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"][eighths % 8] ?? "";
  return "█".repeat(Math.floor(eighths / 8)) + partial;
}

/** Basis points as a percentage: 1250 -> "12.5%". */
export function percent(bps: number): string {
  return `${(bps / 100).toString()}%`;
}
