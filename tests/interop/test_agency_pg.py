"""An agency on one PostgreSQL log (issue 10, "Tests with real servers").

A PostgreSQL server started by the tests (tests/pgserver.py); three homes on one log and
one shared evidence-store folder: the log operator (the schema owner, who alone holds the
log key), two investigators connecting as their own database users with the
investigator role, and an auditor with the auditor role.  Each home is made with
`custody join` and remembers its database in its custody.toml, so the commands below
name no database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PASSPHRASE, CliResult, invoke

pytestmark = pytest.mark.postgres

CUSTODY = Path(sys.executable).with_name("custody")
CASE = "C1"


def _as_user(url: str, user: str) -> str:
    """The same database URL, connecting as `user` (the test server trusts local users)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[1]}"


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *args: str) -> CliResult:
        r = invoke(*args, "--home", str(self.root))
        assert r.code == 0, r
        return r

    def refuse(self, code: int, *args: str) -> CliResult:
        r = invoke(*args, "--home", str(self.root))
        assert r.code == code, r
        assert r.stderr.startswith("custody: error: ") and "Traceback" not in r.stderr, r
        return r


@pytest.fixture
def agency(pg_url: str, tmp_path: Path) -> dict[str, Home]:
    vault = tmp_path / "share" / "vault"
    operator = Home(tmp_path / "operator")
    operator.run("init", "--origin", "metro.example/custody", "--db", pg_url, "--vault", str(vault))
    operator.run("key", "new", "ops", "--role", "agency", "--org", "Metro Police")
    for user, role in (("alice", "investigator"), ("bob", "investigator"), ("audrey", "auditor")):
        operator.run("db", "grant", user, "--as", role)
    homes = {"operator": operator}
    for user in ("alice", "bob", "audrey"):
        home = Home(tmp_path / user)
        home.run("join", "--db", _as_user(pg_url, user))
        homes[user] = home
    homes["alice"].run("key", "new", "alice", "--role", "agency", "--org", "Metro Police")
    homes["bob"].run("key", "new", "bob", "--role", "agency", "--org", "Metro Police")
    return homes


def test_ingest_handoff_open_across_homes_on_one_postgres_log(
    agency: dict[str, Home], tmp_path: Path
) -> None:
    alice, bob, operator, audrey = (agency[n] for n in ("alice", "bob", "operator", "audrey"))
    clip = tmp_path / "doorbell.txt"
    clip.write_text("a doorbell export, standing in for a clip\n")
    alice.run("case", "new", CASE)
    alice.run(
        "ingest",
        str(clip),
        "--case",
        CASE,
        "--by",
        "alice",
        "--legal-basis",
        "warrant",
        "--ref",
        "W-17",
    )
    offer = tmp_path / "offer"
    alice.run(
        "handoff",
        "offer",
        f"{CASE}/0001",
        "--from",
        "alice",
        "--to",
        "bob",
        "--purpose",
        "analysis",
        "--out",
        str(offer),
    )
    # Only the operator's home holds the log key: an investigator cannot sign checkpoints.
    r = bob.refuse(2, "log", "checkpoint")
    assert "only the log operator" in r.stderr, r
    operator.run("log", "checkpoint")
    # Bob accepts in his own home: the item is in the shared store, so no --media.  The
    # receipt waits for the operator's next checkpoint, signed here by a concurrent
    # `log checkpoint --every 1`.
    env = dict(os.environ, CUSTODY_PASSPHRASE=PASSPHRASE)
    signer = subprocess.Popen(
        [str(CUSTODY), "log", "checkpoint", "--every", "1", "--home", str(operator.root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        r = bob.run("handoff", "accept", str(offer), "--by", "bob", "--wait", "60")
    finally:
        signer.terminate()
        signer.wait(timeout=30)
    assert "signed by alice and bob" in r.stdout, r
    out = tmp_path / "copy.txt"
    bob.run("open", f"{CASE}/0001", "--by", "bob", "--purpose", "analysis", "--out", str(out))
    assert out.read_text() == clip.read_text()
    shown = json.loads(audrey.run("history", f"{CASE}/0001", "--json").stdout)
    assert [e["type"] for e in shown["timeline"]] == ["ingest", "handoff", "access"]
    operator.run("log", "checkpoint")
    verdict = json.loads(audrey.run("log", "verify", "--json").stdout)
    assert verdict["verdict"] == "ok", verdict
    # The auditor reads and never writes.
    audrey.refuse(3, "case", "new", "C2")


INGEST = """
import sys
from pathlib import Path
from custody.cli import main
sys.argv = ["custody", "ingest", sys.argv[1], "--case", "C8", "--by", sys.argv[2],
            "--legal-basis", "warrant", "--ref", "W-8", "--home", sys.argv[3]]
main()
"""


def test_eight_ingesting_processes_from_two_homes(agency: dict[str, Home], tmp_path: Path) -> None:
    alice, bob, audrey = agency["alice"], agency["bob"], agency["audrey"]
    alice.run("case", "new", "C8")
    files = []
    for n in range(8):
        f = tmp_path / "clips" / f"clip-{n}.txt"
        f.parent.mkdir(exist_ok=True)
        f.write_text(f"clip {n}\n")
        files.append(f)
    env = dict(os.environ, CUSTODY_PASSPHRASE=PASSPHRASE)
    procs = []
    for n, f in enumerate(files):
        home, party = (alice, "alice") if n % 2 == 0 else (bob, "bob")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", INGEST, str(f), party, str(home.root)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    listed = json.loads(audrey.run("case", "show", "C8", "--json").stdout)
    assert len(listed["items"]) == 8, listed
    verdict = json.loads(audrey.run("log", "verify", "--json").stdout)
    assert verdict["verdict"] == "ok", verdict
