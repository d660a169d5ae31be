"""Ingest unlocks the signer's key while the first files are copied and hashed
(`Custody.signer_meanwhile`, when the passphrase comes from the environment or a file):
the key's errors must still stop the batch before any entry, with the one error the
command gave when it unlocked first, and leave nothing in the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke

CASE = "2026-0042"


def _files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "export"
    folder.mkdir()
    for n in range(4):
        (folder / f"note-{n}.txt").write_text(f"camera note {n}\n")
    return [str(p) for p in sorted(folder.iterdir())]


def _log_size() -> int:
    return int(json.loads(invoke("log", "verify", "--json").stdout)["size"])


def _stored(home: Path) -> list[Path]:
    vault = home / "vault"
    return [p for p in vault.rglob("*") if p.is_file() and "sidecars" not in p.parts]


def test_a_wrong_passphrase_stops_the_batch_before_any_entry(
    cli: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.run("case", "new", CASE)
    size = _log_size()
    monkeypatch.setenv("CUSTODY_PASSPHRASE", "not the passphrase")
    r = cli.fail(3, "ingest", *_files(tmp_path), "--case", CASE, "--by", "bob",
                 "--legal-basis", "warrant", "--ref", "W-9")  # fmt: skip
    assert "wrong passphrase for key 'bob'" in r.stderr, r
    assert r.stdout == "", r  # not one file reported as ingested, nor as failed
    from conftest import PASSPHRASE

    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
    assert _log_size() == size
    assert _stored(home) == [], _stored(home)  # no object, nothing left staged


def test_a_revoked_key_is_refused_before_any_entry(cli: Any, home: Path, tmp_path: Path) -> None:
    cli.run("case", "new", CASE)
    cli.run("key", "revoke", "bob", "--reason", "laptop stolen")
    size = _log_size()
    r = cli.fail(4, "ingest", *_files(tmp_path), "--case", CASE, "--by", "bob",
                 "--legal-basis", "warrant", "--ref", "W-9")  # fmt: skip
    assert "refused: the key of 'bob' is revoked" in r.stderr, r
    assert _log_size() == size
    assert _stored(home) == [], _stored(home)


def test_the_same_batch_with_the_right_passphrase_ingests_every_file(
    cli: Any, home: Path, tmp_path: Path
) -> None:
    cli.run("case", "new", CASE)
    r = cli.run("ingest", *_files(tmp_path), "--case", CASE, "--by", "bob",
                "--legal-basis", "warrant", "--ref", "W-9", "--jsonl")  # fmt: skip
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["status"] for x in lines if not x.get("final")] == ["ingested"] * 4, lines


# Runs `custody ARGS` and writes, for each key unlocked, which of the database layer and
# the media library were loaded at that moment, to the file named by the first argument.
UNLOCK_SPY = """
import atexit, json, sys
from custody.infra import keystore
seen = []
unlock = keystore.KeyFile.unlock
def spied(self, *args, **kwargs):
    seen.append(sorted(m for m in ("sqlalchemy", "av") if m in sys.modules))
    return unlock(self, *args, **kwargs)
keystore.KeyFile.unlock = spied
atexit.register(lambda: open(sys.argv[1], "w").write(json.dumps(seen)))
import custody.cli.main
custody.cli.main.main(sys.argv[2:])
"""


def test_the_key_is_unlocked_before_the_database_layer_is_loaded(
    cli: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Argon2id's 64 MiB are freed before SQLAlchemy (~40 MB) and PyAV (~50 MB) are
    loaded (`custody.app.early.unlock_ahead`): the two never add up in the peak memory."""
    import subprocess
    import sys

    from conftest import PASSPHRASE

    cli.run("case", "new", CASE)
    size = _log_size()
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
    seen = tmp_path / "seen.json"
    r = subprocess.run(
        [sys.executable, "-c", UNLOCK_SPY, str(seen), "ingest", *_files(tmp_path),
         "--case", CASE, "--by", "bob", "--legal-basis", "warrant", "--ref", "W-9"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(seen.read_text()) == [[]]  # unlocked once, before either was loaded
    assert _log_size() == size + 4
