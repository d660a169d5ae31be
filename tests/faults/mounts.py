"""Mounts for the fault tests: a read-only view of a folder, a tiny disk.

Root ignores file modes, so a read-only home is made with a read-only bind mount,
and a full disk with a small tmpfs.  Where mounting is not permitted (not root, no
CAP_SYS_ADMIN), the test is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here (mount {' '.join(args)}): {result.stderr.strip()}")


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


@contextlib.contextmanager
def read_only_view(src: Path, dst: Path) -> Iterator[Path]:
    """`dst` shows `src` read-only (a bind mount remounted ro) for the block."""
    dst.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(src), str(dst))
    try:
        _mount("-o", "remount,bind,ro", str(dst))
        yield dst
    finally:
        _umount(dst)


@contextlib.contextmanager
def small_disk(dst: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "2m") mounted at `dst` for the block."""
    dst.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(dst))
    try:
        yield dst
    finally:
        _umount(dst)


def fill(disk: Path, leave: int) -> Path:
    """Fill the file system of `disk` until only `leave` bytes are free; the filler file."""
    import os

    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with filler.open("wb") as f:
        remaining = max(free - leave, 0)
        block = b"\0" * (1 << 16)
        while remaining > 0:
            n = min(remaining, len(block))
            try:
                f.write(block[:n])
                f.flush()
            except OSError:
                break
            remaining -= n
    return filler
