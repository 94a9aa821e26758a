import type { EventEmitter } from "node:events";

// Kysely 0.29 (under MikroORM 7) gives a transaction's pooled connection back only after its COMMIT
// or ROLLBACK succeeded (kysely-org/kysely#1990, open). When Postgres ends the connection first — a
// restart, a terminated backend — both fail, and the client stays checked out for good: after a few
// Postgres restarts under load the pool is full of dead clients and every query of the process
// waits forever (found by `npm run chaos`, FAULT_SEED=989400707: a replica answered nothing but
// DEADLINE_EXCEEDED from its 12th schedule on). This gives such clients back: a client whose
// connection ended while it was checked out, and that is still checked out `graceMs` later, is
// released with an error, so pg-pool discards it and the slot can open a new connection. A live
// owner never holds an ended client that long: a query on it fails at once, and every path but
// Kysely's failed commit and rollback releases the client as it fails.

/** The parts of a pg Client this needs. */
interface PoolClient extends EventEmitter {
  release(err?: Error): void;
}

/** The parts of a pg Pool this needs: its client lifecycle events. */
interface ClientPool extends EventEmitter {
  on(event: "connect" | "acquire" | "remove", listener: (client: PoolClient) => void): this;
  on(event: "release", listener: (err: Error | undefined, client: PoolClient) => void): this;
}

export interface ReclaimOptions {
  /** How long an ended client may stay checked out before it is given back (default 1 s). */
  graceMs?: number;
  /** A client was given back this way. */
  onReclaimed?: () => void;
}

export function reclaimEndedClients(pool: ClientPool, opts: ReclaimOptions = {}): void {
  const graceMs = opts.graceMs ?? 1_000;
  const checkedOut = new Set<PoolClient>();
  pool.on("acquire", (client) => checkedOut.add(client));
  pool.on("release", (_err, client) => checkedOut.delete(client));
  pool.on("remove", (client) => checkedOut.delete(client));
  pool.on("connect", (client) => {
    client.once("end", () => {
      if (!checkedOut.has(client)) return;
      setTimeout(() => {
        if (!checkedOut.has(client)) return;
        checkedOut.delete(client);
        try {
          client.release(new Error("the connection ended while its client was checked out"));
        } catch {
          return; // its owner gave it back in the meantime
        }
        opts.onReclaimed?.();
      }, graceMs).unref();
    });
  });
}
