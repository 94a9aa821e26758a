// Two organizations with a write key each, straight in a database: the set-up of the integration
// tests that check a tenant never sees another's data.
import { ApiKeyStore } from "../../src/store/api-keys.js";
import type { MikroORM } from "../../src/store/orm.js";
import type { Actor } from "../../src/store/promotion-store.js";

export async function twoTenants(orm: MikroORM, slugs: [string, string] = ["acme", "globex"]): Promise<{ actor: Actor; other: Actor }> {
  const keys = new ApiKeyStore(orm.em.fork());
  const [a, b] = [await keys.ensureOrganization(slugs[0]), await keys.ensureOrganization(slugs[1])];
  return {
    actor: { organizationId: a.id, keyId: (await keys.createKey(a.id, "k", ["write"])).id },
    other: { organizationId: b.id, keyId: (await keys.createKey(b.id, "k", ["write"])).id },
  };
}
