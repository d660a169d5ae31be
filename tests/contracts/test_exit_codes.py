"""Every message docs/errors.md promises, made to happen for real, with its exit code.

The table "Every message and its exit code" in docs/errors.md is the contract: each
row is an exit code and a message (NAME, N, PATH, HASH stand for what it names).
Each row has a scenario here, keyed by the message as written there, that runs the
command in-process (tests/conftest.py `invoke`) and checks both the code and the
message.  A documented message without a scenario, or a scenario whose message is no
longer documented, fails.

The scenarios share one home (`world`), built once for the module: alice (owner),
bob (agency), lab1 (lab), mallory (agency, key revoked); C-1/0001 held by bob
(warrant); C-2/0001 under a hold by bob; C-3/0001 taken in by bob under emergency; a
consent by alice for case C-1; the log's policy forbids face-recognition.  Every
scenario fails, so none of them changes it (checked: the log's size stays the same).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import clips
import pytest
from agencykit import agency_homes, ingest_and_offer
from conftest import PASSPHRASE, CliResult, invoke

from custody.errors import EXIT_INPUT, EXIT_PENDING, EXIT_REFUSED, EXIT_USAGE, EXIT_VERIFY

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
SECTION = "## Every message and its exit code"
# Words of a documented message that stand for what the message names.
PLACEHOLDERS = {"NAME", "N", "PATH", "HASH"}


@dataclass(frozen=True)
class Row:
    code: int
    message: str

    def pattern(self) -> re.Pattern[str]:
        """The message as a regular expression: placeholders and `…` match anything."""
        parts = []
        for token in re.split(r"(\w+|…)", self.message):
            parts.append(".+?" if token in PLACEHOLDERS or token == "…" else re.escape(token))
        return re.compile("".join(parts))


def documented() -> list[Row]:
    """The table's rows, in order."""
    text = DOC.read_text()
    assert SECTION in text, f"docs/errors.md has no section {SECTION!r}"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in body.splitlines():
        m = re.match(r"\| (\d+) \| (``?)(.+?)\2 \|", line)
        if m:
            rows.append(Row(int(m.group(1)), m.group(3).strip()))
    return rows


@dataclass(frozen=True)
class World:
    home: Path
    tmp: Path
    new_clip: Path  # a clip not on the log
    emergency: int  # the log index of C-3/0001's emergency ingest
    consent: int  # the log index of alice's consent for C-1
    forged_key: Path  # carol's key entry from another log, edited after signing


def _ok(*args: str) -> CliResult:
    r = invoke(*args)
    assert r.code == 0, r
    return r


def _index(r: CliResult) -> int:
    return int(json.loads(r.stdout.splitlines()[0])["index"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("exit-codes")
    door, street, yard, porch = (
        clips.make_clip(tmp / "door.mp4"),
        clips.make_clip(tmp / "street.mp4", pattern="smptebars", frequency=660),
        clips.make_clip(tmp / "yard.mp4", pattern="rgbtestsrc", frequency=550),
        clips.make_clip(tmp / "porch.mp4", pattern="testsrc", frequency=330),
    )
    home, other = tmp / "home", tmp / "other"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        for name in ("CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY", "CUSTODY_DEBUG"):
            mp.delenv(name, raising=False)
        # Another log, whose court key is exported, then edited in transit.
        mp.setenv("CUSTODY_HOME", str(other))
        _ok("init", "--origin", "court.example/custody")
        _ok("key", "new", "carol", "--role", "court", "--org", "County Court")
        exported = _ok("key", "export", "carol").stdout_bytes
        forged = tmp / "carol.key"
        forged.write_bytes(exported.replace(b"County Court", b"County Cour7"))
        assert forged.read_bytes() != exported
        mp.setenv("CUSTODY_HOME", str(home))
        _ok("init", "--origin", "test.example/custody")
        for name, role in (("alice", "owner"), ("bob", "agency"), ("lab1", "lab")):
            _ok("key", "new", name, "--role", role, "--org", f"{name}'s org")
        _ok("key", "new", "mallory", "--role", "agency", "--org", "Nowhere")
        _ok("key", "revoke", "mallory", "--reason", "laptop stolen")
        for case in ("C-1", "C-2", "C-3"):
            _ok("case", "new", case, "--title", f"case {case}")
        warrant = ("--by", "bob", "--legal-basis", "warrant", "--ref", "SW-1")
        _ok("ingest", str(door), "--case", "C-1", *warrant)
        _ok("ingest", str(street), "--case", "C-2", *warrant)
        _ok("hold", "C-2", "--reason", "appeal pending", "--by", "bob")
        emergency = _index(
            _ok(
                *("ingest", str(yard), "--case", "C-3", "--by", "bob", "--json"),
                *("--legal-basis", "emergency", "--justification", "a child was missing"),
            )
        )
        granted = _ok("consent", "grant", "--owner", "alice", "--case", "C-1", "--purpose", "x")
        found = re.search(r"log entry (\d+)", granted.stdout)
        assert found, granted
        consent = int(found.group(1))
        _ok("policy", "set", "--forbid", "face-recognition")
    yield World(home, tmp, porch, emergency, consent, forged)


def _log_size(home: Path) -> int:
    return int(json.loads(_ok("log", "verify", "--json", "--home", str(home)).stdout)["size"])


# -- the scenarios, by documented message -------------------------------------------------

Scenario = Callable[[World, pytest.MonkeyPatch], CliResult]
OPEN = ("open", "C-1/0001", "--purpose", "review")


def _out(w: World, name: str) -> str:
    """A path in a fresh folder of the world's temp dir (nothing there yet)."""
    folder = w.tmp / "out"
    folder.mkdir(exist_ok=True)
    return str(folder / name)


def _existing(w: World) -> str:
    path = Path(_out(w, "taken.mp4"))
    path.write_bytes(b"something already here")
    return str(path)


def _dangling(w: World) -> str:
    link = Path(_out(w, "link.mp4"))
    if not link.is_symlink():
        link.symlink_to(w.tmp / "nowhere" / "target.mp4")
    return str(link)


def _truncated(w: World) -> str:
    data = w.new_clip.read_bytes()
    path = w.tmp / "truncated.mp4"
    path.write_bytes(data[: len(data) // 3])
    return str(path)


def _no_terminal(w: World, mp: pytest.MonkeyPatch) -> CliResult:
    mp.delenv("CUSTODY_PASSPHRASE")
    return invoke("consent", "grant", "--owner", "alice", "--case", "C-1", "--purpose", "x")


def _wrong_passphrase(w: World, mp: pytest.MonkeyPatch) -> CliResult:
    mp.setenv("CUSTODY_PASSPHRASE", "not the passphrase")
    return invoke("consent", "grant", "--owner", "alice", "--case", "C-1", "--purpose", "x")


def _pending(w: World, mp: pytest.MonkeyPatch) -> CliResult:
    # Three homes on one shared log: only the operator's holds the log key, so bob's
    # accept cannot make the receipt's checkpoint itself.
    base = w.tmp / "pending"
    (base / "db").mkdir(parents=True)
    mp.delenv("CUSTODY_HOME")
    homes = agency_homes(f"sqlite:///{base / 'db' / 'custody.db'}", base)
    _clip, offer = ingest_and_offer(homes["alice"], base)
    return homes["bob"].invoke("handoff", "accept", str(offer), "--by", "bob", "--wait", "0")


SCENARIOS: dict[str, Scenario] = {
    "log entry N: signature by 'carol' does not verify: the entry bytes were changed after "
    "signing, or the signature was forged": lambda w, mp: invoke(
        "key", "import", str(w.forged_key)
    ),
    "Invalid value for 'index': …": lambda w, mp: invoke(
        "log", "entry", "1234567890123456789012345"
    ),
    "party name 'DET' has the upper-case letter 'D'": lambda w, mp: invoke(
        "key", "new", "DET", "--role", "agency", "--org", "Metro"
    ),
    "--legal-basis is required": lambda w, mp: invoke(
        "ingest", str(w.new_clip), "--case", "C-1", "--by", "bob"
    ),
    "PATH already exists; refusing to overwrite it": lambda w, mp: invoke(
        *OPEN, "--by", "bob", "--out", _existing(w)
    ),
    "a key passphrase is needed but there is no terminal to ask on": _no_terminal,
    "wrong passphrase for key 'NAME' (PATH)": _wrong_passphrase,
    "--passphrase-file PATH is larger than 1024 bytes: it should hold one line, the "
    "passphrase": lambda w, mp: invoke(
        *("consent", "grant", "--owner", "alice", "--case", "C-1", "--purpose", "x"),
        *("--passphrase-file", "/dev/zero"),
    ),
    "no case 'NOPE'": lambda w, mp: invoke(
        *OPEN, "--case", "NOPE", "--by", "bob", "--out", _out(w, "nope.mp4")
    ),
    "no party named 'carol' on this log": lambda w, mp: invoke("key", "export", "carol"),
    "no party 'clerk2' on this log: import their key with `custody key import`": lambda w, mp: (
        invoke(
            *("handoff", "offer", "C-1/0001", "--from", "bob", "--to", "clerk2"),
            *("--purpose", "trial", "--out", _out(w, "clerk2.offer")),
        )
    ),
    "no exhibit C-1/0099": lambda w, mp: invoke("show", "C-1/0099"),
    "PATH is a symbolic link; refusing to write through it or replace it": lambda w, mp: invoke(
        *OPEN, "--by", "bob", "--out", _dangling(w)
    ),
    "N of N file(s) could not be ingested (see above)#3": lambda w, mp: invoke(
        *("ingest", _truncated(w), "--case", "C-1", "--by", "bob"),
        *("--legal-basis", "warrant", "--ref", "SW-1"),
    ),
    "refused: 'NAME' may not access C-1/0001: the current holder is 'bob'": lambda w, mp: invoke(
        *OPEN, "--by", "lab1", "--out", _out(w, "lab.mp4")
    ),
    "refused: 'NAME' may not derive from C-1/0001: the current holder is 'bob'": lambda w, mp: (
        invoke(
            *("derive", "trim", "C-1/0001", "--by", "lab1", "--start", "0", "--end", "1"),
            *("--reason", "excerpt"),
        )
    ),
    "refused: 'NAME' may not hand off C-1/0001: the current holder is 'bob'": lambda w, mp: invoke(
        *("handoff", "offer", "C-1/0001", "--from", "lab1", "--to", "bob"),
        *("--purpose", "return", "--out", _out(w, "lab.offer")),
    ),
    "refused: the key of 'NAME' is revoked and may not sign": lambda w, mp: invoke(
        *OPEN, "--by", "mallory", "--out", _out(w, "mallory.mp4")
    ),
    "refused: 'alice' has role owner: only an agency, a lab or a court sets retention and "
    "holds": lambda w, mp: invoke("hold", "C-1", "--reason", "mine", "--by", "alice"),
    "refused: C-2/0001 is under hold HASH (entry N) on its case, placed by bob: release it "
    "first": lambda w, mp: invoke("dispose", "C-2/0001", "--by", "bob", "--reason", "done"),
    "refused: 'bob' made emergency disclosure HASH (entry N) and may not review it": lambda w, mp: (
        invoke(
            *("review", str(w.emergency), "--by", "bob", "--outcome", "upheld"),
            *("--note", "it was urgent"),
        )
    ),
    "refused: the log's policy (entry N) forbids face-recognition analysis: C-1/0001 may "
    "not be analysed so": lambda w, mp: invoke(
        *("analysis", "record", "C-1/0001", "--by", "bob", "--kind", "face-recognition"),
        *("--tool", "facefind", "--tool-version", "1.0", "--purpose", "identify"),
    ),
    "refused: request is made by 'alice', an owner party: owners answer requests, they do "
    "not make them": lambda w, mp: invoke(
        *("request", "new", "--case", "C-1", "--by", "alice", "--purpose", "x"),
        *("--from", "2026-03-01T10:00:00Z", "--to", "2026-03-01T11:00:00Z"),
        *("--out", _out(w, "request")),
    ),
    "N of N file(s) could not be ingested (see above)#4": lambda w, mp: invoke(
        *("ingest", str(w.new_clip), "--case", "C-2", "--by", "bob"),
        *("--legal-basis", "consent", "--consent", str(w.consent)),
    ),
    "the handoff is on the log (entry N), but no checkpoint signed by the log operator "
    "covers it yet, so the receipt is not written": _pending,
}


def _key(row: Row, rows: list[Row]) -> str:
    """A row's scenario key: its message, with `#code` where two rows share one."""
    shared = sum(1 for r in rows if r.message == row.message) > 1
    return f"{row.message}#{row.code}" if shared else row.message


ROWS = documented()


def test_every_documented_message_has_a_scenario_and_no_more() -> None:
    keys = {_key(r, ROWS) for r in ROWS}
    assert len(ROWS) >= 20, ROWS  # the table was read
    assert keys - set(SCENARIOS) == set(), "documented, but no scenario makes it happen"
    assert set(SCENARIOS) - keys == set(), "a scenario whose message is not documented"


def test_the_table_names_every_exit_code() -> None:
    codes = {r.code for r in ROWS}
    assert codes == {EXIT_VERIFY, EXIT_USAGE, EXIT_INPUT, EXIT_REFUSED, EXIT_PENDING}, codes
    # And the table of exit codes at the top of the page documents each, with 0.
    text = DOC.read_text()
    for code in (0, *sorted(codes)):
        assert re.search(rf"^\| {code} \| \*\*|^\| {code} \| ", text, re.M), code


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.code}-{r.message[:40]}")
def test_documented_message_has_its_exit_code(
    row: Row, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_HOME", str(world.home))
    before = _log_size(world.home)
    r = SCENARIOS[_key(row, ROWS)](world, monkeypatch)
    assert r.code == row.code, r
    prefix = "custody: pending: " if row.code == EXIT_PENDING else "custody: error: "
    assert "Traceback" not in r.stderr, r
    said = [line for line in r.stderr.splitlines() if line.startswith(prefix)]
    assert len(said) == 1, r
    message = said[0].removeprefix(prefix)
    assert row.pattern().fullmatch(message), (row.message, message)
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
    assert _log_size(world.home) == before, "a failed command changed the log"


# -- a closed standard output is not an error --------------------------------------------

CUSTODY = Path(sys.executable).with_name("custody")


def test_a_closed_stdout_pipe_exits_0_without_a_word(world: World) -> None:
    """`custody log verify | head -1`: the reader goes away; custody stops, exit 0.

    The pipe's read end is closed before custody writes (it is still importing), so
    its first write meets EPIPE, deterministically; then the same through a shell.
    """
    assert CUSTODY.is_file(), f"the custody console script is not at {CUSTODY}"
    env = {**os.environ, "CUSTODY_HOME": str(world.home)}
    for args in (("log", "verify"), ("key", "list"), ("log", "verify", "--json")):
        child = subprocess.Popen(
            [str(CUSTODY), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()
        err = child.stderr.read().decode()
        assert child.wait(timeout=120) == 0, (args, err)
        assert err == "", (args, err)
    shell = subprocess.run(
        ["bash", "-c", f'"{CUSTODY}" log verify | head -1; exit "${{PIPESTATUS[0]}}"'],
        capture_output=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert shell.returncode == 0, shell
    assert shell.stdout.decode().startswith("OK: the log verifies"), shell


def test_ctrl_c_in_a_command_says_so_and_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    """typer turns a KeyboardInterrupt in a command into a silent exit 130; custody says
    what happened, as docs/errors.md's table promises."""
    import custody.cli.keys

    def interrupted(*_args: object, **_kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(custody.cli.keys, "open_home", interrupted)
    r = invoke("key", "list")
    assert r.code == 130, r
    assert r.stderr.startswith("custody: error: interrupted; nothing half-written was kept"), r
