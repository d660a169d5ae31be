"""The evidence store: write-once, content-addressed copies of ingested files.

Layout under the vault root (docs/spec/media.md, "Evidence store"):

    objects/<first 2 hex>/<BLAKE3 hex>              the file's exact bytes, mode 0444
    sidecars/<first 2 hex>/<BLAKE3 hex>.<kind>       e.g. .probe, .framehash, mode 0444
    staging/<BLAKE3 hex>.<random>                    complete copies whose entry is not yet
                                                     committed (`Vault.stage_file`)
    tmp/                                             writes in progress

A file is copied in one pass, in the kernel where it can be (`_copy_pass`): one
thread copies the source into a temp file inside the vault with copy_file_range(2)
(falling back to sendfile(2), then to pread/pwrite, when the kernel or the file
systems refuse it), 16 MiB at a time, while the calling thread maps each window of
the COPY just written and hashes it with BLAKE3 on every core (SHA-256, when asked,
in a third thread).  The bytes come off the source disk once, into the page cache;
the copy's pages are hashed where the kernel just put them.  Then: one fsync of the
temp file, make it read-only, hard-link it to its final name (which fails if the
object already exists, so nothing is ever overwritten), fsync the directory, remove
the temp name.  An interrupted run (Ctrl-C, kill, power loss) leaves at most a temp
file under tmp/, which the next `Vault` open removes; an object under objects/ is
always complete.

Why the result is safe (docs/ingest.md, "How a file is copied"): the digests are
those of the copy itself, the very bytes that are stored, so an object can never
differ from the digest it is named by, whatever the kernel's copy did; the temp file
is this process's own (mkstemp, mode 0600, locked), so nothing else writes to it
between the copy and the hash.  That the copy is also the source's bytes is checked
as before: the source's identity, size, mtime and ctime are the same before and after
the pass (any write, truncation or chmod through any descriptor or mapping changes
them), the pass copied exactly the size fstat gave, and the copy has that size.
A source that changed is refused (`InputError`), and its copy dropped.

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
lacks it (before Linux 5.14) the store falls back to read() of the source and
write() of the copy, hashing the bytes in between.  Windows are unmapped as soon as
they are hashed, and the copy never runs more than a few windows ahead of the hash,
so memory stays at a few windows whatever the size.  A read error of the source
during a kernel copy (EIO) is told from a write error by reading the source's range
again: the range that cannot be read is named, as a read error.
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
from collections.abc import Callable, Mapping
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
    window: mmap.mmap,
    offset: int,
    sink_fd: int | None,
    sha: hashlib._Hash | None,
    writeback_fd: int | None = None,
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
        if writeback_fd is not None:
            _start_writeback(writeback_fd, offset, len(window))
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


def _map_when_ready(
    ready: Callable[[int, int], None] | None, fd: int, offset: int, length: int
) -> mmap.mmap:
    if ready is None:
        return _map_window(fd, offset, length)
    ready(offset, length)  # the copy has reached offset + length (or raises its error)
    return _map_copy(fd, offset, length)


def _map_copy(fd: int, offset: int, length: int) -> mmap.mmap:
    """A window of the copy in the store: failing to read it back is the store's fault."""
    try:
        return _map_window(fd, offset, length)
    except _ReadError as exc:
        raise _WriteError(exc.error) from None


def _mapped_pass(
    fd: int,
    size: int,
    hasher: Hasher,
    sha: hashlib._Hash | None,
    sink_fd: int | None,
    progress: Progress | None,
    *,
    ready: Callable[[int, int], None] | None = None,
    writeback: bool = False,
) -> None:
    # Three windows at most are alive: one being mapped, one being hashed with
    # BLAKE3 (on every core, GIL released), one being drained (SHA-256, copy).
    # `ready(offset, length)` (a kernel copy into `fd`, `_copy_pass`) blocks until
    # that range has been written; `writeback` starts writing each hashed window of
    # `fd` to disk.
    drain = sha is not None or sink_fd is not None or writeback
    writeback_fd = fd if writeback else None
    # A hash-only pass maps larger windows: fewer BLAKE3 calls, each spread over every
    # core, keeps up with b3sum (0.93 -> 0.99 of its speed at 16 -> 64 MiB, measured
    # on a 2 GiB file).  A copy keeps 16 MiB windows: mapped pages count as resident,
    # and ingest must stay under 150 MB whatever the file size.
    window = _HASH_WINDOW if not drain and ready is None else _COPY_WINDOW
    with (
        ThreadPoolExecutor(1, thread_name_prefix="custody-map") as mapper,
        ThreadPoolExecutor(1, thread_name_prefix="custody-drain") as drainer,
    ):
        following: Future[mmap.mmap] | None = mapper.submit(
            _map_when_ready, ready, fd, 0, min(window, size)
        )
        draining: Future[None] | None = None
        current: mmap.mmap | None = None
        try:
            for offset in range(0, size, window):
                assert following is not None
                current = following.result()
                following = None
                ahead = offset + window
                if ahead < size:
                    following = mapper.submit(
                        _map_when_ready, ready, fd, ahead, min(window, size - ahead)
                    )
                hasher.update(current)
                length = len(current)
                if drain:
                    if draining is not None:
                        draining.result()
                    draining = drainer.submit(
                        _drain_window, current, offset, sink_fd, sha, writeback_fd
                    )
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
    buffer = bytearray(min(_WINDOW, size))  # a small file: no 16 MiB to allocate and zero
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


# ---------------------------------------------------------------------------------
# One pass that copies in the kernel and hashes the copy.

# The kernel or the file systems refuse this way of copying (not an I/O error):
# try the next way.  EXDEV: copy_file_range across file systems (before Linux 5.3,
# and again since 5.19 for most pairs); EINVAL/EOPNOTSUPP/ENOTSUP: not for these
# files; ENOSYS: no such system call; EPERM/EACCES: a sandbox (seccomp) forbids it.
_REFUSED = frozenset(
    {
        errno.EXDEV,
        errno.EINVAL,
        errno.ENOSYS,
        errno.EOPNOTSUPP,
        errno.ENOTSUP,
        errno.EPERM,
        errno.EACCES,
        errno.EBADF,
    }
)
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
_COPY_METHODS = ("copy_file_range", "sendfile", "read")
# How far the copy may run ahead of the hash: the copy's pages are still in the page
# cache when they are hashed (not read back from disk), and a stop leaves little.
_COPY_AHEAD = 4 * _COPY_WINDOW


# One copy of more than a window at a time per process: each maps a few windows of its
# copy (resident memory), and one already keeps the disk and every core busy.  Files
# of one window are copied in parallel (ingest's --jobs workers).
_large_copy = threading.Lock()


class _Shrunk(Exception):
    """The source ended before the size fstat gave (it was truncated meanwhile)."""


class _Copier:
    """Copies `size` bytes of `src` into `dst` in its own thread, in the kernel where it
    can (`_COPY_METHODS`, in order), at most `_COPY_AHEAD` bytes ahead of the hash.

    `ready(offset, length)` blocks until that range is in `dst`, or raises the copy's
    error; `cancel` stops it at the next step.
    """

    def __init__(self, src: int, dst: int, size: int) -> None:
        self.src = src
        self.dst = dst
        self.size = size
        self.method = 0  # index into _COPY_METHODS
        self.used: list[str] = []  # the methods that copied something, for tests
        self._copied = 0
        self._hashed = 0
        self._error: BaseException | None = None
        self._cancelled = False
        self._cond = threading.Condition()
        self._buffer: bytearray | None = None

    def run(self) -> None:
        try:
            offset = 0
            while offset < self.size:
                with self._cond:
                    while not self._cancelled and offset - self._hashed >= _COPY_AHEAD:
                        self._cond.wait()
                    if self._cancelled:
                        return
                n = self._step(offset, min(_COPY_WINDOW, self.size - offset))
                offset += n
                with self._cond:
                    self._copied = offset
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def ready(self, offset: int, length: int) -> None:
        end = offset + length
        with self._cond:
            # Everything before `offset` has been hashed (windows are mapped in order).
            self._hashed = max(self._hashed, offset)
            self._cond.notify_all()
            while self._copied < end and self._error is None and not self._cancelled:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            if self._copied < end:
                raise _Shrunk  # cancelled: the pass is being torn down anyway

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def _step(self, offset: int, count: int) -> int:
        """Copy up to `count` bytes at `offset` (same offset in both files); > 0."""
        while True:
            method = _COPY_METHODS[self.method]
            try:
                if method == "copy_file_range":
                    n = os.copy_file_range(self.src, self.dst, count, offset, offset)
                elif method == "sendfile":
                    os.lseek(self.dst, offset, os.SEEK_SET)
                    n = os.sendfile(self.dst, self.src, offset, count)
                else:
                    n = self._pread_pwrite(offset, count)
            except OSError as exc:
                if method != "read" and exc.errno in _REFUSED:
                    self.method += 1
                    continue
                raise self._classify(exc, offset, count) from None
            if n > 0:
                if not self.used or self.used[-1] != method:
                    self.used.append(method)
                return n
            if method == "read":
                raise _Shrunk
            # 0 before the end: this way of copying does not work for this file (or it
            # shrank, which the next way finds too).
            self.method += 1

    def _pread_pwrite(self, offset: int, count: int) -> int:
        if self._buffer is None:
            self._buffer = bytearray(min(_COPY_WINDOW, self.size))
        with memoryview(self._buffer) as view:
            try:
                n = os.preadv(self.src, [view[:count]], offset)
            except OSError as exc:
                raise _ReadError(exc, offset) from None
            done = 0
            while done < n:
                with view[done:n] as rest:
                    try:
                        done += os.pwrite(self.dst, rest, offset + done)
                    except OSError as exc:
                        raise _WriteError(exc) from None
        return n

    def _classify(self, exc: OSError, offset: int, count: int) -> Exception:
        """A failed kernel copy: a read error of the source (naming where) or a write
        error of the copy.  The kernel's errno does not say which: read the range."""
        if exc.errno in _WRITE_ERRNOS:
            return _WriteError(exc)
        probe = 1 << 20
        for at in range(offset, offset + count, probe):
            try:
                if not os.pread(self.src, min(probe, offset + count - at), at):
                    break
            except OSError as read_exc:
                return _ReadError(read_exc, at)
        return _WriteError(exc)


def _copy_pass(
    src: int, dst: int, size: int, sha256: bool, progress: Progress | None
) -> tuple[FileDigests, tuple[str, ...]]:
    """Copy the first `size` bytes of `src` into the empty file `dst` and hash the copy:
    (its digests, the ways of copying used).

    The copy runs in a thread of its own (`_Copier`); the caller's thread maps each
    window of `dst` once the copy has written it, hashes it, and starts its writeback.
    Where windows cannot be mapped (before Linux 5.14), the source is read, hashed and
    written by the caller's thread instead (`_buffered_pass`).
    """
    hasher = Hasher()
    sha = hashlib.sha256() if sha256 else None
    if size and size <= _COPY_WINDOW and not _populate_unsupported.is_set():
        # One window: no thread to start, the copy then its hash.
        copier = _Copier(src, dst, size)
        copier.run()
        try:
            copier.ready(0, size)  # raises what the copy met
            window = _map_copy(dst, 0, size)
        except _NoPopulate:
            pass  # nothing hashed: read the source below
        else:
            try:
                hasher.update(window)
                if sha is not None:
                    sha.update(window)
            finally:
                window.close()
            if progress is not None:
                progress(size)
            return _digests(hasher, sha), tuple(copier.used)
        os.ftruncate(dst, 0)
        os.lseek(dst, 0, os.SEEK_SET)
    elif size and not _populate_unsupported.is_set():
        copier = _Copier(src, dst, size)
        with _large_copy, ThreadPoolExecutor(1, thread_name_prefix="custody-copy") as pool:
            copying = pool.submit(copier.run)
            try:
                _mapped_pass(
                    dst, size, hasher, sha, None, progress, ready=copier.ready, writeback=True
                )
            except _NoPopulate as exc:
                if hasher.size:
                    raise _WriteError(OSError(errno.EIO, "the copy cannot be mapped")) from exc
            else:
                return _digests(hasher, sha), tuple(copier.used)
            finally:
                copier.cancel()
                copying.result()
        # Nothing hashed yet: start over reading the source.
        os.ftruncate(dst, 0)
        os.lseek(dst, 0, os.SEEK_SET)
    os.lseek(src, 0, os.SEEK_SET)
    _buffered_pass(src, size, hasher, sha, dst, progress)
    return _digests(hasher, sha), ("read",)


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
    # ctime too: a write through any descriptor or shared mapping, a truncation, a
    # chmod or a utimes() that puts the mtime back all change it.
    return (
        before.st_dev,
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    ) == (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns)


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
        #: The ways the last copy was made (`_COPY_METHODS`), for tests and benches.
        self.last_copy: tuple[str, ...] = ()
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
                digests, self.last_copy = _copy_pass(fd, tmp_fd, before.st_size, sha256, progress)
                copied = os.fstat(tmp_fd).st_size
            except _ReadError as exc:
                raise _read_error(src, exc) from None
            except _WriteError as exc:
                raise self._storage_error("cannot write a copy", exc.error) from None
            except _Shrunk:
                raise _changed_error(src) from None
            except OSError as exc:
                raise self._storage_error("cannot write a copy", exc) from None
            # The digests are the copy's (module doc): that the copy is the source's
            # bytes rests on the source not changing meanwhile.
            if (
                not _unchanged(before, os.fstat(fd))
                or digests.size != before.st_size
                or copied != before.st_size
            ):
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
        return self.put_sidecars(blake3_hex, {kind: data})[kind]

    def put_sidecars(self, blake3_hex: str, sidecars: Mapping[str, bytes]) -> dict[str, Path]:
        """`put_sidecar` of several sidecars of one object: each file is fsynced, and
        their folder once for all of them (one folder: sidecars/<first 2 hex>/).

        Sidecars are content-addressed (named by the object's digest, and the same
        file always gives the same bytes), so one written for a file that is then
        refused, or whose run is killed before its entry, is harmless: it is what a
        later ingest of that file would write (docs/ingest.md).

        Raises:
            as `put_sidecar`.
        """
        dests = {kind: self.sidecar_path(blake3_hex, kind) for kind in sidecars}
        if not self.has(blake3_hex) and not self._is_staged(blake3_hex):
            raise NotFoundError(
                f"evidence store has no object {blake3_hex}",
                hint="store the file (put_file) before its sidecars",
            )
        created = False
        for kind, data in sidecars.items():
            dest = dests[kind]
            existing = self._read_existing(dest)
            if existing is not None:
                if existing == data:
                    continue
                raise self._sidecar_conflict(blake3_hex, kind)
            tmp_fd, tmp_path = self._new_temp()
            try:
                try:
                    _write_all(tmp_fd, memoryview(data))
                    os.fsync(tmp_fd)
                    os.fchmod(tmp_fd, 0o444)
                    made = self._install(tmp_path, dest, sync=False)
                except _WriteError as exc:
                    raise self._storage_error(f"cannot write sidecar {kind}", exc.error) from None
                except OSError as exc:
                    raise self._storage_error(f"cannot write sidecar {kind}", exc) from None
            finally:
                os.close(tmp_fd)
                _unlink_quietly(tmp_path)
            if not made and self._read_existing(dest) != data:
                raise self._sidecar_conflict(blake3_hex, kind)
            created = created or made
        if created:
            try:
                fsync_dir(next(iter(dests.values())).parent)
            except OSError as exc:
                raise self._storage_error("cannot sync the sidecars", exc) from None
        return dests

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

    def _install(self, tmp_path: Path, dest: Path, *, sync: bool = True) -> bool:
        """Give the finished temp file its final name; False if that name exists.

        link(2) fails with EEXIST rather than replacing, which is what write-once
        means; rename(2) is the fallback for file systems without hard links.
        With `sync` False the caller fsyncs `dest`'s folder (once for several files).
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
        if sync:
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
                # objects/<xx>/ is fsynced before the staged name is removed; that
                # removal need not be durable: a staged name a crash brings back
                # names an object in place, and `recover` just removes it.
                self.path = self._vault._place_staged(self._staged, self.digests.blake3_hex)
                self._staged = None
            return self.path
        finally:
            self._release()

    def discard(self) -> None:
        """Remove the staged copy (the file was refused); a no-op once placed."""
        if self._staged is not None:
            _unlink_quietly(self._staged)
            self._staged = None
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StageCancelled(Exception):
    """Raised in a `StagedAhead` copy that was dropped before it finished."""


class StagedAhead:
    """`Vault.stage_file` of one file, started in a thread of its own before the caller
    is ready for it (`custody ingest` starts its first large file while the database
    layer is imported and the home opened, which takes longer than a small copy).

    The caller either takes the result (`take`, once: the `Staged` is then the
    taker's to place or discard, exactly as `stage_file`'s), or drops it (`drop`:
    stops the copy at its next window, waits for the thread, and discards whatever was
    staged).  `drop` after `take` does nothing, so `drop` belongs in a `finally`; the
    object is also a context manager that drops it on leaving.
    Until a sink is attached (`attach`) the bytes hashed are counted; the sink is
    then told them, and every later count, from the copying thread; whatever the
    sink raises stops the copy (as a progress callback of `stage_file` does).

    A crash meanwhile leaves what an interrupted `stage_file` leaves: a locked temp or
    staged copy that no entry names, which the next `Vault.recover` removes.
    """

    def __init__(self, vault: Vault, src: Path, *, sha256: bool = False) -> None:
        self.vault = vault
        self.src = src
        self.sha256 = sha256
        self._lock = threading.Lock()
        self._sink: Progress | None = None
        self._unsent = 0
        self._dropped = threading.Event()
        self._taken = False
        self._future: Future[Staged] = Future()
        self._thread = threading.Thread(target=self._run, name="custody-stage-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if not self._future.set_running_or_notify_cancel():
            return
        try:
            staged = self.vault.stage_file(self.src, sha256=self.sha256, progress=self._progress)
        except BaseException as exc:
            self._future.set_exception(exc)
        else:
            self._future.set_result(staged)

    def _progress(self, n: int) -> None:
        if self._dropped.is_set():
            raise StageCancelled
        with self._lock:
            if self._sink is None:
                self._unsent += n
                return
            sink = self._sink
        sink(n)

    def attach(self, sink: Progress) -> None:
        """Tell `sink` the bytes hashed so far, then each later count as it comes."""
        with self._lock:
            unsent, self._unsent = self._unsent, 0
            self._sink = sink
        if unsent:
            sink(unsent)

    def take(self) -> Staged:
        """Wait for the copy and take it: what `stage_file` would have returned (or raises
        what it would have raised).  Only once."""
        if self._taken:
            raise RuntimeError("StagedAhead.take called twice")
        self._taken = True
        return self._future.result()

    def drop(self) -> None:
        """Stop the copy if it is running, and discard what it staged, unless taken."""
        if self._taken:
            return
        self._taken = True
        self._dropped.set()
        self._thread.join()
        try:
            staged = self._future.result()
        except BaseException:
            return  # nothing stays: stage_file removes its copy when it raises
        staged.discard()

    def __enter__(self) -> StagedAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


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
