// Builds the browser test page with esbuild (the bundler tsx already brings): page.ts, the
// generated clients it imports and connect-web, into one script beside the HTML shell.
import { readFile } from "node:fs/promises";
import { build } from "esbuild";

export interface BrowserPage {
  html: string;
  script: string;
}

export async function bundleBrowserPage(): Promise<BrowserPage> {
  const result = await build({
    entryPoints: [new URL("page.ts", import.meta.url).pathname],
    bundle: true,
    write: false,
    format: "iife",
    platform: "browser",
    target: "es2022",
    sourcemap: "inline",
    logLevel: "silent",
  });
  const script = result.outputFiles[0]?.text;
  if (script === undefined) throw new Error("esbuild produced no output for test/browser/page.ts");
  const html = await readFile(new URL("index.html", import.meta.url), "utf8");
  return { html, script };
}
