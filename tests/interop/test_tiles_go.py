"""Independent-implementation check of published tiles: a log that `custody log publish`
wrote, read by Go's golang.org/x/mod/sumdb/note and sumdb/tlog (tests/interop/tiles.go).

Go verifies the checkpoint's signature, recomputes the tree hash from the tiles through
tlog.TileHashReader (which authenticates every tile it loads), and checks the inclusion
of entries read from the entry bundles with tlog.ProveRecord + tlog.CheckRecord.  A
flipped byte in a tile, an entry bundle or the checkpoint is caught.  Built once per
session in GOPATH mode, like tests/interop/test_interop_go.py; skipped, saying why,
without `go` or the Debian golang-golang-x-mod-dev package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CliRunnerNS
from publishkit import grow

GOPATH = Path("/usr/share/gocode")
XMOD = GOPATH / "src/golang.org/x/mod/sumdb"
SOURCE = Path(__file__).parent / "tiles.go"
SIZE = 1100  # four full level-0 tiles and a partial one; a partial level-1 tile


@pytest.fixture(scope="session")
def go_tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.skip("the Go toolchain (`go`) is not installed")
    if not (XMOD / "tlog" / "tile.go").is_file():
        pytest.skip(f"golang.org/x/mod is not installed under {GOPATH} (golang-golang-x-mod-dev)")
    out = tmp_path_factory.mktemp("go-tiles")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOFLAGS": "",
        "GOCACHE": str(out / "cache"),
        "CGO_ENABLED": "0",
    }
    binary = out / "tiles"
    result = subprocess.run(
        ["go", "build", "-o", str(binary), str(SOURCE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"go build failed:\n{result.stderr}")
    return binary


def go(binary: Path, key: str, folder: Path, entries: str = "") -> subprocess.CompletedProcess[str]:
    args = [str(binary), "-log-key", key, "-dir", str(folder)]
    if entries:
        args += ["-entries", entries]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def published(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> tuple[Path, str]:
    """The conftest home grown to SIZE entries, published with its entries."""
    assert grow(SIZE - 3) == SIZE
    cli.run("log", "checkpoint")
    pub = tmp_path / "pub"
    cli.run("log", "publish", "--to", str(pub), "--with-entries")
    return pub, cli.run("log", "key").stdout.strip()


INDEXES = "0,1,255,256,511,700,1023,1024,1099"


def test_go_reads_published_tiles(go_tiles: Path, published: tuple[Path, str]) -> None:
    pub, key = published
    result = go(go_tiles, key, pub, INDEXES)
    assert result.returncode == 0, result.stderr
    shown = INDEXES.replace(",", " ")
    assert result.stdout.strip() == (
        f"OK: test.example/custody (size {SIZE}) from tiles; entries included: [{shown}]"
    )


def test_go_reads_an_incremental_publish(
    go_tiles: Path, cli: type[CliRunnerNS], published: tuple[Path, str]
) -> None:
    pub, key = published
    grow(300)
    cli.run("log", "checkpoint")
    cli.run("log", "publish", "--to", str(pub), "--with-entries")
    result = go(go_tiles, key, pub, "0,1099,1100,1399")
    assert result.returncode == 0, result.stderr
    assert f"(size {SIZE + 300})" in result.stdout


@pytest.mark.parametrize("name", ["tile/0/000", "tile/0/002", "tile/0/004.p/76", "tile/1/000.p/4"])
def test_go_catches_a_flipped_tile_byte(
    go_tiles: Path, published: tuple[Path, str], name: str
) -> None:
    pub, key = published
    tile = pub / name
    raw = bytearray(tile.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    tile.write_bytes(bytes(raw))
    result = go(go_tiles, key, pub, INDEXES)
    assert result.returncode == 1, result
    assert "tiles: " in result.stderr, result.stderr


def test_go_catches_a_changed_entry(go_tiles: Path, published: tuple[Path, str]) -> None:
    pub, key = published
    bundle = pub / "tile/entries/002"
    raw = bundle.read_bytes()
    bundle.write_bytes(raw.replace(b"look 600", b"look 601", 1))
    assert go(go_tiles, key, pub).returncode == 0  # the tiles are intact
    result = go(go_tiles, key, pub, "603")  # purpose "look 600"
    assert result.returncode == 1 and "entry 603: not included" in result.stderr, result


def test_go_catches_a_forged_checkpoint(go_tiles: Path, published: tuple[Path, str]) -> None:
    pub, key = published
    cp = pub / "checkpoint"
    cp.write_bytes(cp.read_bytes().replace(f"\n{SIZE}\n".encode(), f"\n{SIZE - 1}\n".encode()))
    result = go(go_tiles, key, pub)
    assert result.returncode == 1 and "checkpoint: invalid signature" in result.stderr, result
