// The bundle verification of docs/spec/bundle.md §6, in the browser.  Each failure is
// {check, where, message, index?} in the words of `custody verify-bundle`
// (custody/bundle/verify.py); what a browser cannot check is listed in `notChecked`.
import { b64encode, blake3Hasher, dec, enc, equalBytes, hex, parallelSha256, sha256 } from "./crypto.js";
import { FormatError, SignatureError, UnverifiedNoteError, asCosignatureKey, keyLabel, openNote, parseNote, parseVerifierKey, ALG_ED25519, ALG_COSIGNATURE_V1 } from "./note.js";
import { checkConsistency, checkInclusion, leafHash } from "./merkle.js";
import { openCheckpoint, parseCheckpointBody, parseDecimal, parseHash64, parseTlogProof } from "./tlog.js";
import { getInt, getList, getObj, getStr, parseStrictJson } from "./json.js";
import { pathProblem } from "./bundle.js";
import { replay } from "./rules.js";
import { parseSignedEntry, parseTyped } from "./entry.js";
import { checkLineage } from "./lineage.js";

const MANIFEST = "MANIFEST.json";
const STATEMENT = "statement.note";
const CHECKPOINT = "checkpoint.note";
const VERIFY_MD = "VERIFY.md";
const B3SUMS = "media/B3SUMS";
const SHA256SUMS = "media/SHA256SUMS";
const SIDECARS = ["framehash", "probe", "streamhash"];
const HINT_REEXPORT = "ask the exporting agency for a fresh copy of the bundle, and keep this one";
const HEX64 = /^[0-9a-f]{64}$/;
const CHUNK_NOTE = "not checked here: run custody verify-bundle";

export const NOT_CHECKED = [
  "re-measuring the media with ffmpeg's libraries (what changed in a file that does not match, and whether a matching file's metadata and packets are still as recorded): " + CHUNK_NOTE,
  "derivation lineage that needs the media decoded (a redaction's or transcode's frames; trims and copied sound are checked here from the packet lists): " + CHUNK_NOTE,
  "the checkpoints this computer saw before (a browser page keeps no memory between runs, so a log showing two histories to two readers is not detected here): " + CHUNK_NOTE,
  "RFC 3161 timestamps and the published-log and witness-quorum policies: " + CHUNK_NOTE,
];

export const short = (h) => (typeof h === "string" ? h : hex(h)).slice(0, 16) + "…";
const num = (n) => n.toLocaleString("en-US");

class Stop extends Error {}

/** Parse the trust text: one verifier key per non-empty line (a key file's text works too). */
export async function parseTrust(text) {
  const keys = [];
  for (const line of (text || "").split(/\r?\n/)) {
    const t = line.trim();
    if (!t || t.startsWith("#")) continue;
    // a key file written by `custody key export` is an entry with a `vkey` line
    const m = /^vkey (.+)$/.exec(t);
    if (!m && !/^[^\s+]+\+[0-9a-fA-F]{8}\+\S+$/.test(t)) continue;
    keys.push(await parseVerifierKey(m ? m[1] : t));
  }
  return keys;
}

export function parseStatement(text) {
  if (!text.endsWith("\n")) throw new FormatError("bundle statement does not end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines[0] !== "custody/bundle-statement/v1")
    throw new FormatError("bundle statement does not start with 'custody/bundle-statement/v1'");
  if (lines.length < 6) throw new FormatError("bundle statement is missing some of its first six lines");
  const heads = ["origin", "case", "exported", "checkpoint", "manifest"];
  const v = {};
  heads.forEach((key, n) => {
    const line = lines[n + 1];
    const sp = line.indexOf(" ");
    if (sp < 0 || line.slice(0, sp) !== key) throw new FormatError(`bundle statement line ${n + 2} should start with '${key} '`);
    v[key] = line.slice(sp + 1);
  });
  const [sizeText, rootText, extra] = v.checkpoint.split(" ");
  if (extra !== undefined || rootText === undefined) throw new FormatError("bundle statement: checkpoint is not '<size> <root>'");
  const size = parseDecimal(sizeText, "bundle statement: checkpoint size");
  const root = parseHash64(rootText, "bundle statement: checkpoint root");
  if (!HEX64.test(v.manifest)) throw new FormatError("bundle statement: manifest is not 64 lower-case hex digits");
  const entries = [];
  lines.slice(6).forEach((line, n) => {
    const p = line.split(" ");
    if (p.length !== 3 || p[0] !== "entry" || !/^(0|[1-9][0-9]*)$/.test(p[1]) || !HEX64.test(p[2]))
      throw new FormatError(`bundle statement line ${n + 7} is not 'entry <index> <hash>'`);
    const index = parseDecimal(p[1], "entry index");
    if (entries.length && index <= entries[entries.length - 1][0]) throw new FormatError(`bundle statement line ${n + 7}: indexes are not ascending`);
    if (index >= size) throw new FormatError(`bundle statement line ${n + 7}: entry ${index} is not below the checkpoint size`);
    entries.push([index, p[2]]);
  });
  return { origin: v.origin, case: v.case, exported: v.exported, size, root, manifest: v.manifest, entries };
}

function parsePath(v, where) {
  if (typeof v !== "string" || pathProblem(v)) throw new FormatError(`${where} is not a bundle path`);
  return v;
}
function hex64(obj, key, where, optional = false) {
  const v = getStr(obj, key, where, optional);
  if (v === null) return null;
  if (!HEX64.test(v)) throw new FormatError(`${where}: '${key}' is not 64 lower-case hex digits`);
  return v;
}

export function parseManifest(bytes) {
  const w = MANIFEST;
  const obj = parseStrictJson(bytes, w);
  const version = getStr(obj, "version", w);
  if (version !== "custody/bundle/v1") throw new FormatError(`${w}: version is '${version}', this verifier reads 'custody/bundle/v1'`);
  const cp = getObj(obj.checkpoint, `${w}: checkpoint`);
  if (getStr(cp, "file", `${w}: checkpoint`) !== CHECKPOINT) throw new FormatError(`${w}: checkpoint file is not ${CHECKPOINT}`);
  if (getStr(obj, "verify", w) !== VERIFY_MD) throw new FormatError(`${w}: 'verify' is not ${VERIFY_MD}`);
  const entries = [];
  getList(obj, "entries", w).forEach((raw, n) => {
    const ew = `${w}: entries[${n}]`;
    const e = getObj(raw, ew);
    const me = { index: getInt(e, "index", ew), hash: hex64(e, "hash", ew), type: getStr(e, "type", ew) };
    if (getStr(e, "file", ew) !== `entries/${me.index}.entry` || getStr(e, "proof", ew) !== `proofs/${me.index}.tlog-proof`)
      throw new FormatError(`${ew}: file names are not entries/${me.index}.entry and proofs/${me.index}.tlog-proof`);
    if (entries.length && me.index <= entries[entries.length - 1].index) throw new FormatError(`${ew}: index ${me.index} is out of order`);
    entries.push(me);
  });
  const consistency = [];
  getList(obj, "consistency", w).forEach((raw, n) => {
    const cw = `${w}: consistency[${n}]`;
    const c = getObj(raw, cw);
    const size = getInt(c, "old_size", cw);
    if (getStr(c, "file", cw) !== `consistency/${size}.json`) throw new FormatError(`${cw}: file is not consistency/${size}.json`);
    if (consistency.length && size <= consistency[consistency.length - 1]) throw new FormatError(`${cw}: old_size ${size} is out of order`);
    consistency.push(size);
  });
  getList(obj, "parties", w).forEach((raw, n) => {
    const pw = `${w}: parties[${n}]`;
    const p = getObj(raw, pw);
    for (const k of ["name", "role", "org", "vkey"]) getStr(p, k, pw);
    getInt(p, "registered_at", pw);
    getInt(p, "ended_at", pw, true);
    getStr(p, "end", pw, true);
  });
  const items = [];
  getList(obj, "items", w).forEach((raw, n) => {
    const iw = `${w}: items[${n}]`;
    const i = getObj(raw, iw);
    const sc = getObj(i.sidecars, `${iw}: sidecars`);
    const keys = Object.keys(sc).sort();
    if (keys.length && keys.join(",") !== SIDECARS.join(",")) throw new FormatError(`${iw}: sidecars must be none or probe, framehash, streamhash`);
    const kind = getStr(i, "kind", iw);
    if (kind !== "media" && kind !== "attachment") throw new FormatError(`${iw}: kind '${kind}' is not media or attachment`);
    const sidecars = {};
    for (const k of keys) sidecars[k] = parsePath(sc[k], `${iw}: sidecars.${k}`);
    items.push({
      item: hex64(i, "item", iw),
      exhibit: getStr(i, "exhibit", iw),
      name: getStr(i, "name", iw),
      size: getInt(i, "size", iw),
      kind,
      entry: getInt(i, "entry", iw),
      parent: hex64(i, "parent", iw, true),
      sidecars,
      media: i.media === undefined || i.media === null ? null : parsePath(i.media, `${iw}: media`),
    });
  });
  const report = getList(obj, "report", w).map((p, n) => parsePath(p, `${w}: report[${n}]`));
  const files = new Map();
  for (const [path, raw] of Object.entries(getObj(obj.files, `${w}: files`))) {
    const fw = `${w}: files['${path}']`;
    parsePath(path, fw);
    if (path === MANIFEST || path === STATEMENT) throw new FormatError(`${fw}: the manifest and the statement are not listed`);
    const f = getObj(raw, fw);
    files.set(path, { size: getInt(f, "size", fw), sha256: hex64(f, "sha256", fw) });
  }
  const m = {
    origin: getStr(obj, "origin", w),
    logKey: getStr(obj, "log_key", w),
    case: getStr(obj, "case", w),
    exported: getStr(obj, "exported", w),
    tool: getStr(obj, "tool", w),
    checkpointSize: getInt(cp, "size", `${w}: checkpoint`),
    checkpointRoot: parseHash64(getStr(cp, "root", `${w}: checkpoint`), `${w}: root`),
    entries,
    consistency,
    items,
    report,
    files,
  };
  const referenced = [CHECKPOINT, VERIFY_MD, ...report];
  for (const e of entries) referenced.push(`entries/${e.index}.entry`, `proofs/${e.index}.tlog-proof`);
  for (const s of consistency) referenced.push(`consistency/${s}.json`);
  for (const it of items) {
    referenced.push(...Object.values(it.sidecars));
    if (it.media !== null) referenced.push(it.media);
  }
  const missing = referenced.filter((p) => !files.has(p)).sort();
  if (missing.length) throw new FormatError(`${w}: ${missing[0]} is named but not listed in 'files'`);
  return m;
}

function parseConsistency(bytes, where) {
  const obj = parseStrictJson(bytes, where);
  const hashes = getList(obj, "proof", where);
  if (hashes.length > 128) throw new FormatError(`${where}: 'proof' has ${hashes.length} hashes; at most 128 possible`);
  return {
    oldSize: getInt(obj, "old_size", where),
    newSize: getInt(obj, "new_size", where),
    oldRoot: parseHash64(getStr(obj, "old_root", where), `${where}: old_root`),
    newRoot: parseHash64(getStr(obj, "new_root", where), `${where}: new_root`),
    proof: hashes.map((h, n) => {
      if (typeof h !== "string") throw new FormatError(`${where}: proof hash ${n + 1} is not a string`);
      return parseHash64(h, `${where}: proof hash ${n + 1}`);
    }),
    oldCheckpoint: getStr(obj, "old_checkpoint", where, true),
  };
}

// ---- sidecars (media.md §5, §6) ------------------------------------------------------

const TYPES = { v: "video", a: "audio", s: "subtitle", d: "data", t: "attachment" };

export function parseStreamhash(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const m = /^([0-9]+),([vasdt]),SHA256=([0-9a-f]{64})$/.exec(line);
    if (!m) throw new FormatError(`streamhash line is not '<index>,<type>,SHA256=<hex>': ${JSON.stringify(line.slice(0, 80))}`);
    out.push({ index: Number(m[1]), type: TYPES[m[2]], digest: m[3] });
  }
  return out;
}

/** Per stream: packet count and #extradata hash, from a framehash (lines column-padded by ffmpeg). */
export function parseFramehash(text) {
  const packets = new Map();
  const extradata = new Map();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^#extradata\s+([0-9]+),\s*([0-9]+),\s*([0-9a-f]{64})\s*$/.exec(line);
      if (m) extradata.set(Number(m[1]), m[3]);
      continue;
    }
    const parts = line.split(",").map((s) => s.trim());
    if (parts.length < 6 || !/^[0-9]+$/.test(parts[0]) || !/^[0-9a-f]{64}$/.test(parts[5]))
      throw new FormatError(`framehash line is not a packet line: ${JSON.stringify(line.slice(0, 80))}`);
    const s = Number(parts[0]);
    packets.set(s, (packets.get(s) || 0) + 1);
  }
  return { packets, extradata };
}

async function blake3Hex(bytes) {
  const h = await blake3Hasher();
  h.update(bytes);
  return h.digestHex();
}

// ---- the run -------------------------------------------------------------------------

export async function verifyBundle(bundle, trustKeyText, onProgress = () => {}) {
  const problems = [];
  const notes = [];
  const exhibits = [];
  const checked = [];
  const cosignatures = [];
  const failedPaths = new Set();
  const cache = new Map();
  const digests = new Map(); // path -> {size, sha256, blake3?}
  const files = bundle.files;
  const fail = (check, where, message, index = null, exhibit = null) => {
    const p = { check, where, message };
    if (index !== null && index !== undefined) p.index = index;
    problems.push(p);
    failedPaths.add(where);
    if (exhibit) exhibit.problems.push(p);
  };
  const stop = (check, where, message) => {
    fail(check, where, message);
    throw new Stop();
  };
  const read = async (name) => {
    if (cache.has(name)) return cache.get(name);
    const f = files.get(name);
    if (!f) return null;
    const data = await f.read();
    cache.set(name, data);
    return data;
  };
  const result = () => ({
    verdict: problems.length ? "NOT VERIFIED" : "VERIFIED",
    problems,
    exhibits,
    checked,
    cosignatures,
    notes,
    notChecked: NOT_CHECKED,
    ignored: bundle.ignored || [],
  });
  try {
    await run();
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
  }
  return result();

  async function run() {
    if (!files.has(MANIFEST) && !files.has(STATEMENT))
      stop("bundle", bundle.label || "the bundle", `is not a custody bundle: it has neither ${MANIFEST} nor ${STATEMENT}`);
    const statementBytes = await read(STATEMENT);
    const manifestBytes = await read(MANIFEST);
    if (statementBytes === null)
      stop("statement", STATEMENT, "is missing: without the log's signed statement nothing says which entries belong in this bundle");
    if (manifestBytes === null) stop("manifest", MANIFEST, "is missing");

    // 2. the statement and the log key
    let origin;
    try {
      origin = parseStatement(parseNote(statementBytes).text).origin;
    } catch (e) {
      if (e instanceof FormatError) stop("statement", STATEMENT, `is malformed: ${e.message}`);
      throw e;
    }
    let trusted;
    try {
      trusted = await parseTrust(trustKeyText);
    } catch (e) {
      stop("trust", "--trust", `the key given is not a verifier key: ${e.message}`);
    }
    const given = trusted.filter((k) => k.alg === ALG_ED25519 && k.name === origin);
    if (!given.length) {
      const names = [...new Set(trusted.map((k) => k.name))].sort().join(", ") || "none";
      stop("trust", "--trust", `the bundle is from log '${origin}', and none of the keys given is that log's (keys given for: ${names})`);
    }
    const sigIds = parseNote(statementBytes).signatures.map((s) => `${s.name}+${hex(s.id)}`);
    const logKey = given.find((k) => sigIds.includes(keyLabel(k))) || given[0];
    let statement;
    try {
      const opened = await openNote(statementBytes, [logKey]);
      statement = parseStatement(opened.note.text);
    } catch (e) {
      if (e instanceof UnverifiedNoteError)
        stop("statement", STATEMENT, `is not signed by the trusted log key ${keyLabel(logKey)} (it is signed by ${sigIds.join(", ")}): the bundle was not exported by the log you trust, or the key given is not that log's`);
      if (e instanceof SignatureError)
        stop("statement", STATEMENT, "the log's signature on the bundle statement does not verify: the list of entries or the manifest digest was altered after export");
      throw e;
    }
    checked.push(`the bundle statement is signed by the log key ${keyLabel(logKey)} (log ${statement.origin}, case ${statement.case}, exported ${statement.exported})`);

    // 3. the manifest
    const got = hex(await sha256(manifestBytes));
    if (got !== statement.manifest)
      stop("manifest", MANIFEST, `was altered after export: its SHA-256 is ${short(got)}, the log's signed bundle statement says ${short(statement.manifest)}`);
    let manifest;
    try {
      manifest = parseManifest(manifestBytes);
    } catch (e) {
      if (e instanceof FormatError) stop("manifest", MANIFEST, `is malformed: ${e.message}`);
      throw e;
    }
    const same = [
      ["origin", manifest.origin === statement.origin],
      ["case", manifest.case === statement.case],
      ["exported", manifest.exported === statement.exported],
      ["checkpoint size", manifest.checkpointSize === statement.size],
      ["checkpoint root", equalBytes(manifest.checkpointRoot, statement.root)],
      ["entries", JSON.stringify(manifest.entries.map((e) => [e.index, e.hash])) === JSON.stringify(statement.entries)],
    ];
    for (const [what, ok] of same) if (!ok) stop("manifest", MANIFEST, `its ${what} disagrees with the signed bundle statement`);

    // 4. the checkpoint
    const cpBytes = await read(CHECKPOINT);
    if (cpBytes === null) stop("checkpoint", CHECKPOINT, "is missing");
    let cp;
    try {
      cp = (await openCheckpoint(cpBytes, logKey)).checkpoint;
    } catch (e) {
      stop("checkpoint", CHECKPOINT, `does not verify with the log key: ${e.message}`);
    }
    if (cp.size !== statement.size || !equalBytes(cp.root, statement.root))
      stop("checkpoint", CHECKPOINT, `was replaced: it is the log's checkpoint of size ${cp.size} (root ${short(cp.root)}), but the signed bundle statement names size ${statement.size} (root ${short(statement.root)})`);
    checked.push(`the checkpoint (size ${cp.size}, root ${b64encode(cp.root)}) is signed by the log key`);

    // 5. entries
    const byHash = new Map(statement.entries.map(([i, h]) => [h, i]));
    const listed = new Set(statement.entries.map(([i]) => i));
    const present = new Map();
    let damaged = false;
    for (const [index, want] of statement.entries) {
      const name = `entries/${index}.entry`;
      const data = await read(name);
      if (data === null) {
        damaged = true;
        fail("entry", name, `is missing: log entry ${index} is listed in the log's signed bundle statement, so an entry was removed from the bundle`, index);
        continue;
      }
      const h = hex(await leafHash(sha256, data));
      if (h !== want) {
        damaged = true;
        const other = byHash.get(h);
        if (other !== undefined)
          fail("entry", name, `holds log entry ${other}, not log entry ${index} (by the leaf hashes in the log's signed bundle statement): the entries were reordered`, index);
        else
          fail("entry", name, `is not log entry ${index} as the log recorded it: its leaf hash is ${short(h)}, the log's signed bundle statement says ${short(want)}: the entry was altered after export`, index);
        continue;
      }
      present.set(index, data);
    }
    for (const name of [...files.keys()].sort()) {
      for (const [folder, re] of [["entries/", /^entries\/(0|[1-9][0-9]*)\.entry$/], ["proofs/", /^proofs\/(0|[1-9][0-9]*)\.tlog-proof$/]]) {
        if (!name.startsWith(folder)) continue;
        const m = re.exec(name);
        if (m === null || !listed.has(Number(m[1]))) {
          damaged = true;
          fail("entry", name, "is not in the log's signed bundle statement: it was added to the bundle after export");
        }
      }
    }

    // 6. inclusion proofs
    let included = 0;
    for (const [index, data] of present) {
      const name = `proofs/${index}.tlog-proof`;
      const raw = await read(name);
      if (raw === null) {
        fail("proof", name, `is missing: log entry ${index} has no inclusion proof`, index);
        continue;
      }
      let proof;
      try {
        proof = parseTlogProof(raw);
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        fail("proof", name, `is not a valid tlog-proof (truncated or altered): ${e.message}`, index);
        continue;
      }
      if (proof.index !== index) {
        fail("proof", name, `is a proof for log entry ${proof.index}, not for log entry ${index}`, index);
        continue;
      }
      const embedded = parseCheckpointBody(parseNote(proof.checkpoint).text);
      if (embedded.text !== cp.text) {
        fail("proof", name, `is against the log's checkpoint of size ${embedded.size}, not the bundle's checkpoint (size ${cp.size})`, index);
        continue;
      }
      try {
        await openCheckpoint(proof.checkpoint, logKey);
      } catch (e) {
        fail("proof", name, `its checkpoint does not verify with the log key: ${e.message}`, index);
        continue;
      }
      const why = await checkInclusion(sha256, index, cp.size, await leafHash(sha256, data), proof.path, cp.root);
      if (why !== null) {
        fail("proof", name, `the inclusion proof of log entry ${index} does not verify: ${why}`, index);
        continue;
      }
      included++;
    }
    checked.push(`${included} of ${statement.entries.length} entries are in the log's tree (RFC 9162 inclusion proofs)`);

    // 7-8. signatures and custody rules (rules.js)
    const entries = [...present].map(([index, bytes]) => {
      let text = null;
      try {
        text = dec.decode(bytes);
      } catch {
        /* reported by replay */
      }
      return { index, bytes, text, signers: [] };
    });
    const replayed = await replay(entries, logKey, { case: statement.case });
    const badSig = new Set();
    for (const p of replayed.problems) {
      if (p.check === "rule" && damaged) continue;
      const hasIndex = p.index !== undefined && p.index !== null;
      if (p.check === "signature" && hasIndex) badSig.add(p.index);
      const where = p.where ?? (hasIndex ? `entries/${p.index}.entry` : STATEMENT);
      fail(p.check, where, p.message, hasIndex ? p.index : null); // check `rule`: bundle.md §6.8
    }
    const NOT_REPLAYED = "the custody rules were not replayed";
    for (const n of replayed.notes) if (!n.startsWith(NOT_REPLAYED)) notes.push(n);
    if (damaged || badSig.size) notes.push(`${NOT_REPLAYED}: some entries are missing, altered or badly signed (see above)`);
    else if (!replayed.problems.length) checked.push("every entry's signatures verify with its parties' keys, and the custody rules hold over the bundle's entries");

    // 7. trusted party keys, and the key timeline of every party the entries need
    const typedAll = new Map();
    for (const [index, data] of present) {
      if (badSig.has(index)) continue;
      try {
        const signedEntry = parseSignedEntry(data);
        typedAll.set(index, { signed: signedEntry, t: parseTyped(signedEntry.entry) });
      } catch {
        /* reported by replay */
      }
    }
    trustedParties(trusted, logKey, replayed.parties);
    keyTimeline(typedAll, replayed.parties, cpBytes, logKey);

    // 9. consistency proofs
    for (const oldSize of manifest.consistency) {
      const name = `consistency/${oldSize}.json`;
      const data = await read(name);
      if (data === null) {
        fail("consistency", name, "is missing");
        continue;
      }
      let cf;
      try {
        cf = parseConsistency(data, name);
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        fail("consistency", name, `is malformed: ${e.message}`);
        continue;
      }
      if (cf.oldSize !== oldSize || cf.newSize !== cp.size || !equalBytes(cf.newRoot, cp.root)) {
        fail("consistency", name, `is not a proof from size ${oldSize} to the bundle's checkpoint (size ${cp.size}): it says ${cf.oldSize} to ${cf.newSize}`);
        continue;
      }
      if (cf.oldCheckpoint === null) {
        fail("consistency", name, "has no old_checkpoint");
        continue;
      }
      let old;
      try {
        old = (await openCheckpoint(enc.encode(cf.oldCheckpoint), logKey)).checkpoint;
      } catch (e) {
        fail("consistency", name, `its old checkpoint does not verify with the log key: ${e.message}`);
        continue;
      }
      if (old.size !== oldSize || !equalBytes(old.root, cf.oldRoot)) {
        fail("consistency", name, `its old_root/old_size are not those of its old checkpoint (size ${old.size})`);
        continue;
      }
      const why = await checkConsistency(sha256, oldSize, cp.size, old.root, cp.root, cf.proof);
      if (why !== null) {
        fail("consistency", name, `the log's checkpoint of size ${oldSize} is not consistent with the bundle's (size ${cp.size}): ${why}`);
        continue;
      }
      checked.push(`the log's earlier checkpoint of size ${oldSize} is consistent with the bundle's (RFC 9162 consistency proof)`);
    }

    // 11. items
    const typed = new Map([...typedAll].map(([i, v]) => [i, v.t]));
    await items(manifest, statement, typed, replayed);

    // 12. cosignatures
    await cosign(cpBytes, logKey, trusted, replayed.parties);

    // 13a, 13. check files and every file
    await sums(manifest);
    await allFiles(manifest);
  }

  function trustedParties(trusted, logKey, parties) {
    for (const key of trusted) {
      if (key === logKey || (key.name === logKey.name && key.alg === ALG_ED25519)) continue;
      const history = parties && parties.keys ? parties.keys.get(key.name) : undefined;
      if (!history || !history.length) {
        notes.push(`key ${key.text} (given with --trust) is not a party of this bundle: used to check cosignatures only`);
        continue;
      }
      if (!history.some((k) => equalBytes(k.vkey.pub, key.pub))) {
        const registered = history.map((k) => `${keyLabel(k.vkey)} (entry ${k.registeredAt})`).join(", ");
        fail("trust", "--trust", `the key given for party '${key.name}' (${keyLabel(key)}) is not a key the log registered for '${key.name}' (it registered ${registered}): the bundle's signatures by '${key.name}' are not by the key you trust`);
      }
    }
  }

  /** Spec §2.1: every party a non-key entry signs or names has key entries in the bundle. */
  function keyTimeline(typedAll, parties, cpBytes, logKey) {
    const needed = new Map();
    for (const [index, { signed, t }] of [...typedAll].sort((a, b) => a[0] - b[0])) {
      if (t.type === "key" || t.type === "policy") continue;
      for (const name of [...signed.signerNames, ...namedParties(t)]) if (name && !needed.has(name)) needed.set(name, index);
    }
    const have = parties && parties.keys ? parties.keys : new Map();
    for (const [name, index] of [...needed].sort((a, b) => a[1] - b[1])) {
      if (!have.has(name))
        fail("keys", STATEMENT, `lists no key entry of party '${name}', whom log entry ${index} names: the bundle leaves out part of the key timeline its entries need`, index);
    }
    let cosigners = new Set();
    try {
      cosigners = new Set(parseNote(cpBytes).signatures.map((x) => x.name).filter((n) => n !== logKey.name));
    } catch {
      /* the checkpoint was checked above */
    }
    const extra = [...have.keys()].filter((n) => !needed.has(n) && !cosigners.has(n)).sort();
    if (extra.length)
      notes.push(`the bundle carries the key entries of ${extra.join(", ")}, whom none of its entries signs or names: it tells more than it must (docs/spec/bundle.md §2.1)`);
  }

  async function digestsOf(path, withBlake3) {
    const have = digests.get(path);
    if (have && (!withBlake3 || have.blake3)) return have;
    const f = files.get(path);
    if (!f) return null;
    const s = await parallelSha256();
    const b = withBlake3 ? await blake3Hasher() : null;
    const reader = f.stream().getReader();
    let done = 0;
    onProgress({ path, done, total: f.size });
    let last = 0;
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      const n = r.value.length;
      if (b) b.update(r.value); // BLAKE3 here, before the chunk is handed to the worker
      await s.update(r.value);
      done += n;
      if (done - last >= 8 << 20) {
        last = done;
        onProgress({ path, done, total: f.size });
      }
    }
    onProgress({ path, done, total: f.size });
    const d = { size: done, sha256: await s.digestHex(), blake3: b ? b.digestHex() : null };
    digests.set(path, d);
    return d;
  }

  async function items(manifest, statement, typed, replayed) {
    const defined = new Map();
    for (const [index, t] of [...typed].sort((a, b) => a[0] - b[0])) {
      if ((t.type === "ingest" || t.type === "derive") && t.case === statement.case && !defined.has(t.item))
        defined.set(t.item, { index, t });
    }
    const disposed = new Map();
    for (const [index, t] of [...typed].sort((a, b) => a[0] - b[0])) {
      if (t.type === "disposal" && t.case === statement.case && t.item && !disposed.has(t.item))
        disposed.set(t.item, { by: t.by, time: t.entry.time, index, reason: t.reason });
    }
    const derived = [];
    const listedItems = new Set(manifest.items.map((m) => m.item));
    for (const [b3, it] of defined) {
      if (!listedItems.has(b3)) fail("item", MANIFEST, `exhibit ${it.t.exhibit} (log entry ${it.index}) is missing from the manifest`, it.index);
    }
    const exhibitOf = (b3) => (defined.get(b3) ? defined.get(b3).t.exhibit : b3.slice(0, 16));
    for (const mi of manifest.items) {
      const ex = {
        exhibit: mi.exhibit, name: mi.name, kind: mi.kind, size: mi.size, item: mi.item, entry: mi.entry,
        parent: mi.parent, media: mi.media, checked: [], problems: [], notChecked: [], holder: null, signers: [],
      };
      exhibits.push(ex);
      const found = defined.get(mi.item);
      if (!found) {
        fail("item", MANIFEST, `lists item ${short(mi.item)} (${mi.exhibit}), which no verified entry in the bundle records`, null, ex);
        continue;
      }
      const e = found.t;
      ex.sha256 = e.sha256 || null;
      ex.signers = [e.by].filter(Boolean);
      const st = replayed.items && replayed.items.get(`${statement.case}\0${mi.item}`);
      if (st && st.holder) ex.holder = st.holder;
      const mine = { exhibit: mi.exhibit, name: mi.name, size: String(mi.size), kind: mi.kind, entry: mi.entry, parent: mi.parent };
      const theirs = { exhibit: e.exhibit, name: e.name, size: String(e.size), kind: e.kind, entry: found.index, parent: e.type === "derive" ? e.parent : null };
      for (const k of Object.keys(mine)) {
        if (mine[k] !== theirs[k])
          fail("item", MANIFEST, `item ${mi.exhibit}: '${k}' is ${pyRepr(mine[k])}, but log entry ${found.index} says ${pyRepr(theirs[k])}`, found.index, ex);
      }
      const disp = disposed.get(mi.item);
      if (disp) ex.checked.push(`disposed by ${disp.by} at ${disp.time} (entry ${disp.index})`);
      await sidecars(mi, found, ex, disp);
      await media(mi, found, ex, defined, exhibitOf, disp);
      if (e.type === "derive") derived.push([mi, found, ex]);
    }
    // Lineage (verify-bundle's `_lineage`): a trim and copied sound from the packet lists;
    // a redaction's or transcode's pixels need decoding.
    for (const [, found, ex] of derived) {
      const e = found.t;
      const parent = defined.get(e.parent);
      const records = parent && parent.framehash !== undefined && found.framehash !== undefined ? [parent.framehash, found.framehash] : null;
      const r = checkLineage(e, found.index, exhibitOf(e.parent), ex.exhibit, records);
      ex.checked.push(...r.checked);
      notes.push(...r.notes);
      if (r.failure) fail("lineage", r.failure.where, r.failure.message, found.index, ex);
      if (e.op !== "trim") ex.notChecked.push(`its derivation (${e.op}) from its parent, frame by frame: ${CHUNK_NOTE}`);
    }
  }

  async function sidecars(mi, found, ex, disp) {
    const e = found.t;
    const metadata = e.metadata || null;
    const content = e.content || null;
    if (!Object.keys(mi.sidecars).length) {
      if (disp && (metadata || content)) ex.checked.push("its metadata snapshot and packet lists left the evidence store with it");
      else if (metadata || content)
        fail("sidecar", MANIFEST, `exhibit ${mi.exhibit} has metadata and content digests in log entry ${found.index}, but the bundle carries no sidecars for it`, found.index, ex);
      return;
    }
    const data = {};
    for (const kind of ["probe", "framehash", "streamhash"]) {
      const path = mi.sidecars[kind];
      const raw = await read(path);
      if (raw === null) {
        fail("sidecar", path, `is missing (${kind} of exhibit ${mi.exhibit})`, null, ex);
        return;
      }
      data[kind] = raw;
    }
    let fh, sh;
    try {
      fh = parseFramehash(dec.decode(data.framehash));
      found.framehash = dec.decode(data.framehash);
    } catch (err) {
      fail("sidecar", mi.sidecars.framehash, `is malformed (the framehash of exhibit ${mi.exhibit}): ${err.message}`, null, ex);
      return;
    }
    try {
      sh = parseStreamhash(dec.decode(data.streamhash));
    } catch (err) {
      fail("sidecar", mi.sidecars.streamhash, `is malformed (the streamhash of exhibit ${mi.exhibit}): ${err.message}`, null, ex);
      return;
    }
    let ok = true;
    const metaDigest = await blake3Hex(data.probe);
    if (metadata && metaDigest !== metadata) {
      ok = false;
      fail("sidecar", mi.sidecars.probe, `the metadata snapshot of exhibit ${mi.exhibit} hashes to ${short(metaDigest)}, but log entry ${found.index} (field metadata) says ${short(metadata)}: the snapshot was altered`, found.index, ex);
    }
    const streams = sh.map((s) => ({ ...s, packets: fh.packets.get(s.index) || 0, extradata: fh.extradata.get(s.index) || "-" }));
    const contentText = "custody/content/v1\n" + streams.map((s) => `${s.index} ${s.type} ${s.packets} ${s.digest} ${s.extradata}\n`).join("");
    const contentDigest = await blake3Hex(enc.encode(contentText));
    if (content && contentDigest !== content) {
      ok = false;
      fail("sidecar", mi.sidecars.framehash, `the packet lists of exhibit ${mi.exhibit} (framehash, streamhash) give content digest ${short(contentDigest)}, but log entry ${found.index} (field content) says ${short(content)}: the packet lists were altered`, found.index, ex);
    }
    for (const line of e.streams || []) {
      const parts = line.split(" ");
      if (!/^[0-9]{1,20}$/.test(parts[0])) continue;
      const n = Number(parts[0]);
      const have = streams.find((s) => s.index === n);
      if (!have || !parts.includes(have.digest) || !parts.includes(String(have.packets))) {
        ok = false;
        const gotText = have ? `${have.packets} packets, ${short(have.digest)}` : "no stream";
        fail("sidecar", mi.sidecars.streamhash, `stream ${n} of exhibit ${mi.exhibit}: the packet lists give ${gotText}, but log entry ${found.index} (field stream) says ${pyRepr(line)}`, found.index, ex);
      }
    }
    if (ok) ex.checked.push(`metadata snapshot and packet lists match log entry ${found.index}`);
  }

  async function media(mi, found, ex, defined, exhibitOf, disp) {
    if (mi.media === null) {
      if (!disp) ex.checked.push("the file itself is not in the bundle");
      return;
    }
    const d = files.has(mi.media) ? await digestsOf(mi.media, true) : null;
    if (d === null) {
      fail("media", mi.media, `is missing: the manifest says exhibit ${mi.exhibit} was exported with its file`, null, ex);
      return;
    }
    const e = found.t;
    if (d.blake3 !== mi.item || d.size !== e.size) {
      const other = defined.get(d.blake3);
      if (other) {
        fail("media", mi.media, `holds the bytes of exhibit ${exhibitOf(d.blake3)} (${other.t.name}), not those of exhibit ${mi.exhibit} (${mi.name}): the media files were swapped`, found.index, ex);
        return;
      }
      const sizes = d.size === e.size ? "" : ` (${num(d.size)} bytes, the log says ${num(e.size)})`;
      fail("media", mi.media, `is not the file of exhibit ${mi.exhibit} that log entry ${found.index} recorded: its BLAKE3 is ${short(d.blake3)}, the log says ${short(mi.item)} (field item)${sizes}: the file was altered`, found.index, ex);
      ex.notChecked.push(`what changed in the file (ffprobe): ${CHUNK_NOTE}`);
      return;
    }
    if (e.sha256 && d.sha256 !== e.sha256) {
      fail("media", mi.media, `its SHA-256 is ${short(d.sha256)}, log entry ${found.index} (field sha256) says ${short(e.sha256)}`, found.index, ex);
      return;
    }
    ex.checked.unshift(`file bit-for-bit as recorded (BLAKE3 ${short(mi.item)}, ${num(d.size)} bytes${e.sha256 ? ", SHA-256 too" : ""})`);
    ex.blake3 = d.blake3;
    ex.fileSha256 = d.sha256;
    if (e.metadata || e.content) ex.notChecked.push(`re-probing the file with ffprobe: ${CHUNK_NOTE}`);
  }

  async function cosign(cpBytes, logKey, trusted, parties) {
    const keys = new Map();
    if (parties && parties.keys) {
      for (const history of parties.keys.values()) {
        for (const pk of history) {
          const k = await asCosignatureKey(pk.vkey);
          keys.set(keyLabel(k), { key: k, role: pk.role, trusted: false });
        }
      }
    }
    for (const g of trusted) {
      if (g.name === logKey.name && g.alg === ALG_ED25519) continue;
      const k = g.alg === ALG_COSIGNATURE_V1 ? g : await asCosignatureKey(g);
      const had = keys.get(keyLabel(k));
      keys.set(keyLabel(k), { key: k, role: had ? had.role : null, trusted: true });
    }
    let opened;
    try {
      opened = await openCheckpoint(cpBytes, logKey, [...keys.values()].map((v) => v.key));
    } catch (e) {
      fail("cosignature", CHECKPOINT, `a witness cosignature does not verify: ${e.message}`);
      return;
    }
    for (const c of opened.cosignatures) {
      const info = keys.get(keyLabel(c.key));
      const when = new Date(c.timestamp * 1000).toISOString().replace(".000Z", "Z");
      cosignatures.push({ name: c.key.name, role: info.role, time: when, trusted: info.trusted });
    }
    const cosigners = new Set(cosignatures.filter((c) => c.trusted).map((c) => c.name));
    const trustedNames = new Set([...keys.values()].filter((v) => v.trusted).map((v) => v.key.name));
    for (const name of [...trustedNames].sort()) {
      if (!cosigners.has(name)) notes.push(`${name} (a key given with --trust) did not cosign the bundle's checkpoint`);
    }
  }

  async function sums(manifest) {
    const mediaFiles = new Map(manifest.items.filter((m) => m.media !== null).map((m) => [m.media, m.item]));
    const listed = [B3SUMS, SHA256SUMS].filter((p) => manifest.files.has(p));
    if (!listed.length) {
      if (mediaFiles.size) notes.push(`the bundle has no ${B3SUMS} or ${SHA256SUMS} (exported by an older custody): the media can be checked only with custody`);
      return;
    }
    const expected = {
      [B3SUMS]: mediaFiles,
      [SHA256SUMS]: new Map([...mediaFiles.keys()].filter((p) => manifest.files.has(p)).map((p) => [p, manifest.files.get(p).sha256])),
    };
    for (const path of [B3SUMS, SHA256SUMS]) {
      if (!listed.includes(path)) {
        fail("sums", path, `is not in the manifest, though ${listed[0]} is: an exporter writes both`);
        continue;
      }
      const data = await read(path);
      if (data === null) continue;
      let table;
      try {
        table = parseSums(data, path);
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        fail("sums", path, e.message);
        continue;
      }
      const want = expected[path];
      const out = [];
      const strip = (n) => n.slice("media/".length);
      for (const n of [...want.keys()].filter((k) => !table.has(k)).sort()) out.push(`does not list ${strip(n)}`);
      for (const n of [...table.keys()].filter((k) => !want.has(k)).sort()) out.push(`lists ${strip(n)}, not a media file of the manifest`);
      for (const n of [...table.keys()].filter((k) => want.has(k)).sort()) {
        if (table.get(n) !== want.get(n)) out.push(`gives ${strip(n)} the digest ${short(table.get(n))}, the manifest ${short(want.get(n))}`);
      }
      if (out.length) {
        const more = out.length > 3 ? `; and ${out.length - 3} more` : "";
        fail("sums", path, `disagrees with the manifest: ${out.slice(0, 3).join("; ")}${more}`);
      }
    }
  }

  async function allFiles(manifest) {
    for (const [path, info] of [...manifest.files].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (failedPaths.has(path)) continue;
      if (!files.has(path)) {
        fail("file", path, "is missing: the manifest lists it");
        continue;
      }
      let size, sha;
      const data = cache.get(path);
      if (data) {
        size = data.length;
        sha = hex(await sha256(data));
      } else {
        const d = await digestsOf(path, false);
        size = d.size;
        sha = d.sha256;
      }
      if (size !== info.size || sha !== info.sha256)
        fail("file", path, `was altered after export: its SHA-256 is ${short(sha)} (${num(size)} bytes), the manifest, which the log's signed statement vouches for, says ${short(info.sha256)} (${num(info.size)} bytes)`);
    }
    for (const name of [...files.keys()].sort()) {
      if (manifest.files.has(name) || name === MANIFEST || name === STATEMENT || failedPaths.has(name)) continue;
      fail("file", name, "is not part of the export (the manifest does not list it): it was added to the bundle afterwards");
    }
    checked.push(`every file the manifest lists has its size and SHA-256 (${manifest.files.size} files)`);
  }
}

/** The parties a non-key entry names besides its signers (custody.model.timeline.named_parties). */
function namedParties(t) {
  switch (t.type) {
    case "ingest":
      return [t.by, t.holder].filter(Boolean);
    case "consent":
    case "refusal":
      return [t.owner];
    case "handoff":
      return [t.sender, t.receiver];
    case "reject":
      return [t.sender, t.receiver, t.by];
    case "access":
    case "derive":
    case "request":
    case "review":
    case "retention":
    case "hold":
    case "disposal":
    case "analysis":
      return [t.by];
    default:
      return [];
  }
}

export function parseSums(data, where) {
  let text;
  try {
    text = new TextDecoder("ascii", { fatal: true }).decode(data);
    if (/[^\x00-\x7f]/.test(text)) throw new Error();
  } catch {
    throw new FormatError(`is not ASCII text`);
  }
  if (text && !text.endsWith("\n")) throw new FormatError("the last line has no newline");
  const out = new Map();
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  lines.forEach((line, n) => {
    const m = /^([0-9a-f]{64}) {2}([A-Za-z0-9][A-Za-z0-9._-]{0,127})$/.exec(line);
    if (!m) throw new FormatError(`line ${n + 1} is not '<64 hex digits>  <file name>': ${pyRepr(line.slice(0, 80))}`);
    const path = "media/" + m[2];
    if (out.has(path)) throw new FormatError(`line ${n + 1} names ${m[2]} a second time`);
    out.set(path, m[1]);
  });
  return out;
}

/** Python's repr of a str/None/int, so that messages read as verify-bundle's do. */
export function pyRepr(v) {
  if (v === null || v === undefined) return "None";
  if (typeof v === "number") return String(v);
  const s = String(v);
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s.replace(/\\/g, "\\\\").replace(new RegExp(q, "g"), "\\" + q).replace(/\n/g, "\\n");
  return q + body + q;
}
