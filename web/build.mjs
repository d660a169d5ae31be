// Build the one-file browser verifier (docs/browser-verifier.md): bundle web/src/main.js with
// esbuild (iife, minified, fixed target, no source map, no timestamps), inline it and
// web/src/style.css into web/src/page.html, write custody/assets/verify.html (or --out FILE).
// The SHA-256 worker (web/src/sha256-worker.js) is bundled first and handed to main.js as the
// string __SHA256_WORKER__.  The same sources and lockfile always give the same bytes
// (tests/unit/web/test_web_selfcheck.py checks).
import { build } from "esbuild";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outIndex = args.indexOf("--out");
const out = outIndex >= 0 ? args[outIndex + 1] : join(here, "..", "custody", "assets", "verify.html");
const LIMIT = 300 * 1024;

const common = {
  bundle: true,
  format: "iife",
  minify: true,
  target: ["chrome120", "firefox121", "safari17"],
  platform: "browser",
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  write: false,
  logLevel: "warning",
  absWorkingDir: here,
};
const worker = await build({ ...common, entryPoints: [join(here, "src", "sha256-worker.js")] });
const result = await build({
  ...common,
  entryPoints: [join(here, "src", "main.js")],
  define: { __SHA256_WORKER__: JSON.stringify(worker.outputFiles[0].text) },
});
let script = result.outputFiles[0].text;
// An inline <script> ends at the first "</script": keep the bundle from containing one.
script = script.replace(/<\/(script)/gi, "<\\/$1");
const css = readFileSync(join(here, "src", "style.css"), "utf8").trim();
const page = readFileSync(join(here, "src", "page.html"), "utf8");
if (!page.includes("/*SCRIPT*/") || !page.includes("/*STYLE*/")) throw new Error("page.html lacks its placeholders");
const html = page.replace("/*STYLE*/", () => css).replace("/*SCRIPT*/", () => script);
const bytes = Buffer.from(html, "utf8");
if (bytes.length > LIMIT) {
  console.error(`verify.html would be ${bytes.length} bytes, over the ${LIMIT}-byte limit`);
  process.exit(1);
}
const tmp = `${out}.tmp-${process.pid}`;
writeFileSync(tmp, bytes);
renameSync(tmp, out);
console.log(`${out}: ${bytes.length} bytes`);
