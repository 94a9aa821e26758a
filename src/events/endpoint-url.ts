import type { Violation } from "../domain/errors.js";
import { bareHost, destinationOf, isLocalhostName, nonPublicKind, type ResolveHost } from "./addresses.js";
import { isIP } from "node:net";

// The rules an endpoint URL must pass (CreateWebhookEndpoint, UpdateWebhookEndpoint). Every
// problem is reported against `param`, so the client learns which field to fix.

export const MAX_URL_LENGTH = 2048;

/** Whether a host is this machine: a loopback literal or a localhost name. */
function isLoopbackHost(host: string): boolean {
  if (isLocalhostName(host)) return true;
  return isIP(host) !== 0 && nonPublicKind(host) === "loopback";
}

/** The URL to store, or the violations; resolves the host to check where it points. */
export async function checkEndpointUrl(
  raw: string,
  opts: { allowPrivateNetworks: boolean; resolve: ResolveHost },
  param = "url",
): Promise<{ url: string; violations: Violation[] }> {
  const fail = (code: string, message: string) => ({ url: raw, violations: [{ param, code, message }] });
  if (raw.trim() === "") return fail("required", "url is required");
  if (raw.length > MAX_URL_LENGTH) return fail("too_long", `url must be at most ${MAX_URL_LENGTH} characters (got ${raw.length})`);
  if (/[\s\u0000-\u001f\u007f]/.test(raw)) return fail("invalid_format", "url must not contain spaces or control characters");
  if (!URL.canParse(raw)) return fail("invalid_format", "url must be an absolute URL such as https://hooks.example.com/promotions");
  const url = new URL(raw);
  if (url.protocol !== "https:" && url.protocol !== "http:") return fail("invalid_scheme", "url must use https");
  if (url.username !== "" || url.password !== "") return fail("invalid_format", "url must not carry a user name or password; authenticate with the signature");
  if (url.hash !== "") return fail("invalid_format", "url must not have a #fragment");
  const host = bareHost(url);
  if (host === "") return fail("invalid_format", "url must name a host");
  if (url.protocol === "http:" && !(opts.allowPrivateNetworks && isLoopbackHost(host))) {
    return fail("invalid_scheme", "url must use https (http is accepted only for loopback, where private networks are allowed)");
  }
  const destination = await destinationOf(url, opts.resolve, opts.allowPrivateNetworks);
  if (!destination.ok) {
    return destination.reason === "dns_failed"
      ? fail("unresolvable_host", `url's host ${destination.message.replace(/^\S+ /, "")}`)
      : fail("private_address", `url is refused: ${destination.message}; endpoints must be reachable on the public internet`);
  }
  return { url: url.toString(), violations: [] };
}
