// Self-check of the browser verifier's pure modules in node (no browser):
//   node web/test/selfcheck.mjs CASES.json [MERKLE_VECTORS_DIR]
// CASES.json (written by tests/unit/web/test_web_selfcheck.py with custody's own Python
// code) holds signed notes, checkpoints, tlog-proofs and Merkle proofs that custody made;
// MERKLE_VECTORS_DIR is the transparency-dev vectors (../shared/vectors/merkle), optional.
// Prints one JSON object {ran: {...}, failures: [...]} and exits 1 if anything failed.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { b64decode, enc, hex, sha256 } from "../src/crypto.js";
import { checkConsistency, checkInclusion, leafHash } from "../src/merkle.js";
import { SignatureError, UnverifiedNoteError, asCosignatureKey, openNote, parseVerifierKey } from "../src/note.js";
import { openCheckpoint, parseTlogProof } from "../src/tlog.js";

const [casesPath, vectorsDir] = process.argv.slice(2);
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const ran = { inclusion_vectors: 0, consistency_vectors: 0, custody_inclusion: 0, custody_consistency: 0, notes: 0, spec_examples: 0 };
const failures = [];
const b64 = (s) => {
  const out = b64decode(s);
  if (out === null) throw new Error(`not canonical base64: ${s}`);
  return out;
};
const fromHex = (h) => new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16)));
const expect = (ok, what) => {
  if (!ok) failures.push(what);
};
async function throwsAs(cls, fn) {
  try {
    await fn();
    return false;
  } catch (e) {
    return e instanceof cls;
  }
}

// 1. transparency-dev Merkle vectors
function jsonFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...jsonFiles(p));
    else if (name.endsWith(".json")) out.push(p);
  }
  return out;
}
if (vectorsDir) {
  for (const p of jsonFiles(join(vectorsDir, "inclusion"))) {
    const c = JSON.parse(readFileSync(p, "utf8"));
    const proof = (c.proof || []).map(b64);
    const why = await checkInclusion(sha256, c.leafIdx, c.treeSize, b64(c.leafHash), proof, b64(c.root));
    expect((why !== null) === c.wantErr, `${p}: wantErr ${c.wantErr}, got ${why}`);
    ran.inclusion_vectors++;
  }
  for (const p of jsonFiles(join(vectorsDir, "consistency"))) {
    const c = JSON.parse(readFileSync(p, "utf8"));
    const proof = (c.proof || []).map(b64);
    const why = await checkConsistency(sha256, c.size1, c.size2, b64(c.root1), b64(c.root2), proof);
    expect((why !== null) === c.wantErr, `${p}: wantErr ${c.wantErr}, got ${why}`);
    ran.consistency_vectors++;
  }
}

// 2. proofs custody made over its own tree, each also checked with one hash flipped
const flip = (h) => {
  const x = h.slice();
  x[0] ^= 1;
  return x;
};
for (const c of cases.inclusion) {
  const leaf = b64(c.leaf);
  const proof = c.proof.map(b64);
  const root = b64(c.root);
  expect((await checkInclusion(sha256, c.index, c.size, leaf, proof, root)) === null, `custody inclusion ${c.index}/${c.size} fails`);
  expect((await checkInclusion(sha256, c.index, c.size, flip(leaf), proof, root)) !== null, `custody inclusion ${c.index}/${c.size} passes with another leaf`);
  if (proof.length)
    expect((await checkInclusion(sha256, c.index, c.size, leaf, [flip(proof[0]), ...proof.slice(1)], root)) !== null, `custody inclusion ${c.index}/${c.size} passes with a flipped hash`);
  ran.custody_inclusion++;
}
for (const c of cases.consistency) {
  const proof = c.proof.map(b64);
  const [r1, r2] = [b64(c.root1), b64(c.root2)];
  expect((await checkConsistency(sha256, c.size1, c.size2, r1, r2, proof)) === null, `custody consistency ${c.size1}->${c.size2} fails`);
  if (c.size1 > 0 && c.size1 < c.size2)
    expect((await checkConsistency(sha256, c.size1, c.size2, flip(r1), r2, proof)) !== null, `custody consistency ${c.size1}->${c.size2} passes with another old root`);
  ran.custody_consistency++;
}
for (const c of cases.leaves) {
  expect(hex(await leafHash(sha256, enc.encode(c.data))) === c.hash, `leaf hash of ${JSON.stringify(c.data)}`);
}

// 3. signed notes and checkpoints custody made
const n = cases.note;
const key = await parseVerifierKey(n.vkey);
const note = enc.encode(n.note);
expect((await openNote(note, [key])).note.text === n.text, "custody's note does not open with its key");
const other = await parseVerifierKey(n.other_vkey);
expect(await throwsAs(UnverifiedNoteError, () => openNote(note, [other])), "a note opens with a key that did not sign it");
const altered = enc.encode(n.note.replace(n.text, n.text.replace("a", "b")));
expect(await throwsAs(SignatureError, () => openNote(altered, [key])), "an altered note still opens");
ran.notes++;
const logKey = await parseVerifierKey(cases.checkpoint.log_vkey);
const witness = await asCosignatureKey(await parseVerifierKey(cases.checkpoint.witness_vkey));
const opened = await openCheckpoint(enc.encode(cases.checkpoint.note), logKey, [witness]);
expect(opened.checkpoint.size === cases.checkpoint.size, "checkpoint size");
expect(opened.cosignatures.length === 1 && opened.cosignatures[0].timestamp === cases.checkpoint.timestamp, "cosignature and its time");
const proof = parseTlogProof(enc.encode(cases.tlog_proof.proof));
expect(proof.index === cases.tlog_proof.index, "tlog-proof index");
const leaf = await leafHash(sha256, enc.encode(cases.tlog_proof.entry));
const cp = (await openCheckpoint(proof.checkpoint, logKey)).checkpoint;
expect((await checkInclusion(sha256, proof.index, cp.size, leaf, proof.path, cp.root)) === null, "custody's tlog-proof does not verify");
ran.notes++;

// 4. the examples printed in docs/spec (signed-note.md §1 and §6, checkpoint.md §2)
const alice = await parseVerifierKey("example.org/alice+77071873+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4");
const aliceNote = "custody/entry/v1\ntype example\n\n\u2014 example.org/alice dwcYc6/lLa7xllc9O+eLeY81ceBmfGi5Ft07poRC9TxTaGRs+/r2c3RP3jng3hb9fkUDneQW0TMgilkFuJ+sn+iZBA4=\n";
expect((await openNote(enc.encode(aliceNote), [alice])).verifiedBy.length === 1, "signed-note.md §1 example");
const exLog = await parseVerifierKey("example.org/log+223050b2+ASmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X");
const exWitness = await parseVerifierKey("example.org/witness+afc4fb83+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd");
const exCp =
  "example.org/log\n3\nJuepCLEeDgtaydy1MBABTLXvSvOXbV6jWV1IpMD7cYs=\n\n" +
  "\u2014 example.org/log IjBQstEUUIS91ouz1rHwaxCvhf+VCP6hWfIn3xMwnQI+cZkNuyzs00LdPJ50MXlcZFUEo3aQ2C/fTpMJ2yul4Z5GSwg=\n" +
  "\u2014 example.org/witness r8T7gwAAAABpVbkAsXgu8cF/p88nRu5LmqfqjeylnofWw7hvtpCR2/lpgmCMY7A0sL5uNesXS118b+1jZbUTHPwPrWYVAcDeZtgJAQ==\n";
const exOpened = await openCheckpoint(enc.encode(exCp), exLog, [exWitness]);
expect(exOpened.cosignatures.length === 1 && exOpened.cosignatures[0].timestamp === 1767225600, "checkpoint.md §2 example cosignature");
expect(hex(await leafHash(sha256, enc.encode("entry 1\n"))) === "18a49c747932711764c6b93facc1f1bef663a9d1bad6446d5f8a98e52771b466", "tlog-proof.md §1 leaf hash");
expect(hex(fromHex("00ff")) === "00ff", "hex round trip");
ran.spec_examples += 3;

process.stdout.write(JSON.stringify({ ran, failures }) + "\n");
process.exit(failures.length ? 1 : 0);
