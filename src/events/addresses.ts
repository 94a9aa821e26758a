import { Resolver } from "node:dns/promises";
import { BlockList, isIP } from "node:net";

// Where a webhook may go. Unless private networks are allowed (development, tests), every address
// an endpoint's host resolves to must be a public unicast address: loopback, private, link-local
// (cloud metadata at 169.254.169.254 included), CGNAT, multicast, documentation and other special
// ranges are refused. The check runs when an endpoint is created or changed and again before
// every attempt, and the attempt connects to the very address that passed (pinned), so a DNS
// answer that changes in between (rebinding) cannot point a delivery at an internal service.

const RANGES: readonly [string, number, "ipv4" | "ipv6", string][] = [
  ["0.0.0.0", 8, "ipv4", "unspecified"],
  ["10.0.0.0", 8, "ipv4", "private"],
  ["100.64.0.0", 10, "ipv4", "shared (CGNAT)"],
  ["127.0.0.0", 8, "ipv4", "loopback"],
  ["169.254.0.0", 16, "ipv4", "link-local"],
  ["172.16.0.0", 12, "ipv4", "private"],
  ["192.0.0.0", 24, "ipv4", "reserved"],
  ["192.0.2.0", 24, "ipv4", "documentation"],
  ["192.88.99.0", 24, "ipv4", "reserved"],
  ["192.168.0.0", 16, "ipv4", "private"],
  ["198.18.0.0", 15, "ipv4", "benchmarking"],
  ["198.51.100.0", 24, "ipv4", "documentation"],
  ["203.0.113.0", 24, "ipv4", "documentation"],
  ["224.0.0.0", 4, "ipv4", "multicast"],
  ["240.0.0.0", 4, "ipv4", "reserved"],
  ["::", 128, "ipv6", "unspecified"],
  ["::1", 128, "ipv6", "loopback"],
  ["64:ff9b::", 96, "ipv6", "NAT64"],
  ["64:ff9b:1::", 48, "ipv6", "NAT64"],
  ["100::", 64, "ipv6", "discard"],
  ["2001::", 32, "ipv6", "Teredo"],
  ["2001:db8::", 32, "ipv6", "documentation"],
  ["2002::", 16, "ipv6", "6to4"],
  ["fc00::", 7, "ipv6", "private (unique local)"],
  ["fe80::", 10, "ipv6", "link-local"],
  ["fec0::", 10, "ipv6", "site-local"],
  ["ff00::", 8, "ipv6", "multicast"],
];

const LISTS = RANGES.map(([network, prefix, family, label]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, family);
  return { list, family, label };
});

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** Why `address` is not a public unicast address ("loopback", "private", …), or null when it is. */
export function nonPublicKind(address: string): string | null {
  const mapped = MAPPED_V4.exec(address)?.[1];
  if (mapped !== undefined) return nonPublicKind(mapped);
  const version = isIP(address);
  if (version === 0) return "not an IP address";
  const family = version === 4 ? "ipv4" : "ipv6";
  // ::ffff:0:0/96 written in hex (::ffff:7f00:1) is an IPv4 address too.
  if (family === "ipv6" && /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/i.test(address)) return "IPv4-mapped";
  for (const { list, family: f, label } of LISTS) if (f === family && list.check(address, family)) return label;
  return null;
}

/** A host that always means this machine (RFC 6761), whatever DNS says. */
export function isLocalhostName(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, "");
  return h === "localhost" || h.endsWith(".localhost");
}

/** The URL's host without IPv6 brackets. */
export function bareHost(url: URL): string {
  return url.hostname.startsWith("[") && url.hostname.endsWith("]") ? url.hostname.slice(1, -1) : url.hostname;
}

/** Every address a host resolves to; an IP literal is itself. Throws HostUnresolvable. */
export type ResolveHost = (hostname: string) => Promise<string[]>;

export class HostUnresolvable extends Error {
  override name = "HostUnresolvable";
}

const DNS_TIMEOUT_MS = 2_000;

/**
 * Resolves A and AAAA records through c-ares (never the libuv thread pool, so a slow DNS server
 * cannot starve file and crypto work), with `servers` when given. /etc/hosts is not consulted;
 * `localhost` names are loopback by definition.
 */
export function hostResolver(servers: readonly string[] = []): ResolveHost {
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  return async (hostname) => {
    if (isIP(hostname) !== 0) return [hostname];
    if (isLocalhostName(hostname)) return ["127.0.0.1", "::1"];
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
    const addresses = [...(v4.status === "fulfilled" ? v4.value : []), ...(v6.status === "fulfilled" ? v6.value : [])];
    if (addresses.length === 0) {
      const reason = v4.status === "rejected" ? v4.reason : v6.status === "rejected" ? v6.reason : undefined;
      const code = typeof reason === "object" && reason !== null && "code" in reason ? String(reason.code) : "no records";
      throw new HostUnresolvable(`${hostname} does not resolve (${code})`);
    }
    return addresses;
  };
}

/** The address a delivery connects to, or why there is none. */
export type Destination = { ok: true; address: string; family: 4 | 6 } | { ok: false; reason: "dns_failed" | "address_refused"; message: string };

/**
 * Resolves `url`'s host and picks the address to connect to. Unless private networks are allowed,
 * one non-public address among the answers refuses them all (an attacker controls the answer).
 */
export async function destinationOf(url: URL, resolve: ResolveHost, allowPrivateNetworks: boolean): Promise<Destination> {
  let addresses: string[];
  try {
    addresses = await resolve(bareHost(url));
  } catch (error) {
    return { ok: false, reason: "dns_failed", message: error instanceof HostUnresolvable ? error.message : `${url.hostname} does not resolve` };
  }
  if (!allowPrivateNetworks) {
    for (const address of addresses) {
      const kind = nonPublicKind(address);
      if (kind !== null) return { ok: false, reason: "address_refused", message: `${url.hostname} resolves to ${address}, a ${kind} address` };
    }
  }
  const address = addresses[0] ?? "";
  return { ok: true, address, family: isIP(address) === 6 ? 6 : 4 };
}
