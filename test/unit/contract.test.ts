// The contract itself: proto/ lints clean, gen/ is exactly what buf generate makes of it, and every
// element a client reads is documented (the comments are what `buf curl` and generated clients show).
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import {
  FileDescriptorSetSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
/** Our own contract; vendored grpc/ and google/ files are documented upstream. */
const CONTRACT_PREFIX = "promotions/v1/";

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs the buf CLI from node_modules in the repo root. node_modules/.bin goes first on PATH so the
 * local protoc-gen-es plugin runs, and on the devDependency Node 24 like `npm run generate` does.
 */
function buf(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(BIN, "buf"), ...args],
      { cwd: ROOT, env: { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ""}` }, encoding: "buffer", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        resolve({ code, stdout, stderr: stderr.toString("utf8") });
      },
    );
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

const temps: string[] = [];
afterAll(async () => {
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe("the proto contract", () => {
  it("passes buf lint (STANDARD rules) with no output", async () => {
    const res = await buf(["lint"]);
    expect({ code: res.code, stdout: res.stdout.toString("utf8"), stderr: res.stderr }).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it("has gen/ byte-for-byte equal to what buf generate makes from proto/ with buf.gen.yaml", async () => {
    const template = await readFile(join(ROOT, "buf.gen.yaml"), "utf8");
    expect(template, "this test assumes the one plugin writes to gen/").toMatch(/^\s+out: gen\s*$/m);
    const out = await mkdtemp(join(tmpdir(), "promotions-gen-"));
    temps.push(out);
    // --output prefixes the template's `out: gen`, so the fresh copy lands in <out>/gen.
    const res = await buf(["generate", "--output", out]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);

    const fresh = join(out, "gen");
    const committed = join(ROOT, "gen");
    const [want, have] = await Promise.all([filesUnder(fresh), filesUnder(committed)]);
    expect(want.length).toBeGreaterThan(0);
    const drift: string[] = [];
    for (const file of want) {
      if (!have.includes(file)) drift.push(`missing  gen/${file}`);
      else if (!(await readFile(join(fresh, file))).equals(await readFile(join(committed, file)))) drift.push(`changed  gen/${file}`);
    }
    for (const file of have) if (!want.includes(file)) drift.push(`stale    gen/${file}`);
    expect(drift, `gen/ has drifted from proto/; run npm run generate:\n  ${drift.join("\n  ")}\n`).toEqual([]);
  });
});

describe("documentation in the contract", () => {
  /** An undocumented element: its file and what it is. */
  type Gap = string;

  async function contractFiles(): Promise<FileDescriptorProto[]> {
    const res = await buf(["build", "--as-file-descriptor-set", "-o", "-#format=binpb"]);
    expect(res.stderr).toBe("");
    const files = fromBinary(FileDescriptorSetSchema, res.stdout).file.filter((f) => f.name.startsWith(CONTRACT_PREFIX));
    expect(files.length).toBeGreaterThan(0);
    return files;
  }

  /** Leading comments by source path ("4,0,2,3" = message 0, field 3). */
  function leadingComments(file: FileDescriptorProto): Map<string, string> {
    const comments = new Map<string, string>();
    for (const loc of file.sourceCodeInfo?.location ?? []) {
      if (loc.leadingComments?.trim()) comments.set(loc.path.join(","), loc.leadingComments);
    }
    return comments;
  }

  // Field numbers in descriptor.proto, as they appear in source paths.
  const FILE_MESSAGE = 4;
  const FILE_ENUM = 5;
  const FILE_SERVICE = 6;
  const MESSAGE_FIELD = 2;
  const MESSAGE_NESTED = 3;
  const MESSAGE_ENUM = 4;
  const ENUM_VALUE = 2;
  const SERVICE_METHOD = 2;

  interface Element {
    kind: "message" | "field" | "enum" | "enum value" | "service" | "rpc";
    name: string;
    path: number[];
  }

  /** Every element of a file with its source path; synthetic map-entry messages are left out. */
  function elements(file: FileDescriptorProto): Element[] {
    const out: Element[] = [];
    const enums = (list: EnumDescriptorProto[], scope: string, path: number[]) =>
      list.forEach((e, i) => {
        const name = `${scope}.${e.name}`;
        out.push({ kind: "enum", name, path: [...path, i] });
        e.value.forEach((v, j) => out.push({ kind: "enum value", name: `${name}.${v.name}`, path: [...path, i, ENUM_VALUE, j] }));
      });
    const messages = (list: DescriptorProto[], scope: string, path: number[]) =>
      list.forEach((m, i) => {
        if (m.options?.mapEntry) return;
        const name = `${scope}.${m.name}`;
        const at = [...path, i];
        out.push({ kind: "message", name, path: at });
        m.field.forEach((f, j) => out.push({ kind: "field", name: `${name}.${f.name}`, path: [...at, MESSAGE_FIELD, j] }));
        messages(m.nestedType, name, [...at, MESSAGE_NESTED]);
        enums(m.enumType, name, [...at, MESSAGE_ENUM]);
      });
    messages(file.messageType, file.package, [FILE_MESSAGE]);
    enums(file.enumType, file.package, [FILE_ENUM]);
    file.service.forEach((s, i) => {
      const name = `${file.package}.${s.name}`;
      out.push({ kind: "service", name, path: [FILE_SERVICE, i] });
      s.method.forEach((m, j) => out.push({ kind: "rpc", name: `${name}.${m.name}`, path: [FILE_SERVICE, i, SERVICE_METHOD, j] }));
    });
    return out;
  }

  async function undocumented(kinds: Element["kind"][], skip: (e: Element, file: FileDescriptorProto) => boolean = () => false): Promise<Gap[]> {
    const gaps: Gap[] = [];
    let checked = 0;
    for (const file of await contractFiles()) {
      const comments = leadingComments(file);
      for (const element of elements(file)) {
        if (!kinds.includes(element.kind) || skip(element, file)) continue;
        checked++;
        if (!comments.has(element.path.join(","))) gaps.push(`${file.name}: ${element.kind} ${element.name}`);
      }
    }
    expect(checked).toBeGreaterThan(0);
    return gaps;
  }

  it("gives every message and every field in proto/promotions/v1 a leading comment", async () => {
    const gaps = await undocumented(["message", "field"]);
    expect(gaps, `add a leading // comment to:\n  ${gaps.join("\n  ")}\n`).toEqual([]);
  });

  it("gives every service, RPC, enum and enum value (but the _UNSPECIFIED zero) a leading comment", async () => {
    const isZeroValue = (e: Element) => e.kind === "enum value" && e.name.endsWith("_UNSPECIFIED");
    const gaps = await undocumented(["service", "rpc", "enum", "enum value"], isZeroValue);
    expect(gaps, `add a leading // comment to:\n  ${gaps.join("\n  ")}\n`).toEqual([]);
  });
});
