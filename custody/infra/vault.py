"""The evidence store: write-once, content-addressed copies of ingested files.

Layout under the vault root (docs/spec/media.md, "Evidence store"):

    objects/<first 2 hex>/<BLAKE3 hex>              the file's exact bytes, mode 0444
    sidecars/<first 2 hex>/<BLAKE3 hex>.<kind>       e.g. .probe, .framehash, mode 0444
    staging/<BLAKE3 hex>.<random>                    complete copies whose entry is not yet
                                                     committed (`Vault.stage_file`)
    tmp/                                             writes in progress

A file is copied in one read pass that hashes what it copies: each 16 MiB window
of the source is mapped once, hashed by BLAKE3 on every core, and written to a
temp file inside the vault by a second thread while the next window is hashed.
Then: fsync the temp file, make it read-only, hard-link it to its final name
(which fails if the object already exists, so nothing is ever overwritten), fsync
the directory, remove the temp name.  An interrupted run (Ctrl-C, kill, power
loss) leaves at most a temp file under tmp/, which the next `Vault` open removes;
an object under objects/ is always complete.

Ingest and derive do not put a copy straight into objects/: `Vault.stage_file`
leaves the complete, fsynced copy under staging/, the caller commits the log
entry, and only then `Staged.place` links it into objects/ (docs/ingest.md,
"What a crash leaves").  So an object never exists without its entry; a copy
refused before its entry is committed is discarded; and a crash between the
commit and the placing leaves a staged copy that `Vault.recover` moves into
place on the next run (or removes, when no entry names it).

Write-once has one exception: a disposal (docs/lifecycle.md).  Once an item's signed
`disposal` entry is committed and no exhibit not disposed of names the object,
`Vault.remove` deletes the object and its sidecars; nothing else ever deletes an
object (an object no entry names is moved to quarantine/, never deleted).

Shared stores (docs/deployment.md, "Shared storage"): several users' processes,
on one machine or several mounting one share, may write one store at once.  Every
write goes to a temp or staged name unique to the process (mkstemp, a random
suffix) and reaches its final name by link(2), which never replaces, so two
processes storing the same file make one object.  Folders made inside the store
take the permission bits of the store's root (for a shared store 2770: owner and
group read and write, the set-group-ID bit keeps the share's group); objects and
sidecars are mode 0444.  The share must support hard links (or rename) and
flock(2) (NFSv4 and SMB3 mounts on Linux do).

Why mmap rather than read(): copying every byte out of the page cache costs as
much CPU as BLAKE3 itself on a 2-core machine, so a read() loop reaches only about
half of ``b3sum``'s throughput (which maps the file too).  Each window is prefaulted
with MADV_POPULATE_READ, so a read error on a failing card or disk becomes an
OSError (an `InputError` naming the file) instead of SIGBUS; where the kernel
lacks it (before Linux 5.14) the store falls back to read().  Windows are unmapped
as soon as they are written, so memory stays at a few windows whatever the size.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import re
import secrets
import stat
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from custody.errors import (
    FormatError,
    InputError,
    NotFoundError,
    StorageError,
    VerificationError,
)
from custody.infra.files import fsync_dir, no_space_error
from custody.media.digest import CHUNK_SIZE, FileDigests, Hasher

__all__ = [
    "Recovery",
    "Removed",
    "Staged",
    "StoredFile",
    "Vault",
    "display_path",
    "hash_file",
]

Progress = Callable[[int], None]

# Linux 5.14+; not in Python 3.11's mmap module.  Prefaulting a window turns an
# I/O error into EFAULT/EIO from madvise() instead of a SIGBUS on first touch.
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
_WINDOW = CHUNK_SIZE  # read() buffer of the fallback pass
_COPY_WINDOW = CHUNK_SIZE
_HASH_WINDOW = 4 * CHUNK_SIZE
_HEX = re.compile(r"[0-9a-f]{64}")
_KIND = re.compile(r"[a-z][a-z0-9-]{0,31}")
_STAGED = re.compile(r"([0-9a-f]{64})\.[0-9a-f]{16}")

# Set once the kernel has refused MADV_POPULATE_READ: use read() from then on.
_populate_unsupported = threading.Event()


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as text for messages: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class StoredFile:
    """The outcome of `Vault.put_file`: digests, the object's path, and whether it was there."""

    digests: FileDigests
    path: Path
    already_present: bool


class _ReadError(Exception):
    def __init__(self, error: OSError, offset: int) -> None:
        super().__init__(error)
        self.error = error
        self.offset = offset


class _WriteError(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


class _NoPopulate(Exception):
    """The kernel does not support MADV_POPULATE_READ."""


# ---------------------------------------------------------------------------------
# One read pass over a file: hash every byte, optionally hand it to a sink.


def _map_window(fd: int, offset: int, length: int) -> mmap.mmap:
    try:
        window = mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=offset)
    except OSError as exc:
        if offset == 0 and exc.errno in (errno.ENODEV, errno.EINVAL, errno.EACCES):
            raise _NoPopulate from exc  # this file system cannot map files
        raise _ReadError(exc, offset) from exc
    try:
        window.madvise(_MADV_POPULATE_READ)
    except OSError as exc:
        window.close()
        if exc.errno == errno.EINVAL:
            _populate_unsupported.set()
            raise _NoPopulate from exc
        raise _ReadError(exc, offset) from exc
    except BaseException:
        window.close()
        raise
    return window


def _write_all(fd: int, view: memoryview) -> None:
    # Every slice is released before an error propagates: a slice kept alive by the
    # traceback would pin the mapped window, whose close() then fails with
    # "BufferError: cannot close exported pointers exist" instead of reporting the
    # write error (a full disk, typically).
    done, total = 0, len(view)
    while done < total:
        with view[done:] as rest:
            try:
                done += os.write(fd, rest)
            except OSError as exc:
                raise _WriteError(exc) from None


def _drain_window(
    window: mmap.mmap, offset: int, sink_fd: int | None, sha: hashlib._Hash | None
) -> None:
    # Runs in the second thread, next to BLAKE3 hashing the following window in the
    # first: SHA-256 (single-threaded, and the slower hash) and the copy overlap it.
    try:
        with memoryview(window) as view:
            if sha is not None:
                sha.update(view)
            if sink_fd is not None:
                _write_all(sink_fd, view)
        if sink_fd is not None:
            _start_writeback(sink_fd, offset, len(window))
    finally:
        window.close()


def _start_writeback(fd: int, offset: int, length: int) -> None:
    # Start writing this window to disk now, not at fsync: the disk then works
    # while the next windows are hashed, and the final fsync has little left to do.
    # (On Linux, POSIX_FADV_DONTNEED starts writeback of dirty pages and drops
    # clean ones: the evidence copy need not crowd the source out of the cache.)
    with contextlib.suppress(OSError):  # advice only
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _settle(future: Future[mmap.mmap] | Future[None] | None) -> None:
    """Wait for a background step to finish, closing a window it produced."""
    if future is None:
        return
    try:
        result = future.result()
    except BaseException:
        return  # the first error is already on its way up
    if isinstance(result, mmap.mmap):
        result.close()


def _mapped_pass(
    fd: int,
    size: int,
    hasher: Hasher,
    sha: hashlib._Hash | None,
    sink_fd: int | None,
    progress: Progress | None,
) -> None:
    # Three windows at most are alive: one being mapped, one being hashed with
    # BLAKE3 (on every core, GIL released), one being drained (SHA-256, copy).
    drain = sha is not None or sink_fd is not None
    # A hash-only pass maps larger windows: fewer BLAKE3 calls, each spread over every
    # core, keeps up with b3sum (0.93 -> 0.99 of its speed at 16 -> 64 MiB, measured
    # on a 2 GiB file).  A copy keeps 16 MiB windows: mapped pages count as resident,
    # and ingest must stay under 150 MB whatever the file size.
    window = _HASH_WINDOW if not drain else _COPY_WINDOW
    with (
        ThreadPoolExecutor(1, thread_name_prefix="custody-map") as mapper,
        ThreadPoolExecutor(1, thread_name_prefix="custody-drain") as drainer,
    ):
        following: Future[mmap.mmap] | None = mapper.submit(_map_window, fd, 0, min(window, size))
        draining: Future[None] | None = None
        current: mmap.mmap | None = None
        try:
            for offset in range(0, size, window):
                assert following is not None
                current = following.result()
                following = None
                ahead = offset + window
                if ahead < size:
                    following = mapper.submit(_map_window, fd, ahead, min(window, size - ahead))
                hasher.update(current)
                length = len(current)
                if drain:
                    if draining is not None:
                        draining.result()
                    draining = drainer.submit(_drain_window, current, offset, sink_fd, sha)
                else:
                    current.close()
                current = None
                if progress is not None:
                    progress(length)
            if draining is not None:
                draining.result()
                draining = None
        finally:
            if current is not None:
                current.close()
            _settle(following)
            _settle(draining)


def _buffered_pass(
    fd: int,
    size: int,
    hasher: Hasher,
    sha: hashlib._Hash | None,
    sink_fd: int | None,
    progress: Progress | None,
) -> None:
    buffer = bytearray(_WINDOW)
    done = 0
    with memoryview(buffer) as view:
        while done < size:
            try:
                n = os.readv(fd, [view[: min(_WINDOW, size - done)]])
            except OSError as exc:
                raise _ReadError(exc, done) from exc
            if n == 0:
                break  # shorter than fstat said: caught by the caller's change check
            chunk = view[:n]
            hasher.update(chunk)
            if sha is not None:
                sha.update(chunk)
            if sink_fd is not None:
                _write_all(sink_fd, chunk)
            chunk.release()
            done += n
            if progress is not None:
                progress(n)


def _one_pass(
    fd: int, size: int, sha256: bool, sink_fd: int | None, progress: Progress | None
) -> FileDigests:
    """Hash (and copy to `sink_fd`) the first `size` bytes of `fd` in one pass."""
    hasher = Hasher()
    sha = hashlib.sha256() if sha256 else None
    if size and not _populate_unsupported.is_set():
        try:
            _mapped_pass(fd, size, hasher, sha, sink_fd, progress)
        except _NoPopulate as exc:
            # Raised before any byte was hashed (the first window is mapped first),
            # so starting over with read() hashes nothing twice.
            if hasher.size:
                raise _ReadError(
                    OSError(errno.EIO, "the file cannot be mapped"), hasher.size
                ) from exc
        else:
            return _digests(hasher, sha)
    os.lseek(fd, 0, os.SEEK_SET)
    _buffered_pass(fd, size, hasher, sha, sink_fd, progress)
    return _digests(hasher, sha)


def _digests(hasher: Hasher, sha: hashlib._Hash | None) -> FileDigests:
    digests = hasher.finish()
    return FileDigests(digests.size, digests.blake3, None if sha is None else sha.digest())


def _open_source(path: Path) -> tuple[int, os.stat_result]:
    shown = display_path(path)
    try:
        # O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; it is
        # refused below as not a regular file.  It changes nothing for regular files.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"{shown}: no such file", hint="check the path") from None
    except PermissionError:
        raise InputError(
            f"{shown}: permission denied", hint="make the file readable by this user"
        ) from None
    except OSError as exc:
        raise InputError(f"{shown}: cannot open ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise InputError(f"{shown}: cannot stat ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise InputError(
            f"{shown} is {kind}", hint="give regular files (image devices into a file first)"
        )
    return fd, st


def _unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns) == (
        after.st_dev,
        after.st_ino,
        after.st_size,
        after.st_mtime_ns,
    )


def _changed_error(path: Path) -> InputError:
    return InputError(
        f"{display_path(path)} changed while it was being read",
        hint="make sure nothing is writing to it (a camera still recording, a sync tool) "
        "and run again",
    )


def _read_error(path: Path, err: _ReadError) -> InputError:
    return InputError(
        f"{display_path(path)}: read error near byte {err.offset} "
        f"({err.error.strerror or err.error})",
        hint="the medium may be failing; image it with a forensic imager and ingest the image",
    )


def hash_file(path: Path, *, sha256: bool = False, progress: Progress | None = None) -> FileDigests:
    """The digests of a file on disk, at ``b3sum`` speed (the file is mapped, not read).

    `progress` is called with the number of bytes just hashed; whatever it raises
    propagates.  An empty file is fine here (its digests are well defined).

    Raises:
        InputError: the file is missing, unreadable, not a regular file, or changed
            while it was being read.
    """
    fd, before = _open_source(path)
    try:
        try:
            digests = _one_pass(fd, before.st_size, sha256, None, progress)
        except _ReadError as exc:
            raise _read_error(path, exc) from None
        if not _unchanged(before, os.fstat(fd)) or digests.size != before.st_size:
            raise _changed_error(path)
        return digests
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------
# The store.


class Vault:
    """A write-once, content-addressed evidence store rooted at `root`.

    Opening a vault creates its directories if needed and removes temp files
    left by interrupted writes (only those no live process holds: every temp file
    is locked with flock(2) while it is being written, so several processes can
    ingest into one vault at once).

    Raises:
        StorageError: the directories cannot be created or used.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._sidecars = self.root / "sidecars"
        self._tmp = self.root / "tmp"
        self._staging = self.root / "staging"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Folders made inside get the root's permissions (a shared store: the
            # group's, see the module doc), whatever this process's umask.
            self._dir_mode = stat.S_IMODE(self.root.stat().st_mode)
            # staging/ is made by the first `stage_file`: a store made by an older
            # custody, opened read-only, must still open.
            for directory in (self._objects, self._sidecars, self._tmp):
                self._mkdir(directory)
        except OSError as exc:
            raise StorageError(
                f"evidence store {display_path(self.root)}: cannot create ({exc.strerror})",
                hint="check the custody home's path and permissions",
            ) from None
        self._clean_tmp()

    def _mkdir(self, directory: Path) -> None:
        """Make `directory` (if missing) with the root's mode: owner, and for a shared
        store the group (set-group-ID keeps the group), whatever the umask."""
        try:
            directory.mkdir(mode=self._dir_mode & 0o777)
        except OSError:
            if directory.is_dir():
                return  # there already (or a read-only store that has it)
            raise
        os.chmod(directory, self._dir_mode)

    # -- paths -------------------------------------------------------------------

    def path_for(self, blake3_hex: str) -> Path:
        """Where the object with this BLAKE3 digest lives (whether or not it exists).

        Raises:
            FormatError: `blake3_hex` is not 64 lowercase hex digits.
        """
        return self._objects / _check_hex(blake3_hex)[:2] / blake3_hex

    def sidecar_path(self, blake3_hex: str, kind: str) -> Path:
        """Where the `kind` sidecar of an object lives (whether or not it exists).

        Raises:
            FormatError: a bad digest or kind (lowercase letters, digits, '-').
        """
        if not _KIND.fullmatch(kind):
            raise FormatError(
                f"sidecar kind {kind!r} is not valid",
                hint="use lowercase letters, digits and '-', e.g. 'framehash'",
            )
        return self._sidecars / _check_hex(blake3_hex)[:2] / f"{blake3_hex}.{kind}"

    def has(self, blake3_hex: str) -> bool:
        """Whether the object is in the store.

        Raises:
            FormatError: `blake3_hex` is not 64 lowercase hex digits.
        """
        return self.path_for(blake3_hex).is_file()

    def has_sidecar(self, blake3_hex: str, kind: str) -> bool:
        """Whether the object has a `kind` sidecar."""
        return self.sidecar_path(blake3_hex, kind).is_file()

    # -- writing -----------------------------------------------------------------

    def put_file(
        self, src: Path, *, sha256: bool = False, progress: Progress | None = None
    ) -> StoredFile:
        """Copy `src` into the store in one read pass that hashes what it copies.

        `progress` is called with the number of bytes just copied; whatever it
        raises (KeyboardInterrupt, a cancel exception) propagates after the temp
        file is removed, and no object is created.  An object already present is
        not written again (its mtime does not change).

        Raises:
            InputError: `src` is missing, unreadable, not a regular file, empty
                (0 bytes), or changed while it was being read.
            StorageError: the store cannot be written (full disk, permissions), or
                an object of this digest is present with another size (damaged).
        """
        fd, before = _open_source(src)
        try:
            if before.st_size == 0:
                raise InputError(
                    f"{display_path(src)} is empty (0 bytes)",
                    hint="an empty file is not evidence of anything; check the export",
                )
            return self._put_open(src, fd, before, sha256, progress)
        finally:
            os.close(fd)

    def _copy(
        self,
        src: Path,
        fd: int,
        before: os.stat_result,
        sha256: bool,
        progress: Progress | None,
    ) -> tuple[FileDigests, int, Path]:
        """Copy `fd` into a new locked temp file: (digests, temp fd, temp path).

        The caller owns the temp file (closes the fd, unlinks the path); on an
        error both are gone already.
        """
        tmp_fd, tmp_path = self._new_temp()
        try:
            try:
                digests = _one_pass(fd, before.st_size, sha256, tmp_fd, progress)
            except _ReadError as exc:
                raise _read_error(src, exc) from None
            except _WriteError as exc:
                raise self._storage_error("cannot write a copy", exc.error) from None
            if not _unchanged(before, os.fstat(fd)) or digests.size != before.st_size:
                raise _changed_error(src)
        except BaseException:
            os.close(tmp_fd)
            _unlink_quietly(tmp_path)
            raise
        return digests, tmp_fd, tmp_path

    def _put_open(
        self,
        src: Path,
        fd: int,
        before: os.stat_result,
        sha256: bool,
        progress: Progress | None,
    ) -> StoredFile:
        digests, tmp_fd, tmp_path = self._copy(src, fd, before, sha256, progress)
        try:
            dest = self.path_for(digests.blake3_hex)
            if self._present(dest, digests.size):
                return StoredFile(digests=digests, path=dest, already_present=True)
            try:
                os.fsync(tmp_fd)
                os.fchmod(tmp_fd, 0o444)
                created = self._install(tmp_path, dest)
            except OSError as exc:
                raise self._storage_error("cannot store the copy", exc) from None
            if not created:
                self._present(dest, digests.size)  # raises if the one there is damaged
            return StoredFile(digests=digests, path=dest, already_present=not created)
        finally:
            os.close(tmp_fd)
            _unlink_quietly(tmp_path)

    def stage_file(
        self, src: Path, *, sha256: bool = False, progress: Progress | None = None
    ) -> Staged:
        """Copy `src` into staging/ in one read pass that hashes what it copies.

        The copy is complete and fsynced, but not in objects/: the caller commits
        the entry that names it, then calls `Staged.place` (or `Staged.discard`
        when the file is refused).  While the `Staged` is open its file is locked,
        so `recover` in another process leaves it alone.  When the object is in
        objects/ already, nothing is copied to staging/ (`Staged.already_present`).

        Raises:
            InputError: as `put_file`.
            StorageError: as `put_file`; a full disk is a `custody.infra.files.NoSpaceError`.
        """
        fd, before = _open_source(src)
        try:
            if before.st_size == 0:
                raise InputError(
                    f"{display_path(src)} is empty (0 bytes)",
                    hint="an empty file is not evidence of anything; check the export",
                )
            digests, tmp_fd, tmp_path = self._copy(src, fd, before, sha256, progress)
        finally:
            os.close(fd)
        try:
            dest = self.path_for(digests.blake3_hex)
            if self._present(dest, digests.size):
                os.close(tmp_fd)
                return Staged(self, digests, dest, None, None)
            staged = self._staging / f"{digests.blake3_hex}.{secrets.token_hex(8)}"
            try:
                if not self._staging.is_dir():
                    self._mkdir(self._staging)
                    fsync_dir(self.root)  # the folder itself must survive a crash too
                os.fsync(tmp_fd)
                os.fchmod(tmp_fd, 0o444)
                # The staged name is a second link to the locked temp inode: the
                # lock (held through `tmp_fd`) covers it too.
                os.link(tmp_path, staged)
                fsync_dir(self._staging)
            except OSError as exc:
                _unlink_quietly(staged)
                os.close(tmp_fd)
                raise self._storage_error("cannot stage the copy", exc) from None
            return Staged(self, digests, staged, staged, tmp_fd)
        finally:
            _unlink_quietly(tmp_path)

    def recover(self, referenced: Callable[[str], bool]) -> Recovery:
        """Finish or undo what interrupted runs left in staging/.

        A staged copy that no live process holds is moved into objects/ when
        `referenced(blake3_hex)` says an entry on the log names it (the run died
        between the commit and the placing), and removed otherwise (it died before
        the commit, or the file was refused).  Safe to call while other processes
        ingest: their staged copies are locked.

        Raises:
            StorageError: staging/ cannot be listed, or a copy cannot be placed.
        """
        placed: list[str] = []
        removed: list[str] = []
        for name, path in self._staged_names():
            fd = _lock_if_free(path)
            if fd is None:
                continue
            try:
                hexd = name[:64]
                if referenced(hexd):
                    self._place_staged(path, hexd)
                    placed.append(hexd)
                else:
                    _unlink_quietly(path)
                    removed.append(hexd)
            finally:
                os.close(fd)
        if placed or removed:
            with contextlib.suppress(OSError):
                fsync_dir(self._staging)
        return Recovery(tuple(placed), tuple(removed))

    def staged(self) -> list[tuple[str, bool]]:
        """The copies in staging/: (BLAKE3 hex, whether a live process holds it).

        Raises:
            StorageError: staging/ cannot be listed.
        """
        out = []
        for name, path in self._staged_names():
            fd = _lock_if_free(path)
            if fd is not None:
                os.close(fd)
            out.append((name[:64], fd is None))
        return out

    def objects(self) -> list[str]:
        """The BLAKE3 hex names of every object in objects/, sorted.

        Raises:
            StorageError: objects/ cannot be listed.
        """
        out = []
        try:
            for shard in sorted(os.listdir(self._objects)):
                folder = self._objects / shard
                if folder.is_dir():
                    out += [n for n in os.listdir(folder) if _HEX.fullmatch(n)]
        except OSError as exc:
            raise self._storage_error("cannot list objects/", exc) from None
        return sorted(out)

    def quarantine(self, blake3_hex: str) -> Path:
        """Move an object that no entry names out of objects/ into quarantine/.

        Kept, not deleted: a person decides what it was.  The caller checks that
        no entry names it.

        Raises:
            NotFoundError: no such object.
            StorageError: it cannot be moved.
        """
        src = self.path_for(blake3_hex)
        folder = self.root / "quarantine"
        dest = folder / blake3_hex
        try:
            self._mkdir(folder)
            os.rename(src, dest)
            fsync_dir(src.parent)
            fsync_dir(folder)
        except FileNotFoundError:
            raise NotFoundError(f"evidence store has no object {blake3_hex}") from None
        except OSError as exc:
            raise self._storage_error(f"cannot quarantine object {blake3_hex}", exc) from None
        return dest

    def remove(self, blake3_hex: str) -> Removed:
        """Delete an object and its sidecars for good: the one write a disposal makes
        (docs/lifecycle.md).  The caller has committed the object's `disposal` entry
        and checked that no exhibit not disposed of still names the object.

        Idempotent: what is already gone is skipped, so a re-run after a crash
        finishes the removal.  The folders are synced, so the removal is durable when
        this returns.

        Raises:
            FormatError: `blake3_hex` is not 64 lowercase hex digits.
            StorageError: an object or sidecar cannot be deleted.
        """
        path = self.path_for(blake3_hex)
        removed_object = False
        try:
            os.unlink(path)
            removed_object = True
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._storage_error(f"cannot delete object {blake3_hex}", exc) from None
        folder = self._sidecars / blake3_hex[:2]
        sidecars = 0
        try:
            names = sorted(n for n in os.listdir(folder) if n.startswith(blake3_hex + "."))
        except FileNotFoundError:
            names = []
        except OSError as exc:
            raise self._storage_error(f"cannot list the sidecars of {blake3_hex}", exc) from None
        for name in names:
            try:
                os.unlink(folder / name)
                sidecars += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise self._storage_error(f"cannot delete sidecar {name}", exc) from None
        try:
            if removed_object:
                fsync_dir(path.parent)
            if sidecars:
                fsync_dir(folder)
        except OSError as exc:
            raise self._storage_error(f"cannot sync the removal of {blake3_hex}", exc) from None
        return Removed(removed_object, sidecars)

    def _staged_names(self) -> list[tuple[str, Path]]:
        try:
            names = sorted(os.listdir(self._staging))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._storage_error("cannot list staging/", exc) from None
        return [(n, self._staging / n) for n in names if _STAGED.fullmatch(n)]

    def _place_staged(self, staged: Path, blake3_hex: str) -> Path:
        """Link a staged copy into objects/ (unless there already) and drop its staged name."""
        dest = self.path_for(blake3_hex)
        try:
            size = staged.stat().st_size
            if not self._present(dest, size):
                self._install(staged, dest)
            self._present(dest, size)  # raises if the one there is damaged
            os.unlink(staged)
        except OSError as exc:
            raise self._storage_error(f"cannot place object {blake3_hex}", exc) from None
        return dest

    def put_sidecar(self, blake3_hex: str, kind: str, data: bytes) -> Path:
        """Store `data` as the object's `kind` sidecar, write-once and durable.

        Storing the same bytes again is a no-op (so a re-run is harmless); other
        bytes under an existing sidecar are refused, never overwritten.

        Raises:
            NotFoundError: the object is neither in the store nor staged.
            FormatError: a bad digest or kind.
            StorageError: the sidecar exists with other content, or cannot be written.
        """
        dest = self.sidecar_path(blake3_hex, kind)
        if not self.has(blake3_hex) and not self._is_staged(blake3_hex):
            raise NotFoundError(
                f"evidence store has no object {blake3_hex}",
                hint="store the file (put_file) before its sidecars",
            )
        existing = self._read_existing(dest)
        if existing is not None:
            if existing == data:
                return dest
            raise self._sidecar_conflict(blake3_hex, kind)
        tmp_fd, tmp_path = self._new_temp()
        try:
            try:
                _write_all(tmp_fd, memoryview(data))
                os.fsync(tmp_fd)
                os.fchmod(tmp_fd, 0o444)
                created = self._install(tmp_path, dest)
            except _WriteError as exc:
                raise self._storage_error(f"cannot write sidecar {kind}", exc.error) from None
            except OSError as exc:
                raise self._storage_error(f"cannot write sidecar {kind}", exc) from None
        finally:
            os.close(tmp_fd)
            _unlink_quietly(tmp_path)
        if not created and self._read_existing(dest) != data:
            raise self._sidecar_conflict(blake3_hex, kind)
        return dest

    # -- reading -----------------------------------------------------------------

    def open(self, blake3_hex: str) -> BinaryIO:
        """Open a stored object for reading (the caller closes it).

        Raises:
            NotFoundError: no such object.
            StorageError: it exists but cannot be opened.
        """
        path = self.path_for(blake3_hex)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"evidence store has no object {blake3_hex}") from None
        except OSError as exc:
            raise self._storage_error(f"cannot open object {blake3_hex}", exc) from None

    def read_sidecar(self, blake3_hex: str, kind: str) -> bytes:
        """The bytes of the object's `kind` sidecar.

        Raises:
            NotFoundError: no such sidecar.
            FormatError: a bad digest or kind.
            StorageError: it exists but cannot be read.
        """
        data = self._read_existing(self.sidecar_path(blake3_hex, kind))
        if data is None:
            raise NotFoundError(f"evidence store has no {kind} sidecar for {blake3_hex}")
        return data

    def verify_object(self, blake3_hex: str, *, progress: Progress | None = None) -> FileDigests:
        """Re-hash a stored object and check it still has the digest it is named by.

        Raises:
            NotFoundError: no such object.
            VerificationError: its bytes no longer hash to its name (it was damaged).
            StorageError: it cannot be read.
        """
        path = self.path_for(blake3_hex)
        if not path.is_file():
            raise NotFoundError(f"evidence store has no object {blake3_hex}")
        try:
            digests = hash_file(path, progress=progress)
        except InputError as exc:
            raise StorageError(
                f"evidence store object {blake3_hex} cannot be read: {exc.message}",
                hint=exc.hint,
            ) from None
        if digests.blake3_hex != blake3_hex:
            raise VerificationError(
                f"evidence store object {blake3_hex} is damaged: its bytes now hash to "
                f"{digests.blake3_hex}",
                hint="restore it from a backup or from the original medium",
            )
        return digests

    # -- internals -----------------------------------------------------------------

    def _storage_error(self, what: str, exc: OSError) -> StorageError:
        full = no_space_error(exc, self.root, what)
        if full is not None:
            return full
        return StorageError(
            f"evidence store {display_path(self.root)}: {what} ({exc.strerror or exc})",
            hint="check the store's permissions",
        )

    def _is_staged(self, blake3_hex: str) -> bool:
        prefix = _check_hex(blake3_hex) + "."
        try:
            return any(n.startswith(prefix) for n in os.listdir(self._staging))
        except OSError:
            return False

    def _sidecar_conflict(self, blake3_hex: str, kind: str) -> StorageError:
        return StorageError(
            f"evidence store already has a different {kind} sidecar for {blake3_hex}",
            hint="sidecars are write-once; a different ffmpeg version may probe differently",
        )

    def _read_existing(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._storage_error(f"cannot read {path.name}", exc) from None

    def _present(self, dest: Path, size: int) -> bool:
        """Whether `dest` exists; StorageError if it does with another size."""
        try:
            st = dest.stat()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._storage_error(f"cannot stat {dest.name}", exc) from None
        if st.st_size != size:
            raise StorageError(
                f"evidence store object {dest.name} is damaged: {st.st_size} bytes, "
                f"expected {size}",
                hint="run verify_object on it and restore it from a backup",
            )
        return True

    def _new_temp(self) -> tuple[int, Path]:
        """A new temp file under tmp/, open for writing and locked against cleanup."""
        while True:
            try:
                fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
            except OSError as exc:
                raise self._storage_error("cannot create a temp file", exc) from None
            try:
                # Blocking: a concurrent cleaner holds the lock only for an unlink.
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink > 0:
                    return fd, Path(name)
            except OSError as exc:
                os.close(fd)
                raise self._storage_error("cannot lock a temp file", exc) from None
            # A cleaner removed it between mkstemp and flock: take another name.
            os.close(fd)

    def _install(self, tmp_path: Path, dest: Path) -> bool:
        """Give the finished temp file its final name; False if that name exists.

        link(2) fails with EEXIST rather than replacing, which is what write-once
        means; rename(2) is the fallback for file systems without hard links.
        """
        parent = dest.parent
        if not parent.is_dir():
            self._mkdir(parent)
            fsync_dir(parent.parent)
        try:
            os.link(tmp_path, dest)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
            if dest.exists():
                return False
            os.rename(tmp_path, dest)
        fsync_dir(parent)
        return True

    def _clean_tmp(self) -> None:
        try:
            names = os.listdir(self._tmp)
        except OSError as exc:
            raise self._storage_error("cannot list tmp/", exc) from None
        for name in names:
            path = self._tmp / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue  # gone already, or not ours to open: leave it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # a live writer holds it
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(path)
            except OSError:
                pass  # best effort: the next open tries again
            finally:
                os.close(fd)


@dataclass(frozen=True)
class Recovery:
    """What `Vault.recover` did: staged copies placed in objects/, and removed."""

    placed: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class Removed:
    """What `Vault.remove` deleted: the object (False: it was gone already) and how many
    sidecars."""

    object: bool
    sidecars: int


class Staged:
    """A complete copy in staging/, waiting for its entry (`Vault.stage_file`).

    `path` is where to read the bytes now (the staged copy, or the object when it
    was in objects/ already).  Call `place` once the entry is committed, or
    `discard` when it will not be; either releases the lock.
    """

    def __init__(
        self,
        vault: Vault,
        digests: FileDigests,
        path: Path,
        staged: Path | None,
        fd: int | None,
    ) -> None:
        self.digests = digests
        self.path = path
        self._vault = vault
        self._staged = staged
        self._fd = fd

    @property
    def already_present(self) -> bool:
        """Whether the object was in objects/ already (nothing was staged)."""
        return self._staged is None

    def place(self) -> Path:
        """Move the copy into objects/ (write-once: an object there already is kept).

        Raises:
            StorageError: it cannot be linked into place.
        """
        try:
            if self._staged is not None:
                self.path = self._vault._place_staged(self._staged, self.digests.blake3_hex)
                self._staged = None
                with contextlib.suppress(OSError):
                    fsync_dir(self._staged_dir())
            return self.path
        finally:
            self._release()

    def discard(self) -> None:
        """Remove the staged copy (the file was refused); a no-op once placed."""
        if self._staged is not None:
            _unlink_quietly(self._staged)
            self._staged = None
        self._release()

    def _staged_dir(self) -> Path:
        return self._vault.root / "staging"

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lock_if_free(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path`, or None if a live process holds it
    (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    try:
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return fd


def _check_hex(blake3_hex: str) -> str:
    if not isinstance(blake3_hex, str) or not _HEX.fullmatch(blake3_hex):
        raise FormatError(
            f"{blake3_hex!r} is not a BLAKE3 digest",
            hint="a digest is 64 lowercase hex digits",
        )
    return blake3_hex


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # left for the next Vault open to clean
