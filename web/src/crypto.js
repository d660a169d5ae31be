// Hashes and signatures for the browser verifier (docs/browser-verifier.md).
// SHA-256 and BLAKE3 come from hash-wasm (WebAssembly, inlined in the page); whole small
// files may use WebCrypto's SHA-256.  Ed25519 is checked with WebCrypto where the browser
// has it, else with @noble/curves (strict RFC 8032, like custody: signed-note.md).
import { createBLAKE3, createSHA256 } from "hash-wasm";
import { ed25519 } from "@noble/curves/ed25519.js";

export const enc = new TextEncoder();
export const dec = new TextDecoder("utf-8", { fatal: true });

export function hex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const subtle = globalThis.crypto && globalThis.crypto.subtle;

let sha256Hasher = null;
/** SHA-256 of a byte array (synchronous use of one wasm hasher; small inputs). */
export async function sha256(bytes) {
  if (subtle) return new Uint8Array(await subtle.digest("SHA-256", bytes));
  if (sha256Hasher === null) sha256Hasher = await createSHA256();
  sha256Hasher.init();
  sha256Hasher.update(bytes);
  return sha256Hasher.digest("binary");
}

/** A fresh streaming BLAKE3 hasher: {update(bytes), digestHex()}. */
export async function blake3Hasher() {
  const h = await createBLAKE3();
  h.init();
  return { update: (b) => h.update(b), digestHex: () => h.digest("hex") };
}

/** A fresh streaming SHA-256 hasher: {update(bytes), digestHex()}. */
export async function sha256Hasher2() {
  const h = await createSHA256();
  h.init();
  return { update: (b) => h.update(b), digestHex: () => h.digest("hex") };
}

// SHA-256 on another core: a worker started from the inlined source (build.mjs defines
// __SHA256_WORKER__); where there is none (node, or a browser refusing the worker) the
// hashing stays on this thread.  At most WINDOW bytes are in flight to the worker.
const WINDOW = 32 << 20;
let worker = null; // null: not tried; false: unavailable
function startWorker() {
  if (worker !== null) return worker;
  worker = false;
  try {
    if (typeof __SHA256_WORKER__ === "string" && typeof Worker === "function") {
      const url = URL.createObjectURL(new Blob([__SHA256_WORKER__], { type: "text/javascript" }));
      worker = new Worker(url);
    }
  } catch {
    worker = false;
  }
  return worker;
}

/**
 * A streaming SHA-256 hasher that may run on another core:
 * {update(bytes): Promise (resolve before the next update, for back-pressure), digestHex(): Promise<string>}.
 * `update` takes ownership of `bytes` (its buffer may be transferred).
 */
export async function parallelSha256() {
  const w = startWorker();
  if (!w) {
    const h = await sha256Hasher2();
    return { update: async (b) => h.update(b), digestHex: async () => h.digestHex() };
  }
  let inFlight = 0;
  let waiters = [];
  let done = null;
  let failed = null;
  w.onmessage = (e) => {
    const m = e.data;
    if (m.op === "ack") {
      inFlight -= m.n;
      const ready = waiters;
      waiters = [];
      ready.forEach((f) => f());
    } else if (m.op === "digest" && done) {
      done.resolve(m.hex);
    } else if (m.op === "error") {
      failed = new Error(`the SHA-256 worker failed: ${m.message}`);
      if (done) done.reject(failed);
      waiters.forEach((f) => f());
    }
  };
  w.postMessage({ op: "init" });
  return {
    async update(b) {
      if (failed) throw failed;
      let buf = b.buffer;
      if (b.byteOffset !== 0 || b.byteLength !== buf.byteLength) buf = b.slice().buffer;
      inFlight += buf.byteLength;
      w.postMessage({ op: "update", buf }, [buf]);
      while (inFlight > WINDOW && !failed) await new Promise((r) => waiters.push(r));
    },
    digestHex() {
      return new Promise((resolve, reject) => {
        done = { resolve, reject };
        if (failed) reject(failed);
        else w.postMessage({ op: "digest" });
      });
    },
  };
}

let webCryptoEd25519 = subtle ? null : false; // null: not yet probed
async function hasWebCryptoEd25519() {
  if (webCryptoEd25519 !== null) return webCryptoEd25519;
  try {
    await subtle.importKey("raw", new Uint8Array(32).fill(1), { name: "Ed25519" }, false, [
      "verify",
    ]);
    webCryptoEd25519 = true;
  } catch {
    webCryptoEd25519 = false;
  }
  return webCryptoEd25519;
}

/** Ed25519 verification of sig64 over msg with the 32-byte public key. */
export async function ed25519Verify(pub, msg, sig) {
  if (pub.length !== 32 || sig.length !== 64) return false;
  if (await hasWebCryptoEd25519()) {
    try {
      const key = await subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
      return await subtle.verify({ name: "Ed25519" }, key, sig, msg);
    } catch {
      return false; // a public key that is not a curve point
    }
  }
  try {
    return ed25519.verify(sig, msg, pub, { zip215: false });
  } catch {
    return false;
  }
}

// Canonical base64 (RFC 4648 §4, padded, zero padding bits): decode, re-encode, compare.
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
export function b64encode(bytes) {
  let s = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i + 1 === bytes.length) {
    const n = bytes[i] << 16;
    s += B64[n >> 18] + B64[(n >> 12) & 63] + "==";
  } else if (i + 2 === bytes.length) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + "=";
  }
  return s;
}

/** Decode canonical base64, or return null. */
export function b64decode(text) {
  if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text))
    return null;
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text[i + j];
      n = (n << 6) | (c === "=" ? 0 : B64.indexOf(c));
    }
    if (o < out.length) out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return b64encode(out) === text ? out : null;
}
