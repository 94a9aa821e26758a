import { UniqueConstraintViolationException } from "@mikro-orm/core";

/**
 * The constraint a unique violation broke, or null when `error` is something else. MikroORM
 * converts driver errors it sees, but a raw statement inside a transaction can surface the
 * driver's own error (SQLSTATE 23505), so both forms are recognised.
 */
export function violatedUnique(error: unknown): string | null {
  if (error instanceof UniqueConstraintViolationException) return /constraint "([^"]+)"/.exec(error.message)?.[1] ?? "";
  if (error && typeof error === "object" && "code" in error && error.code === "23505") {
    const constraint = "constraint" in error && typeof error.constraint === "string" ? error.constraint : null;
    const message = "message" in error && typeof error.message === "string" ? error.message : "";
    return constraint ?? /constraint "([^"]+)"/.exec(message)?.[1] ?? "";
  }
  return null;
}
