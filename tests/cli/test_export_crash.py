"""An export killed at each of its crash points, then run again (issue 9, finding 7).

`export.written`: the bundle is complete in its partial location, not yet renamed.
`export.renamed`: the bundle is in place.  The killed export runs `custody` in a
subprocess with CUSTODY_CRASH_AT (exit 137, no clean-up, as a SIGKILL); the re-run
must remove what the dead process left (`.OUT.partial-<pid>-*` next to the bundle, its
`custody-report-*` work folder in the temp directory) and never what a live export holds.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import clips
import pytest
from conftest import PASSPHRASE, invoke

CASE = "C-7"
CUSTODY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "custody"


def ok(*args: str) -> str:
    r = invoke(*args)
    assert r.code == 0, r
    return r.stdout


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    h = tmp_path / "home"
    ok("init", "--home", str(h), "--origin", "crash.example/custody")
    ok("key", "new", "bob", "--role", "agency", "--home", str(h))
    ok("case", "new", CASE, "--home", str(h))
    notes = clips.write_sidecar_json(tmp_path / "notes.json")
    ok(
        "ingest",
        str(notes),
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "warrant",
        "--ref",
        "W-9",
        "--home",
        str(h),
    )
    yield h, ok("log", "key", "--home", str(h)).strip()


def run(
    home: Path, tmp: Path, *args: str, crash_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CUSTODY_HOME": str(home),
        "CUSTODY_PASSPHRASE": PASSPHRASE,
        "CUSTODY_KDF_PROFILE": "fast",
        "TMPDIR": str(tmp),
    }
    env.pop("CUSTODY_CRASH_AT", None)
    if crash_at is not None:
        env["CUSTODY_CRASH_AT"] = crash_at
    return subprocess.run(
        [str(CUSTODY), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def verifies(bundle: Path, vkey: str, tmp: Path) -> None:
    r = invoke("verify-bundle", str(bundle), "--trust", vkey, "--no-probe", "--seen", str(tmp))
    assert r.code == 0, r


@pytest.mark.parametrize("name", ["bundle", "bundle.zip"])
def test_export_killed_after_writing_is_redone_and_its_leftovers_removed(
    home: tuple[Path, str], tmp_path: Path, name: str
) -> None:
    h, vkey = home
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "desk" / name
    out.parent.mkdir()
    r = run(h, tmp, "export", CASE, "--to", str(out), crash_at="export.written")
    assert r.returncode == 137, r.stderr
    assert "crash point export.written reached" in r.stderr
    # Nothing carries the final name; the complete bundle waits under its partial name,
    # which records the dead process's id.
    assert not out.exists()
    [left] = partials(out)
    assert left.name.startswith(f".{name}.partial-")
    assert left.name.split(".partial-")[1].split("-")[0].isdigit()
    assert list(tmp.glob("custody-report-*")), "the report's work folder is left too"
    r = run(h, tmp, "export", CASE, "--to", str(out))
    assert r.returncode == 0, r.stderr
    assert f"exported case {CASE} to" in r.stdout
    assert partials(out) == [] and list(tmp.glob("custody-report-*")) == []
    verifies(out, vkey, tmp_path / "seen")
    assert invoke("log", "verify", "--home", str(h)).code == 0


@pytest.mark.parametrize("name", ["bundle", "bundle.zip"])
def test_export_killed_after_the_rename_leaves_a_whole_bundle(
    home: tuple[Path, str], tmp_path: Path, name: str
) -> None:
    h, vkey = home
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / name
    r = run(h, tmp, "export", CASE, "--to", str(out), crash_at="export.renamed")
    assert r.returncode == 137, r.stderr
    assert out.exists() and partials(out) == []
    verifies(out, vkey, tmp_path / "seen")
    # The re-run refuses to replace it, as for any existing path, and cleans up the
    # report's work folder the killed run left.
    r = run(h, tmp, "export", CASE, "--to", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr, r.stderr
    assert partials(out) == [] and list(tmp.glob("custody-report-*")) == []
    verifies(out, vkey, tmp_path / "seen")


def test_a_partial_held_by_a_live_export_is_left_alone(
    home: tuple[Path, str], tmp_path: Path
) -> None:
    h, vkey = home
    out = tmp_path / "bundle"
    live = tmp_path / f".bundle.partial-{os.getpid()}-0123abcd"
    live.mkdir()
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = run(h, tmp_path, "export", CASE, "--to", str(out))
        assert r.returncode == 0, r.stderr
        assert partials(out) == [live]
    finally:
        os.close(fd)
    verifies(out, vkey, tmp_path / "seen")
