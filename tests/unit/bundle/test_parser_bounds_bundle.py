"""Bundle parsers refuse overlong numbers with FormatError, the folder reader's memory
follows the file, not its size limit, and --trust refuses any value it cannot use
(fuzzing findings, issue 9).

json.loads raises a plain ValueError for an integer of more than 4300 digits (int()'s
limit) and RecursionError for deep nesting; the statement's decimal fields went through
int() unbounded; `FolderSource.read` asked for `limit + 1` bytes (1 GiB for a
sidecar) for every file, however small; and a --trust value too long to be a file name
made Path.is_file() raise OSError.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from custody.bundle.reader import FolderSource, parse_trust
from custody.bundle.verify import (
    STATEMENT_V1,
    ConsistencyFile,
    Manifest,
    Statement,
    UnsafeBundleError,
    load_json,
)
from custody.errors import FormatError, UsageError

HUGE = "9" * 5000
ROOT = base64.b64encode(bytes(32)).decode()
B3 = "ab" * 32


def _statement(checkpoint_size: str, entry: str) -> str:
    return (
        f"{STATEMENT_V1}\norigin log.example\ncase C-1\nexported 2026-01-01T00:00:00Z\n"
        f"checkpoint {checkpoint_size} {ROOT}\nmanifest {B3}\nentry {entry} {B3}\n"
    )


# -- JSON ------------------------------------------------------------------------------------


def test_load_json_number_of_5000_digits() -> None:
    with pytest.raises(FormatError) as info:
        load_json(f'{{"old_size": {HUGE}}}'.encode(), "consistency/1.json")
    assert info.value.message == (
        "consistency/1.json is not valid UTF-8 JSON: a number has more than 4300 digits"
    )


def test_load_json_nested_100000_deep_names_the_file() -> None:
    with pytest.raises(FormatError, match=r"^MANIFEST\.json is not valid UTF-8 JSON: maximum"):
        load_json(b"[" * 100_000, "MANIFEST.json")


def test_load_json_syntax_error_keeps_its_message() -> None:
    with pytest.raises(FormatError, match=r"^x\.json is not valid UTF-8 JSON: Expecting value"):
        load_json(b"[1,]", "x.json")


def test_consistency_file_and_manifest_with_a_huge_number() -> None:
    with pytest.raises(FormatError, match=r"^consistency proof is not valid UTF-8 JSON: a number"):
        ConsistencyFile.parse(f'{{"old_size": {HUGE}}}'.encode())
    with pytest.raises(FormatError, match=r"^MANIFEST\.json is not valid UTF-8 JSON: a number"):
        Manifest.parse(f'{{"version": {HUGE}}}'.encode())


# -- the statement ---------------------------------------------------------------------------


def test_statement_entry_index_of_5000_digits() -> None:
    with pytest.raises(FormatError) as info:
        Statement.parse(_statement("1", HUGE))
    assert info.value.message == (
        "bundle statement line 7: entry index has 5000 digits; an index is at most 2^64-2"
    )


def test_statement_checkpoint_size_of_5000_digits() -> None:
    with pytest.raises(FormatError) as info:
        Statement.parse(_statement(HUGE, "0"))
    assert info.value.message == (
        "bundle statement: checkpoint size has 5000 digits; a tree size is at most 2^64-1"
    )


def test_statement_with_twenty_digit_numbers_still_parses() -> None:
    size = 2**64 - 1
    statement = Statement.parse(_statement(str(size), str(size - 1)))
    assert statement.size == size
    assert statement.entries == ((size - 1, B3),)


def test_statement_malformed_index_keeps_its_message() -> None:
    with pytest.raises(FormatError) as info:
        Statement.parse(_statement("1", "\u00b2"))
    assert info.value.message == "bundle statement line 7 is not 'entry <index> <hash>'"


# -- the folder reader -----------------------------------------------------------------------


def _folder(tmp_path: Path, data: bytes) -> FolderSource:
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "MANIFEST.json").write_bytes(data)
    return FolderSource(root)


def test_folder_read_does_not_reserve_its_limit(tmp_path: Path) -> None:
    # A limit of 1 TiB: reserving it (the old f.read(limit + 1)) fails with MemoryError.
    source = _folder(tmp_path, b"{}\n")
    assert source.read("MANIFEST.json", 1 << 40) == b"{}\n"


def test_folder_read_at_and_over_the_limit(tmp_path: Path) -> None:
    source = _folder(tmp_path, b"x" * 100)
    assert source.read("MANIFEST.json", 100) == b"x" * 100
    with pytest.raises(UnsafeBundleError, match=r"MANIFEST\.json is 100 bytes, more than any"):
        source.read("MANIFEST.json", 99)


def _shrunk_fstat(by: int) -> Callable[[int], os.stat_result]:
    """os.fstat reporting `by` fewer bytes, as if the file grew right after the call."""
    real_fstat = os.fstat

    def fstat(fd: int) -> os.stat_result:
        fields = list(real_fstat(fd)[:10])
        fields[6] = max(fields[6] - by, 0)  # st_size
        return os.stat_result(fields)

    return fstat


def test_folder_read_of_a_file_that_grew_reads_all_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _folder(tmp_path, b"y" * 1000)
    monkeypatch.setattr("custody.bundle.reader.os.fstat", _shrunk_fstat(600))
    assert source.read("MANIFEST.json", 1 << 30) == b"y" * 1000


def test_folder_read_of_a_file_that_grew_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _folder(tmp_path, b"z" * 1000)
    monkeypatch.setattr("custody.bundle.reader.os.fstat", _shrunk_fstat(600))
    with pytest.raises(UnsafeBundleError, match=r"MANIFEST\.json is 501 bytes, more than any"):
        source.read("MANIFEST.json", 500)


# -- --trust values --------------------------------------------------------------------------


def test_trust_value_too_long_to_be_a_file_name() -> None:
    # Path.is_file() lets ENAMETOOLONG through: the value is neither a key nor a file.
    value = "0" * 5000
    with pytest.raises(UsageError) as info:
        parse_trust([value])
    assert info.value.message.startswith(f"--trust {value[:60]!r} is not a verifier key: ")
