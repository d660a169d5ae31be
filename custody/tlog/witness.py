"""The witness update rule: does a checkpoint extend one already known? (pure)

c2sp.org/tlog-witness: a witness cosigns a checkpoint only if it is of the
same log as the last one it cosigned and extends it: not smaller, the same
root at the same size, and otherwise an RFC 9162 §2.1.4 consistency proof
from the known tree to the new one.  The same rule decides whether a bundle's
checkpoint extends the checkpoints a verifier saw before, and whether a later
checkpoint extends the one a handoff receipt was made against.

`check_extends` raises a distinct error for each way a checkpoint can fail
to extend a known one, carrying both checkpoints so that a caller can word
the refusal in its own terms (a witness refuses to cosign; a verifier reports
two histories).  It performs no I/O and keeps no state: the caller remembers
what it saw.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from custody.errors import UsageError, VerificationError
from custody.tlog.checkpoint import Checkpoint
from custody.tlog.merkle import ProofError, verify_consistency

__all__ = [
    "Extension",
    "ForkError",
    "LogMismatchError",
    "ProofNeededError",
    "RollbackError",
    "check_extends",
]


def _short(h: bytes) -> str:
    return h.hex()[:16] + "…"


class Extension(enum.Enum):
    """How a checkpoint extends a known one (what `check_extends` established)."""

    SAME = "same"
    """The same size and the same root: the same tree."""
    FROM_EMPTY = "from-empty"
    """The known tree is empty: every tree of the log extends it, no proof needed."""
    PROVEN = "proven"
    """A larger tree, and the consistency proof from the known one verified."""


class LogMismatchError(VerificationError):
    """The two checkpoints are of different logs (their origin lines differ)."""

    def __init__(self, known: Checkpoint, new: Checkpoint) -> None:
        self.known = known
        self.new = new
        super().__init__(
            f"the checkpoint is of the log {new.origin!r}, not of {known.origin!r}",
            hint="compare checkpoints of one log only",
        )


class RollbackError(VerificationError):
    """The new checkpoint is smaller than the known one: the log went back in time.

    A caller may give its own `message` and `hint`; by default they say what happened.
    """

    def __init__(
        self,
        known: Checkpoint,
        new: Checkpoint,
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.known = known
        self.new = new
        super().__init__(
            message
            or f"the checkpoint of {new.origin} has size {new.size}, smaller than size "
            f"{known.size} seen before (a rollback)",
            hint=hint or "a log only grows; keep this checkpoint as evidence",
        )


class ForkError(VerificationError):
    """The new checkpoint shows another history than the known one: the log forked.

    Either both are of one size with different roots (`cause` is None), or the
    consistency proof from the known tree to the new one failed (`cause` is the
    ProofError).  A caller may give its own `message` and `hint`.
    """

    def __init__(
        self,
        known: Checkpoint,
        new: Checkpoint,
        cause: ProofError | None = None,
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.known = known
        self.new = new
        self.cause = cause
        if message is None:
            if cause is None:
                message = (
                    f"two different histories of {new.origin}: size {new.size} has root "
                    f"{_short(new.root)}, but the checkpoint seen before has root "
                    f"{_short(known.root)}"
                )
            else:
                message = (
                    f"two different histories of {new.origin}: the checkpoint of size "
                    f"{new.size} is not consistent with size {known.size} seen before: "
                    f"{cause.message}"
                )
        super().__init__(
            message, hint=hint or "keep both checkpoints: together they prove the log forked"
        )


class ProofNeededError(UsageError):
    """The new checkpoint is larger than the known one and no consistency proof was given."""

    def __init__(self, known: Checkpoint, new: Checkpoint) -> None:
        self.known = known
        self.new = new
        super().__init__(
            f"a consistency proof from size {known.size} to {new.size} is needed",
            hint=f"custody log consistency {known.size} {new.size} --json",
        )


def check_extends(known: Checkpoint, new: Checkpoint, proof: Sequence[bytes] | None) -> Extension:
    """Decide whether `new` extends `known`, a checkpoint of the same log seen before.

    `proof` is the RFC 9162 consistency proof from `known.size` to `new.size`
    (None: none given).  It is only needed, and only looked at, when `new` is
    larger than a non-empty `known`.  Both checkpoints must already have been
    opened with the log's key: this compares tree heads, it checks no signature.

    Returns how `new` extends `known` (see Extension).

    Raises:
        LogMismatchError: the origins differ.
        RollbackError: `new` is smaller than `known`.
        ForkError: the same size with another root, or the proof does not verify
            (a malformed proof included: nothing then shows that `new` extends `known`).
        ProofNeededError: a proof is needed and `proof` is None.
    """
    if new.origin != known.origin:
        raise LogMismatchError(known, new)
    if new.size < known.size:
        raise RollbackError(known, new)
    if new.size == known.size:
        if new.root != known.root:
            raise ForkError(known, new)
        return Extension.SAME
    if known.size == 0:
        return Extension.FROM_EMPTY
    if proof is None:
        raise ProofNeededError(known, new)
    try:
        verify_consistency(known.size, new.size, known.root, new.root, proof)
    except ProofError as exc:
        raise ForkError(known, new, cause=exc) from exc
    return Extension.PROVEN
