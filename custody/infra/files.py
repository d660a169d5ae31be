"""Durable small-file writes and reclaimable work folders, in one place.

Key files, receipts, witness state and bundle files are written the same way:
a temp file in the same folder, fsync, then link (never overwrite) or rename
(replace), then fsync the folder, so that a crash leaves either the old file or
the new one, never half of one.

What a killed process leaves behind (a temp file, a work folder) is locked with
flock(2) while it is in use, so the next run can tell a leftover (no one holds
its lock) from the work of a live process, and remove it: `reclaim` and
`work_dir`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from custody.errors import StorageError

__all__ = [
    "NoSpaceError",
    "fsync_dir",
    "no_space_error",
    "reclaim",
    "replace_durably",
    "work_dir",
    "write_new",
]

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _shown(path: Path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class NoSpaceError(StorageError):
    """The disk (or the user's quota on it) is full: the message names the disk's folder.

    A batch stops at the first one (the next file would fail the same way).
    """


def no_space_error(exc: BaseException, where: Path, what: str) -> NoSpaceError | None:
    """A NoSpaceError naming the full disk, if `exc` says the disk is full; else None.

    `where` is the folder on that disk the command was writing to, `what` what it
    was doing (e.g. "cannot write the report r.html").
    """
    if not isinstance(exc, OSError) or exc.errno not in _NO_SPACE:
        return None
    return NoSpaceError(
        f"no space left on the disk holding {_shown(where)}: {what} ({exc.strerror or exc})",
        hint="free some space",
    )


def fsync_dir(path: Path) -> None:
    """fsync a folder, so that a rename or link in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _write(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    if not replace and path.exists():
        raise StorageError(f"{path} already exists; refusing to overwrite it")
    # Temp files of this name that no live process holds were left by a killed run.
    reclaim(path.parent, f".{path.name}.", suffix=".tmp")
    tmp = _temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            if replace:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)  # fails if `path` appeared meanwhile: never overwrite
            fsync_dir(path.parent)
        finally:
            os.close(fd)
    except FileExistsError as exc:
        raise StorageError(f"{path} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        full = no_space_error(exc, path.parent, f"cannot write {_shown(path)}")
        if full is not None:
            raise full from None
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create `path` with `data`, durably; StorageError if it exists (write-once files)."""
    _write(path, data, mode, replace=False)


def replace_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `path` atomically, replacing any previous version, durably."""
    _write(path, data, mode, replace=True)


def reclaim(parent: Path, prefix: str, *, suffix: str = "") -> list[Path]:
    """Remove the leftovers of killed runs in `parent`: entries named `prefix`…`suffix`
    (files or folders, not symbolic links) that no live process holds locked.

    Best effort: whatever cannot be removed now stays for the next run.  Returns
    what was removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(suffix)):
            continue
        if entry.is_symlink():
            continue
        path = Path(entry.path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
        except OSError:
            continue  # held by a live process, or not ours to remove
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def work_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder `parent`/`prefix`…, removed on exit, and reclaimable after a kill.

    The folder is locked (flock on the folder itself) while in use; leftovers of
    killed runs with the same prefix are removed first (`reclaim`).

    Raises:
        StorageError: the folder cannot be made (a full disk is named as such).
    """
    reclaim(parent, prefix)
    while True:
        try:
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            full = no_space_error(exc, parent, "cannot make a work folder")
            if full is not None:
                raise full from None
            raise StorageError(
                f"cannot make a work folder in {_shown(parent)}: {exc.strerror or exc}"
            ) from None
        # Blocking: another run's `reclaim` holds the lock only while it removes the
        # folder, which it may do between mkdtemp and flock; then take another.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            alive = os.stat(path).st_ino == os.fstat(fd).st_ino
        except OSError:
            alive = False
        if alive:
            break
        os.close(fd)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)
