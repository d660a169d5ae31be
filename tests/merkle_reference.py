"""A naive Merkle tree reference, written straight from the RFC text, for tests only.

MTH, PATH and PROOF/SUBPROOF follow RFC 6962 §2.1 (identical in RFC 9162 §2.1.1, §2.1.3.1
and §2.1.4.1) line by line, recursing on list slices given as [lo, hi) bounds.  The two
verifiers follow the step-by-step algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 (the fn/sn
bit walks), which custody.tlog.merkle restates differently, so agreement between the two is
evidence that both are right.

Nothing here is optimised except one dictionary that remembers MTH of each [lo, hi): the
recursion is unchanged, the cache only keeps property tests over 2,000-leaf trees fast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k such that k < n <= 2k (RFC 6962 §2.1: "the largest power of two smaller than n")."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """The RFC 6962 definitions over a fixed list of entries D[0:n]."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self._mth: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        cached = self._mth.get((lo, hi))
        if cached is not None:
            return cached
        n = hi - lo
        if n == 0:
            # MTH({}) = SHA-256()
            result = _sha256(b"")
        elif n == 1:
            # MTH({d(0)}) = SHA-256(0x00 || d(0))
            result = _sha256(b"\x00" + self.entries[lo])
        else:
            # MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
            k = _largest_power_of_two_below(n)
            result = _sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))
        self._mth[(lo, hi)] = result
        return result

    def root(self, n: int) -> bytes:
        """MTH(D[0:n])."""
        return self.mth(0, n)

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """PATH(m, D[lo:hi]) with m relative to lo."""
        n = hi - lo
        if n == 1:
            # PATH(0, {d(0)}) = {}
            return []
        k = _largest_power_of_two_below(n)
        if m < k:
            # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def inclusion_proof(self, m: int, n: int) -> list[bytes]:
        """PATH(m, D[n])."""
        return self.path(m, 0, n)

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        """SUBPROOF(m, D[lo:hi], b)."""
        n = hi - lo
        if m == n:
            # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
            return [] if b else [self.mth(lo, hi)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        # SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    def consistency_proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for 0 < m <= n."""
        return self.subproof(m, 0, n, True)


def rfc_verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    if leaf_index >= tree_size:
        return False
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def rfc_verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, step by step; the RFC defines it only for 0 < first < second."""
    if not 0 < first < second:
        return False
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr)
            sr = _sha256(b"\x01" + c + sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0
