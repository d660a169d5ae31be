// C2SP signed notes, verifier keys and key ids (docs/spec/signed-note.md), and
// cosignature/v1 (docs/spec/checkpoint.md §3).  Pure apart from the crypto functions.
import { b64decode, concat, dec, ed25519Verify, enc, equalBytes, hex, sha256 } from "./crypto.js";

export const ALG_ED25519 = 0x01;
export const ALG_COSIGNATURE_V1 = 0x04;
const EM_DASH = "\u2014 ";

export class FormatError extends Error {}

function validKeyName(name) {
  // no '+', no Unicode space, every character printable (signed-note.md §2)
  return name.length > 0 && !/[+\s\p{C}\u2028\u2029]/u.test(name);
}

/** key id = SHA-256(name || 0x0A || type || public)[:4] */
export async function keyId(name, alg, pub) {
  const h = await sha256(concat(enc.encode(name), new Uint8Array([0x0a, alg]), pub));
  return h.slice(0, 4);
}

/** Parse "name+hex8+base64(type||pub)"; throws FormatError. */
export async function parseVerifierKey(text) {
  const line = text.trim();
  const a = line.indexOf("+");
  const b = a < 0 ? -1 : line.indexOf("+", a + 1);
  if (a < 0 || b < 0) throw new FormatError("a verifier key is name+keyid+base64");
  const name = line.slice(0, a);
  const idHex = line.slice(a + 1, b);
  if (!validKeyName(name)) throw new FormatError(`the key name ${JSON.stringify(name)} is not valid`);
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw new FormatError("the key id is not 8 hex digits");
  const raw = b64decode(line.slice(b + 1));
  if (raw === null || raw.length !== 33) throw new FormatError("the key is not canonical base64 of 33 bytes");
  const alg = raw[0];
  if (alg !== ALG_ED25519 && alg !== ALG_COSIGNATURE_V1)
    throw new FormatError(`unknown key type 0x${alg.toString(16).padStart(2, "0")}`);
  const pub = raw.slice(1);
  const id = await keyId(name, alg, pub);
  if (hex(id) !== idHex.toLowerCase()) throw new FormatError("the key id does not match the key");
  return { name, alg, pub, id, text: line };
}

/** The same key as a cosignature/v1 (0x04) key. */
export async function asCosignatureKey(key) {
  return { name: key.name, alg: ALG_COSIGNATURE_V1, pub: key.pub, id: await keyId(key.name, ALG_COSIGNATURE_V1, key.pub) };
}

export function keyLabel(key) {
  return `${key.name}+${hex(key.id)}`;
}

/** Parse a note (signed-note.md §1): {text: string, textBytes, signatures: [{name, id, sig, raw}]}. */
export function parseNote(bytes) {
  let s;
  try {
    s = dec.decode(bytes);
  } catch {
    throw new FormatError("the note is not valid UTF-8");
  }
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] < 0x20 && bytes[i] !== 0x0a) throw new FormatError("the note holds a control character");
  }
  const cut = s.lastIndexOf("\n\n");
  if (cut < 0) throw new FormatError("the note has no signature block");
  const text = s.slice(0, cut + 1);
  const block = s.slice(cut + 2);
  if (block.length === 0 || !block.endsWith("\n")) throw new FormatError("the note's signature block is empty or unterminated");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > 100) throw new FormatError("the note has more than 100 signatures");
  const signatures = [];
  for (const line of lines) {
    if (!line.startsWith(EM_DASH)) throw new FormatError("a signature line does not start with an em dash");
    const rest = line.slice(EM_DASH.length);
    const sp = rest.indexOf(" ");
    if (sp < 0) throw new FormatError("a signature line has no signature");
    const name = rest.slice(0, sp);
    if (!validKeyName(name)) throw new FormatError("a signature line has an invalid key name");
    const raw = b64decode(rest.slice(sp + 1));
    if (raw === null || raw.length < 5) throw new FormatError("a signature is not canonical base64 of at least 5 bytes");
    signatures.push({ name, id: raw.slice(0, 4), sig: raw.slice(4), raw });
  }
  return { text, textBytes: enc.encode(text), signatures };
}

export class SignatureError extends Error {}
export class UnverifiedNoteError extends Error {}

function u64(bytes) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** Check one signature line against one key (type 0x01 or 0x04). Returns the timestamp for 0x04. */
async function verifyLine(key, sigLine, textBytes) {
  if (key.alg === ALG_ED25519) {
    return (await ed25519Verify(key.pub, textBytes, sigLine.sig)) ? { ok: true } : { ok: false };
  }
  if (sigLine.sig.length !== 72) return { ok: false };
  const ts = u64(sigLine.sig.slice(0, 8));
  if (ts > 2n ** 63n - 1n) return { ok: false };
  const msg = concat(enc.encode(`cosignature/v1\ntime ${ts}\n`), textBytes);
  const ok = await ed25519Verify(key.pub, msg, sigLine.sig.slice(8));
  return { ok, timestamp: Number(ts) };
}

/**
 * Open a note with trusted keys (signed-note.md §5): every matching signature must
 * verify (else SignatureError naming the key), at least one must (else UnverifiedNoteError).
 * Returns {note, verifiedBy: [{key, timestamp?}]}.
 */
export async function openNote(bytes, keys) {
  const note = parseNote(bytes);
  const verifiedBy = [];
  for (const line of note.signatures) {
    for (const key of keys) {
      if (key.name !== line.name || !equalBytes(key.id, line.id)) continue;
      const r = await verifyLine(key, line, note.textBytes);
      if (!r.ok) throw new SignatureError(`the signature by ${keyLabel(key)} does not verify`);
      verifiedBy.push({ key, timestamp: r.timestamp });
    }
  }
  if (verifiedBy.length === 0) {
    const by = note.signatures.map((s) => `${s.name}+${hex(s.id)}`).join(", ");
    throw new UnverifiedNoteError(`no trusted key signed it (it is signed by ${by})`);
  }
  return { note, verifiedBy };
}
