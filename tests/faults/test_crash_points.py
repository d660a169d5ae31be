"""Crash at every named durable step, re-run, and check that nothing was lost or doubled.

custody calls `crash_point("<command>.<step>")` (custody/infra/crash.py) right after
each durable step.  This harness finds every such call in the source with `ast`,
and for each point runs its scenario from `SCENARIOS`:

1. copy the prebuilt world (two custody homes, a clip, an offer, a receipt);
2. run the scenario's command in a child process with CUSTODY_CRASH_AT=<point> and
   check that it died there (exit 137, the point named on stderr);
3. check that the log still verifies, crashed as it is;
4. run the same command again, normally, and check its exit code and what it told
   the user (e.g. "already ingested" when the entry was committed before the crash);
5. check the invariants: the home's log verifies, `custody vault check` finds no
   orphan object and no leftover, no temporary file remains in the homes or the
   temp folder, and the scenario's own facts hold (the item is on the log once, the
   receipt the crash cost is written and accepted by the sender, ...).

A point without a scenario fails `test_every_point_has_a_scenario`; a scenario whose
point is gone fails `test_no_stale_scenarios`.  docs/faults.md explains how to add one.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import blake3
import clips
import pytest
from conftest import PASSPHRASE, CliResult, invoke
from faultkit import child_env, crash_at, leftovers
from publishcrash import (
    MONITORED,
    PUBLISHED,
    REPUBLISHED,
    monitor_command,
    monitored,
    publish_command,
    published,
)
from witnesscrash import (
    COSIGNED,
    WITNESSED,
    cosign_command,
    cosigned_once,
    record_command,
    recorded_once,
)

import custody
from custody.model.entry import SignedEntry

SOURCE = Path(custody.__file__).parent
CASE = "C-1"


# -- finding the points ------------------------------------------------------------------


def find_points(root: Path = SOURCE) -> dict[str, list[str]]:
    """Every `crash_point("name")` call under `root`: name -> ["file:line", ...].

    Raises AssertionError for a call whose argument is not a string literal: the
    harness could not know which point it is.
    """
    points: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name != "crash_point":
                continue
            where = f"{path.relative_to(root.parent)}:{node.lineno}"
            arg = node.args[0] if node.args else None
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
                f"{where}: crash_point() needs a string literal, so that tests can find it"
            )
            points.setdefault(arg.value, []).append(where)
    return points


POINTS = find_points()


# -- the world every scenario starts from ------------------------------------------------


@dataclass(frozen=True)
class World:
    """A copy of the prebuilt world: where everything is."""

    root: Path

    @property
    def a(self) -> Path:
        """Home A (origin a.example/log): alice (owner) and bob (agency); C-1/0001 held by alice."""
        return self.root / "a"

    @property
    def b(self) -> Path:
        """Home B (origin b.example/log): carol (agency), who is offered C-1/0001."""
        return self.root / "b"

    @property
    def fresh(self) -> Path:
        """Where `init` scenarios make a new home."""
        return self.root / "fresh"

    @property
    def tmp(self) -> Path:
        """The temp folder (TMPDIR) of the commands run in this world."""
        return self.root / "tmp"

    @property
    def clip1(self) -> Path:
        return self.root / "clip1.mp4"

    @property
    def clip2(self) -> Path:
        """A clip not ingested yet."""
        return self.root / "clip2.mp4"

    @property
    def offer(self) -> Path:
        """alice's offer of C-1/0001 to carol; accepting it writes `offer.receipt`."""
        return self.root / "offer"

    @property
    def media(self) -> Path:
        """The offered files, as carol received them."""
        return self.root / "media"

    @property
    def receipt(self) -> Path:
        """carol's receipt for the offer (made on a copy of B), not yet taken by A."""
        return self.root / "receipt" / "offer.receipt"


def _ok(*args: str) -> CliResult:
    result = invoke(*args)
    assert result.code == 0, result
    return result


def _build_world(root: Path) -> None:
    a, b = str(root / "a"), str(root / "b")
    _ok("init", "--origin", "a.example/log", "--home", a)
    _ok("init", "--origin", "b.example/log", "--home", b)
    _ok("key", "new", "alice", "--role", "owner", "--org", "12 Elm St", "--home", a)
    _ok("key", "new", "bob", "--role", "agency", "--org", "Metro Police", "--home", a)
    _ok("key", "new", "carol", "--role", "agency", "--org", "County Police", "--home", b)
    _ok("key", "export", "carol", "--out", str(root / "carol.keyentry"), "--home", b)
    _ok("key", "import", str(root / "carol.keyentry"), "--home", a)
    clips.make_clip(root / "clip1.mp4")
    clips.make_clip(root / "clip2.mp4", pattern="smptebars", frequency=660)
    _ok("case", "new", CASE, "--title", "Crash points", "--home", a)
    _ok(
        *("ingest", str(root / "clip1.mp4"), "--case", CASE, "--by", "alice"),
        *("--source", "doorbell", "--legal-basis", "consent", "--home", a),
    )
    _ok(
        *("consent", "grant", "--owner", "alice", "--case", CASE),
        *("--purpose", "investigation", "--onward", "any", "--home", a),
    )
    _ok(
        *("handoff", "offer", f"{CASE}/0001", "--from", "alice", "--to", "carol"),
        *("--purpose", "investigation", "--out", str(root / "offer"), "--home", a),
    )
    (root / "media").mkdir()
    shutil.copy(root / "clip1.mp4", root / "media" / "clip1.mp4")
    # The receipt comes from a copy of B that accepts the offer; B itself stays unaccepted.
    (root / "receipt").mkdir()
    shutil.copy(root / "offer", root / "receipt" / "offer")
    shutil.copytree(root / "b", root / "b-accepted")
    _ok(
        *("handoff", "accept", str(root / "receipt" / "offer"), "--by", "carol"),
        *("--media", str(root / "media"), "--home", str(root / "b-accepted")),
    )
    shutil.rmtree(root / "b-accepted")
    (root / "receipt" / "offer").unlink()
    (root / "tmp").mkdir()
    (root / "seen").mkdir()


@contextmanager
def _custody_env(root: Path) -> Iterator[None]:
    """The environment the world is built in (as the autouse fixture sets it for tests)."""
    saved = dict(os.environ)
    os.environ.update(
        CUSTODY_PASSPHRASE=PASSPHRASE, CUSTODY_KDF_PROFILE="fast", CUSTODY_SEEN=str(root / "seen")
    )
    for name in ("CUSTODY_HOME", "CUSTODY_DB", "CUSTODY_CRASH_AT", "CUSTODY_DEBUG"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def prebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world, built once per session (about ten commands); tests copy it."""
    root = tmp_path_factory.mktemp("crash-world") / "world"
    root.mkdir()
    with _custody_env(root):
        _build_world(root)
    return root


@pytest.fixture
def world(prebuilt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    w = World(tmp_path / "world")
    shutil.copytree(prebuilt, w.root, symlinks=True)
    monkeypatch.setenv("CUSTODY_SEEN", str(w.root / "seen"))
    # In-process runs use the world's temp folder too, so that leftovers there are seen.
    monkeypatch.setattr(tempfile, "tempdir", str(w.tmp))
    return w


# -- looking at a home --------------------------------------------------------------------


def run_in(home: Path, *args: str | Path) -> CliResult:
    return invoke(*map(str, args), "--home", str(home))


def entries(home: Path) -> list[SignedEntry]:
    """Every entry of the home's log, parsed (read one by one until the log ends)."""
    out: list[SignedEntry] = []
    while True:
        result = run_in(home, "log", "entry", str(len(out)))
        if result.code != 0:
            assert f"the log has no entry {len(out)} " in result.stderr, result
            return out
        out.append(SignedEntry.parse(result.stdout_bytes))


def count(home: Path, type_: str, **fields: str) -> int:
    """How many entries of `type_` have every given field (`item=...`, `party=...`)."""
    return sum(
        1
        for s in entries(home)
        if s.entry.type == type_
        and all(s.entry.get(k.replace("_", "-")) == v for k, v in fields.items())
    )


def b3(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


# -- the scenarios --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """How to crash at one point, and what must hold after the re-run.

    `command(world)` gives the home and the arguments; `rerun` is the re-run's
    expected exit code and a regex its output (stdout and stderr) must match;
    `check(world)` asserts the scenario's own facts after the re-run.
    """

    command: Callable[[World], tuple[Path, list[str | Path]]]
    rerun: tuple[int, str]
    check: Callable[[World], None]
    # False where the crash comes before the home has a log at all (an interrupted
    # init): then there is nothing to verify until the re-run has made it.
    log_after_crash: bool = True
    # A point to crash the same command at first, so that the crash under test
    # happens in a re-run's code path (a point reached from two places).
    crashed_before_at: str | None = None
    # False for a command that takes no --home (monitor): the re-run goes without it.
    home_option: bool = True


def _ingest(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, [
        *("ingest", w.clip2, "--case", CASE, "--by", "bob"),
        *("--source", "dash camera", "--legal-basis", "consent"),
    ]


def _ingested_once(w: World) -> None:
    item = b3(w.clip2)
    assert count(w.a, "ingest", item=item) == 1
    history = json.loads(run_in(w.a, "history", f"{CASE}/0002", "--json").stdout)
    # One ingest (the case-wide consent granted before shows up in the timeline too).
    assert [e["type"] for e in history["timeline"]].count("ingest") == 1, history
    assert run_in(w.a, "show", f"{CASE}/0003").code != 0  # no second exhibit
    # The object is in the store and is exactly the file: `verify` says so.
    verdict = run_in(w.a, "verify", w.clip2)
    assert verdict.code == 0, verdict


def _derive(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, [
        *("derive", "trim", f"{CASE}/0001", "--start", "0", "--end", "1"),
        *("--by", "alice", "--reason", "excerpt for the jury"),
    ]


def _derived_once(w: World) -> None:
    derives = [s for s in entries(w.a) if s.entry.type == "derive"]
    assert len(derives) == 1, derives
    child = derives[0].entry.require("item")
    assert run_in(w.a, "show", f"{CASE}/0002").code == 0
    assert run_in(w.a, "show", f"{CASE}/0003").code != 0
    lineage = run_in(w.a, "derive", "lineage", f"{CASE}/0002")
    assert lineage.code == 0 and f"{CASE}/0001" in lineage.stdout, lineage
    opened = w.root / "child.mp4"
    run = run_in(
        w.a, "open", f"{CASE}/0002", "--by", "alice", "--purpose", "check", "--out", opened
    )
    assert run.code == 0 and b3(opened) == child, run


def _report(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, ["report", CASE, "--out", w.root / "report.html"]


def _report_written(w: World) -> None:
    html = (w.root / "report.html").read_text(encoding="utf-8")
    assert CASE in html and "</html>" in html


def _accept(w: World) -> tuple[Path, list[str | Path]]:
    return w.b, ["handoff", "accept", w.offer, "--by", "carol", "--media", w.media]


def _accepted_once(w: World) -> None:
    assert count(w.b, "handoff") == 1
    receipt = w.root / "offer.receipt"
    assert receipt.is_file()
    # The receipt the crash put at risk works: the sender records the handoff with it.
    taken = run_in(w.a, "handoff", "receipt", receipt)
    assert taken.code == 0, taken
    assert count(w.a, "handoff") == 1
    history = json.loads(run_in(w.b, "history", f"{CASE}/0001", "--json").stdout)
    assert history["timeline"][-1]["type"] == "handoff", history


def _receipt(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, ["handoff", "receipt", w.receipt]


def _receipt_recorded_once(w: World) -> None:
    assert count(w.a, "handoff") == 1
    history = json.loads(run_in(w.a, "history", f"{CASE}/0001", "--json").stdout)
    assert [e["type"] for e in history["timeline"]][-1] == "handoff", history
    assert history["timeline"][-1]["signed_by"] == ["alice", "carol"], history


def _open(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, [
        *("open", f"{CASE}/0001", "--by", "alice", "--purpose", "review"),
        *("--out", w.root / "opened.mp4"),
    ]


def _opened(w: World) -> None:
    assert b3(w.root / "opened.mp4") == b3(w.clip1)
    # Each run recorded its access before any byte left the store: the crashed run's
    # entry stands (the footage was read for it), and the re-run is a second access.
    assert count(w.a, "access", item=b3(w.clip1)) == 2


def _timestamp(w: World) -> tuple[Path, list[str | Path]]:
    from tsakit import shared_tsa_url

    assert run_in(w.a, "log", "checkpoint").code == 0
    return w.a, ["log", "timestamp", "--tsa", shared_tsa_url()]


def _timestamped_once(w: World) -> None:
    from tsakit import shared_tsa_url

    tokens = list((w.a / "timestamps").rglob("*.tst"))
    assert len(tokens) == 1, tokens
    again = run_in(w.a, "log", "timestamp", "--tsa", shared_tsa_url(), "--json")
    assert again.code == 0 and json.loads(again.stdout)["already"] is True, again


def _checkpoint(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, ["log", "checkpoint", "--out", w.root / "checkpoint.note"]


def _checkpointed(w: World) -> None:
    note = (w.root / "checkpoint.note").read_text(encoding="utf-8")
    size = len(entries(w.a))
    assert note.split("\n")[:2] == ["a.example/log", str(size)], note
    verified = json.loads(run_in(w.a, "log", "verify", "--json").stdout)
    assert verified["checkpoints"] == 1, verified


def _key_new(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, ["key", "new", "dave", "--role", "lab", "--org", "State Lab"]


def _key_registered_once(w: World) -> None:
    assert count(w.a, "key", party="dave") == 1
    listed = json.loads(run_in(w.a, "key", "list", "--json").stdout)
    names = [p["name"] for p in listed] if isinstance(listed, list) else listed
    assert Counter(names)["dave"] == 1, listed
    key_files = [p for p in (w.a / "keys").iterdir() if p.name.startswith("dave")]
    assert [p.name for p in key_files] == ["dave.key"], key_files
    # The key works: dave can sign (a consent needs an owner; an access needs a holder,
    # so the cheapest signature is a key rotation).
    rotated = run_in(w.a, "key", "rotate", "dave")
    assert rotated.code == 0, rotated


def _migrate(w: World) -> tuple[Path, list[str | Path]]:
    from schema1 import downgrade

    downgrade(w.a / "custody.db")  # the home as an earlier release left it
    return w.a, ["db", "migrate"]


def _migrated(w: World) -> None:
    from schema1 import schema_of

    assert schema_of(w.a / "custody.db") == "3"
    # The home works: a party can be registered on it.
    assert run_in(w.a, "key", "new", "erin", "--role", "owner").code == 0


def _init(w: World) -> tuple[Path, list[str | Path]]:
    return w.fresh, ["init", "--origin", "fresh.example/log"]


def _initialised(w: World) -> None:
    key = run_in(w.fresh, "log", "key")
    assert key.code == 0 and key.stdout.startswith("fresh.example/log+"), key
    assert [p.name for p in (w.fresh / "keys").iterdir()] == ["fresh.example%2Flog.key"]
    # The home works: a party can be registered on it.
    assert run_in(w.fresh, "key", "new", "erin", "--role", "owner").code == 0


def _export_folder(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, ["export", CASE, "--to", w.root / "bundle", "--with-media"]


def _export_zip(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, ["export", CASE, "--to", w.root / "bundle.zip", "--with-media"]


def _bundle_verifies(name: str) -> Callable[[World], None]:
    def check(w: World) -> None:
        log_key = run_in(w.a, "log", "key").stdout.strip()
        verified = invoke("verify-bundle", str(w.root / name), "--trust", log_key, "--no-probe")
        assert verified.code == 0, verified
        siblings = sorted(p.name for p in w.root.iterdir() if p.name.startswith(("bundle", ".")))
        assert siblings == [name], siblings

    return check


def _request_new(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, [
        *("request", "new", "--case", CASE, "--by", "bob", "--purpose", "burglary"),
        *("--from", "2026-03-01", "--to", "2026-03-01", "--out", w.root / "request.entry"),
    ]


def _requested_once(w: World) -> None:
    requests = [s for s in entries(w.a) if s.entry.type == "request"]
    assert len(requests) == 1, requests
    # The file the crash cost is written, and is the entry exactly as on the log.
    assert (w.root / "request.entry").read_bytes() == requests[0].data


def _dispose(w: World) -> tuple[Path, list[str | Path]]:
    return w.a, ["dispose", f"{CASE}/0001", "--by", "alice", "--reason", "retention ended"]


def _disposed_once(w: World) -> None:
    assert count(w.a, "disposal", item=b3(w.clip1)) == 1
    digest = b3(w.clip1)
    assert not (w.a / "vault" / "objects" / digest[:2] / digest).exists()
    assert not list((w.a / "vault" / "sidecars").rglob(f"{digest}.*"))
    checked = run_in(w.a, "vault", "check")
    assert checked.code == 0 and f"disposed: exhibit {CASE}/0001" in checked.stdout, checked


# The re-run's answers: what the user must be told after each crash.
INGESTED = (0, r"ingested\s+C-1/0002 [\s\S]*1 ingested, 0 already ingested, 0 failed")
ALREADY_INGESTED = (0, r"already\s+C-1/0002 [\s\S]*0 ingested, 1 already ingested, 0 failed")
INITIALISED = (0, r"initialised custody home .*\nlog origin: +fresh\.example/log")
ALREADY_ACCEPTED = (0, r"already accepted at entry \d+; receipt written to .*offer\.receipt")

SCENARIOS: dict[str, list[Scenario]] = {
    # Ingest: staged (nothing on the log) -> committed (on the log, object staged) -> placed.
    "ingest.object-staged": [Scenario(_ingest, INGESTED, _ingested_once)],
    "ingest.entry-committed": [Scenario(_ingest, ALREADY_INGESTED, _ingested_once)],
    "ingest.object-placed": [Scenario(_ingest, ALREADY_INGESTED, _ingested_once)],
    # Derive: the child rendered and staged -> its entry committed (then placed).
    "derive.child-staged": [
        Scenario(_derive, (0, r"derived\s+C-1/0002 .*trim of C-1/0001"), _derived_once)
    ],
    "derive.entry-committed": [
        Scenario(_derive, (0, r"already\s+C-1/0002 .*nothing was appended"), _derived_once)
    ],
    # Dispose: the entry committed (the file still stored) -> the file removed; a re-run
    # appends nothing, finishes the removal and says the item was already disposed of.
    "dispose.entry-committed": [
        Scenario(
            _dispose,
            (0, r"C-1/0001 was already disposed of at entry \d+\nremoved its file and 3 sidecar"),
            _disposed_once,
        )
    ],
    "dispose.object-removed": [
        Scenario(
            _dispose,
            (0, r"already disposed of at entry \d+\nits file was already removed"),
            _disposed_once,
        )
    ],
    # Request: the entry committed, the file not yet written; the re-run finds the
    # identical request, appends nothing and writes its file.
    "request.entry-committed": [
        Scenario(
            _request_new,
            (0, r"on the log already as entry \d+: nothing was appended[\s\S]*wrote the request"),
            _requested_once,
        )
    ],
    "report.written": [
        Scenario(_report, (0, r"wrote .*report\.html: case C-1.*PASSED"), _report_written)
    ],
    # Accept: the handoff committed -> the receipt written; a re-run (re)writes the receipt.
    "accept.handoff-committed": [Scenario(_accept, ALREADY_ACCEPTED, _accepted_once)],
    "accept.receipt-written": [
        Scenario(_accept, ALREADY_ACCEPTED, _accepted_once),
        # Reached again where a re-run after the handoff's commit rewrites the receipt.
        Scenario(
            _accept,
            ALREADY_ACCEPTED,
            _accepted_once,
            crashed_before_at="accept.handoff-committed",
        ),
    ],
    "receipt.recorded": [
        Scenario(
            _receipt, (0, r"handoff already recorded here as log entry \d+"), _receipt_recorded_once
        )
    ],
    # Open: the access committed (the copy not yet in place); the re-run removes the
    # unfinished copy, says so, and logs its own access.
    "open.access-committed": [
        Scenario(
            _open,
            (0, r"removed 1 unfinished copy[\s\S]*logged as entry \d+: alice exported C-1/0001"),
            _opened,
        )
    ],
    # Timestamp: the token stored (write-once); the re-run finds it and asks for no other.
    "timestamp.token-stored": [
        Scenario(_timestamp, (0, r"checkpoint \d+ was already timestamped at"), _timestamped_once)
    ],
    "checkpoint.committed": [
        Scenario(_checkpoint, (0, r"wrote .*checkpoint\.note"), _checkpointed)
    ],
    # Key new: the file written -> the key entry committed.  A re-run after the file
    # alone registers that key; after the entry, the key exists and the re-run says so.
    "key.file-written": [
        Scenario(_key_new, (0, r"registered the existing key file of 'dave'"), _key_registered_once)
    ],
    "key.entry-committed": [
        Scenario(_key_new, (2, r"'dave' is already registered"), _key_registered_once)
    ],
    # Init: the pending key id committed -> the key file written -> the origin committed.
    # Migrate: schema 1 -> 2 in one transaction; after its commit a re-run has nothing to do.
    # Witness: the state saved before the cosignature left (re-run: cosigned again);
    # log witness: the cosignature stored and the record saved (re-run: asked again).
    "witness.state-saved": [Scenario(cosign_command, COSIGNED, cosigned_once)],
    "witness.record-saved": [Scenario(record_command, WITNESSED, recorded_once)],
    "migrate.committed": [Scenario(_migrate, (0, r"schema 3 already: nothing to do"), _migrated)],
    "init.pending-committed": [Scenario(_init, INITIALISED, _initialised, log_after_crash=False)],
    "init.key-written": [Scenario(_init, INITIALISED, _initialised, log_after_crash=False)],
    "init.committed": [Scenario(_init, (2, r"already initialised"), _initialised)],
    # Export: written in its partial place -> renamed into place; folder and ZIP alike.
    # Publish: every tile written -> the checkpoint replaced; monitor: its state saved.
    "publish.tiles-written": [Scenario(publish_command, PUBLISHED, published)],
    "publish.checkpoint-written": [Scenario(publish_command, REPUBLISHED, published)],
    "monitor.state-saved": [Scenario(monitor_command, MONITORED, monitored, home_option=False)],
    "export.written": [
        Scenario(
            _export_folder, (0, r"exported case C-1 to .*/bundle:"), _bundle_verifies("bundle")
        ),
        Scenario(
            _export_zip,
            (0, r"exported case C-1 to .*/bundle\.zip:"),
            _bundle_verifies("bundle.zip"),
        ),
    ],
    "export.renamed": [
        Scenario(_export_folder, (2, r"already exists"), _bundle_verifies("bundle")),
        Scenario(_export_zip, (2, r"already exists"), _bundle_verifies("bundle.zip")),
    ],
}


def _cases() -> list[object]:
    return [
        pytest.param(point, i, id=f"{point}[{i}]")
        for point in sorted(POINTS)
        if point in SCENARIOS
        for i in range(len(SCENARIOS[point]))
    ]


# -- the tests ----------------------------------------------------------------------------


def test_every_point_has_a_scenario() -> None:
    missing = {p: w for p, w in POINTS.items() if p not in SCENARIOS}
    assert not missing, f"crash points without a scenario in SCENARIOS: {missing}"


def test_no_stale_scenarios() -> None:
    stale = sorted(set(SCENARIOS) - set(POINTS))
    assert not stale, f"scenarios for crash points no longer in the source: {stale}"


def test_point_names_are_command_dot_step() -> None:
    commands = (
        r"(ingest|accept|receipt|export|derive|report|checkpoint|key|init|consent|open|migrate"
        r"|dispose|request"
        r"|witness"
        r"|publish|monitor|timestamp"
        r")"
    )
    bad = [p for p in POINTS if not re.fullmatch(commands + r"\.[a-z]+(-[a-z]+)*", p)]
    assert not bad, f"crash point names must be <command>.<step>: {bad}"


def test_the_scan_finds_points() -> None:
    # An empty scan would make every other test here pass vacuously.
    assert POINTS, f"no crash_point() call found under {SOURCE}"


@pytest.mark.parametrize(("point", "variant"), _cases())
def test_crash_then_rerun(world: World, point: str, variant: int) -> None:
    scenario = SCENARIOS[point][variant]
    home, args = scenario.command(world)
    env = child_env(
        CUSTODY_HOME=home,
        CUSTODY_PASSPHRASE=PASSPHRASE,
        CUSTODY_KDF_PROFILE="fast",
        CUSTODY_SEEN=world.root / "seen",
        TMPDIR=world.tmp,
    )
    if scenario.crashed_before_at is not None:
        crash_at(scenario.crashed_before_at, *map(str, args), env=env)
    crash_at(point, *map(str, args), env=env)

    # Crashed as it is, the log still verifies: a crash may leave work undone, never a
    # log that is wrong.  (Only the crashed command's home was written to.)
    if scenario.log_after_crash:
        verified = run_in(home, "log", "verify")
        assert verified.code == 0, verified

    again = run_in(home, *args) if scenario.home_option else invoke(*map(str, args))
    code, told = scenario.rerun
    assert again.code == code, again
    assert re.search(told, again.stdout + again.stderr), (told, again)
    assert "Traceback" not in again.stderr and "internal error" not in again.stderr, again
    if code != 0:  # a refusal is the one-line error of docs/errors.md
        lines = again.stderr.rstrip("\n").split("\n")
        assert lines[0].startswith("custody: error: ") and len(lines) <= 2, again

    verified = run_in(home, "log", "verify")
    assert verified.code == 0, verified
    # No object without its entry, no entry without its object, nothing left in staging.
    checked = run_in(home, "vault", "check")
    assert checked.code == 0, checked
    assert leftovers(world.root) == []
    scenario.check(world)
