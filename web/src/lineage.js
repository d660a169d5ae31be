// The lineage of a derived item from the packet lists a bundle carries (docs/spec/media.md
// §10, docs/spec/derive.md), as `custody verify-bundle` checks it: a trim is a contiguous
// run of its parent's packets covering the declared range (custody.media.lineage.prove_trim
// on custody.media.compare.is_contiguous_run); a redaction or transcode that declares its
// sound copied has every audio stream packet for packet its parent's (prove_audio_copied).
// Same failure words; times are exact fractions (BigInt), formatted as Python's f"{x:.3f}".

const NOPTS = "-9223372036854775808";
const MEDIA_TYPES = ["video", "audio", "subtitle", "data", "attachment"];

export class LineageError extends Error {}

// ---- exact fractions -----------------------------------------------------------------

const babs = (a) => (a < 0n ? -a : a);
function gcd(a, b) {
  a = babs(a);
  b = babs(b);
  while (b) [a, b] = [b, a % b];
  return a || 1n;
}
export function frac(n, d = 1n) {
  n = BigInt(n);
  d = BigInt(d);
  if (d < 0n) [n, d] = [-n, -d];
  const g = gcd(n, d);
  return { n: n / g, d: d / g };
}
const add = (a, b) => frac(a.n * b.d + b.n * a.d, a.d * b.d);
const sub = (a, b) => frac(a.n * b.d - b.n * a.d, a.d * b.d);
const mul = (a, b) => frac(a.n * b.n, a.d * b.d);
const cmp = (a, b) => {
  const x = a.n * b.d - b.n * a.d;
  return x < 0n ? -1 : x > 0n ? 1 : 0;
};
const MS = frac(1n, 1000n);

/** Python's float(Fraction) then f"{x:.3f}": the double's exact value, rounded half-even. */
export function s3(f) {
  const x = Number(f.n) / Number(f.d);
  if (x === 0) return "0.000";
  const neg = x < 0;
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, Math.abs(x));
  const hi = dv.getUint32(0);
  const lo = dv.getUint32(4);
  const e = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp;
  if (e === 0) exp = -1074;
  else {
    m |= 1n << 52n;
    exp = e - 1075;
  }
  // value = m * 2^exp; scaled by 1000, rounded half to even
  let num = m * 1000n;
  let den = 1n;
  if (exp >= 0) num <<= BigInt(exp);
  else den <<= BigInt(-exp);
  let q = num / den;
  const r = num - q * den;
  if (2n * r > den || (2n * r === den && q % 2n === 1n)) q += 1n;
  const t = q.toString().padStart(4, "0");
  return (neg ? "-" : "") + t.slice(0, -3) + "." + t.slice(-3);
}

// ---- the packet list (custody.media.compare.parse_framehash) ------------------------

function intField(text, what, lineNo) {
  const t = text.trim();
  if (!/^[+-]?[0-9]+$/.test(t)) throw new LineageError(`framehash line ${lineNo}: ${what} '${t}' is not an integer`);
  return BigInt(t);
}

/** A framehash as {streams: [{index, tb, type, codec}], packets: [[{ts, duration, hash}]]}. */
export function parsePacketList(text) {
  const tbs = new Map();
  const types = new Map();
  const codecs = new Map();
  const rows = [];
  let version = null;
  let hashName = null;
  const lines = text.split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const lineNo = i + 1;
    if (!line) continue;
    if (line.startsWith("#")) {
      if (line.startsWith("#version:")) version = Number(line.slice(9).trim());
      else if (line.startsWith("#hash:")) hashName = line.slice(6).trim();
      else {
        const m = /^#(tb|media_type|codec_id) (\d+): (.*)$/.exec(line);
        if (!m) continue;
        const index = Number(m[2]);
        const value = m[3].trim();
        if (m[1] === "tb") {
          const [num, den] = value.split("/");
          const n = intField(num, "time base", lineNo);
          const d = den === undefined ? 0n : intField(den, "time base", lineNo);
          if (n <= 0n || d <= 0n) throw new LineageError(`framehash line ${lineNo}: bad time base '${value}'`);
          tbs.set(index, frac(n, d));
        } else if (m[1] === "media_type") {
          if (!MEDIA_TYPES.includes(value)) throw new LineageError(`framehash line ${lineNo}: unknown media type '${value}'`);
          types.set(index, value);
        } else codecs.set(index, value);
      }
      continue;
    }
    const f = line.split(",");
    if (f.length < 6) throw new LineageError(`framehash line ${lineNo}: expected 6 comma-separated fields`);
    const stream = Number(intField(f[0], "stream", lineNo));
    const dts = f[1].trim() === NOPTS ? null : intField(f[1], "dts", lineNo);
    const pts = f[2].trim() === NOPTS ? null : intField(f[2], "pts", lineNo);
    const duration = intField(f[3], "duration", lineNo);
    const hash = f[5].trim();
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new LineageError(`framehash line ${lineNo}: packet hash is not a SHA-256 hex digest`);
    if (stream < 0) throw new LineageError(`framehash: negative stream index ${stream}`);
    rows.push({ stream, ts: pts !== null ? pts : dts, duration, hash });
  }
  if (version !== 2) throw new LineageError(`framehash: format version ${version}, expected 2`);
  if (hashName !== "SHA256") throw new LineageError(`framehash: hash is '${hashName}', expected 'SHA256'`);
  const count = Math.max(-1, ...tbs.keys(), ...types.keys(), ...rows.map((r) => r.stream)) + 1;
  const streams = [];
  for (let i = 0; i < count; i++) {
    if (!tbs.has(i) || !types.has(i)) throw new LineageError(`framehash: stream ${i} has no #tb or #media_type header`);
    streams.push({ index: i, tb: tbs.get(i), type: types.get(i), codec: codecs.get(i) || "unknown" });
  }
  const packets = streams.map(() => []);
  for (const r of rows) packets[r.stream].push(r);
  return { streams, packets };
}

/** PacketList.time_of: [first, end) of `stream` in seconds, or null. */
function timeOf(pl, stream, first, end) {
  let lo = null;
  let hi = null;
  for (const p of pl.packets[stream].slice(first, end)) {
    if (p.ts === null) continue;
    const e = p.ts + (p.duration > 0n ? p.duration : 0n);
    if (lo === null || p.ts < lo) lo = p.ts;
    if (hi === null || e > hi) hi = e;
  }
  if (lo === null) return null;
  const tb = pl.streams[stream].tb;
  return [mul(frac(lo), tb), mul(frac(hi), tb)];
}

// ---- is_contiguous_run, prove_trim, prove_audio_copied ----------------------------------

const range = (a, b) => (a === b ? String(a) : `${a}-${b}`);

function occurrences(haystack, needle, limit = 1000) {
  const found = [];
  let start = 0;
  while (found.length < limit) {
    const at = haystack.indexOf(needle, start);
    if (at < 0) break;
    if (at % 64 === 0) found.push(at / 64);
    start = at + 1;
  }
  return found;
}

function longestRun(parent, child) {
  let best = [0, -1];
  for (let start = 0; start < parent.length; start++) {
    if (parent[start] !== child[0]) continue;
    let n = 0;
    while (n < child.length && start + n < parent.length && parent[start + n] === child[n]) n++;
    if (n > best[0]) best = [n, start];
  }
  return best;
}

function overlap(a, b) {
  if (a.start === null || a.end === null || b.start === null || b.end === null) return frac(0n);
  const end = cmp(a.end, b.end) <= 0 ? a.end : b.end;
  const start = cmp(a.start, b.start) >= 0 ? a.start : b.start;
  return sub(end, start);
}

function breakMessage(index, type, parent, child, lst, allow) {
  let best = [0, -1, 0];
  for (let skip = 0; skip <= Math.min(allow, child.length - 1); skip++) {
    const [n, start] = longestRun(parent, child.slice(skip));
    if (n > best[0]) best = [n, start, skip];
  }
  const [n, start, skip] = best;
  if (start < 0) {
    const tried = Math.min(allow, child.length - 1) + 1;
    const which = tried === 1 ? "its first packet is not" : `none of its first ${tried} packets is`;
    return `stream ${index} (${type}) of the excerpt is not a run of the parent's packets: ${which} in the parent`;
  }
  const first = skip;
  const brk = skip + n;
  const times = timeOf(lst, index, brk, brk + 1);
  const at = times ? ` (${s3(times[0])} s into the excerpt)` : "";
  return (
    `stream ${index} (${type}) of the excerpt is not a contiguous run of the parent's packets: ` +
    `its packets ${range(first, brk - 1)} match parent packets ${range(start, start + n - 1)}, packet ${brk}${at} does not`
  );
}

export function isContiguousRun(parent, child, allow = 1) {
  if (child.streams.length > parent.streams.length)
    throw new LineageError(`the excerpt has ${child.streams.length} streams, its parent only ${parent.streams.length}`);
  const candidates = [];
  for (const header of child.streams) {
    const index = header.index;
    const ph = parent.streams[index];
    if (ph.type !== header.type)
      throw new LineageError(`stream ${index} is ${header.type} in the excerpt but ${ph.type} in the parent`);
    const c = child.packets[index].map((q) => q.hash);
    if (!c.length) continue;
    const p = parent.packets[index].map((q) => q.hash);
    const haystack = p.join("");
    const runs = [];
    for (let total = 0; total <= 2 * allow; total++) {
      for (let head = Math.max(0, total - allow); head <= Math.min(total, allow); head++) {
        const tail = total - head;
        const interior = c.slice(head, c.length - tail);
        if (!interior.length) continue;
        for (const at of occurrences(haystack, interior.join(""))) {
          const times = timeOf(parent, index, at, at + interior.length);
          runs.push({
            index, type: header.type, parentFirst: at, parentEnd: at + interior.length, childPackets: c.length,
            head, tail, start: times ? times[0] : null, end: times ? times[1] : null,
          });
        }
      }
      if (runs.length) break;
    }
    if (!runs.length) throw new LineageError(breakMessage(index, header.type, p, c, child, allow));
    candidates.push(runs);
  }
  if (!candidates.length) throw new LineageError("the excerpt has no packets to compare");
  let fewest = candidates[0];
  for (const r of candidates) if (r.length < fewest.length) fewest = r;
  const anchor = fewest[0];
  const chosen = candidates.map((runs) => {
    let best = runs[0];
    let bo = overlap(best, anchor);
    for (const r of runs.slice(1)) {
      const o = overlap(r, anchor);
      if (cmp(o, bo) > 0) [best, bo] = [r, o];
    }
    return best;
  });
  for (const run of chosen) {
    if (run === anchor || run.start === null || anchor.start === null) continue;
    if (cmp(overlap(run, anchor), frac(0n)) < 0)
      throw new LineageError(
        `stream ${run.index} of the excerpt comes from ${s3(run.start)}-${s3(run.end || run.start)} s of the parent ` +
          `but stream ${anchor.index} from ${s3(anchor.start)}-${s3(anchor.end || anchor.start)} s`,
      );
  }
  return chosen;
}

export function runSummary(runs) {
  const parts = runs.map((run) => {
    let where = `parent packets ${run.parentFirst}-${run.parentEnd - 1}`;
    if (run.start !== null && run.end !== null) where += `, ${s3(run.start)}-${s3(run.end)} s`;
    if (run.head || run.tail) where += `, ${run.head}+${run.tail} boundary packets differ`;
    return `stream ${run.index} (${run.type}): ${where}`;
  });
  return "contiguous excerpt: " + parts.join("; ");
}

export function proveTrim(parent, child, start, end, allow = 1) {
  const runs = isContiguousRun(parent, child, allow);
  for (const r of runs) {
    if (r.start === null || r.end === null) continue;
    const tb = parent.streams[r.index].tb;
    let longest = 0n;
    for (const p of parent.packets[r.index]) if (p.duration > longest) longest = p.duration;
    const slack = add(mul(frac(longest), tb), MS);
    if (cmp(r.start, add(start, slack)) > 0 || cmp(r.end, sub(end, slack)) < 0)
      throw new LineageError(
        `stream ${r.index} (${r.type}) of the excerpt covers ${s3(r.start)}-${s3(r.end)} s of the parent, ` +
          `not the declared ${s3(start)}-${s3(end)} s`,
      );
  }
  return runs;
}

export function proveAudioCopied(parent, child) {
  const pa = parent.streams.filter((h) => h.type === "audio");
  const ca = child.streams.filter((h) => h.type === "audio");
  if (pa.length !== ca.length) throw new LineageError(`the copy has ${ca.length} audio streams, its parent ${pa.length}`);
  const out = [];
  for (let k = 0; k < pa.length; k++) {
    const ph = pa[k];
    const ch = ca[k];
    const p = parent.packets[ph.index].map((q) => q.hash);
    const c = child.packets[ch.index].map((q) => q.hash);
    let first = -1;
    for (let i = 0; i < Math.min(p.length, c.length); i++)
      if (p[i] !== c[i]) {
        first = i;
        break;
      }
    if (first < 0 && p.length !== c.length) first = Math.min(p.length, c.length);
    if (first >= 0)
      throw new LineageError(
        `audio stream ${ch.index} of the copy is not parent stream ${ph.index} packet for packet: ` +
          `${c.length} vs ${p.length} packets, first difference at packet ${first}`,
      );
    out.push(`audio stream ${ch.index} (${ch.codec}): all ${c.length} packets identical to parent stream ${ph.index}`);
  }
  return out;
}

// ---- a derive entry's parameters -------------------------------------------------------

function repr(s) {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  return q + s.replace(/\\/g, "\\\\").replace(new RegExp(q, "g"), "\\" + q).replace(/\n/g, "\\n") + q;
}

export function deriveParams(values, index) {
  const out = new Map();
  for (const v of values || []) {
    const at = v.indexOf(" ");
    if (at < 0) throw new LineageError(`log entry ${index}: derive parameter ${repr(v)} is not 'name value'`);
    out.set(v.slice(0, at), v.slice(at + 1));
  }
  return out;
}

function seconds(text, what) {
  if (!/^[0-9]+(\.[0-9]{1,6})?$/.test(text)) throw new LineageError(`derive parameter ${what} ${repr(text)} is not decimal seconds`);
  const [w, f = ""] = text.split(".");
  return frac(BigInt(w + f), 10n ** BigInt(f.length));
}

function trimRange(params) {
  for (const k of ["start", "end"]) if (!params.has(k)) throw new LineageError(`the derive entry has no '${k}' parameter`);
  return [seconds(params.get("start"), "start"), seconds(params.get("end"), "end")];
}

/**
 * verify-bundle's `_lineage` for one derived item.
 *   e: the typed derive entry; index: its log index; label: the parent's exhibit;
 *   exhibit: this item's exhibit; records: [parentFramehashText, childFramehashText] or null.
 * Returns {checked: [...], notes: [...], failure: {where, message} | null}.
 */
export function checkLineage(e, index, label, exhibit, records) {
  const out = { checked: [], notes: [], failure: null };
  const where = `items/${e.item}/framehash`;
  const failed = (what, err) => {
    if (!(err instanceof LineageError)) throw err;
    out.failure = { where, message: `exhibit ${exhibit} is recorded as ${what} (log entry ${index}), but ${err.message}` };
  };
  let lists = null;
  if (records) {
    try {
      lists = [parsePacketList(records[0]), parsePacketList(records[1])];
    } catch (err) {
      if (!(err instanceof LineageError)) throw err;
      lists = null; // malformed: the sidecar check has said so
    }
  }
  if (e.op !== "trim") {
    const params = (e.params || []).join("; ");
    out.checked.push(`a declared ${e.op} of ${label} (log entry ${index}` + (params ? `: ${params})` : ")"));
    if (lists && (e.op === "redact" || e.op === "transcode")) {
      const what = `a ${e.op} of ${label} with its sound copied`;
      try {
        if (deriveParams(e.params, index).get("audio-codec") !== "copy") return out;
        for (const a of proveAudioCopied(...lists)) out.checked.push(`the sound of the ${e.op}, declared copied: ${a}`);
      } catch (err) {
        failed(what, err);
      }
    }
    return out;
  }
  if (!lists) {
    out.checked.push(`a declared trim of ${label}; packets not compared`);
    return out;
  }
  let declared = null;
  try {
    declared = trimRange(deriveParams(e.params, index));
  } catch (err) {
    if (!(err instanceof LineageError)) throw err;
  }
  let runs;
  try {
    runs = declared ? proveTrim(...lists, declared[0], declared[1]) : isContiguousRun(...lists);
  } catch (err) {
    failed(`a trim of ${label}`, err);
    return out;
  }
  out.checked.push(`an excerpt of ${label}: ${runSummary(runs)}`);
  if (!declared)
    out.notes.push(
      `exhibit ${exhibit}: its trim's declared range is not in decimal seconds (docs/spec/entry.md), so the excerpt was not checked to cover it`,
    );
  return out;
}
