"""An export onto a full disk names the disk being written, never the evidence store it
reads, and leaves no partial bundle (issue 9: findings 3 and 13)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import clips
import pytest
from conftest import CliRunnerNS, invoke
from mounts import small_disk

CASE = "C-13"


@pytest.fixture
def small_out(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs to export onto (skipped, visibly, where none can be mounted)."""
    with small_disk(tmp_path / "out", "1m") as disk:
        yield disk


@pytest.mark.parametrize("name", ["bundle", "bundle.zip"])
def test_an_export_onto_a_full_disk_names_that_disk(
    cli: type[CliRunnerNS], home: Path, tmp_path: Path, small_out: Path, name: str
) -> None:
    clip = clips.make_clip(tmp_path / "doorbell.mp4")
    dump = tmp_path / "dvr-dump.bin"  # an attachment larger than the disk exported onto
    dump.write_bytes(os.urandom(1536 * 1024))
    cli.run("case", "new", CASE)
    cli.run(
        "ingest", str(clip), str(dump), "--case", CASE, "--by", "bob", "--legal-basis", "warrant"
    )
    r = cli.fail(3, "export", CASE, "--to", str(small_out / name), "--with-media")
    assert f"no space left on the disk holding {small_out}" in r.stderr, r
    assert "cannot read" not in r.stderr and "vault" not in r.stderr, r
    assert list(small_out.iterdir()) == []  # no bundle, no partial left behind
    assert invoke("log", "verify").code == 0
