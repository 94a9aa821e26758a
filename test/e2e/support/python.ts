// The Python gRPC client (test/e2e/python/client.py) with Debian's grpcio: its stubs generated from
// proto/ by Debian's protoc and grpc_python_plugin into a temporary directory, then run against
// a server URL. test/setup/system.sh installs the packages.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));

/** Debian's interpreter: python3-grpcio lives in its dist-packages (a `python3` on PATH may be another one). */
export const PYTHON = "/usr/bin/python3";
const GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin";

/**
 * The protoc arguments that generate the Python client: messages (`_pb2`) and service stubs
 * (`_pb2_grpc`) for every proto of promotions.v1, gRPC health and google.rpc.Status: the
 * README's command, with its `proto/promotions/v1/*.proto` expanded as the shell does. `proto/grpc`
 * comes first so health is the module `health.v1`, not a `grpc.health.v1` that grpcio's own
 * `grpc` package would hide.
 */
export function protocPythonArgs(out: string): string[] {
  const files = readdirSync(join(root, "proto/promotions/v1")).filter((f) => f.endsWith(".proto")).sort();
  return [
    "-I", "proto/grpc", "-I", "proto", "-I", "test/e2e/python/proto",
    `--python_out=${out}`, `--grpc_python_out=${out}`, `--plugin=protoc-gen-grpc_python=${GRPC_PYTHON_PLUGIN}`,
    ...files.map((f) => `proto/promotions/v1/${f}`),
    "proto/grpc/health/v1/health.proto", "test/e2e/python/proto/google/rpc/status.proto",
  ];
}

export interface PythonStubs {
  dir: string;
  remove(): void;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: root, env, timeout: 60_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${file} ${args.join(" ")} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Generates the stubs into a new temporary directory (never into the repository). */
export async function generatePythonStubs(): Promise<PythonStubs> {
  for (const tool of [PYTHON, GRPC_PYTHON_PLUGIN, "/usr/bin/protoc"]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: run test/setup/system.sh (npm test does) to install the Python client's Debian packages`);
  }
  const dir = mkdtempSync(join(tmpdir(), "promotions-python-"));
  await run("protoc", protocPythonArgs(dir));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs the Python client against `url` with `key`; resolves to the JSON object it printed. */
export async function runPythonClient<T>(stubs: PythonStubs, url: string, key: string): Promise<T> {
  const stdout = await run(PYTHON, ["test/e2e/python/client.py", url], {
    PATH: process.env.PATH,
    PYTHONPATH: stubs.dir,
    PYTHONDONTWRITEBYTECODE: "1",
    PROMOTIONS_API_KEY: key,
  });
  return JSON.parse(stdout) as T;
}
