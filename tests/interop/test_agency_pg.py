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
from pathlib import Path

import pytest
from agencykit import Home, agency_homes, ingest_process, three_home_story

pytestmark = pytest.mark.postgres


@pytest.fixture
def agency(pg_url: str, tmp_path: Path) -> dict[str, Home]:
    return agency_homes(pg_url, tmp_path, roles=True)


def test_ingest_handoff_open_across_homes_on_one_postgres_log(
    agency: dict[str, Home], tmp_path: Path
) -> None:
    three_home_story(agency, tmp_path)
    # The auditor reads and never writes; the investigators append but never alter.
    r = agency["audrey"].refuse(3, "case", "new", "C2")
    assert "may not" in r.stderr, r


def test_eight_ingesting_processes_from_two_homes(agency: dict[str, Home], tmp_path: Path) -> None:
    alice, bob, audrey = agency["alice"], agency["bob"], agency["audrey"]
    alice.run("case", "new", "C8")
    files = []
    for n in range(8):
        f = tmp_path / "clips" / f"clip-{n}.txt"
        f.parent.mkdir(exist_ok=True)
        f.write_text(f"clip {n}\n")
        files.append(f)
    procs = [
        ingest_process(f, "C8", *(("alice", alice) if n % 2 == 0 else ("bob", bob)))
        for n, f in enumerate(files)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    listed = json.loads(audrey.run("case", "show", "C8", "--json").stdout)
    assert len(listed["items"]) == 8, listed
    verdict = json.loads(audrey.run("log", "verify", "--json").stdout)
    assert verdict["verdict"] == "ok", verdict
