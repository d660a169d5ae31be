"""Numbers longer than a uint64 in checkpoints and tlog-proofs are format errors.

Python's int() refuses more than 4300 digits with ValueError (CVE-2020-10735), which the
decimal regexes of the formats do not bound: the parsers must refuse a size or index
longer than 2^64-1 has digits before they convert it (fuzzing finding, issue 9).
"""

from __future__ import annotations

import base64

import pytest

from custody.errors import FormatError
from custody.tlog.checkpoint import Checkpoint, open_checkpoint
from custody.tlog.note import Signer, sign_note
from custody.tlog.tlogproof import TlogProof

ORIGIN = "custody.example/log"
LOG = Signer.from_seed(ORIGIN, bytes([1]) * 32)
ROOT = base64.b64encode(bytes(32)).decode()
HUGE = "9" * 5000


def test_checkpoint_size_of_5000_digits_is_a_format_error() -> None:
    with pytest.raises(
        FormatError, match=r"checkpoint tree size 9{40}… \(5000 digits\) is outside"
    ) as info:
        Checkpoint.parse(f"{ORIGIN}\n{HUGE}\n{ROOT}\n")
    assert "\n" not in info.value.message
    assert len(info.value.message) < 120


def test_checkpoint_size_of_21_digits_keeps_its_message() -> None:
    # The message the constructor has always given for a size beyond 2^64-1.
    size = 10**20
    with pytest.raises(FormatError) as info:
        Checkpoint.parse(f"{ORIGIN}\n{size}\n{ROOT}\n")
    assert info.value.message == f"checkpoint tree size {size} is outside 0..2^64-1"


def test_checkpoint_size_of_2_to_64_minus_1_still_parses() -> None:
    assert Checkpoint.parse(f"{ORIGIN}\n{2**64 - 1}\n{ROOT}\n").size == 2**64 - 1


def test_signed_checkpoint_with_a_huge_size_is_a_format_error() -> None:
    note = sign_note(f"{ORIGIN}\n{HUGE}\n{ROOT}\n", [LOG])
    with pytest.raises(FormatError, match="checkpoint tree size"):
        open_checkpoint(note, LOG.verifier_key)


def test_tlog_proof_whose_checkpoint_has_a_huge_size_is_a_format_error() -> None:
    note = sign_note(f"{ORIGIN}\n{HUGE}\n{ROOT}\n", [LOG])
    with pytest.raises(FormatError, match="tlog-proof checkpoint: checkpoint tree size"):
        TlogProof(0, (), note)
    with pytest.raises(FormatError, match="tlog-proof checkpoint: checkpoint tree size"):
        TlogProof.parse(b"c2sp.org/tlog-proof@v1\nindex 0\n\n" + note)


def test_tlog_proof_index_of_5000_digits_is_a_format_error() -> None:
    data = f"c2sp.org/tlog-proof@v1\nindex {HUGE}\n\n".encode()
    with pytest.raises(
        FormatError, match=r"tlog-proof index 9{40}… \(5000 digits\) is outside"
    ) as info:
        TlogProof.parse(data)
    assert len(info.value.message) < 120


def test_tlog_proof_index_of_21_digits_keeps_its_message() -> None:
    note = sign_note(f"{ORIGIN}\n1\n{ROOT}\n", [LOG])
    index = 10**20
    with pytest.raises(FormatError) as info:
        TlogProof.parse(f"c2sp.org/tlog-proof@v1\nindex {index}\n\n".encode() + note)
    assert info.value.message == f"tlog-proof index {index} is outside 0..2^64-2"
