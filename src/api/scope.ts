import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Actor } from "../store/promotion-store.js";
import { emKey, principalKey } from "./context.js";

/** What every authenticated handler works with: its own EntityManager fork, the caller, and a clock. */
export interface RequestScope {
  em: EntityManager;
  actor: Actor;
  clock: () => Date;
}

const systemClock = () => new Date();

export function requestScope(ctx: HandlerContext): RequestScope {
  const em = ctx.values.get(emKey);
  const principal = ctx.values.get(principalKey);
  // Both are set by interceptors for every non-public service; their absence is a wiring bug.
  if (!em || !principal) throw new ConnectError("request scope missing", Code.Internal);
  return { em, actor: { organizationId: principal.organizationId, keyId: principal.keyId }, clock: systemClock };
}
