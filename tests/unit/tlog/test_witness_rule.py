"""Tests for custody.tlog.witness: the one rule that decides whether a checkpoint
extends a known one (witness cosigning, seen checkpoints, receipts).

Table-driven over a real in-memory RFC 6962 tree: each case names the known and the
new tree head, the proof given, and the outcome it must have.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from custody.errors import UsageError, VerificationError
from custody.tlog.checkpoint import Checkpoint
from custody.tlog.merkle import MemoryTree
from custody.tlog.witness import (
    Extension,
    ForkError,
    LogMismatchError,
    ProofNeededError,
    RollbackError,
    check_extends,
)

ORIGIN = "example.org/log"

TREE = MemoryTree()
for _i in range(9):
    TREE.append(f"entry {_i}".encode())
OTHER = MemoryTree()  # another history: the same sizes, other entries
for _i in range(9):
    OTHER.append(f"forged {_i}".encode())


def head(size: int, tree: MemoryTree = TREE, origin: str = ORIGIN) -> Checkpoint:
    return Checkpoint(origin, size, tree.root(size))


def proof(old: int, new: int, tree: MemoryTree = TREE) -> Sequence[bytes]:
    return tree.consistency_proof(old, new)


def test_the_same_tree_extends_itself() -> None:
    assert check_extends(head(5), head(5), None) is Extension.SAME
    assert check_extends(head(0), head(0), None) is Extension.SAME


def test_every_tree_extends_the_empty_one_without_a_proof() -> None:
    assert check_extends(head(0), head(9), None) is Extension.FROM_EMPTY


def test_a_larger_tree_extends_a_smaller_one_through_its_consistency_proof() -> None:
    for old, new in [(1, 2), (3, 5), (4, 8), (5, 9), (8, 9)]:
        assert check_extends(head(old), head(new), proof(old, new)) is Extension.PROVEN


def test_a_rollback_is_refused_and_named() -> None:
    with pytest.raises(RollbackError) as err:
        check_extends(head(5), head(3), proof(3, 5))
    assert err.value.known.size == 5 and err.value.new.size == 3
    assert "has size 3, smaller than size 5 seen before (a rollback)" in err.value.message
    assert isinstance(err.value, VerificationError)


def test_two_roots_at_one_size_are_a_fork() -> None:
    with pytest.raises(ForkError) as err:
        check_extends(head(5), head(5, OTHER), None)
    assert err.value.cause is None
    assert err.value.message.startswith(f"two different histories of {ORIGIN}: size 5 has root")


def test_a_fork_behind_a_larger_tree_is_caught_by_the_proof() -> None:
    # The new tree is OTHER's; the proof is OTHER's own, honest for OTHER's old root.
    with pytest.raises(ForkError) as err:
        check_extends(head(3), head(7, OTHER), proof(3, 7, OTHER))
    assert err.value.cause is not None
    assert "is not consistent with size 3 seen before" in err.value.message


def test_a_malformed_proof_shows_nothing_and_is_refused() -> None:
    with pytest.raises(ForkError):
        check_extends(head(3), head(7), [b"\x00" * 32])
    with pytest.raises(ForkError):
        check_extends(head(3), head(7), ())


def test_a_larger_tree_without_a_proof_needs_one() -> None:
    with pytest.raises(ProofNeededError, match="from size 3 to 7 is needed") as err:
        check_extends(head(3), head(7), None)
    assert isinstance(err.value, UsageError)


def test_a_checkpoint_of_another_log_is_not_compared() -> None:
    with pytest.raises(LogMismatchError, match=r"not of 'example\.org/log'"):
        check_extends(head(3), head(3, origin="elsewhere.example/log"), None)


def test_callers_may_word_the_refusal_themselves() -> None:
    err = RollbackError(head(5), head(3), "refusing to cosign: a rollback", "keep it")
    assert (err.message, err.hint) == ("refusing to cosign: a rollback", "keep it")
