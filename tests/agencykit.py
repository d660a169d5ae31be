"""An agency on one log, for tests: the operator's, two investigators' and an auditor's
homes on one database and one shared evidence-store folder (issue 10).

`agency_homes(url, base)` builds them on any database URL: one SQLite file
(tests/cli/test_agency.py) or PostgreSQL, where `roles=True` grants each user their
database role and each home connects as its own user (tests/interop/test_agency_pg.py).
`three_home_story` is the sequence that failed before issue 10, run end to end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import PASSPHRASE, CliResult, invoke

CASE = "C1"
ORIGIN = "metro.example/custody"
ROLES = {"alice": "investigator", "bob": "investigator", "audrey": "auditor"}


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root

    def invoke(self, *args: str) -> CliResult:
        return invoke(*args, "--home", str(self.root))

    def run(self, *args: str) -> CliResult:
        r = self.invoke(*args)
        assert r.code == 0, r
        return r

    def refuse(self, code: int, *args: str) -> CliResult:
        r = self.invoke(*args)
        assert r.code == code, r
        assert r.stderr.startswith("custody: error: ") and "Traceback" not in r.stderr, r
        return r


def as_user(url: str, user: str) -> str:
    """The same database URL, connecting as `user` (the test server trusts local users)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[1]}"


def agency_homes(url: str, base: Path, *, roles: bool = False) -> dict[str, Home]:
    """The operator's home (log key, `init --db url --vault`), alice's and bob's (joined,
    each with their own party key), and an auditor's (joined, no key).  With `roles`
    (PostgreSQL), the operator grants each user the role in ROLES and each home
    connects as its user."""
    vault = base / "share" / "vault"
    operator = Home(base / "operator")
    operator.run("init", "--origin", ORIGIN, "--db", url, "--vault", str(vault))
    homes = {"operator": operator}
    for user in ("alice", "bob", "audrey"):
        if roles:
            operator.run("db", "grant", user, "--as", ROLES[user])
        homes[user] = Home(base / user)
        r = homes[user].run("join", "--db", as_user(url, user) if roles else url)
        assert ORIGIN in r.stdout and str(vault) in r.stdout, r
    homes["alice"].run("key", "new", "alice", "--role", "agency", "--org", "Metro Police")
    homes["bob"].run("key", "new", "bob", "--role", "lab", "--org", "State Lab")
    return homes


def checkpoint_signer(operator: Home, every: str = "1") -> subprocess.Popen[bytes]:
    """`custody log checkpoint --every` running in the operator's home."""
    env = dict(os.environ, CUSTODY_PASSPHRASE=PASSPHRASE)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "custody.cli.main",
            "log",
            "checkpoint",
            "--every",
            every,
            "--home",
            str(operator.root),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def ingest_args(
    path: Path, case: str = CASE, ref: str = "W-1", by: str | None = "alice"
) -> tuple[str, ...]:
    """`custody ingest PATH` into `case` under a warrant, signed by `by` (None: the home's
    default party)."""
    return (
        "ingest", str(path), "--case", case, *(("--by", by) if by else ()),
        "--legal-basis", "warrant", "--ref", ref,
    )  # fmt: skip


_INGEST = """
import sys
from custody.cli import main
sys.argv = ["custody", "ingest", sys.argv[1], "--case", sys.argv[2], "--by", sys.argv[3],
            "--legal-basis", "warrant", "--ref", "W-8", "--home", sys.argv[4]]
main()
"""


def ingest_process(path: Path, case: str, party: str, home: Home) -> subprocess.Popen[bytes]:
    """`custody ingest` of one file by `party` in `home`, in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-c", _INGEST, str(path), case, party, str(home.root)],
        env=dict(os.environ, CUSTODY_PASSPHRASE=PASSPHRASE),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def ingest_and_offer(alice: Home, folder: Path, ref: str = "W-1") -> tuple[Path, Path]:
    """Alice ingests a file into CASE and offers exhibit 0001 to bob: (the file, the offer)."""
    clip = folder / "doorbell.txt"
    clip.write_text("a doorbell export, standing in for a clip\n")
    alice.run("case", "new", CASE)
    alice.run(*ingest_args(clip, ref=ref))
    offer = folder / "offer"
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
    return clip, offer


def three_home_story(agency: dict[str, Home], tmp_path: Path) -> None:
    """Ingest in alice's home, handoff accepted and footage opened in bob's, checkpoints
    only from the operator's, `log verify` and `vault check` from the auditor's."""
    alice, bob, operator, audrey = (agency[n] for n in ("alice", "bob", "operator", "audrey"))
    # Only the operator's home has the log key, and only there is a vault folder made.
    assert (operator.root / "keys").is_dir() and not (alice.root / "vault").exists()
    clip, offer = ingest_and_offer(alice, tmp_path, ref="W-17")
    for home in (alice, bob, audrey):
        r = home.refuse(2, "log", "checkpoint")
        assert f"only the log operator, whose home holds the log key '{ORIGIN}'" in r.stderr, r
    r = alice.refuse(2, "export", CASE, "--to", str(tmp_path / "bundle"))
    assert "export signs the bundle with the log's key" in r.stderr, r
    operator.run("log", "checkpoint")
    # Bob accepts in his own home without --media: the item is in the shared store.
    # The receipt waits for the checkpoint a concurrent `--every 1` signer makes.
    signer = checkpoint_signer(operator)
    try:
        r = bob.run("handoff", "accept", str(offer), "--by", "bob", "--wait", "60")
    finally:
        signer.send_signal(signal.SIGTERM)
        out, err = signer.communicate(timeout=30)
    assert signer.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert "signed by alice and bob" in r.stdout, r
    assert "waiting up to 60 s" in r.stderr, r
    assert offer.with_name("offer.receipt").is_file()
    sizes = [int(line.split()[1]) for line in out.decode().splitlines()]
    size = json.loads(audrey.run("log", "verify", "--json").stdout)["size"]
    assert sizes and sizes[-1] == size, (out, size)  # the handoff is the last entry
    copy = tmp_path / "copy.txt"
    bob.run("open", f"{CASE}/0001", "--by", "bob", "--purpose", "analysis", "--out", str(copy))
    assert copy.read_text() == clip.read_text()
    # The sender records the receipt on the same log: it is there already.
    r = alice.run("handoff", "receipt", str(offer.with_name("offer.receipt")))
    assert "already recorded" in r.stdout, r
    shown = json.loads(audrey.run("history", f"{CASE}/0001", "--json").stdout)
    assert [e["type"] for e in shown["timeline"]] == ["ingest", "handoff", "access"]
    operator.run("log", "checkpoint")
    verdict = json.loads(audrey.run("log", "verify", "--json").stdout)
    assert verdict["verdict"] == "ok", verdict
    check = json.loads(audrey.run("vault", "check", "--json").stdout)
    assert check["ok"] and check["rehashed"] and check["items"] == 1, check
