import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Actor } from "../store/promotion-store.js";
import { entityManagerKey, principalKey, requestIdKey } from "./context-keys.js";

/** What every authenticated handler works with: its own EntityManager fork, the caller, and a clock. Build it once per call. */
export interface RequestScope {
  /** The call's own EntityManager fork, made when first read. */
  em: EntityManager;
  /** The same fork, made only once called: for use cases that often need none (a warm redeem touches no Postgres of its own). */
  forkEm: () => EntityManager;
  actor: Actor;
  clock: () => Date;
  /** The call's x-request-id (the server makes one up when the caller sent none): events carry it. */
  requestId: string;
}

const systemClock = () => new Date();

export function requestScope(ctx: HandlerContext): RequestScope {
  const fork = ctx.values.get(entityManagerKey);
  const principal = ctx.values.get(principalKey);
  // The app sets the first for every request, auth the second for every non-public service; their
  // absence is a wiring bug.
  if (!fork || !principal) throw new ConnectError("request scope missing", Code.Internal);
  let em: EntityManager | undefined;
  const forkEm = (): EntityManager => (em ??= fork());
  return {
    get em() {
      return forkEm();
    },
    forkEm,
    actor: { organizationId: principal.organizationId, keyId: principal.keyId },
    clock: systemClock,
    requestId: ctx.values.get(requestIdKey),
  };
}
