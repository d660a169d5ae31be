"""Fuzzing the C2SP tlog-witness messages: what a witness reads and what a log reads back.

A witness parses add-checkpoint bodies from anyone on the network; the log parses
the witness's answers (a size, cosignature lines).  Each parser gets mutations of
genuine messages and random bytes under `fuzzkit.check`: a value or a CustodyError,
never another exception, a hang or unbounded memory.  A parsed request goes on to
the witness's whole decision (`custody.app.witness.add_checkpoint` on a real
state folder), the code the bytes reach next.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from fuzzkit import check, fuzz_settings, inputs
from hypothesis import given
from hypothesis import strategies as st

from custody.app.witness import WitnessStore, add_checkpoint
from custody.tlog.checkpoint import Checkpoint, cosign, sign_checkpoint
from custody.tlog.merkle import MemoryTree
from custody.tlog.note import Note, Signer
from custody.tlog.witnessproto import (
    AddCheckpoint,
    encode_cosignatures,
    encode_size,
    parse_cosignatures,
    parse_size,
)

LOG = Signer.from_seed("fuzz.example/log", bytes(range(32)))
WITNESS = Signer.from_seed("fuzz.example/witness", bytes(range(3, 35)))


@functools.cache
def _seeds() -> dict[str, list[bytes]]:
    tree = MemoryTree()
    for i in range(9):
        tree.append(b"entry %d" % i)
    notes = {n: sign_checkpoint(Checkpoint(LOG.name, n, tree.root(n)), LOG) for n in (0, 3, 9)}
    requests = [
        AddCheckpoint(0, (), notes[3]).encode(),
        AddCheckpoint(3, tuple(tree.consistency_proof(3, 9)), notes[9]).encode(),
        AddCheckpoint(9, (), notes[9]).encode(),
        AddCheckpoint(0, (), notes[0]).encode(),
    ]
    cosigned = Note.parse(cosign(notes[9], WITNESS, 1_767_225_600)).signatures[-1]
    return {
        "requests": requests,
        "sizes": [encode_size(0), encode_size(9), encode_size(18446744073709551615)],
        "cosignatures": [encode_cosignatures([cosigned]), encode_cosignatures([cosigned] * 3)],
    }


@functools.cache
def _store() -> WitnessStore:
    # One state folder for the run: whatever the fuzzer got cosigned is the state the
    # next examples meet, as on a witness that has been running a while.
    return WitnessStore(Path(tempfile.mkdtemp(prefix="custody-fuzz-witness-")))


def _seeded(name: str) -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: inputs(_seeds()[name]))


@fuzz_settings()
@given(_seeded("requests"))
def test_add_checkpoint_requests(data: bytes) -> None:
    def handle() -> None:
        request = AddCheckpoint.parse(data)
        add_checkpoint(
            _store(), request, WITNESS, {LOG.name: LOG.verifier_key}, timestamp=1_767_225_600
        )

    check(handle)


@fuzz_settings()
@given(_seeded("sizes"))
def test_size_responses(data: bytes) -> None:
    check(lambda: parse_size(data))


@fuzz_settings()
@given(_seeded("cosignatures"))
def test_cosignature_responses(data: bytes) -> None:
    check(lambda: parse_cosignatures(data))
