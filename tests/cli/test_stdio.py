"""`-` means standard input or output where custody reads or writes a file:
`custody verify -`, `custody open ITEM --out -`, `--passphrase-file -`.

One module-scoped home with one ingested clip; each test feeds standard input through
`stdin` (in process) or a real pipe (`test_real_pipes`).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import blake3
import clips
import pytest
from conftest import PASSPHRASE, CliResult, invoke

CASE = "2026-0500"


def ok(*args: str | Path) -> CliResult:
    r = invoke(*map(str, args))
    assert r.code == 0, r
    return r


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(home, the ingested clip)."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("stdio")
        home = root / "home"
        mp.setenv("CUSTODY_HOME", str(home))
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        for var in ("CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY"):
            mp.delenv(var, raising=False)
        clip = clips.make_clip(root / "door.mp4")
        ok("init", "--origin", "stdio.example/custody")
        ok("key", "new", "bob", "--role", "agency")
        ok("case", "new", CASE)
        ok("ingest", clip, "--case", CASE, "--by", "bob", "--legal-basis", "warrant")
        yield home, clip


@pytest.fixture(autouse=True)
def _world_home(world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_HOME", str(world[0]))


class _Stdin(io.TextIOWrapper):
    def __init__(self, data: bytes, tty: bool = False) -> None:
        super().__init__(io.BytesIO(data))
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def with_stdin(
    monkeypatch: pytest.MonkeyPatch, data: bytes, *args: str, tty: bool = False
) -> CliResult:
    monkeypatch.setattr(sys, "stdin", _Stdin(data, tty))
    return invoke(*args)


def accesses() -> list[dict]:
    timeline = json.loads(ok("history", f"{CASE}/0001", "--json").stdout)["timeline"]
    return [e for e in timeline if e["type"] == "access"]


def test_verify_reads_standard_input(
    world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clip = world[1]
    r = with_stdin(monkeypatch, clip.read_bytes(), "verify", "-")
    assert r.code == 0, r
    assert r.stdout.startswith("EXACT MATCH: -\n")
    assert f"exhibit {CASE}/0001 (door.mp4)" in r.stdout
    edited = clips.edit_metadata(clip, tmp_path / "e.mp4", creation_time="2024-05-05T05:05:05Z")
    r = with_stdin(monkeypatch, edited.read_bytes(), "verify", "-", "--jsonl")
    assert r.code == 1, r
    first = json.loads(r.stdout.splitlines()[0])
    assert (first["path"], first["verdict"], first["exhibit"]) == (
        "-",
        "metadata-changed",
        f"{CASE}/0001",
    )
    # Standard input is spooled to the temporary folder, and nothing is left there.
    import tempfile

    spool = tmp_path / "tmp"
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    r = with_stdin(monkeypatch, b"not footage\n", "verify", "-")
    assert r.code == 3 and f"temporary file in {spool}" in r.stderr, r  # no such folder
    spool.mkdir()
    r = with_stdin(monkeypatch, b"not footage\n", "verify", "-")
    assert r.code == 1 and r.stdout.startswith("UNKNOWN: -\n"), r
    assert list(spool.iterdir()) == []


def test_verify_dash_refusals(world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    r = with_stdin(monkeypatch, b"", "verify", "-", "-")
    assert r.code == 2 and "'-' (standard input) can be given once" in r.stderr, r
    r = with_stdin(monkeypatch, b"", "verify", "-", tty=True)
    assert r.code == 2 and "standard input, which is a terminal" in r.stderr, r


def test_open_writes_the_footage_to_standard_output(world: tuple[Path, Path]) -> None:
    before = len(accesses())
    r = invoke("open", f"{CASE}/0001", "--purpose", "court copy", "--by", "bob", "--out", "-")
    assert r.code == 0, r
    assert r.stdout_bytes == world[1].read_bytes()  # the footage, and nothing else
    logged = accesses()
    assert len(logged) == before + 1
    assert f"logged as entry {logged[-1]['index']}: bob exported {CASE}/0001" in r.stderr
    assert not (Path.cwd() / "-").exists()


def test_open_names_the_default_party(
    world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_PARTY", "bob")
    r = invoke("open", f"{CASE}/0001", "--purpose", "court copy", "--out", "-")
    assert r.code == 0, r
    assert f"bob exported {CASE}/0001 (court copy)" in r.stderr
    assert accesses()[-1]["fields"]["by"] == "bob"


def test_open_to_standard_output_refuses_json(world: tuple[Path, Path]) -> None:
    before = len(accesses())
    r = invoke("open", f"{CASE}/0001", "--purpose", "x", "--by", "bob", "--out", "-", "--json")
    assert r.code == 2, r
    assert r.stdout_bytes == b""
    assert len(accesses()) == before  # refused before anything was logged


def test_passphrase_from_standard_input(
    world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CUSTODY_PASSPHRASE")
    args = ("open", f"{CASE}/0001", "--purpose", "lab", "--by", "bob", "--passphrase-file", "-")
    out = tmp_path / "copy.mp4"
    r = with_stdin(
        monkeypatch, PASSPHRASE.encode() + b"\nrest is ignored\n", *args, "--out", str(out)
    )
    assert r.code == 0, r
    assert out.read_bytes() == world[1].read_bytes()
    # With the footage going to standard output and the passphrase coming from standard input.
    r = with_stdin(monkeypatch, PASSPHRASE.encode() + b"\n", *args, "--out", "-")
    assert r.code == 0, r
    assert r.stdout_bytes == world[1].read_bytes()
    before = len(accesses())
    r = with_stdin(monkeypatch, b"wrong passphrase\n", *args, "--out", "-")
    assert r.code == 3 and "wrong passphrase for key 'bob'" in r.stderr, r
    assert r.stdout_bytes == b""
    r = with_stdin(monkeypatch, b"x" * 5000, *args, "--out", "-")
    assert r.code == 3 and "--passphrase-file - is larger than 1024 bytes" in r.stderr, r
    r = with_stdin(monkeypatch, b"", *args, "--out", "-")
    assert r.code == 3 and "--passphrase-file - is empty" in r.stderr, r
    assert len(accesses()) == before


def test_real_pipes(world: tuple[Path, Path]) -> None:
    """The installed command, with real pipes: `verify - < clip`, `open --out - | b3sum`."""
    exe = Path(sys.executable).parent / "custody"
    env = {**os.environ, "CUSTODY_HOME": str(world[0]), "CUSTODY_PASSPHRASE": PASSPHRASE}
    with world[1].open("rb") as f:
        r = subprocess.run([exe, "verify", "-"], stdin=f, capture_output=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"EXACT MATCH: -\n")
    r = subprocess.run(
        [exe, "open", f"{CASE}/0001", "--purpose", "pipe", "--by", "bob", "--out", "-"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert blake3.blake3(r.stdout).hexdigest() == blake3.blake3(world[1].read_bytes()).hexdigest()
