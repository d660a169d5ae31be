// The pure parts of web/src/lineage.js in node (run by tests/unit/web/test_web_lineage.py):
//   node web/test/lineage.mjs CASES.json  -> exits 0, or throws naming the case that differs
// CASES.json: {"times": [[num, den, "python f'{float(Fraction(num, den)):.3f}'"], ...]}.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { checkLineage, frac, isContiguousRun, parsePacketList, proveAudioCopied, proveTrim, s3 } from "../src/lineage.js";

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const [n, d, want] of cases.times) assert.equal(s3(frac(BigInt(n), BigInt(d))), want, `${n}/${d}`);

// A packet list by hand: stream 0 video at 1/15 s per packet, stream 1 audio at 1/50 s.
const h = (s, i) => (s * 1000 + i).toString(16).padStart(64, "0");
function list(video, audio) {
  const lines = ["#format: frame checksums", "#version: 2", "#hash: SHA256",
    "#tb 0: 1/15", "#media_type 0: video", "#codec_id 0: h264",
    "#tb 1: 1/50", "#media_type 1: audio", "#codec_id 1: aac"];
  for (const i of video) lines.push(`0, ${i}, ${i}, 1, 100, ${h(0, i)}`);
  for (const i of audio) lines.push(`1, ${i}, ${i}, 1, 10, ${h(1, i)}`);
  return lines.join("\n") + "\n";
}
const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);
const parentText = list(range(0, 60), range(0, 200));
const parent = parsePacketList(parentText);
const child = parsePacketList(list(range(15, 45), range(50, 150)));
const runs = isContiguousRun(parent, child);
assert.equal(runs[0].parentFirst, 15);
assert.equal(runs[1].parentFirst, 50);
proveTrim(parent, child, frac(1n), frac(3n));
assert.throws(() => proveTrim(parent, child, frac(0n), frac(3n)),
  /^Error: stream 0 \(video\) of the excerpt covers 1\.000-3\.000 s of the parent, not the declared 0\.000-3\.000 s$/);
const gap = parsePacketList(list([...range(15, 20), ...range(21, 45)], range(50, 150)));
assert.throws(() => isContiguousRun(parent, gap),
  /stream 0 \(video\) of the excerpt is not a contiguous run of the parent's packets: its packets 0-4 match parent packets 15-19, packet 5 \(1\.400 s into the excerpt\) does not/);
assert.equal(proveAudioCopied(parent, parent)[0], "audio stream 1 (aac): all 200 packets identical to parent stream 1");
assert.throws(() => proveAudioCopied(parent, child), /audio stream 1 of the copy is not parent stream 1 packet for packet: 100 vs 200 packets, first difference at packet 0/);

// checkLineage: verify-bundle's `_lineage` words.
const e = { item: "ab".repeat(32), op: "trim", params: ["start 1.000", "end 3.000"] };
const ok = checkLineage(e, 7, "C/0001", "C/0002", [parentText, list(range(15, 45), range(50, 150))]);
assert.equal(ok.failure, null);
assert.match(ok.checked[0], /^an excerpt of C\/0001: contiguous excerpt: stream 0 \(video\): parent packets 15-44, 1\.000-3\.000 s; stream 1 \(audio\)/);
const bad = checkLineage({ ...e, params: ["start 0.000", "end 3.000"] }, 7, "C/0001", "C/0002", [parentText, list(range(15, 45), range(50, 150))]);
assert.equal(bad.failure.where, `items/${e.item}/framehash`);
assert.match(bad.failure.message, /^exhibit C\/0002 is recorded as a trim of C\/0001 \(log entry 7\), but stream 0/);
const hms = checkLineage({ ...e, params: ["start 00:01", "end 00:03"] }, 7, "C/0001", "C/0002", [parentText, list(range(15, 45), range(50, 150))]);
assert.equal(hms.failure, null);
assert.match(hms.notes[0], /its trim's declared range is not in decimal seconds/);
assert.deepEqual(checkLineage(e, 7, "C/0001", "C/0002", null).checked, ["a declared trim of C/0001; packets not compared"]);
process.stdout.write("ok\n");
