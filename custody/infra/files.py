"""Durable small-file writes, in one place.

Key files, receipts, witness state and bundle files are written the same way:
a temp file in the same folder, fsync, then link (never overwrite) or rename
(replace), then fsync the folder, so that a crash leaves either the old file or
the new one, never half of one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from custody.errors import StorageError


def fsync_dir(path: Path) -> None:
    """fsync a folder, so that a rename or link in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    if not replace and path.exists():
        raise StorageError(f"{path} already exists; refusing to overwrite it")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if `path` appeared meanwhile: never overwrite
        fsync_dir(path.parent)
    except FileExistsError as exc:
        raise StorageError(f"{path} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create `path` with `data`, durably; StorageError if it exists (write-once files)."""
    _write(path, data, mode, replace=False)


def replace_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `path` atomically, replacing any previous version, durably."""
    _write(path, data, mode, replace=True)
