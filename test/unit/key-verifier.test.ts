import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { keyVerifier, type KeyLookup } from "../../src/api/interceptors/auth.js";
import { DomainError } from "../../src/domain/errors.js";
import { clientAddress } from "../../src/server/server.js";
import type { Principal } from "../../src/store/api-keys.js";

// The verifier in front of the API key store, with a store that counts how often it is asked.

const VALID = "prm_valid";
const principal: Principal = { keyId: "k1", organizationId: "o1", scopes: new Set(["read"]) };

function countingStore(delayMs = 0): { lookup: KeyLookup; asked: () => number } {
  let asked = 0;
  return {
    lookup: async (key) => {
      asked++;
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      return key === VALID ? principal : null;
    },
    asked: () => asked,
  };
}

const randomKey = () => `prm_${randomBytes(16).toString("hex")}`;
const options = { ttlMs: 60_000, perAddressPerMinute: 60, perAddressBurst: 5 };

async function outcome(work: Promise<Principal | null>): Promise<string> {
  try {
    return (await work) === null ? "unknown" : "valid";
  } catch (error) {
    return error instanceof DomainError ? (error.details[0]?.code ?? "error") : "error";
  }
}

describe("keyVerifier", () => {
  it("asks the store at most the address's burst for random keys, and refuses the rest without asking", async () => {
    const store = countingStore();
    const verify = keyVerifier(store.lookup, options);
    const outcomes = [];
    for (let i = 0; i < 100; i++) outcomes.push(await outcome(verify(randomKey(), "10.0.0.1")));
    expect(store.asked()).toBe(5);
    expect(outcomes.filter((o) => o === "too_many_invalid_keys")).toHaveLength(95);
    // Another address has a budget of its own; a key known valid needs none.
    expect(await outcome(verify(randomKey(), "10.0.0.2"))).toBe("unknown");
  });

  it("asks once for one unknown key presented again and again, and once for calls presenting it at once", async () => {
    const store = countingStore(20);
    const verify = keyVerifier(store.lookup, options);
    const key = randomKey();
    expect(await Promise.all(Array.from({ length: 50 }, () => outcome(verify(key, "10.0.0.1"))))).toEqual(Array(50).fill("unknown"));
    for (let i = 0; i < 50; i++) expect(await outcome(verify(key, "10.0.0.1"))).toBe("unknown");
    expect(store.asked()).toBe(1);
  });

  it("remembers an unknown key even when valid keys are never cached (ttlMs 0)", async () => {
    const store = countingStore();
    const verify = keyVerifier(store.lookup, { ...options, ttlMs: 0 });
    const key = randomKey();
    for (let i = 0; i < 20; i++) expect(await outcome(verify(key, "10.0.0.1"))).toBe("unknown");
    for (let i = 0; i < 3; i++) expect(await outcome(verify(VALID, "10.0.0.1"))).toBe("valid");
    expect(store.asked()).toBe(1 + 3);
  });

  it("gives a valid key's token back, and lets a key once valid be asked again from an address over its budget", async () => {
    const store = countingStore();
    const verify = keyVerifier(store.lookup, { ...options, ttlMs: 0 });
    for (let i = 0; i < 10; i++) expect(await outcome(verify(VALID, "10.0.0.1"))).toBe("valid");
    for (let i = 0; i < 5; i++) expect(await outcome(verify(randomKey(), "10.0.0.1"))).toBe("unknown");
    expect(await outcome(verify(randomKey(), "10.0.0.1"))).toBe("too_many_invalid_keys");
    expect(await outcome(verify(VALID, "10.0.0.1"))).toBe("valid");
  });

  it("keeps its caches bounded: beyond maxEntries the oldest unknown key is asked about again", async () => {
    const store = countingStore();
    const verify = keyVerifier(store.lookup, { ttlMs: 60_000, perAddressPerMinute: 0, perAddressBurst: 0, maxEntries: 3 });
    const keys = [randomKey(), randomKey(), randomKey(), randomKey()];
    for (const k of keys) await verify(k, "10.0.0.1");
    expect(store.asked()).toBe(4);
    await verify(keys[3] ?? "", "10.0.0.1");
    expect(store.asked()).toBe(4);
    await verify(keys[0] ?? "", "10.0.0.1");
    expect(store.asked()).toBe(5);
  });
});

describe("clientAddress", () => {
  it.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:10.1.2.3", "10.1.2.3"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
  ])("keys %s by %s", (remote, expected) => {
    expect(clientAddress(remote)).toBe(expected);
  });
});
