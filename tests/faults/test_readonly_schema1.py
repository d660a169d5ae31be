"""A schema-1 database on a read-only disk (an archived copy of an earlier release's
home) cannot be migrated: it is read in place (docs/database.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CliRunnerNS
from mounts import read_only_view
from schema1 import CASE, _item, schema_of, story

from custody.app.home import Custody


@pytest.fixture
def schema1(home: Path, cli: type[CliRunnerNS]) -> Path:
    return story(home, cli)


def test_a_read_only_schema_1_database_is_read_in_place(
    schema1: Path, tmp_path: Path, cli: type[CliRunnerNS], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archived copy cannot be migrated: it is read as it is (the custody state
    replayed in memory, the current holder and key status from schema 1's columns)."""
    before = schema1.read_bytes()
    with read_only_view(schema1.parent, tmp_path / "archive") as view:
        monkeypatch.setenv("CUSTODY_HOME", str(view))
        assert cli.run("log", "verify").stdout.startswith("OK: the log verifies")
        assert "revoked" in cli.run("key", "list").stdout
        assert "carol" in cli.run("history", f"{CASE}/0002").stdout
        with Custody.open() as c:
            assert c.store.legacy and c.store.read_only
            assert c.store.items_in_case(CASE)[1].holder == "carol"
            assert c.store.party("dave").status == "revoked"  # type: ignore[union-attr]
            with c.log.state() as state:
                assert state.item(CASE, _item(2)).holder == "carol"  # type: ignore[union-attr]
        r = cli.fail(3, "case", "new", "C2")
        assert "read-only" in r.stderr
    assert schema1.read_bytes() == before
    assert schema_of(schema1) == "1"
