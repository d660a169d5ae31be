// custody/entry/v1 entries (docs/spec/entry.md): strict canonical parsing of the text, the
// signed entry (note + cosignature/v1 countersignatures) and the typed fields of each of
// the 15 entry types.  Pure.  Messages are custody's own (custody/model/entry.py,
// custody/model/types.py, custody/model/names.py), so that a failure reads the same as in
// `custody verify-bundle`.
import { b64decode, hex, sha256, concat } from "./crypto.js";

export const VERSION = "custody/entry/v1";
export const MAX_ENTRY_BYTES = 64 * 1024;
export const MAX_COSIGNATURE_TIME = 253402300799; // 9999-12-31T23:59:59Z

export class FormatError extends Error {}

const KEY_RE = /^[a-z][a-z0-9._-]{0,63}$/;
const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\x00-\x1f\x7f]/;

function repr(s) {
  // Python's repr of a short string, near enough for messages: single quotes.
  return "'" + String(s).replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
}

/** Seconds since the epoch of a strict `YYYY-MM-DDTHH:MM:SSZ`; FormatError otherwise. */
export function parseTime(text, field = "time") {
  const m = TIME_RE.exec(text);
  if (m === null)
    throw new FormatError(`entry field '${field}' is not a UTC time like 2026-11-23T13:45:00Z: ${repr(text)}`);
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number);
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(ms);
  if (
    y < 1 ||
    back.getUTCFullYear() !== y ||
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    s > 59
  )
    throw new FormatError(`entry field '${field}' is not a valid date: ${repr(text)}`);
  return ms / 1000;
}

/** `YYYY-MM-DDTHH:MM:SSZ` of POSIX seconds. */
export function formatTime(seconds) {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The UTC day `YYYY-MM-DD` of POSIX seconds (what `until` is compared with). */
export function dayOf(seconds) {
  return formatTime(seconds).slice(0, 10);
}

function validDate(value) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const [y, m, d] = value.split("-").map(Number);
  const t = new Date(Date.UTC(y, m - 1, d));
  return y >= 1 && t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

function checkValue(key, value) {
  if (!value || value !== value.replace(/^ +| +$/g, ""))
    throw new FormatError(`entry field '${key}' must be non-empty without leading or trailing spaces`);
  if (CONTROL_RE.test(value)) throw new FormatError(`entry field '${key}' contains a control character`);
}

/** The canonical text of an entry {type, time, fields: [[key, value]...]}. */
export function entryText(entry) {
  const lines = [VERSION, `type ${entry.type}`, `time ${entry.time}`];
  for (const [k, v] of entry.fields) lines.push(`${k} ${v}`);
  return lines.join("\n") + "\n";
}

/** Parse entry text strictly (entry.md §Text): {type, time, fields, get(k), getAll(k)}. */
export function parseEntryText(text) {
  if (!text.endsWith("\n")) throw new FormatError("entry text does not end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines[0] !== VERSION)
    throw new FormatError(`entry does not start with '${VERSION}' (found ${repr(lines[0].slice(0, 40))})`);
  if (lines.length < 3 || !lines[1].startsWith("type ") || !lines[2].startsWith("time "))
    throw new FormatError("entry must have 'type' and 'time' as its 2nd and 3rd lines");
  const fields = [];
  for (let n = 3; n < lines.length; n++) {
    const line = lines[n];
    const sp = line.indexOf(" ");
    if (sp < 0) throw new FormatError(`entry line ${n + 1} is not 'key value': ${repr(line.slice(0, 60))}`);
    fields.push([line.slice(0, sp), line.slice(sp + 1)]);
  }
  const type = lines[1].slice(5);
  const time = lines[2].slice(5);
  if (!KEY_RE.test(type)) throw new FormatError(`entry type ${repr(type)} is not a lower-case word`);
  parseTime(time);
  for (const [key, value] of fields) {
    if (!KEY_RE.test(key) || key === "type" || key === "time")
      throw new FormatError(`entry field name ${repr(key)} is not allowed`);
    checkValue(key, value);
  }
  const entry = makeEntry(type, time, fields);
  if (entryText(entry) !== text) throw new FormatError("entry text is not in canonical form");
  return entry;
}

function makeEntry(type, time, fields) {
  return {
    type,
    time,
    fields,
    get(key) {
      for (const [k, v] of fields) if (k === key) return v;
      return null;
    },
    getAll(key) {
      return fields.filter(([k]) => k === key).map(([, v]) => v);
    },
  };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const SIG_PREFIX = "\u2014 ";

function u(ch) {
  return "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
}

function checkKeyName(name) {
  if (!name) throw new FormatError("key name is empty");
  for (const ch of name) {
    if (ch === "+") throw new FormatError(`key name ${repr(name)} contains '+'`);
    if (/\s/u.test(ch)) throw new FormatError(`key name ${repr(name)} contains a space (${u(ch)})`);
    if (/[\p{C}\p{Z}]/u.test(ch)) throw new FormatError(`key name ${repr(name)} contains a non-printable character (${u(ch)})`);
  }
}

function b64(text, what) {
  if (!text) throw new FormatError(`${what} is empty`);
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new FormatError(`${what} is not valid base64`);
  const raw = b64decode(text);
  if (raw === null) throw new FormatError(`${what} is not canonical base64`);
  return raw;
}

/** The offset where the first ill-formed UTF-8 sequence starts (Unicode Table 3-7), or null. */
export function firstBadUtf8(bytes) {
  const n = bytes.length;
  for (let i = 0; i < n; ) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let len;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + 1 >= n || bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k < len; k++) if (i + k >= n || (bytes[i + k] & 0xc0) !== 0x80) return i;
    i += len;
  }
  return null;
}

/**
 * The signed note of an entry (signed-note.md §1), with custody's messages
 * (custody.tlog.note.Note.parse): {text, textBytes, signatures: [{name, id, sig, raw}]}.
 */
export function parseEntryNote(bytes) {
  const bad = firstBadUtf8(bytes);
  if (bad !== null) throw new FormatError(`note is not valid UTF-8 at byte ${bad}`);
  const s = utf8.decode(bytes);
  const m = /[\x00-\x09\x0b-\x1f]/.exec(s);
  if (m !== null) throw new FormatError(`note contains control character ${u(m[0])} at offset ${[...s.slice(0, m.index)].length}`);
  const split = s.lastIndexOf("\n\n");
  if (split < 0) throw new FormatError("note has no blank line before its signatures");
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  if (!block) throw new FormatError("note has no signature lines after its last blank line");
  if (!block.endsWith("\n")) throw new FormatError("note does not end in a newline");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > 100) throw new FormatError(`note has ${lines.length} signatures; at most 100 allowed`);
  const signatures = lines.map((line, i) => {
    const where = `note signature line ${i + 1}`;
    if (!line.startsWith(SIG_PREFIX)) throw new FormatError(`${where} does not start with '— ' (em dash U+2014, space)`);
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.indexOf(" ");
    if (sp < 0) throw new FormatError(`${where} has no space between key name and signature`);
    const name = rest.slice(0, sp);
    try {
      checkKeyName(name);
    } catch (e) {
      throw new FormatError(`${where}: ${e.message}`);
    }
    const raw = b64(rest.slice(sp + 1), `${where}: signature`);
    if (raw.length <= 4) throw new FormatError(`${where}: signature is ${raw.length} bytes, too short for a key id and a signature`);
    return { name, id: raw.slice(0, 4), sig: raw.slice(4), raw };
  });
  return { text, textBytes: new TextEncoder().encode(text), signatures };
}

function u64(bytes) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/**
 * Parse the bytes of a log entry (a signed note whose text is an entry): {bytes, note,
 * text, entry, signatures, countersignatures: [{name, id, timestamp, line}]}.  A signature
 * of 72 bytes after its key id is read as a cosignature/v1 line.  FormatError if the note
 * or the entry is malformed.
 */
export function parseSignedEntry(bytes) {
  if (bytes.length > MAX_ENTRY_BYTES)
    throw new FormatError(`entry is ${bytes.length} bytes, over the ${MAX_ENTRY_BYTES} limit`);
  const note = parseEntryNote(bytes);
  const entry = parseEntryText(note.text);
  const countersignatures = [];
  for (const line of note.signatures) {
    if (line.sig.length !== 72) continue;
    const ts = u64(line.sig.slice(0, 8));
    if (ts > BigInt(MAX_COSIGNATURE_TIME))
      throw new FormatError(`countersignature by '${line.name}' claims a time after 9999-12-31T23:59:59Z`);
    countersignatures.push({ name: line.name, id: line.id, timestamp: Number(ts), line });
  }
  return {
    bytes,
    note,
    text: note.text,
    entry,
    signatures: note.signatures,
    countersignatures,
    signerNames: note.signatures.map((s) => s.name),
  };
}

/** The entry hash: lower-case hex of SHA-256(0x00 || bytes) (entry.md §References). */
export async function entryHash(bytes) {
  return hex(await sha256(concat(new Uint8Array([0]), bytes)));
}

/** The claimed time (POSIX seconds) of a parsed signed entry (entry.md §Claimed time). */
export function claimedTime(signed) {
  const e = signed.entry;
  if (e.type === "handoff") {
    const to = e.get("to");
    const c = to === null ? undefined : signed.countersignatures.find((x) => x.name === to);
    if (c !== undefined) return c.timestamp;
  }
  return parseTime(e.time);
}

// -- names (docs/spec/keyfile.md §Names; custody/model/names.py) ---------------------------

const ALNUM = /^[a-z0-9]$/;

function charName(ch) {
  if (ch > " " && ch < "\x7f") return `'${ch}'`;
  return "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
}

function checkName(name, what, maximum, punctuation) {
  if (!name) throw new FormatError(`${what} is empty`);
  const chars = [...name];
  if (chars.length > maximum)
    throw new FormatError(`${what} is ${chars.length} characters long; at most ${maximum} are allowed`);
  let position = 0;
  for (const ch of chars) {
    position++;
    if (ALNUM.test(ch)) continue;
    if (punctuation.includes(ch)) {
      if (position === 1) throw new FormatError(`${what} '${name}' starts with ${charName(ch)}`);
      continue;
    }
    if (/^[A-Z]$/.test(ch)) throw new FormatError(`${what} '${name}' has the upper-case letter ${charName(ch)}`);
    if (ch.codePointAt(0) > 0x7f)
      throw new FormatError(`${what} '${name}' has the non-ASCII character ${charName(ch)} at position ${position}`);
    throw new FormatError(`${what} '${name}' has the character ${charName(ch)} at position ${position}`);
  }
  return name;
}

export function checkPartyName(name) {
  return checkName(name, "party name", 64, "-._");
}

export function checkOrigin(origin) {
  checkName(origin, "log origin", 128, "-._/");
  if (origin.includes("//") || origin.endsWith("/"))
    throw new FormatError(`log origin '${origin}' has an empty path segment`);
  return origin;
}

// -- typed fields (docs/spec/entry.md §Event types; custody/model/types.py) ------------------

export const ROLES = ["owner", "agency", "lab", "court", "defence", "witness"];
export const ONWARD = ["none", "court", "any"];
export const LEGAL_BASES = ["consent", "warrant", "subpoena", "exigent", "voluntary", "emergency"];
export const ANALYSIS_KINDS = ["face-recognition", "licence-plate", "object-detection", "transcription", "other"];
export const DEFAULT_REVIEW_HOURS = 72;

// Each type's fields in spec order: [key, kind, property]; kind "req" (†), "opt", "num"
// (a required decimal integer) or "many" (repeatable).  Property defaults to the key in
// camelCase.
const EVIDENCE = [
  ["case", "req"],
  ["exhibit", "req"],
  ["item", "req"],
  ["name", "req"],
  ["name-bytes", "opt"],
  ["size", "num"],
  ["kind", "req"],
  ["sha256", "opt"],
  ["metadata", "opt"],
  ["content", "opt"],
  ["stream", "many", "streams"],
  ["tool", "opt"],
];

const FIELDS = {
  key: [
    ["action", "req"],
    ["party", "req"],
    ["role", "opt"],
    ["org", "opt"],
    ["vkey", "opt"],
    ["reason", "opt"],
    ["kept", "opt"],
    ["kept-others", "opt"],
    ["kept-log", "opt"],
    ["held-by", "opt"],
  ],
  ingest: [
    ...EVIDENCE,
    ["source", "opt"],
    ["legal-basis", "opt"],
    ["ref", "opt"],
    ["consent", "opt"],
    ["justification", "opt"],
    ["recorded", "opt"],
    ["location", "opt"],
    ["notes", "opt"],
    ["by", "req"],
    ["holder", "opt"],
  ],
  consent: [
    ["action", "req"],
    ["owner", "req"],
    ["case", "opt"],
    ["item", "many", "items"],
    ["purpose", "opt"],
    ["until", "opt"],
    ["onward", "opt"],
    ["consent", "opt"],
    ["request", "opt"],
  ],
  handoff: [
    ["case", "req"],
    ["item", "many", "items"],
    ["from", "req", "sender"],
    ["to", "req", "receiver"],
    ["purpose", "req"],
    ["authority", "opt"],
    ["offer", "req"],
  ],
  reject: [
    ["case", "req"],
    ["item", "many", "items"],
    ["from", "req", "sender"],
    ["to", "req", "receiver"],
    ["offer", "req"],
    ["by", "req"],
    ["reason", "req"],
  ],
  access: [
    ["case", "req"],
    ["item", "req"],
    ["by", "req"],
    ["purpose", "req"],
    ["action", "req"],
    ["out", "opt"],
  ],
  derive: [
    ...EVIDENCE,
    ["parent", "req"],
    ["op", "req"],
    ["param", "many", "params"],
    ["reason", "req"],
    ["by", "req"],
  ],
  request: [
    ["case", "req"],
    ["by", "req"],
    ["owner", "opt"],
    ["purpose", "req"],
    ["start", "req"],
    ["end", "req"],
    ["area", "opt"],
    ["answer-by", "opt"],
    ["ref", "opt"],
  ],
  refusal: [
    ["case", "req"],
    ["owner", "req"],
    ["request", "req"],
    ["reason", "opt"],
  ],
  review: [
    ["case", "req"],
    ["item", "req"],
    ["ingest", "req"],
    ["by", "req"],
    ["outcome", "req"],
    ["note", "req"],
  ],
  retention: [
    ["case", "req"],
    ["item", "opt"],
    ["until", "req"],
    ["basis", "req"],
    ["by", "req"],
  ],
  hold: [
    ["case", "req"],
    ["item", "opt"],
    ["action", "req"],
    ["hold", "opt"],
    ["reason", "req"],
    ["by", "req"],
  ],
  disposal: [
    ["case", "req"],
    ["item", "req"],
    ["by", "req"],
    ["reason", "req"],
  ],
  analysis: [
    ["case", "req"],
    ["item", "req"],
    ["by", "req"],
    ["kind", "req"],
    ["tool", "req"],
    ["tool-version", "req"],
    ["purpose", "req"],
    ["warrant", "opt"],
    ["result", "opt"],
    ["result-name", "opt"],
  ],
  policy: [
    ["forbid", "many"],
    ["warrant-required", "many", "warrantRequired"],
    ["review-within", "opt"],
    ["note", "opt"],
  ],
};

/** The 15 entry types this verifier knows (an entry of any other type is refused). */
export const KNOWN_TYPES = Object.freeze(Object.keys(FIELDS));

function camel(key) {
  return key.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
}

function parseInt10(type, key, text) {
  if (!/^[0-9]+$/.test(text) || text.length > 20 || (text.length > 1 && text[0] === "0"))
    throw new FormatError(`${type} entry field '${key}' is not a decimal number: ${repr(text.slice(0, 40))}`);
  return Number(text);
}

function oneOf(type, key, value, allowed) {
  if (value !== null && value !== undefined && !allowed.includes(value))
    throw new FormatError(`${type} entry field '${key}' is ${repr(value)}, not one of ${allowed.join(", ")}`);
}

function hashField(type, key, value) {
  if (!/^[0-9a-f]{64}$/.test(value))
    throw new FormatError(`${type} entry field '${key}' is not an entry hash: ${repr(value.slice(0, 40))}`);
}

export function timeField(type, key, value) {
  try {
    return parseTime(value, key);
  } catch {
    throw new FormatError(
      `${type} entry field '${key}' is not a UTC time like 2026-12-31T23:59:59Z: ${repr(value.slice(0, 40))}`,
    );
  }
}

function dateField(type, key, value) {
  if (!validDate(value))
    throw new FormatError(`${type} entry field '${key}' is not a date like 2026-12-31: ${repr(value.slice(0, 40))}`);
  return value;
}

function decimal(text, what) {
  if (!/^[+-]?[0-9]{1,9}(\.[0-9]{1,9})?$/.test(text))
    throw new FormatError(`${what}: ${repr(text.slice(0, 40))} is not a decimal number`);
  return Number(text);
}

/** `LAT,LON` in decimal degrees -> [lat, lon]; FormatError naming `what`. */
export function parseLocation(text, what = "location") {
  const parts = text.split(",");
  if (parts.length !== 2) throw new FormatError(`${what} ${repr(text.slice(0, 40))} is not 'LAT,LON' in decimal degrees`);
  const [lat, lon] = parts.map((p) => decimal(p.trim(), what));
  if (!(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180))
    throw new FormatError(`${what} ${repr(text.slice(0, 40))}: latitude or longitude out of range`);
  return [lat, lon];
}

/** `LAT,LON,RADIUS_M` -> {lat, lon, radius}; FormatError naming `what`. */
export function parseArea(text, what = "area") {
  const parts = text.split(",");
  if (parts.length !== 3)
    throw new FormatError(`${what} ${repr(text.slice(0, 40))} is not 'LAT,LON,RADIUS_M' (degrees, degrees, metres)`);
  const [lat, lon] = parseLocation(parts.slice(0, 2).join(","), what);
  const radius = decimal(parts[2].trim(), what);
  if (radius <= 0) throw new FormatError(`${what} ${repr(text.slice(0, 40))}: the radius must be more than 0 metres`);
  return { lat, lon, radius };
}

/** Great-circle distance in metres (haversine, sphere of radius 6,371,008.8 m). */
export function distanceM(lat1, lon1, lat2, lon2) {
  const r = 6371008.8;
  const rad = Math.PI / 180;
  const p1 = lat1 * rad;
  const p2 = lat2 * rad;
  const dp = p2 - p1;
  const dl = (lon2 - lon1) * rad;
  const a = Math.sin(dp / 2) ** 2 + Math.cos(p1) * Math.cos(p2) * Math.sin(dl / 2) ** 2;
  return 2 * r * Math.asin(Math.min(1, Math.sqrt(a)));
}

const CHECKS = {
  key(t) {
    if (!["register", "rotate", "revoke"].includes(t.action)) throw new FormatError(`unknown key action ${repr(t.action)}`);
    if (t.action === "register" && t.role === null) throw new FormatError("key entry has no 'role' field");
    if (t.action !== "revoke" && t.vkey === null) throw new FormatError("key entry has no 'vkey' field");
    const extra = [
      ["kept-others", t.keptOthers],
      ["kept-log", t.keptLog],
      ["held-by", t.heldBy],
    ];
    if (t.kept === null) {
      for (const [key, v] of extra) if (v !== null) throw new FormatError(`key entry field '${key}' is given without 'kept'`);
      return;
    }
    if (t.action === "revoke") throw new FormatError("key entry field 'kept' is not allowed on a revoke entry");
    oneOf("key", "kept", t.kept, ["own", "shared"]);
    if (t.keptOthers !== null && parseInt10("key", "kept-others", t.keptOthers) < 1)
      throw new FormatError("key entry field 'kept-others' is 0: leave it out instead");
    const named = (check, key, value) => {
      try {
        check(value);
      } catch (e) {
        throw new FormatError(`key entry field '${key}': ${e.message}`);
      }
    };
    if (t.keptLog !== null) named(checkOrigin, "kept-log", t.keptLog);
    if (t.heldBy !== null) {
      named(checkPartyName, "held-by", t.heldBy);
      if (t.heldBy === t.party) throw new FormatError("key entry field 'held-by' names the key's own party");
    }
    const shared = t.keptOthers !== null || t.heldBy !== null;
    if (t.kept === "own" && shared) throw new FormatError("key entry field 'kept' is 'own' but 'kept-others' or 'held-by' is given");
    if (t.kept === "shared" && !shared)
      throw new FormatError("key entry field 'kept' is 'shared' but has no 'kept-others' or 'held-by'");
  },
  ingest(t) {
    oneOf("ingest", "kind", t.kind, ["media", "attachment"]);
    if (t.consent !== null) hashField("ingest", "consent", t.consent);
    if (t.recorded !== null) t.recordedTime = timeField("ingest", "recorded", t.recorded);
    if (t.location !== null) parseLocation(t.location, "ingest entry field 'location'");
  },
  consent(t) {
    if (t.request !== null) {
      if (t.action !== "grant") throw new FormatError("consent entry field 'request' is allowed only on a grant");
      hashField("consent", "request", t.request);
    }
    if (!["grant", "revoke"].includes(t.action)) throw new FormatError(`unknown consent action ${repr(t.action)}`);
    if (t.action === "grant") {
      for (const key of ["onward", "case", "purpose"]) if (t[key] === null) throw new FormatError(`consent entry has no '${key}' field`);
      if (!ONWARD.includes(t.onward)) throw new FormatError(`onward ${repr(t.onward)} is not one of ${ONWARD.join(", ")}`);
      if (t.until !== null && !validDate(t.until)) throw new FormatError(`'until' is not a date like 2026-12-31: ${repr(t.until)}`);
    } else if (t.consent === null) throw new FormatError("consent entry has no 'consent' field");
  },
  access(t) {
    oneOf("access", "action", t.action, ["view", "export"]);
  },
  derive(t) {
    oneOf("derive", "kind", t.kind, ["media", "attachment"]);
    oneOf("derive", "op", t.op, ["trim", "redact", "transcode"]);
  },
  request(t) {
    t.startTime = timeField("request", "start", t.start);
    t.endTime = timeField("request", "end", t.end);
    if (t.startTime > t.endTime) throw new FormatError("request entry field 'start' is after its 'end'");
    if (t.area !== null) parseArea(t.area, "request entry field 'area'");
    if (t.answerBy !== null) dateField("request", "answer-by", t.answerBy);
    if (t.owner !== null) {
      try {
        checkPartyName(t.owner);
      } catch (e) {
        throw new FormatError(`key entry field 'owner': ${e.message}`);
      }
    }
  },
  refusal(t) {
    hashField("refusal", "request", t.request);
  },
  review(t) {
    hashField("review", "ingest", t.ingest);
    oneOf("review", "outcome", t.outcome, ["upheld", "rejected"]);
  },
  retention(t) {
    dateField("retention", "until", t.until);
  },
  hold(t) {
    oneOf("hold", "action", t.action, ["place", "release"]);
    if (t.action === "release") {
      if (t.hold === null) throw new FormatError("hold entry has no 'hold' field (the hold it releases)");
      hashField("hold", "hold", t.hold);
    } else if (t.hold !== null) throw new FormatError("hold entry field 'hold' is allowed only on a release");
  },
  analysis(t) {
    oneOf("analysis", "kind", t.kind, ANALYSIS_KINDS);
    if (t.result !== null && !/^[0-9a-f]{64}$/.test(t.result))
      throw new FormatError(`analysis entry field 'result' is not a BLAKE3: ${repr(t.result.slice(0, 40))}`);
  },
  policy(t) {
    for (const k of t.forbid) oneOf("policy", "forbid", k, ANALYSIS_KINDS);
    for (const k of t.warrantRequired) oneOf("policy", "warrant-required", k, ANALYSIS_KINDS);
    if (t.reviewWithin !== null && parseInt10("policy", "review-within", t.reviewWithin) < 1)
      throw new FormatError("policy entry field 'review-within' must be at least 1 (hours)");
    t.reviewHours = t.reviewWithin === null ? DEFAULT_REVIEW_HOURS : Number(t.reviewWithin);
  },
};

/**
 * The typed form of a parsed entry: an object with `type`, `time`, `entry` and one
 * property per field of its type (absent optional fields are null, repeatable ones
 * arrays).  FormatError naming the first field missing or malformed; for an unknown type
 * "unknown entry type '…'" (a verifier refuses it, never skips it).
 */
export function parseTyped(entry) {
  const spec = FIELDS[entry.type];
  if (spec === undefined) throw new FormatError(`unknown entry type '${entry.type}'`);
  const t = { type: entry.type, time: entry.time, entry };
  for (const [key, kind, prop] of spec) {
    const name = prop ?? camel(key);
    if (kind === "many") {
      t[name] = entry.getAll(key);
      continue;
    }
    const text = entry.get(key);
    if (text === null) {
      if (kind === "req" || kind === "num") throw new FormatError(`${entry.type} entry has no '${key}' field`);
      t[name] = null;
      continue;
    }
    t[name] = kind === "num" ? parseInt10(entry.type, key, text) : text;
  }
  const check = CHECKS[entry.type];
  if (check !== undefined) check(t);
  t.claimed = parseTime(entry.time);
  return t;
}
