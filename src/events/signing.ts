import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";

// Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-signature` holds one
// `v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">` per secret in use,
// separated by spaces. After a rotation the old secret signs too for ROTATION_OVERLAP_MS, so
// a receiver still configured with it keeps verifying while it switches.

export const ROTATION_OVERLAP_MS = 24 * 60 * 60 * 1000;
const SECRET_BYTES = 32;

/** A new signing secret in the Standard Webhooks format: `whsec_` + base64 of 32 random bytes. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(SECRET_BYTES).toString("base64")}`;
}

export interface EndpointSecrets {
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

/** The secrets that sign a delivery made at `now`: the current one, and the previous one during its overlap. */
export function secretsInUse(endpoint: EndpointSecrets, now: Date): string[] {
  const previousValid =
    endpoint.previousSecret !== null && endpoint.previousSecretExpiresAt !== null && endpoint.previousSecretExpiresAt.getTime() > now.getTime();
  return previousValid && endpoint.previousSecret !== null ? [endpoint.secret, endpoint.previousSecret] : [endpoint.secret];
}

/** The three Standard Webhooks headers of one attempt. */
export function signedHeaders(secrets: readonly string[], webhookId: string, timestamp: Date, body: string): Record<string, string> {
  const signature = secrets.map((secret) => new Webhook(secret).sign(webhookId, timestamp, body)).join(" ");
  return {
    "webhook-id": webhookId,
    "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
    "webhook-signature": signature,
  };
}
