import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { DomainError } from "../domain/errors.js";
import { ApiKey, Organization } from "./entities.js";

// Organizations and their API keys. A key is shown once, at creation; only its SHA-256 is stored,
// so a database dump never yields a usable key.

export const SCOPES = ["read", "write", "redeem"] as const;
export type Scope = (typeof SCOPES)[number];

/** What a verified key grants. */
export interface Principal {
  keyId: string;
  organizationId: string;
  scopes: ReadonlySet<Scope>;
}

export interface KeySummary {
  id: string;
  name: string;
  prefix: string;
  scopes: Scope[];
  createdAt: Date;
  revokedAt: Date | null;
}

const KEY_PREFIX = "prm_";
const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** Parses a comma-separated scope list; throws naming the unknown scope. */
export function parseScopes(raw: string): Scope[] {
  const scopes = raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const s of scopes) {
    if (!(SCOPES as readonly string[]).includes(s)) {
      throw DomainError.of("invalid_argument", "invalid_scope", `unknown scope "${s}" (known: ${SCOPES.join(", ")})`, "scopes");
    }
  }
  if (scopes.length === 0) throw DomainError.of("invalid_argument", "required", "at least one scope is required", "scopes");
  return [...new Set(scopes)] as Scope[];
}

export class ApiKeyStore {
  constructor(private readonly em: EntityManager) {}

  /** The organization with this slug, created when missing. */
  async ensureOrganization(slug: string, name = slug): Promise<Organization> {
    if (!SLUG.test(slug)) {
      throw DomainError.of("invalid_argument", "invalid_format", `organization slug must match ${SLUG.source} (got "${slug}")`, "org");
    }
    const conn = this.em.getConnection();
    await conn.execute(
      "insert into organizations (id, slug, name, created_at) values (?, ?, ?, ?) on conflict (slug) do nothing",
      [randomUUID(), slug, name, new Date()],
    );
    return this.em.findOneOrFail(Organization, { slug });
  }

  async findOrganization(slug: string): Promise<Organization | null> {
    return this.em.findOne(Organization, { slug });
  }

  /** Creates a key; the returned `key` is the only time the secret exists outside the caller. */
  async createKey(organizationId: string, name: string, scopes: readonly Scope[]): Promise<{ id: string; key: string }> {
    const key = KEY_PREFIX + randomBytes(32).toString("base64url");
    const id = randomUUID();
    this.em.create(ApiKey, {
      id,
      organizationId,
      name,
      prefix: key.slice(0, 12),
      keyHash: hashKey(key),
      scopes: [...scopes],
      createdAt: new Date(),
      revokedAt: null,
    });
    await this.em.flush();
    return { id, key };
  }

  async listKeys(organizationId: string): Promise<KeySummary[]> {
    const keys = await this.em.find(ApiKey, { organizationId }, { orderBy: { createdAt: "asc" } });
    return keys.map((k) => ({
      id: k.id,
      name: k.name,
      prefix: k.prefix,
      scopes: k.scopes as Scope[],
      createdAt: k.createdAt,
      revokedAt: k.revokedAt ?? null,
    }));
  }

  /** Revokes a key; false when no such key exists. Revoking twice is harmless. */
  async revokeKey(id: string): Promise<boolean> {
    const affected = await this.em
      .getConnection()
      .execute("update api_keys set revoked_at = coalesce(revoked_at, ?) where id = ?", [new Date(), id], "run");
    return (affected as { affectedRows?: number }).affectedRows === 1;
  }

  /** Whether any key that is not revoked exists (used to decide the first-run key). */
  async hasActiveKey(): Promise<boolean> {
    return (await this.em.count(ApiKey, { revokedAt: null })) > 0;
  }

  /** The principal behind a presented key, or null when it is unknown or revoked. */
  async verify(key: string): Promise<Principal | null> {
    if (!key.startsWith(KEY_PREFIX) || key.length > 200) return null;
    const row = await this.em.findOne(ApiKey, { keyHash: hashKey(key), revokedAt: null });
    if (!row) return null;
    return { keyId: row.id, organizationId: row.organizationId, scopes: new Set(row.scopes as Scope[]) };
  }
}
