// Why a dependency failed at start-up, in the words an operator uses: "connection refused", not
// ECONNREFUSED or a client library's retry counter. main.ts prints these as its one line.

/** Socket error codes, as operators say them. */
const PLAIN: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "the connection was reset",
  ETIMEDOUT: "the connection timed out",
  EHOSTUNREACH: "the host is unreachable",
  ENETUNREACH: "the network is unreachable",
  ENOTFOUND: "no such host",
  EAI_AGAIN: "the host name could not be resolved (DNS)",
  EPIPE: "the connection was closed",
};

/** The errors of `error`'s cause chain (MikroORM and ioredis wrap the socket's error), outermost first. */
function chain(error: unknown): Error[] {
  const out: Error[] = [];
  for (let e: unknown = error; e instanceof Error && out.length < 6; e = e.cause) {
    out.push(e);
    // An AggregateError (pg tries every address of a host) holds the socket errors in `errors`.
    if (e instanceof AggregateError) out.push(...e.errors.filter((x): x is Error => x instanceof Error));
  }
  return out;
}

function codeOf(e: Error): string {
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" ? code : "";
}

/** The plain reason for a network failure anywhere in the chain, or null when it is not one. */
export function plainNetworkReason(error: unknown): string | null {
  for (const e of chain(error)) {
    const reason = PLAIN[codeOf(e)];
    if (reason !== undefined) return reason;
    const inText = /\b(E[A-Z_]{4,})\b/.exec(e.message)?.[1];
    if (inText !== undefined && PLAIN[inText] !== undefined) return PLAIN[inText] ?? null;
  }
  return null;
}

/** PostgreSQL refused the login or the role lacks a right (SQLSTATE class 28, or 42501): its own message. */
function postgresRefusal(error: unknown): string | null {
  for (const e of chain(error)) {
    const code = codeOf(e);
    if (/^28/.test(code) || code === "42501") return e.message.split("\n")[0] ?? e.message;
  }
  return null;
}

function where(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    return `${url.hostname}:${url.port || "5432"}`;
  } catch {
    return "the configured address";
  }
}

/** One line for a start-up failure that came from PostgreSQL, or null when `error` is something else. */
export function explainPostgres(error: unknown, databaseUrl: string): string | null {
  const refusal = postgresRefusal(error);
  if (refusal !== null) {
    return `PostgreSQL at ${where(databaseUrl)} refused the login: ${refusal}; check the user, password and database in DATABASE_URL`;
  }
  const reason = plainNetworkReason(error) ?? (chain(error).some((e) => /Connection terminated|timeout exceeded when trying to connect/i.test(e.message)) ? "the connection was closed" : null);
  if (reason === null) return null;
  return `cannot reach PostgreSQL at ${where(databaseUrl)}: ${reason}; start it (e.g. \`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\`) or set DATABASE_URL`;
}

/** Why Redis did not answer, in plain words: the socket's reason, an authentication refusal, or no answer in time. */
export function plainRedisReason(error: unknown): string {
  const network = plainNetworkReason(error);
  if (network !== null) return network;
  for (const e of chain(error)) {
    if (/NOAUTH|WRONGPASS|invalid password|AUTH/i.test(e.message)) return `it refused the login (${e.message.split("\n")[0] ?? ""}); check the password in the URL`;
  }
  return "no answer in time";
}
