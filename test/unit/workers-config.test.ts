// WORKERS: how many server processes share the port (src/cluster.ts).
import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig WORKERS", () => {
  it.each([
    { env: {}, workers: 1 },
    { env: { NODE_ENV: "development" }, workers: 1 },
    { env: { NODE_ENV: "production" }, workers: Math.min(availableParallelism(), 64) },
    { env: { NODE_ENV: "production", WORKERS: "1" }, workers: 1 },
    { env: { WORKERS: "4" }, workers: 4 },
    { env: { WORKERS: "64" }, workers: 64 },
  ])("$env -> $workers", ({ env, workers }) => {
    expect(loadConfig(env).workers).toBe(workers);
  });

  it.each(["0", "65", "2.5", "many", "-1"])("refuses WORKERS=%s naming the variable and the range", (value) => {
    expect(() => loadConfig({ WORKERS: value })).toThrow(new ConfigError(`WORKERS must be an integer between 1 and 64 (got "${value}")`));
  });
});
