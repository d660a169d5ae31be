// Run the browser verifier's verifyBundle in node over a bundle folder or .zip:
//   node web/test/verify-node.mjs BUNDLE KEYFILE   -> the result as JSON on stdout
// Used by tests/unit/web/test_web_selfcheck.py to compare with `custody verify-bundle`.
import { openAsBlob, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { bundleFromZip } from "../src/bundle.js";
import { verifyBundle } from "../src/verify.js";

const [bundlePath, keyFile] = process.argv.slice(2);
const key = readFileSync(keyFile, "utf8");

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

let bundle;
if (statSync(bundlePath).isDirectory()) {
  const files = new Map();
  for (const p of walk(bundlePath)) {
    const blob = await openAsBlob(p);
    files.set(relative(bundlePath, p).split("\\").join("/"), {
      size: blob.size,
      read: async () => new Uint8Array(await blob.arrayBuffer()),
      stream: () => blob.stream(),
    });
  }
  bundle = { label: bundlePath, files, ignored: [] };
} else {
  const blob = await openAsBlob(bundlePath);
  blob.name = bundlePath;
  bundle = await bundleFromZip(Object.assign(blob, { name: bundlePath }));
}
const result = await verifyBundle(bundle, key);
process.stdout.write(JSON.stringify(result, (k, v) => (v instanceof Map ? undefined : v), 2) + "\n");
