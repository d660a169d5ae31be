"""Tests for custody.tlog.merkle.

Four kinds: the shared transparency-dev vectors (one test per file, each declaring its
expected outcome), the 8-leaf tree those vectors come from, property tests against the naive
RFC reference in merkle_reference.py, and tampering (every flipped bit is caught).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from merkle_reference import Reference, rfc_verify_consistency, rfc_verify_inclusion

from custody.errors import VerificationError
from custody.tlog import merkle
from custody.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_SIZE,
    MemoryTree,
    NodeId,
    ProofError,
    RootMismatchError,
    append_leaf,
    assemble,
    consistency_proof_nodes,
    fold_right,
    inclusion_proof_nodes,
    leaf_hash,
    node_hash,
    range_nodes,
    root_from_frontier,
    root_from_inclusion_proof,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------------------------
# Shared vectors (transparency-dev/merkle testdata, see ../shared/vectors/merkle/README.md)

# CUSTODY_VECTORS names the shared vectors root (the folder holding merkle/, and other suites).
_VECTORS_ROOT = Path(
    os.environ.get("CUSTODY_VECTORS")
    or Path(__file__).resolve().parents[3].parent / "shared" / "vectors"
)
VECTORS = _VECTORS_ROOT / "merkle"
_MISSING = f"shared vectors not found at {VECTORS}"

# Cases where custody deliberately disagrees with the vector's expected outcome, and why.
# Each still runs: it must fail with ProofError, and its intent is checked with valid input.
DEVIATIONS: dict[str, str] = {}


def _vector_files(kind: str) -> list[Path]:
    folder = VECTORS / kind
    return sorted(folder.rglob("*.json")) if folder.is_dir() else []


INCLUSION_FILES = _vector_files("inclusion")
CONSISTENCY_FILES = _vector_files("consistency")


def _params(files: list[Path]) -> list[Any]:
    if not files:
        return [pytest.param(None, id="no-vectors", marks=pytest.mark.skip(reason=_MISSING))]
    return [pytest.param(f, id=f.relative_to(VECTORS).as_posix()) for f in files]


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    assert isinstance(case["wantErr"], bool), f"{path}: wantErr missing"
    return case


def _proof(case: dict[str, Any]) -> list[bytes]:
    # Go's JSON encoder writes a nil slice as null.
    return [_b64(p) for p in case["proof"] or []]


def _expect(
    path: Path, want_err: bool, check: Callable[[], None], on_valid_input: Callable[[], None]
) -> None:
    key = path.relative_to(VECTORS).as_posix()
    if key in DEVIATIONS:
        assert not want_err, f"{key}: deviation listed for a case that already expects an error"
        with pytest.raises(ProofError):
            check()
        on_valid_input()
    elif want_err:
        with pytest.raises(ProofError) as info:
            check()
        assert isinstance(info.value, VerificationError)
        assert "\n" not in str(info.value)
    else:
        check()


@pytest.mark.parametrize("path", _params(INCLUSION_FILES))
def test_inclusion_vector(path: Path) -> None:
    case = _load(path)
    index, size = case["leafIdx"], case["treeSize"]
    leaf, root, proof = _b64(case["leafHash"]), _b64(case["root"]), _proof(case)

    def check() -> None:
        verify_inclusion(index, size, leaf, proof, root)

    def unused() -> None:
        raise AssertionError(f"{path}: no inclusion deviation is defined")

    _expect(path, case["wantErr"], check, unused)


@pytest.mark.parametrize("path", _params(CONSISTENCY_FILES))
def test_consistency_vector(path: Path) -> None:
    case = _load(path)
    old, new = case["size1"], case["size2"]
    old_root, new_root, proof = _b64(case["root1"]), _b64(case["root2"]), _proof(case)

    def check() -> None:
        verify_consistency(old, new, old_root, new_root, proof)

    def with_valid_roots() -> None:
        # The intent of "equal sizes, empty proof, equal roots pass", with a real root.
        valid = leaf_hash(b"x")
        verify_consistency(old, new, valid, valid, proof)

    _expect(path, case["wantErr"], check, with_valid_roots)


_N_INCLUSION, _N_CONSISTENCY = len(INCLUSION_FILES), len(CONSISTENCY_FILES)


@pytest.mark.parametrize(
    "n_inclusion,n_consistency",
    [
        pytest.param(
            _N_INCLUSION,
            _N_CONSISTENCY,
            id=f"{_N_INCLUSION}-inclusion-{_N_CONSISTENCY}-consistency-vectors",
            marks=[pytest.mark.skip(reason=_MISSING)] if not VECTORS.is_dir() else [],
        )
    ],
)
def test_vector_count(
    n_inclusion: int, n_consistency: int, record_property: Callable[[str, object], None]
) -> None:
    """The count is in the test id, so `pytest -v` and the CI log show how many vectors ran."""
    record_property("merkle_inclusion_vectors", n_inclusion)
    record_property("merkle_consistency_vectors", n_consistency)
    print(f"merkle vectors: {n_inclusion} inclusion, {n_consistency} consistency")
    assert n_inclusion > 0 and n_consistency > 0, (
        f"{VECTORS} exists but holds {n_inclusion} inclusion and {n_consistency} consistency cases"
    )


# ---------------------------------------------------------------------------------------------
# The 8-leaf tree of the vectors' README

README_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
README_ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


def _readme_tree() -> MemoryTree:
    tree = MemoryTree()
    for data in README_LEAVES:
        tree.append(data)
    return tree


def test_readme_tree_root() -> None:
    hashes = [leaf_hash(d) for d in README_LEAVES]
    assert root_from_leaves(hashes) == README_ROOT
    tree = _readme_tree()
    assert tree.size == 8
    assert tree.root() == README_ROOT
    assert tree.root(8) == README_ROOT
    assert Reference(README_LEAVES).root(8) == README_ROOT


def test_empty_tree() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_from_leaves([]) == EMPTY_ROOT
    assert root_from_frontier([]) == EMPTY_ROOT
    assert MemoryTree().root() == EMPTY_ROOT
    assert MemoryTree().root(0) == EMPTY_ROOT
    assert range_nodes(0, 0) == []


def test_hash_prefixes() -> None:
    import hashlib

    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * HASH_SIZE, b"R" * HASH_SIZE
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert fold_right([left]) == left
    assert fold_right([left, right, left]) == node_hash(left, node_hash(right, left))


@pytest.mark.skipif(not VECTORS.is_dir(), reason=_MISSING)
def test_readme_tree_reproduces_happy_path_vectors() -> None:
    """Our proofs for the README tree are byte for byte the vectors' happy-path proofs."""
    tree = _readme_tree()
    checked = 0
    for path in INCLUSION_FILES:
        case = _load(path)
        if path.name != "happy-path.json":
            continue
        index, size = case["leafIdx"], case["treeSize"]
        assert tree.root(size) == _b64(case["root"]), path
        assert leaf_hash(README_LEAVES[index]) == _b64(case["leafHash"]), path
        assert tree.inclusion_proof(index, size) == _proof(case), path
        checked += 1
    for path in CONSISTENCY_FILES:
        case = _load(path)
        if path.name != "happy-path.json":
            continue
        old, new = case["size1"], case["size2"]
        assert tree.root(old) == _b64(case["root1"]), path
        assert tree.root(new) == _b64(case["root2"]), path
        assert tree.consistency_proof(old, new) == _proof(case), path
        checked += 1
    assert checked >= 8


# ---------------------------------------------------------------------------------------------
# Cross-checks against the RFC reference


def _entries(n: int, salt: bytes) -> list[bytes]:
    # Distinct, cheap entries; the salt varies the hashes between examples.
    return [salt + i.to_bytes(4, "big") for i in range(n)]


def _node_range(node: NodeId) -> tuple[int, int]:
    level, index = node
    return index << level, (index + 1) << level


def test_exhaustive_small_trees() -> None:
    """Every size up to 100, every entry, every pair of sizes: equal to the RFC and verified."""
    n_max = 100
    entries = _entries(n_max, b"small")
    ref = Reference(entries)
    tree = MemoryTree()
    for data in entries:
        tree.append(data)
    for n in range(1, n_max + 1):
        root = ref.root(n)
        assert tree.root(n) == root
        for i in range(n):
            proof = tree.inclusion_proof(i, n)
            assert proof == ref.inclusion_proof(i, n), (i, n)
            verify_inclusion(i, n, leaf_hash(entries[i]), proof, root)
            assert rfc_verify_inclusion(i, n, leaf_hash(entries[i]), proof, root)
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == ref.consistency_proof(m, n), (m, n)
            verify_consistency(m, n, ref.root(m), root, proof)
            if m < n:
                assert rfc_verify_consistency(m, n, ref.root(m), root, proof)


# Hypothesis favours small integers; the second branch makes sure big trees are drawn too.
sizes = st.one_of(st.integers(min_value=0, max_value=2100), st.integers(1800, 2100))
positive_sizes = st.one_of(st.integers(min_value=1, max_value=2100), st.integers(1800, 2100))
salts = st.binary(max_size=8)
big = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@big
@given(n=sizes, salt=salts)
@example(n=2100, salt=b"")
def test_root_from_leaves_matches_reference(n: int, salt: bytes) -> None:
    entries = _entries(n, salt)
    assert root_from_leaves([leaf_hash(e) for e in entries]) == Reference(entries).root(n)


@big
@given(n=sizes, salt=salts)
@example(n=2100, salt=b"")
def test_memory_tree_and_frontier_at_every_size(n: int, salt: bytes) -> None:
    entries = _entries(n, salt)
    ref = Reference(entries)
    tree = MemoryTree()
    frontier: list[bytes] = []
    for size, data in enumerate(entries):
        new_nodes, frontier = append_leaf(frontier, size, leaf_hash(data))
        # The completed perfect subtrees: (0, size), then each parent while size's bits are 1.
        expected_ids = [
            (level, size >> level) for level in range((~size & (size + 1)).bit_length())
        ]
        assert [node for node, _ in new_nodes] == expected_ids
        for node, h in new_nodes:
            assert h == ref.mth(*_node_range(node))
        assert frontier == [ref.mth(*_node_range(node)) for node in range_nodes(0, size + 1)]
        assert root_from_frontier(frontier) == ref.root(size + 1)
        tree.append(data)
        assert tree.root() == ref.root(size + 1)
    for size in range(n + 1):
        assert tree.root(size) == ref.root(size)


@big
@given(n=positive_sizes, salt=salts, data=st.data())
def test_inclusion_matches_reference(n: int, salt: bytes, data: st.DataObject) -> None:
    entries = _entries(n, salt)
    ref = Reference(entries)
    tree = MemoryTree()
    for e in entries:
        tree.append(e)
    size = data.draw(st.integers(min_value=1, max_value=n), label="size")
    root = ref.root(size)
    for _ in range(8):
        i = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
        proof = tree.inclusion_proof(i, size)
        assert proof == ref.inclusion_proof(i, size)
        verify_inclusion(i, size, leaf_hash(entries[i]), proof, root)
        assert root_from_inclusion_proof(i, size, leaf_hash(entries[i]), proof) == root
        assert rfc_verify_inclusion(i, size, leaf_hash(entries[i]), proof, root)


@big
@given(n=positive_sizes, salt=salts, data=st.data())
def test_consistency_matches_reference(n: int, salt: bytes, data: st.DataObject) -> None:
    entries = _entries(n, salt)
    ref = Reference(entries)
    tree = MemoryTree()
    for e in entries:
        tree.append(e)
    for _ in range(8):
        new = data.draw(st.integers(min_value=1, max_value=n), label="new")
        old = data.draw(st.integers(min_value=1, max_value=new), label="old")
        proof = tree.consistency_proof(old, new)
        assert proof == ref.consistency_proof(old, new)
        verify_consistency(old, new, ref.root(old), ref.root(new), proof)
        if old < new:
            assert rfc_verify_consistency(old, new, ref.root(old), ref.root(new), proof)


# ---------------------------------------------------------------------------------------------
# Planning over the full 64-bit range: structure and O(log n) size, no hashing


def _check_plan_partitions(
    plan: list[list[NodeId]], covered: list[tuple[int, int]], n: int
) -> None:
    """The plan's elements plus `covered` tile [0, n) exactly; multi-node elements end at n."""
    spans = list(covered)
    for group in plan:
        assert group, "empty proof element"
        ranges = [_node_range(node) for node in group]
        for (_, hi), (lo, _) in itertools.pairwise(ranges):
            assert hi == lo, "an element's nodes must be contiguous"
        if len(group) > 1:
            assert ranges[-1][1] == n, "only a right-border element is folded"
        spans.append((ranges[0][0], ranges[-1][1]))
    spans.sort()
    pos = 0
    for lo, hi in spans:
        assert lo == pos and hi > lo
        pos = hi
    assert pos == n


big_sizes = st.one_of(
    st.integers(min_value=1, max_value=MAX_SIZE),
    st.integers(min_value=1, max_value=4096),
    st.sampled_from([1, 2, 3, 2**32, 2**63, 2**63 + 1, MAX_SIZE - 1, MAX_SIZE]),
)


@settings(max_examples=300, deadline=None)
@given(n=big_sizes, data=st.data())
def test_inclusion_plan_structure(n: int, data: st.DataObject) -> None:
    i = data.draw(st.one_of(st.integers(0, n - 1), st.sampled_from([0, n - 1])), label="index")
    plan = inclusion_proof_nodes(i, n)
    nodes = {node for group in plan for node in group}
    assert len(nodes) <= 2 * n.bit_length() + 2
    _check_plan_partitions(plan, [(i, i + 1)], n)


@settings(max_examples=300, deadline=None)
@given(n=big_sizes, data=st.data())
def test_consistency_plan_structure(n: int, data: st.DataObject) -> None:
    m = data.draw(st.one_of(st.integers(1, n), st.sampled_from([1, n])), label="old")
    plan = consistency_proof_nodes(m, n)
    nodes = {node for group in plan for node in group}
    assert len(nodes) <= 2 * n.bit_length() + 2
    if m == n:
        assert plan == []
        return
    # A power-of-two old tree is not sent: the verifier holds it as the old root.
    covered = [(0, m)] if m & (m - 1) == 0 else []
    _check_plan_partitions(plan, covered, n)
    # The first element (or the old root) is the old tree's last perfect subtree.
    first_end = m if covered else _node_range(plan[0][0])[1]
    assert first_end == m


@settings(max_examples=200, deadline=None)
@given(begin=st.integers(0, MAX_SIZE), end=st.integers(0, MAX_SIZE))
def test_range_nodes_compact(begin: int, end: int) -> None:
    begin, end = min(begin, end), max(begin, end)
    nodes = range_nodes(begin, end)
    assert len(nodes) <= 2 * end.bit_length()
    pos = begin
    for node in nodes:
        lo, hi = _node_range(node)
        assert lo == pos
        pos = hi
    assert pos == end
    # Compact: no two neighbours at the same level could merge into their parent.
    for (l1, i1), (l2, i2) in itertools.pairwise(nodes):
        assert not (l1 == l2 and i1 % 2 == 0 and i2 == i1 + 1)


def test_huge_sizes_are_fast_and_clean() -> None:
    assert len(range_nodes(0, MAX_SIZE)) == 64
    n = MAX_SIZE
    plan = inclusion_proof_nodes(n - 1, n)
    assert len(plan) == 63  # the last leaf: one left sibling per set bit above bit 0
    fake = {node: leaf_hash(repr(node).encode()) for group in plan for node in group}
    proof = assemble(plan, fake)
    with pytest.raises(RootMismatchError):
        verify_inclusion(n - 1, n, leaf_hash(b"x"), proof, EMPTY_ROOT)
    for index, size in [(MAX_SIZE, 1), (MAX_SIZE, MAX_SIZE), (0, MAX_SIZE + 1), (-1, 5), (0, 0)]:
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf_hash(b"x"), [], EMPTY_ROOT)
        with pytest.raises(ProofError):
            inclusion_proof_nodes(index, size)
    for old, new in [(MAX_SIZE, 1), (1, MAX_SIZE + 1), (-1, 1), (2**70, 2**71)]:
        with pytest.raises(ProofError):
            verify_consistency(old, new, EMPTY_ROOT, EMPTY_ROOT, [])
        with pytest.raises(ProofError):
            consistency_proof_nodes(old, new)
    with pytest.raises(ProofError):
        range_nodes(5, 4)
    with pytest.raises(ProofError):
        append_leaf([EMPTY_ROOT] * 64, MAX_SIZE, EMPTY_ROOT)


# ---------------------------------------------------------------------------------------------
# Errors: only ProofError ever escapes, with one-line messages


junk_ints = st.one_of(
    st.integers(min_value=-5, max_value=70),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([MAX_SIZE, MAX_SIZE + 1, 2**63]),
)
junk_hashes = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40))
junk_proofs = st.lists(junk_hashes, max_size=12)


@settings(max_examples=300, deadline=None)
@given(index=junk_ints, size=junk_ints, leaf=junk_hashes, proof=junk_proofs, root=junk_hashes)
def test_inclusion_junk_raises_only_proof_error(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> None:
    try:
        verify_inclusion(index, size, leaf, proof, root)
    except ProofError as e:
        assert "\n" not in e.message and e.hint
    else:
        # Only a one-entry tree whose root is the leaf itself can pass by chance.
        assert (index, size, proof, leaf) == (0, 1, [], root)


@settings(max_examples=300, deadline=None)
@given(old=junk_ints, new=junk_ints, r1=junk_hashes, r2=junk_hashes, proof=junk_proofs)
def test_consistency_junk_raises_only_proof_error(
    old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes]
) -> None:
    try:
        verify_consistency(old, new, r1, r2, proof)
    except ProofError as e:
        assert "\n" not in e.message and e.hint
    else:
        # Only equal positive sizes with an empty proof and equal roots can pass by chance.
        assert old == new > 0 and not proof and r1 == r2


def test_error_types_and_messages() -> None:
    tree = _readme_tree()
    proof = tree.inclusion_proof(5)
    with pytest.raises(RootMismatchError) as info:
        verify_inclusion(5, 8, leaf_hash(b"not it"), proof, README_ROOT)
    assert info.value.want == README_ROOT
    assert info.value.got != README_ROOT and len(info.value.got) == HASH_SIZE
    assert "entry 5 in a tree of 8" in info.value.message
    assert info.value.exit_code == 1
    with pytest.raises(ProofError, match="has 2 hashes, expected 3"):
        verify_inclusion(5, 8, leaf_hash(README_LEAVES[5]), proof[:2], README_ROOT)
    with pytest.raises(ProofError, match="root is 31 bytes"):
        verify_inclusion(5, 8, leaf_hash(README_LEAVES[5]), proof, README_ROOT[:31])
    with pytest.raises(ProofError, match="level 1, index 2"):
        assemble([[(1, 2)]], {})
    with pytest.raises(ProofError):
        fold_right([])
    with pytest.raises(ProofError, match="frontier has 0 hashes"):
        append_leaf([], 1, EMPTY_ROOT)
    with pytest.raises(ProofError, match="leaf hash is 11 bytes") as bad_leaf:
        append_leaf([], 0, b"entry bytes")
    assert "not the entry" in (bad_leaf.value.hint or "")
    with pytest.raises(ProofError, match="beyond"):
        tree.inclusion_proof(0, 9)
    with pytest.raises(ProofError):
        root_from_leaves([b"short"])
    # Consistency from size 0 is refused even when it is "obviously" fine (docs/spec/merkle.md).
    assert tree.consistency_proof(0, 8) == []
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 8, EMPTY_ROOT, README_ROOT, [])
    with pytest.raises(ProofError, match="shrank"):
        verify_consistency(8, 7, README_ROOT, tree.root(7), [])
    with pytest.raises(RootMismatchError, match="different roots"):
        verify_consistency(8, 8, README_ROOT, tree.root(7), [])
    verify_consistency(8, 8, README_ROOT, README_ROOT, [])


def test_module_imports_only_stdlib_and_errors() -> None:
    import ast

    source = Path(merkle.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert imported <= {"__future__", "hashlib", "collections.abc", "custody.errors"}


# ---------------------------------------------------------------------------------------------
# Tampering: any flipped bit in a leaf, a proof hash or a root is caught


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_every_bit_flip_in_readme_tree_is_caught() -> None:
    tree = _readme_tree()
    for size in range(1, 9):
        root = tree.root(size)
        for i in range(size):
            leaf = leaf_hash(README_LEAVES[i])
            proof = tree.inclusion_proof(i, size)
            for bit in range(HASH_SIZE * 8):
                with pytest.raises(RootMismatchError):
                    verify_inclusion(i, size, _flip(leaf, bit), proof, root)
                with pytest.raises(RootMismatchError):
                    verify_inclusion(i, size, leaf, proof, _flip(root, bit))
                for k in range(len(proof)):
                    bad = [*proof[:k], _flip(proof[k], bit), *proof[k + 1 :]]
                    with pytest.raises(RootMismatchError):
                        verify_inclusion(i, size, leaf, bad, root)
        for old in range(1, size):
            old_root = tree.root(old)
            proof = tree.consistency_proof(old, size)
            for bit in range(0, HASH_SIZE * 8, 7):
                with pytest.raises(RootMismatchError):
                    verify_consistency(old, size, _flip(old_root, bit), root, proof)
                with pytest.raises(RootMismatchError):
                    verify_consistency(old, size, old_root, _flip(root, bit), proof)
                for k in range(len(proof)):
                    bad = [*proof[:k], _flip(proof[k], bit), *proof[k + 1 :]]
                    with pytest.raises(RootMismatchError):
                        verify_consistency(old, size, old_root, root, bad)


@settings(max_examples=100, deadline=None)
@given(n=positive_sizes, salt=salts, data=st.data())
def test_bit_flips_caught_in_random_trees(n: int, salt: bytes, data: st.DataObject) -> None:
    entries = _entries(n, salt)
    tree = MemoryTree()
    for e in entries:
        tree.append(e)
    i = data.draw(st.integers(0, n - 1), label="index")
    leaf, root = leaf_hash(entries[i]), tree.root()
    proof = tree.inclusion_proof(i)
    target = data.draw(st.integers(0, len(proof) + 1), label="target")
    bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1), label="bit")
    if target < len(proof):
        proof[target] = _flip(proof[target], bit)
    elif target == len(proof):
        leaf = _flip(leaf, bit)
    else:
        root = _flip(root, bit)
    with pytest.raises(RootMismatchError):
        verify_inclusion(i, n, leaf, proof, root)

    old = data.draw(st.integers(1, n), label="old")
    old_root = tree.root(old)
    cproof = tree.consistency_proof(old, n)
    root = tree.root()
    target = data.draw(st.integers(0, len(cproof) + 1), label="ctarget")
    if target < len(cproof):
        cproof[target] = _flip(cproof[target], bit)
    elif target == len(cproof):
        old_root = _flip(old_root, bit)
    else:
        root = _flip(root, bit)
    with pytest.raises(RootMismatchError):
        verify_consistency(old, n, old_root, root, cproof)
