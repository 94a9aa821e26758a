// package.json "exports": another TypeScript service imports the generated descriptors and types,
// and a client that sends its API key, by this package's name. Checked the two ways it happens:
// inside this repository (self-reference) and from a separate project that depends on it, where
// the code is both run (tsx) and type-checked (tsc, moduleResolution nodenext).
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromotionService } from "../../gen/promotions/v1/promotion_service_pb.js";
import { client, startTestApp, type TestApp } from "../support/app.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const NODE = join(ROOT, "node_modules/.bin/node");
const CONSUMER = fileURLToPath(new URL("./support/consumer.ts", import.meta.url));

interface ConsumerOutput {
  resolved: { client: string; gen: string; proto: string };
  methods: string[];
  live: string[];
}

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { name: string; exports: Record<string, string>; files: string[] };

describe("package.json exports", () => {
  it("names the package promotions-service and exports client, gen and proto, shipping exactly those folders", () => {
    expect(pkg.name).toBe("promotions-service");
    expect(Object.keys(pkg.exports)).toEqual(["./client", "./gen/*.js", "./proto/*", "./package.json"]);
    expect(pkg.files).toEqual(["client", "gen", "proto"]);
  });

  it("resolves promotions-service/… inside this repository, to the TypeScript sources", async () => {
    const { stdout } = await run(NODE, ["--import", "tsx", CONSUMER], { cwd: ROOT });
    const out = JSON.parse(stdout) as ConsumerOutput;
    expect(out.resolved).toEqual({
      client: `file://${ROOT}client/index.ts`,
      gen: `file://${ROOT}gen/promotions/v1/promotion_service_pb.ts`,
      proto: `file://${ROOT}proto/promotions/v1/promotion_service.proto`,
    });
    expect(out.methods).toEqual(["function", "function"]);
  });
});

describe("another TypeScript service that depends on promotions-service", () => {
  let t: TestApp;
  let key = "";
  let project = "";

  beforeAll(async () => {
    t = await startTestApp("package_exports");
    ({ key } = await t.tenant("billing"));
    const promotions = client(PromotionService, t.url, key);
    const { promotion } = await promotions.createPromotion({ name: "Partner 10%", currency: "USD", effects: [{ kind: { case: "percentageDiscount", value: { percentBps: 1000 } } }] });
    await promotions.activatePromotion({ id: promotion?.id ?? "" });

    // What `npm install ../promotions-service` leaves behind: a link in node_modules. Its own
    // dependencies (and tsx, @types/node) come from this repository's node_modules.
    project = mkdtempSync(join(tmpdir(), "promotions-consumer-"));
    const modules = join(project, "node_modules");
    mkdirSync(join(modules, "@types"), { recursive: true });
    symlinkSync(ROOT, join(modules, "promotions-service"));
    for (const dep of ["@connectrpc", "@bufbuild", "tsx", "@types/node"]) symlinkSync(join(ROOT, "node_modules", dep), join(modules, dep));
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "billing", type: "module", private: true }));
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "es2023", module: "nodenext", moduleResolution: "nodenext", strict: true, noEmit: true, skipLibCheck: true, types: ["node"] },
        include: ["main.ts"],
      }),
    );
    copyFileSync(CONSUMER, join(project, "main.ts"));
  });

  afterAll(async () => {
    if (project) rmSync(project, { recursive: true, force: true });
    await t?.stop();
  });

  it("runs the README's three lines against a real server, typed from the generated code", async () => {
    const { stdout } = await run(NODE, ["--import", "tsx", "main.ts", t.url], { cwd: project, env: { ...process.env, PROMOTIONS_API_KEY: key } });
    const out = JSON.parse(stdout) as ConsumerOutput;
    expect(out.live).toEqual(["Partner 10%"]);
    expect(out.resolved.client).toBe(`file://${ROOT}client/index.ts`);
  });

  it("type-checks with tsc under moduleResolution nodenext", async () => {
    const result = await run(join(ROOT, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], { cwd: project }).then(
      () => "",
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(result).toBe("");
  });
});
