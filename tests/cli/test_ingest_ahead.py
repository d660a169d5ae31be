"""A large first file is copied into the store while the home is opened
(`custody.app.early.stage_ahead`): the ingest takes that copy, and a run refused before
it reaches the file leaves nothing staged."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conftest import invoke

from custody.app import early
from custody.media.digest import hash_bytes

CASE = "2026-0077"


def _big(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(early.AHEAD_MIN_BYTES + 12345)
    path = tmp_path / "dvr-dump.bin"
    path.write_bytes(data)
    return path, data


def _leftovers(home: Path) -> list[Path]:
    vault = home / "vault"
    return [p for d in ("staging", "tmp") for p in (vault / d).glob("*") if p.is_file()]


def test_the_early_copy_is_the_one_ingested(cli: Any, home: Path, tmp_path: Path) -> None:
    cli.run("case", "new", CASE)
    big, data = _big(tmp_path)
    assert early.vault_root_quick(home, None) == home / "vault"
    r = cli.run("ingest", str(big), "--case", CASE, "--by", "bob",
                "--legal-basis", "warrant", "--ref", "W-1", "--jsonl")  # fmt: skip
    first = json.loads(r.stdout.splitlines()[0])
    assert first["status"] == "ingested" and first["size"] == len(data), first
    assert first["blake3"] == hash_bytes(data).blake3_hex
    stored = home / "vault" / "objects" / first["blake3"][:2] / first["blake3"]
    assert stored.read_bytes() == data
    assert _leftovers(home) == []
    r = invoke("verify", str(big), "--json")
    assert r.code == 0, r


def test_a_refused_run_leaves_no_early_copy(cli: Any, home: Path, tmp_path: Path) -> None:
    big, _ = _big(tmp_path)
    # No such case: refused after the copy was started, before any entry.
    r = cli.fail(3, "ingest", str(big), "--case", "NO-SUCH", "--by", "bob",
                 "--legal-basis", "warrant")  # fmt: skip
    assert "NO-SUCH" in r.stderr, r
    assert _leftovers(home) == []
    assert not list((home / "vault" / "objects").rglob("*.*"))


def test_nothing_starts_early_for_small_files_or_unknown_stores(home: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)
    assert early.stage_ahead(home, None, small) is None
    big, _ = _big(tmp_path)
    assert early.stage_ahead(tmp_path / "no-home", None, big) is None
    ahead = early.stage_ahead(home, None, big)
    assert ahead is not None
    ahead.drop()
    assert _leftovers(home) == []
