import type { FilterClause, FilterValue } from "../domain/filter.js";

// Parsed list filters -> SQL over the promotion row (p) and its version in force (v). Field names
// come from domain/filter.ts PROMOTION_FILTER_FIELDS; values are always bound, never inlined.

const COLUMNS: Readonly<Record<string, string>> = {
  id: "p.id",
  status: "p.status",
  version: "p.version",
  current_redemptions: "rc.n",
  current_budget_used: "bc.b",
  created_at: "p.created_at",
  updated_at: "p.updated_at",
  archived_at: "p.archived_at",
  live_version: "v.version",
  published_at: "v.published_at",
  name: "v.name",
  code: "v.code",
  application_method: "v.application_method",
  description: "v.description",
  public_description: "v.public_description",
  currency: "v.currency",
  archetype: "v.archetype",
  visibility: "v.visibility",
  application_timing: "v.application_timing",
  condition_mode: "v.condition_mode",
  budget_behavior: "v.budget_behavior",
  stackable: "v.stackable",
  is_phased: "v.is_phased",
  requires_continuous_coverage: "v.requires_continuous_coverage",
  priority: "v.priority",
  max_budget: "v.max_budget",
  max_redemptions: "v.max_redemptions",
  max_redemptions_per_customer: "v.max_redemptions_per_customer",
  valid_from: "v.valid_from",
  valid_to: "v.valid_to",
};

const COMPARISON: Readonly<Record<string, string>> = { gt: ">", gte: ">=", lt: "<", lte: "<=" };

/** Codes are stored upper-cased; compare them that way so `code.eq=save20` finds SAVE20. */
function bind(field: string, value: FilterValue): unknown {
  if (typeof value === "bigint") return value.toString();
  if (field === "code" && typeof value === "string") return value.toUpperCase();
  return value;
}

export function filterToSql(clause: FilterClause): { sql: string; params: unknown[] } {
  const column = COLUMNS[clause.field];
  if (column === undefined) throw new Error(`no column for filter field ${clause.field}`);
  const values = clause.values.map((v) => bind(clause.field, v));
  const [first] = values;
  switch (clause.op) {
    case "eq":
      return first === null ? { sql: `${column} is null`, params: [] } : { sql: `${column} = ?`, params: [first] };
    case "ne":
      return first === null
        ? { sql: `${column} is not null`, params: [] }
        : { sql: `(${column} is distinct from ?)`, params: [first] };
    case "in":
      return { sql: `${column} in (${values.map(() => "?").join(", ")})`, params: values };
    case "nin":
      return { sql: `(${column} is null or ${column} not in (${values.map(() => "?").join(", ")}))`, params: values };
    default: {
      const op = COMPARISON[clause.op];
      if (op === undefined) throw new Error(`no SQL operator for ${clause.op}`);
      return { sql: `${column} ${op} ?`, params: [first] };
    }
  }
}
