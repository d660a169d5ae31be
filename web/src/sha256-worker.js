// The SHA-256 worker of the browser verifier (docs/browser-verifier.md): the page hashes
// media with BLAKE3 on its own thread and SHA-256 here, on another core, in parallel.
// build.mjs bundles this file separately and inlines it as a string; the page starts it
// from a blob: URL (CSP worker-src blob:), so the worker has the page's policy: no network.
// Messages: {op: "init"} | {op: "update", buf: ArrayBuffer} -> {op: "ack", n} |
// {op: "digest"} -> {op: "digest", hex}.  Handled strictly in order.
import { createSHA256 } from "hash-wasm";

let hasher = null;
let chain = Promise.resolve();

async function handle(m) {
  if (m.op === "init") {
    if (hasher === null) hasher = await createSHA256();
    hasher.init();
  } else if (m.op === "update") {
    hasher.update(new Uint8Array(m.buf));
    self.postMessage({ op: "ack", n: m.buf.byteLength });
  } else if (m.op === "digest") {
    self.postMessage({ op: "digest", hex: hasher.digest("hex") });
  }
}

self.onmessage = (e) => {
  chain = chain.then(() => handle(e.data)).catch((err) => self.postMessage({ op: "error", message: String(err) }));
};
