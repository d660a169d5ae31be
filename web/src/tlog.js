// Checkpoint bodies (docs/spec/checkpoint.md §1), tlog-proof files (docs/spec/tlog-proof.md)
// and consistency files (docs/spec/bundle.md §5).  Pure.
import { b64decode, dec, equalBytes } from "./crypto.js";
import { FormatError, openNote, parseNote } from "./note.js";

const DECIMAL = /^(0|[1-9][0-9]*)$/;

export function parseDecimal(text, what) {
  if (!DECIMAL.test(text) || text.length > 20) throw new FormatError(`${what} is not a decimal number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new FormatError(`${what} is too large`);
  return n;
}

export function parseHash64(text, what) {
  const raw = b64decode(text);
  if (raw === null || raw.length !== 32) throw new FormatError(`${what} is not canonical base64 of 32 bytes`);
  return raw;
}

/** {origin, size, root, extensions} of a checkpoint note's text. */
export function parseCheckpointBody(text) {
  if (!text.endsWith("\n")) throw new FormatError("the checkpoint body does not end in a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new FormatError("the checkpoint body has fewer than three lines");
  if (lines.some((l) => l === "")) throw new FormatError("the checkpoint body has an empty line");
  return {
    origin: lines[0],
    size: parseDecimal(lines[1], "the checkpoint's tree size"),
    root: parseHash64(lines[2], "the checkpoint's root"),
    extensions: lines.slice(3),
    text,
  };
}

export class OriginMismatchError extends Error {}

/**
 * Open a checkpoint (checkpoint.md §4) with the log key and cosignature keys.
 * Returns {checkpoint, cosignatures: [{key, timestamp}]}.
 */
export async function openCheckpoint(bytes, logKey, witnessKeys = []) {
  const body = parseCheckpointBody(parseNote(bytes).text);
  if (body.origin !== logKey.name)
    throw new OriginMismatchError(`the checkpoint is of log '${body.origin}', not of '${logKey.name}'`);
  const { verifiedBy } = await openNote(bytes, [logKey, ...witnessKeys]);
  if (!verifiedBy.some((v) => v.key === logKey))
    throw new OriginMismatchError(`the checkpoint is not signed by the log key ${logKey.name}`);
  return {
    checkpoint: body,
    cosignatures: verifiedBy.filter((v) => v.key !== logKey),
  };
}

/** Parse a c2sp.org/tlog-proof@v1 file: {index, path: [Uint8Array], checkpoint: Uint8Array}. */
export function parseTlogProof(bytes) {
  let cut = -1;
  for (let i = 0; i + 1 < bytes.length; i++) {
    if (bytes[i] === 0x0a && bytes[i + 1] === 0x0a) {
      cut = i;
      break;
    }
  }
  if (cut < 0) throw new FormatError("no empty line before the checkpoint");
  let head;
  try {
    head = dec.decode(bytes.slice(0, cut));
  } catch {
    throw new FormatError("the header is not text");
  }
  if (!/^[\x20-\x7e\n]*$/.test(head)) throw new FormatError("the header is not ASCII");
  const lines = head.split("\n");
  if (lines[0] !== "c2sp.org/tlog-proof@v1") throw new FormatError("the first line is not c2sp.org/tlog-proof@v1");
  let i = 1;
  if (lines[i] !== undefined && lines[i].startsWith("extra ")) {
    const extra = b64decode(lines[i].slice(6));
    if (extra === null || extra.length === 0) throw new FormatError("the extra line is not canonical non-empty base64");
    i++;
  }
  if (lines[i] === undefined || !lines[i].startsWith("index ")) throw new FormatError("no index line");
  const index = parseDecimal(lines[i].slice(6), "the index");
  i++;
  const path = [];
  for (; i < lines.length; i++) path.push(parseHash64(lines[i], `proof hash ${path.length + 1}`));
  if (path.length > 64) throw new FormatError("more than 64 proof hashes");
  const checkpoint = bytes.slice(cut + 2);
  parseCheckpointBody(parseNote(checkpoint).text);
  return { index, path, checkpoint };
}

export function sameCheckpoint(a, b) {
  return a.origin === b.origin && a.size === b.size && equalBytes(a.root, b.root) && a.text === b.text;
}
