// RFC 6962 / RFC 9162 §2.1 Merkle hashes and proof checks (docs/spec/merkle.md,
// docs/spec/tlog-proof.md §2).  Pure: a SHA-256 function is passed in, so node can test it.
import { concat, equalBytes } from "./crypto.js";

export async function leafHash(sha256, entry) {
  return sha256(concat(new Uint8Array([0]), entry));
}

export async function nodeHash(sha256, left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

function badHashes(hashes) {
  const n = hashes.findIndex((h) => !(h instanceof Uint8Array) || h.length !== 32);
  return n < 0 ? null : `a hash is ${hashes[n] ? hashes[n].length : 0} bytes, not 32`;
}

/** RFC 9162 §2.1.3.2.  Returns null when it verifies, else the reason (verify-bundle words). */
export async function checkInclusion(sha256, index, size, leaf, path, root) {
  const bad = badHashes([leaf, root, ...path]);
  if (bad) return bad;
  if (index >= size) return `leaf index ${index} is not below the tree size ${size}`;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return "the proof has more hashes than the tree has levels";
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(sha256, p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(sha256, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return "the proof has fewer hashes than the tree has levels";
  if (!equalBytes(r, root)) return "the proof leads to another root than the checkpoint's";
  return null;
}

/** RFC 9162 §2.1.4.2.  Returns null when it verifies, else the reason. */
export async function checkConsistency(sha256, size1, size2, root1, root2, proof) {
  if (size1 > size2) return `the tree shrank from ${size1} to ${size2} entries`;
  // As custody and transparency-dev/merkle: a proof from the empty tree proves nothing.
  if (size1 === 0) return `consistency proof from an empty tree to size ${size2} proves nothing`;
  if (size1 === size2) {
    if (proof.length !== 0) return "a proof between equal sizes must be empty";
    return equalBytes(root1, root2) ? null : "the roots of equal sizes differ";
  }
  const bad = badHashes([root1, root2, ...proof]);
  if (bad) return bad;
  if (proof.length === 0) return "the proof is empty";
  let path = proof;
  // If size1 is an exact power of two, prepend the first root.
  if ((size1 & (size1 - 1)) === 0) path = [root1, ...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return "the proof has more hashes than needed";
    if (fn % 2 === 1 || fn === sn) {
      fr = await nodeHash(sha256, c, fr);
      sr = await nodeHash(sha256, c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = await nodeHash(sha256, sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return "the proof has fewer hashes than needed";
  if (!equalBytes(fr, root1)) return "the proof does not lead to the old root";
  if (!equalBytes(sr, root2)) return "the proof does not lead to the new root";
  return null;
}
