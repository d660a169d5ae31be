"""RFC 6962 / RFC 9162 Merkle tree hashing, proof planning and proof verification.

The log is an RFC 6962 Merkle tree over SHA-256 (RFC 9162 §2.1): a leaf hashes as
``SHA-256(0x00 || entry)``, an interior node as ``SHA-256(0x01 || left || right)``, and the
empty tree as ``SHA-256("")``.  See docs/spec/merkle.md for the full description, written for
someone implementing a second verifier.

The module has three parts:

* Hashing: `leaf_hash`, `node_hash`, `fold_right`, `root_from_leaves`.
* Planning (pure arithmetic, no hashes): a tree is stored as its *perfect* subtrees, each
  named by a `NodeId` ``(level, index)``.  `inclusion_proof_nodes` and
  `consistency_proof_nodes` say which stored nodes a proof needs; the caller fetches them
  (O(log n) reads) and `assemble` turns them into the RFC 9162 proof.  `append_leaf` says
  which perfect subtrees an append completes, so the store can persist them.
* Verification: `verify_inclusion` and `verify_consistency` (RFC 9162 §2.1.3.2, §2.1.4.2).
  They raise `ProofError` (a `custody.errors.VerificationError`) and never return a bool.

Tree sizes and indices are Python ints limited to the unsigned 64-bit range of RFC 9162
(``tree_size`` is a uint64); anything outside it is a `ProofError`, never a crash or a loop
that runs for ever.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from custody.errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_SIZE",
    "MemoryTree",
    "NodeId",
    "ProofError",
    "RootMismatchError",
    "append_leaf",
    "assemble",
    "consistency_proof_nodes",
    "fold_right",
    "inclusion_proof_nodes",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "root_from_frontier",
    "root_from_inclusion_proof",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

MAX_SIZE = 2**64 - 1
"""The largest tree size or index RFC 9162 can express (``uint64``)."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""The root of the empty tree, ``SHA-256("")`` (RFC 9162 §2.1.1)."""

NodeId = tuple[int, int]
"""``(level, index)``: the perfect subtree over leaves ``[index << level, (index+1) << level)``."""

# Bound once: these are called millions of times when a large log is rebuilt.
_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(VerificationError):
    """A Merkle proof, root or tree size is malformed or impossible.

    Examples: a proof of the wrong length, an index at or beyond the tree size, a hash that
    is not 32 bytes, a consistency proof from a larger tree to a smaller one.
    """


class RootMismatchError(ProofError):
    """A well-formed proof leads to a root other than the one expected.

    `got` is the root the proof computes; `want` is the root it was checked against.
    """

    def __init__(self, message: str, *, got: bytes, want: bytes, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.got = got
        self.want = want


# ---------------------------------------------------------------------------------------------
# Hashing


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 leaf hash ``SHA-256(0x00 || data)`` (RFC 9162 §2.1.1).

    The 0x00 prefix (0x01 for nodes) is the domain separation that stops an interior node
    being passed off as a leaf (second-preimage resistance).
    """
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 interior node hash ``SHA-256(0x01 || left || right)`` (RFC 9162 §2.1.1).

    Precondition: both arguments are 32-byte hashes; this primitive does not check, the
    functions that take hashes from outside do.
    """
    return _sha256(_NODE_PREFIX + left + right).digest()


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash a right-border range from the hashes of its compact range, left to right.

    Returns ``node(h0, node(h1, ... node(h[k-2], h[k-1])))``.  A range ``[a, n)`` that ends
    at the tree size and starts on a multiple of a power of two larger than its length
    decomposes into perfect subtrees of strictly decreasing size; RFC 9162 §2.1.1 splits such
    a range at its largest power of two, so its hash is exactly this right fold.  The same
    holds for the whole tree: its root is the right fold of ``range_nodes(0, n)``.

    Raises:
        ProofError: `hashes` is empty (there is no such range).
    """
    if not hashes:
        raise ProofError(
            "cannot fold an empty list of hashes into a tree node",
            "a compact range always has at least one node; the proof plan is wrong",
        )
    acc = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        acc = _sha256(_NODE_PREFIX + hashes[i] + acc).digest()
    return acc


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash MTH (RFC 9162 §2.1.1) of a list of leaf hashes.

    Iterative, level by level: pair neighbours and carry an odd last node up unchanged.
    That yields the RFC's tree because splitting at the largest power of two below n is the
    same as building complete levels left to right and promoting the lone rightmost node.
    About 0.75 s for a million leaves.

    Raises:
        ProofError: a leaf hash is not 32 bytes (likely an entry passed instead of its hash).
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    if any(len(h) != HASH_SIZE for h in leaf_hashes):
        bad = next(i for i, h in enumerate(leaf_hashes) if len(h) != HASH_SIZE)
        raise ProofError(
            f"leaf hash {bad} is {len(leaf_hashes[bad])} bytes, not {HASH_SIZE}",
            "pass leaf_hash(entry), not the entry bytes",
        )
    level = list(leaf_hashes)
    sha, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        pairs = iter(level)
        # Zipping one iterator with itself pairs (0,1), (2,3), ...; an odd last node is left
        # out by the zip and carried up below.
        upper = [
            sha(prefix + left + right).digest() for left, right in zip(pairs, pairs, strict=False)
        ]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


# ---------------------------------------------------------------------------------------------
# Argument checks (shared by planning and verification)


def _check_size(value: int, what: str) -> None:
    # isinstance also guards against floats and strings from a careless parser: they would
    # otherwise fail deep inside the bit arithmetic with a TypeError.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(
            f"{what} must be an integer, not {type(value).__name__}",
            "tree sizes and entry indices are whole numbers",
        )
    if value < 0 or value > MAX_SIZE:
        raise ProofError(
            f"{what} {value} is outside 0..2^64-1",
            "RFC 9162 tree sizes and indices are unsigned 64-bit numbers",
        )


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(
            f"{what} is {len(value)} bytes, not {HASH_SIZE}",
            "every Merkle hash is a 32-byte SHA-256 digest; the data is truncated or padded",
        )


def _check_proof_hashes(proof: Sequence[bytes], what: str) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(
                f"{what} hash {i + 1} of {len(proof)} is {len(h)} bytes, not {HASH_SIZE}",
                "every Merkle hash is a 32-byte SHA-256 digest; the proof is damaged",
            )


def _short(h: bytes) -> str:
    return h[:4].hex() + "..."


# ---------------------------------------------------------------------------------------------
# Planning: which perfect subtrees does an operation need?


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The compact range of leaves ``[begin, end)``: its maximal perfect subtrees, left to right.

    Each step takes the largest perfect subtree that starts at the current position (aligned
    to its own size) and still fits before `end`.  At most ~2 * 64 nodes.  For ``begin == 0``
    the levels strictly decrease and the nodes are the binary digits of `end`.

    Raises:
        ProofError: a bound is outside 0..2^64-1 or ``begin > end``.
    """
    _check_size(begin, "range start")
    _check_size(end, "range end")
    if begin > end:
        raise ProofError(
            f"leaf range {begin}..{end} is backwards", "a range [begin, end) needs begin <= end"
        )
    out: list[NodeId] = []
    pos = begin
    while pos < end:
        level = (end - pos).bit_length() - 1
        if pos:
            # pos & -pos isolates the lowest set bit: a subtree starting at pos can be no
            # larger than that, or it would not be aligned.
            level = min(level, (pos & -pos).bit_length() - 1)
        out.append((level, pos >> level))
        pos += 1 << level
    return out


def _path_plan(level: int, index: int, size: int) -> list[list[NodeId]]:
    """Siblings of the perfect node (level, index) on its way to the root of a `size` tree.

    Precondition: the node is complete inside the tree, i.e. ``(index + 1) << level <= size``.
    Bottom-up, as RFC 9162 orders proofs.  A left sibling is always perfect; a right sibling
    is perfect, absent (it starts at or beyond `size`: RFC 6962 promotes the node unchanged),
    or an ephemeral right-border node that is not stored and is folded from its compact range.
    """
    plan: list[list[NodeId]] = []
    top = (size - 1).bit_length()  # the level of the root
    while level < top:
        sibling = index ^ 1
        if sibling < index:
            plan.append([(level, sibling)])
        else:
            start = sibling << level
            if start < size:
                if start + (1 << level) <= size:
                    plan.append([(level, sibling)])
                else:
                    plan.append(range_nodes(start, size))
        index >>= 1
        level += 1
    return plan


def inclusion_proof_nodes(index: int, size: int) -> list[list[NodeId]]:
    """Plan the inclusion proof (RFC 9162 §2.1.3.1, PATH) for entry `index` in a `size` tree.

    Returns one list of node ids per proof element, bottom-up; each element is
    ``fold_right`` of the hashes of its list (see `assemble`).  At most ~2 log2(size)
    distinct nodes, all of them perfect subtrees a log store persists on append.

    Raises:
        ProofError: `index` or `size` is outside 0..2^64-1, or ``index >= size``.
    """
    _check_size(index, "entry index")
    _check_size(size, "tree size")
    if index >= size:
        raise ProofError(
            f"entry {index} is not in a tree of {size} entries",
            "entry indices start at 0 and must be smaller than the tree size",
        )
    return _path_plan(0, index, size)


def consistency_proof_nodes(old: int, new: int) -> list[list[NodeId]]:
    """Plan the consistency proof (RFC 9162 §2.1.4.1, PROOF) from size `old` to size `new`.

    Returns one list of node ids per proof element, as `inclusion_proof_nodes` does.  The
    proof is the largest perfect subtree ending at `old` (left out when `old` is a power of
    two: the verifier already holds it as the old root), then that subtree's inclusion path
    in the `new` tree.  Equal sizes and ``old == 0`` give an empty plan: RFC 9162 defines
    proofs only for ``0 < old < new``; `verify_consistency` accepts equal sizes with an
    empty proof and refuses every proof from size 0 (see docs/spec/merkle.md).

    Raises:
        ProofError: a size is outside 0..2^64-1, or ``old > new``.
    """
    _check_size(old, "old tree size")
    _check_size(new, "new tree size")
    if old > new:
        raise ProofError(
            f"no consistency proof from size {old} to the smaller size {new}",
            "a log only grows; give the older (smaller) tree size first",
        )
    if old == new or old == 0:
        return []
    shift = (old & -old).bit_length() - 1  # trailing zeros of old
    index = (old - 1) >> shift  # (shift, index) is the last node of range_nodes(0, old)
    plan = _path_plan(shift, index, new)
    if index != 0:
        plan.insert(0, [(shift, index)])
    return plan


def assemble(plan: Sequence[Sequence[NodeId]], nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """Turn a proof plan and the fetched node hashes into the RFC 9162 proof.

    Each element is ``fold_right`` of the hashes of its node ids; a one-node element is that
    node's hash.

    Raises:
        ProofError: a node the plan needs is missing from `nodes`, or is not 32 bytes.
    """
    proof: list[bytes] = []
    for group in plan:
        hashes: list[bytes] = []
        for node in group:
            h = nodes.get(node)
            if h is None:
                level, index = node
                raise ProofError(
                    f"tree node (level {level}, index {index}) covering entries "
                    f"{index << level}..{((index + 1) << level) - 1} is not stored",
                    "the node store is incomplete: every node append_leaf returns must be kept",
                )
            if len(h) != HASH_SIZE:
                raise ProofError(
                    f"stored tree node (level {node[0]}, index {node[1]}) is {len(h)} bytes, "
                    f"not {HASH_SIZE}",
                    "the node store is damaged",
                )
            hashes.append(h)
        proof.append(fold_right(hashes))
    return proof


# ---------------------------------------------------------------------------------------------
# Appending


def append_leaf(
    frontier: Sequence[bytes], size: int, leaf: bytes
) -> tuple[list[tuple[NodeId, bytes]], list[bytes]]:
    """Append the leaf hash `leaf` at index `size` to a tree given by its frontier.

    `frontier` holds the hashes of ``range_nodes(0, size)`` (largest subtree first).  Returns
    ``(new_nodes, new_frontier)``: `new_nodes` are the perfect subtrees this append completes,
    ``(0, size)`` first and then each parent up, for the store to persist (with them every
    later proof needs only O(log n) reads); `new_frontier` holds the hashes of
    ``range_nodes(0, size + 1)``.  Amortised two node hashes per append.

    Raises:
        ProofError: `size` is outside 0..2^64-2, `leaf` is not 32 bytes, or the frontier
            does not have one hash per set bit of `size`.
    """
    _check_size(size, "tree size")
    if size == MAX_SIZE:
        raise ProofError("the tree is full (2^64-1 entries)", "RFC 9162 tree sizes are 64-bit")
    if len(leaf) != HASH_SIZE:
        raise ProofError(
            f"leaf hash is {len(leaf)} bytes, not {HASH_SIZE}",
            "append the leaf hash, leaf_hash(entry), not the entry bytes",
        )
    if len(frontier) != size.bit_count():
        raise ProofError(
            f"frontier has {len(frontier)} hashes but a tree of {size} entries has "
            f"{size.bit_count()}",
            "the frontier is the hashes of range_nodes(0, size), largest subtree first",
        )
    new_frontier = list(frontier)
    new_nodes: list[tuple[NodeId, bytes]] = [((0, size), leaf)]
    acc, level, index = leaf, 0, size
    # Each trailing 1 bit of the index is a completed left sibling waiting on the frontier:
    # merge with it, and the merged subtree is itself complete and goes one level up.
    while index & 1:
        acc = _sha256(_NODE_PREFIX + new_frontier.pop() + acc).digest()
        level += 1
        index >>= 1
        new_nodes.append(((level, index), acc))
    new_frontier.append(acc)
    return new_nodes, new_frontier


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    """The tree root from the hashes of ``range_nodes(0, size)``; `EMPTY_ROOT` if empty.

    The root of a tree is the right fold of its compact range (see `fold_right`).
    """
    if not frontier:
        return EMPTY_ROOT
    return fold_right(frontier)


# ---------------------------------------------------------------------------------------------
# Verification


def _inclusion_shape(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof of entry `index` in a `size` tree into (inner, border) counts.

    Up to level `inner` the paths to `index` and to the last leaf ``size - 1`` differ, so
    each level has a sibling on one side or the other.  From there up the paths coincide on
    the right border, where only left siblings exist: one per set bit of ``index >> inner``.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that an inclusion proof (RFC 9162 §2.1.3.2) leads to from `leaf_hash`.

    Equivalent to the RFC's fn/sn algorithm, but the expected proof length is computed up
    front so that a truncated or padded proof is named as such.

    Raises:
        ProofError: bad sizes, ``index >= size``, a hash that is not 32 bytes, or a proof
            of the wrong length.
    """
    _check_size(index, "entry index")
    _check_size(size, "tree size")
    if index >= size:
        raise ProofError(
            f"entry {index} cannot be in a tree of {size} entries",
            "entry indices start at 0 and must be smaller than the tree size",
        )
    _check_hash(leaf_hash, f"leaf hash of entry {index}")
    inner, border = _inclusion_shape(index, size)
    if len(proof) != inner + border:
        raise ProofError(
            f"inclusion proof for entry {index} in a tree of {size} has {len(proof)} hashes, "
            f"expected {inner + border}",
            "the proof is truncated or padded, or was made for another entry or tree size",
        )
    _check_proof_hashes(proof, "inclusion proof")
    acc, bits = leaf_hash, index
    sha, prefix = _sha256, _NODE_PREFIX
    for i in range(inner):
        if bits & 1:
            acc = sha(prefix + proof[i] + acc).digest()
        else:
            acc = sha(prefix + acc + proof[i]).digest()
        bits >>= 1
    for i in range(inner, inner + border):
        acc = sha(prefix + proof[i] + acc).digest()
    return acc


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is entry `index` of the tree of `size` whose root is `root`.

    RFC 9162 §2.1.3.2.  Returns None on success.

    Raises:
        ProofError: malformed input (see `root_from_inclusion_proof`; also a root that is not
            32 bytes).
        RootMismatchError: the proof is well formed but leads to another root.
    """
    got = root_from_inclusion_proof(index, size, leaf_hash, proof)
    _check_hash(root, "root")
    if got != root:
        raise RootMismatchError(
            f"inclusion proof for entry {index} in a tree of {size} does not lead to the "
            f"checkpoint's root (computed {_short(got)}, expected {_short(root)})",
            got=got,
            want=root,
            hint="the entry, the proof or the checkpoint has been altered, "
            "or they belong to different logs",
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of `new_size` with `new_root` extends the one of `old_size`.

    RFC 9162 §2.1.4.2, restated: the proof is the old tree's last perfect subtree (omitted
    when `old_size` is a power of two, the old root itself) followed by that subtree's
    inclusion path in the new tree.  Chaining the path rebuilds the new root; chaining only
    its left siblings rebuilds the old root.  Returns None on success.

    Rules beyond the RFC (which covers only ``0 < old_size < new_size``):

    * Equal sizes pass with an empty proof and byte-equal roots (compared as given).
    * Every proof from ``old_size == 0`` is refused, as transparency-dev/merkle does: it
      proves nothing.  A witness that has seen nothing may accept a first checkpoint
      without a proof; that is the witness's decision, not this function's.

    Raises:
        ProofError: a size outside 0..2^64-1, ``old_size > new_size``, ``old_size == 0``,
            a root or proof hash that is not 32 bytes, a proof of the wrong length.
        RootMismatchError: the proof does not lead to `old_root` or to `new_root`.
    """
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    if old_size > new_size:
        raise ProofError(
            f"the tree shrank from {old_size} to {new_size} entries",
            "a log only grows: the later checkpoint must have the larger size",
        )
    if old_size == 0:
        raise ProofError(
            f"consistency proof from an empty tree to size {new_size} proves nothing",
            "a verifier that has seen no checkpoint accepts the first one without a proof",
        )
    if old_size == new_size:
        if proof:
            raise ProofError(
                f"consistency proof between two trees of size {old_size} must be empty, "
                f"it has {len(proof)} hashes",
                "equal sizes need no proof: the two roots must simply be equal",
            )
        if old_root != new_root:
            raise RootMismatchError(
                f"two checkpoints of size {old_size} have different roots "
                f"({_short(old_root)} and {_short(new_root)})",
                got=new_root,
                want=old_root,
                hint="the log presented two different histories (a fork): keep both checkpoints",
            )
        # Equal sizes compare the roots as given, as transparency-dev does (a shared
        # vector has equal 12-byte "roots" and expects success); any other case needs
        # real 32-byte roots.
        return
    _check_hash(old_root, f"root of the old tree (size {old_size})")
    _check_hash(new_root, f"root of the new tree (size {new_size})")

    shift = (old_size & -old_size).bit_length() - 1  # trailing zeros of old_size
    mask = (old_size - 1) >> shift  # index of the old tree's last perfect subtree at `shift`
    inner, border = _inclusion_shape(old_size - 1, new_size)
    inner -= shift  # the path starts at level `shift`, not at the leaves
    start = 0 if mask == 0 else 1  # a power-of-two old tree is its own last subtree
    want_len = start + inner + border
    if len(proof) != want_len:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} has {len(proof)} hashes, "
            f"expected {want_len}",
            "the proof is truncated or padded, or was made for other tree sizes",
        )
    _check_proof_hashes(proof, "consistency proof")
    seed = old_root if start == 0 else proof[0]
    old_acc = new_acc = seed
    sha, prefix = _sha256, _NODE_PREFIX
    for i in range(start, start + inner):
        if mask & 1:
            # A left sibling lies inside the old tree as well as the new one.
            old_acc = sha(prefix + proof[i] + old_acc).digest()
            new_acc = sha(prefix + proof[i] + new_acc).digest()
        else:
            # A right sibling lies beyond the old tree's end: only the new tree has it.
            new_acc = sha(prefix + new_acc + proof[i]).digest()
        mask >>= 1
    for i in range(start + inner, want_len):
        old_acc = sha(prefix + proof[i] + old_acc).digest()
        new_acc = sha(prefix + proof[i] + new_acc).digest()
    if old_acc != old_root:
        raise RootMismatchError(
            f"consistency proof from size {old_size} to {new_size} does not lead to the old "
            f"checkpoint's root (computed {_short(old_acc)}, expected {_short(old_root)})",
            got=old_acc,
            want=old_root,
            hint="the proof or the old checkpoint has been altered, or the log rewrote history",
        )
    if new_acc != new_root:
        raise RootMismatchError(
            f"consistency proof from size {old_size} to {new_size} does not lead to the new "
            f"checkpoint's root (computed {_short(new_acc)}, expected {_short(new_root)})",
            got=new_acc,
            want=new_root,
            hint="the proof or the new checkpoint has been altered, or the log rewrote history",
        )


# ---------------------------------------------------------------------------------------------
# In-memory tree


class MemoryTree:
    """An append-only Merkle tree held in memory, for tests and for building bundles.

    It stores what a log store stores (the perfect nodes from `append_leaf`, keyed by
    `NodeId`) and answers with the same planning functions, so it exercises the production
    path rather than a second algorithm.
    """

    def __init__(self) -> None:
        self._nodes: dict[NodeId, bytes] = {}
        self._frontier: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        """The number of entries appended so far."""
        return self._size

    def append(self, data: bytes) -> int:
        """Append an entry (hashed with `leaf_hash`) and return its index."""
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, leaf: bytes) -> int:
        """Append an already computed leaf hash and return its index.

        Raises:
            ProofError: `leaf` is not 32 bytes.
        """
        new_nodes, self._frontier = append_leaf(self._frontier, self._size, leaf)
        self._nodes.update(new_nodes)
        self._size += 1
        return self._size - 1

    def _check_known(self, size: int, what: str) -> None:
        _check_size(size, what)
        if size > self._size:
            raise ProofError(
                f"{what} {size} is beyond this tree's {self._size} entries",
                "ask for a size the tree has reached",
            )

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree at `size` entries (default: now).

        Raises:
            ProofError: `size` is larger than the tree.
        """
        if size is None:
            return root_from_frontier(self._frontier)
        self._check_known(size, "tree size")
        if size == 0:
            return EMPTY_ROOT
        return assemble([range_nodes(0, size)], self._nodes)[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 inclusion proof for entry `index` in the tree at `size` (default: now).

        Raises:
            ProofError: ``index >= size`` or `size` is larger than the tree.
        """
        size = self._size if size is None else size
        self._check_known(size, "tree size")
        return assemble(inclusion_proof_nodes(index, size), self._nodes)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof from size `old` to `new` (default: now).

        Raises:
            ProofError: ``old > new`` or `new` is larger than the tree.
        """
        new = self._size if new is None else new
        self._check_known(new, "tree size")
        return assemble(consistency_proof_nodes(old, new), self._nodes)
