"""An export onto a full disk names the disk being written, never the evidence store it
reads, and leaves no partial bundle (issue 9: findings 3 and 13)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import clips
import pytest
from conftest import CliRunnerNS, invoke

CASE = "C-13"


@pytest.fixture
def small_out(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs to export onto (skipped, visibly, where none can be mounted)."""
    disk = tmp_path / "out"
    disk.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"disk-full tests need a tmpfs mount (as root): {r.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


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
