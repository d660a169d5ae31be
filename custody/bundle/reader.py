"""Reading and verifying a defence bundle from disk: the I/O side of `custody verify-bundle`.

`verify_path` is what `custody verify-bundle` runs: it opens the bundle (a
folder or a ZIP) through a reader that refuses symbolic links, paths outside the
bundle and zip bombs, loads the checkpoints seen before (`SeenStore`), calls the
pure `custody.bundle.verify.verify_bundle`, re-probes media with ffprobe when it is
installed, and records the checkpoint.  It opens no database and needs no home:
this module imports no store, no home and no SQL library (tests/unit/bundle/
test_no_store.py runs the import in a fresh interpreter to keep it so).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from custody.bundle.verify import (
    MANIFEST,
    MAX_MANIFEST,
    MAX_MEMBERS,
    MAX_RATIO,
    RATIO_FLOOR,
    STATEMENT,
    BundleReport,
    BundleVerificationError,
    Manifest,
    Policy,
    Statement,
    Trust,
    UnsafeBundleError,
    check_bundle_path,
    is_litter,
    verify_bundle,
)
from custody.errors import (
    CustodyError,
    FormatError,
    InputError,
    NotFoundError,
    StorageError,
    UsageError,
)
from custody.infra import ffmpeg as media
from custody.infra.files import write_new
from custody.infra.vault import display_path
from custody.media.compare import MediaRecord
from custody.media.digest import (
    CHUNK_SIZE,
    SNAPSHOT_V2,
    SNAPSHOT_VERSIONS,
    FileDigests,
    Hasher,
)
from custody.model.entry import VERSION as ENTRY_V1
from custody.model.entry import SignedEntry
from custody.tlog.checkpoint import Checkpoint
from custody.tlog.note import Note, VerifierKey

__all__ = [
    "ENV_SEEN",
    "FfmpegProber",
    "FolderSource",
    "Progress",
    "SeenStore",
    "ZipSource",
    "default_seen_dir",
    "ffmpeg_available",
    "open_bundle",
    "parse_trust",
    "verify_path",
]

ENV_SEEN = "CUSTODY_SEEN"
Progress = Callable[[int], None]
_EXT = re.compile(r"\.[a-z0-9]{1,10}")


# =================================================================================
# Reading bundles safely


def _unsafe(label: str, message: str, hint: str | None = None) -> UnsafeBundleError:
    return UnsafeBundleError(
        f"{label}: {message}",
        hint=hint or "this bundle was made to attack its reader; do not unpack it",
    )


def _too_large(label: str, name: str, size: int, limit: int) -> UnsafeBundleError:
    return _unsafe(
        label,
        f"{name} is {size:,} bytes, more than any {name.split('/')[0]} file of a custody bundle "
        f"can be ({limit:,}): refusing to read it",
    )


class FolderSource:
    """A bundle folder, read without following symbolic links.

    The scan refuses any symbolic link, device, socket or FIFO inside the folder
    and any name that breaks the path rules; reads open each path component
    with O_NOFOLLOW, so a link swapped in after the scan is refused too.
    """

    def __init__(self, root: Path, progress: Progress | None = None) -> None:
        self.root = root
        self.label = display_path(root)
        self.ignored: list[str] = []
        self.progress = progress
        self._names = self._scan()

    def _scan(self) -> set[str]:
        names: set[str] = set()
        stack = [("", self.root)]
        while stack:
            prefix, folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    listing = list(it)
            except OSError as exc:
                raise InputError(
                    f"cannot read the folder {display_path(folder)}: {exc.strerror}"
                ) from exc
            for entry in listing:
                rel = prefix + entry.name
                if entry.is_symlink():
                    raise _unsafe(self.label, f"{rel} is a symbolic link: refusing to follow it")
                if entry.is_dir(follow_symlinks=False):
                    if rel == "__MACOSX":
                        self.ignored.append(rel + "/")
                        continue
                    stack.append((rel + "/", Path(entry.path)))
                elif entry.is_file(follow_symlinks=False):
                    if is_litter(rel):
                        self.ignored.append(rel)
                        continue
                    check_bundle_path(rel)
                    names.add(rel)
                else:
                    raise _unsafe(self.label, f"{rel} is not a regular file: refusing it")
                if len(names) > MAX_MEMBERS:
                    raise _unsafe(self.label, f"it holds more than {MAX_MEMBERS:,} files")
        return names

    def names(self) -> Collection[str]:
        return self._names

    def _open(self, name: str) -> int:
        if name not in self._names:
            raise NotFoundError(f"{self.label}: {name} is not in the bundle")
        parts = name.split("/")
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            dirfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise InputError(f"cannot open {self.label}: {exc.strerror}") from exc
        try:
            for part in parts[:-1]:
                nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=dirfd)
                os.close(dirfd)
                dirfd = nxt
            fd = os.open(parts[-1], flags, dir_fd=dirfd)
        except FileNotFoundError:
            raise NotFoundError(f"{self.label}: {name} has gone") from None
        except OSError as exc:
            if exc.errno in (40, 20):  # ELOOP, ENOTDIR: a link was swapped in
                raise _unsafe(self.label, f"{name} became a symbolic link: refusing it") from exc
            raise InputError(f"cannot read {self.label}/{name}: {exc.strerror}") from exc
        finally:
            os.close(dirfd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise _unsafe(self.label, f"{name} is not a regular file: refusing it")
        return fd

    def read(self, name: str, limit: int) -> bytes:
        fd = self._open(name)
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise _too_large(self.label, name, size, limit)
            # f.read(limit + 1) would reserve the whole limit (1 GiB for a sidecar) for
            # every small file.  Ask for the size fstat gave plus one byte, then, if the
            # file grew since, go on in chunks until its end or one byte past the limit.
            parts: list[bytes] = []
            total = 0
            want = min(size, limit) + 1
            try:
                while total <= limit and (chunk := f.read(want)):
                    parts.append(chunk)
                    total += len(chunk)
                    want = min(CHUNK_SIZE, limit + 1 - total)
            except OSError as exc:
                raise InputError(f"cannot read {self.label}/{name}: {exc.strerror}") from exc
        if total > limit:
            raise _too_large(self.label, name, total, limit)
        return b"".join(parts)

    def digests(self, name: str) -> FileDigests:
        fd = self._open(name)
        hasher = Hasher(sha256=True)
        with os.fdopen(fd, "rb") as f:
            try:
                while chunk := f.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    if self.progress is not None:
                        self.progress(len(chunk))
            except OSError as exc:
                raise InputError(f"cannot read {self.label}/{name}: {exc.strerror}") from exc
        return hasher.finish()

    def local_path(self, name: str, workdir: Path) -> Path:
        self._open_and_close(name)
        return self.root / name

    def _open_and_close(self, name: str) -> None:
        os.close(self._open(name))

    def close(self) -> None:
        return None


class ZipSource:
    """A bundle ZIP, checked member by member before anything is read.

    Refused: encrypted members, compression other than stored/deflated,
    symbolic links and other non-regular members, unsafe or duplicate names,
    more than MAX_MEMBERS members, and members that would expand more than
    MAX_RATIO-fold (a zip bomb).  Nothing is ever extracted under a member's
    own name; media to re-probe is copied to a temporary file of custody's naming.
    """

    def __init__(self, path: Path, progress: Progress | None = None) -> None:
        self.label = display_path(path)
        self.ignored: list[str] = []
        self.progress = progress
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise InputError(
                f"{self.label} is not a readable ZIP archive: {exc}",
                hint="give the folder or .zip that 'custody export' wrote",
            ) from exc
        try:
            self.infos = self._check(self.zf.infolist())
        except BaseException:
            self.zf.close()
            raise

    def _check(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        if len(infos) > MAX_MEMBERS:
            raise _unsafe(self.label, f"it has {len(infos):,} members, more than {MAX_MEMBERS:,}")
        out: dict[str, zipfile.ZipInfo] = {}
        for zi in infos:
            name = zi.filename
            mode = zi.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _unsafe(self.label, f"member {name!r} is a symbolic link: refusing it")
            if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _unsafe(self.label, f"member {name!r} is not a regular file: refusing it")
            if zi.flag_bits & 0x1:
                raise _unsafe(self.label, f"member {name!r} is encrypted: refusing it")
            if zi.is_dir():
                folder = name.rstrip("/")
                if folder.split("/")[0] != "__MACOSX":
                    try:
                        check_bundle_path(folder)
                    except UnsafeBundleError as exc:
                        raise _unsafe(self.label, exc.message, exc.hint) from None
                continue
            if is_litter(name):
                self.ignored.append(name)
                continue
            try:
                check_bundle_path(name)
            except UnsafeBundleError as exc:
                raise _unsafe(self.label, exc.message, exc.hint) from None
            if zi.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _unsafe(
                    self.label, f"member {name!r} uses compression method {zi.compress_type}"
                )
            if zi.file_size > RATIO_FLOOR and zi.file_size > MAX_RATIO * max(zi.compress_size, 1):
                raise _unsafe(
                    self.label,
                    f"member {name!r} would expand {zi.file_size // max(zi.compress_size, 1):,}-"
                    f"fold ({zi.compress_size:,} to {zi.file_size:,} bytes): refusing a likely "
                    "zip bomb",
                )
            if name in out:
                raise _unsafe(
                    self.label, f"member {name!r} appears twice: refusing an ambiguous archive"
                )
            out[name] = zi
        return out

    def names(self) -> Collection[str]:
        return self.infos.keys()

    def _info(self, name: str) -> zipfile.ZipInfo:
        zi = self.infos.get(name)
        if zi is None:
            raise NotFoundError(f"{self.label}: {name} is not in the bundle")
        return zi

    def _stream(self, name: str, limit: int | None, sink: Callable[[bytes], None]) -> int:
        zi = self._info(name)
        if limit is not None and zi.file_size > limit:
            raise _too_large(self.label, name, zi.file_size, limit)
        total = 0
        try:
            with self.zf.open(zi) as f:
                while chunk := f.read(CHUNK_SIZE):
                    total += len(chunk)
                    if total > zi.file_size or (limit is not None and total > limit):
                        raise _unsafe(self.label, f"member {name!r} holds more than it declares")
                    sink(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
            raise UnsafeBundleError(
                f"{self.label}: member {name} is damaged ({exc}): it was altered after export",
                hint="ask the exporting agency for a fresh copy of the bundle",
            ) from exc
        except OSError as exc:
            raise InputError(f"cannot read {self.label}: {exc.strerror or exc}") from exc
        return total

    def read(self, name: str, limit: int) -> bytes:
        parts: list[bytes] = []
        self._stream(name, limit, parts.append)
        return b"".join(parts)

    def digests(self, name: str) -> FileDigests:
        hasher = Hasher(sha256=True)

        def sink(chunk: bytes) -> None:
            hasher.update(chunk)
            if self.progress is not None:
                self.progress(len(chunk))

        self._stream(name, None, sink)
        return hasher.finish()

    def local_path(self, name: str, workdir: Path) -> Path:
        suffix = Path(name).suffix.lower()
        stem = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        dst = workdir / (stem + (suffix if _EXT.fullmatch(suffix) else ""))
        if not dst.exists():
            with dst.open("wb") as f:

                def sink(chunk: bytes) -> None:
                    f.write(chunk)

                self._stream(name, None, sink)
        return dst

    def close(self) -> None:
        self.zf.close()


_Source = FolderSource | ZipSource


@contextlib.contextmanager
def open_bundle(path: Path, progress: Progress | None = None) -> Iterator[_Source]:
    """Open a bundle folder or ZIP for reading (see FolderSource, ZipSource).

    `progress` is told the number of bytes hashed as files are streamed.
    """
    if path.is_dir():
        source: _Source = FolderSource(path, progress)
    elif path.is_file():
        source = ZipSource(path, progress)
    elif path.exists():
        raise InputError(f"{display_path(path)} is neither a folder nor a file")
    else:
        raise InputError(f"{display_path(path)} does not exist")
    try:
        yield source
    finally:
        source.close()


class FfmpegProber:
    """Re-measures the bundle's media in-process (PyAV), ahead of the verifier, cached.

    `prefetch` starts measuring every media file the manifest lists in a pool of
    `jobs` threads (default: one per core), each in the snapshot version of the
    file's recorded ``probe`` sidecar, so that the verifier's requests find their
    answers ready.  A file is measured once per snapshot version asked for
    (docs/spec/media.md §4: versions never mix in a comparison).  Files are taken
    out of the bundle one at a time; the measuring runs in parallel.
    """

    def __init__(self, source: _Source, workdir: Path, jobs: int | None = None) -> None:
        self.source = source
        self.workdir = workdir
        self.jobs = max(1, jobs if jobs is not None else os.cpu_count() or 1)
        self._tool: str | None = None
        self._lock = threading.Lock()
        self._extract = threading.Lock()
        self._futures: dict[tuple[str, str], Future[MediaRecord | None]] = {}
        self._pool: ThreadPoolExecutor | None = None

    @property
    def tool(self) -> str:
        if self._tool is None:
            from custody.infra import avmedia  # imports ctypes; PyAV only when measuring

            self._tool = avmedia.library_tool()
        return self._tool

    def _measure(self, name: str, snapshot: str) -> MediaRecord | None:
        with self._extract:
            path = self.source.local_path(name, self.workdir)
        info = media.probe(path, strict=False, name=name, snapshot=snapshot)
        return None if info is None else info.record

    def _submit(self, name: str, snapshot: str) -> Future[MediaRecord | None]:
        with self._lock:
            key = (name, snapshot)
            future = self._futures.get(key)
            if future is None:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="custody-probe")
                future = self._pool.submit(self._measure, name, snapshot)
                self._futures[key] = future
            return future

    def prefetch(self) -> None:
        """Start measuring every media file the manifest names (errors wait for `probe`)."""
        try:
            manifest = Manifest.parse(self.source.read(MANIFEST, MAX_MANIFEST))
        except CustodyError:
            return  # the verifier reports the manifest; nothing to prefetch
        for item in manifest.items:
            if item.media is not None and item.media in self.source.names():
                self._submit(item.media, self._recorded_version(item.sidecar("probe")))

    def _recorded_version(self, sidecar: str | None) -> str:
        """The snapshot version of a recorded probe sidecar (v2 if it cannot be read)."""
        if sidecar is None or sidecar not in self.source.names():
            return SNAPSHOT_V2
        try:
            version = json.loads(self.source.read(sidecar, MAX_MANIFEST)).get("version")
        except (CustodyError, ValueError, AttributeError):
            return SNAPSHOT_V2
        return version if version in SNAPSHOT_VERSIONS else SNAPSHOT_V2

    def probe(self, name: str, snapshot: str | None = None) -> MediaRecord | None:
        return self._submit(name, snapshot or SNAPSHOT_V2).result()

    def close(self) -> None:
        """Stop the pool: measurements not started are dropped, running ones finish."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def ffmpeg_available() -> bool:
    """Whether media can be re-measured: PyAV is importable (ffprobe only for v1 records)."""
    return importlib.util.find_spec("av") is not None


# =================================================================================
# Seen checkpoints


def default_seen_dir() -> Path:
    """$CUSTODY_SEEN, else $XDG_CONFIG_HOME/custody/seen, else ~/.config/custody/seen."""
    env = os.environ.get(ENV_SEEN)
    if env:
        return Path(env).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME")
    base = Path(config).expanduser() if config else Path.home() / ".config"
    return base / "custody" / "seen"


@dataclass
class SeenStore:
    """Checkpoints a verifier has seen, per origin (docs/spec/bundle.md §7).

    Files are written once and never replaced; a checkpoint that contradicts a
    recorded one is kept apart, under `conflicts/`, as evidence.
    """

    root: Path
    recorded: list[Path] = field(default_factory=list)

    def folder(self, origin: str) -> Path:
        return self.root / hashlib.sha256(origin.encode("utf-8")).hexdigest()

    def load(self, origin: str) -> list[tuple[str, bytes]]:
        folder = self.folder(origin)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.glob("*.checkpoint"):
            m = re.fullmatch(r"(0|[1-9][0-9]*)\.checkpoint", path.name)
            if m is None:
                continue
            try:
                with path.open("rb") as f:
                    found.append((int(m.group(1)), display_path(path), f.read(1 << 20)))
            except OSError as exc:
                raise StorageError(f"cannot read {display_path(path)}: {exc.strerror}") from exc
        return [(label, data) for _, label, data in sorted(found)]

    def _prepare(self, origin: str, sub: str = "") -> Path:
        folder = self.folder(origin) / sub if sub else self.folder(origin)
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            marker = self.folder(origin) / "origin"
            if not marker.exists():
                write_new(marker, (origin + "\n").encode("utf-8"), mode=0o644)
        except OSError as exc:
            raise StorageError(f"cannot write to {display_path(folder)}: {exc.strerror}") from exc
        return folder

    def record(self, origin: str, notes: Iterable[bytes]) -> list[int]:
        """Remember checkpoints (a size already recorded is kept as it is)."""
        added = []
        folder = self._prepare(origin)
        for note in notes:
            size = Checkpoint.parse(Note.parse(note).text).size
            path = folder / f"{size}.checkpoint"
            if path.exists():
                continue
            write_new(path, note, mode=0o644)
            added.append(size)
        return sorted(added)

    def keep_conflict(self, origin: str, note: bytes) -> Path:
        size = Checkpoint.parse(Note.parse(note).text).size
        folder = self._prepare(origin, "conflicts")
        path = folder / f"{size}-{hashlib.sha256(note).hexdigest()[:16]}.checkpoint"
        if not path.exists():
            write_new(path, note, mode=0o644)
        return path


# =================================================================================
# Verification


def _origin_hint(source: _Source) -> str | None:
    """The origin the (not yet verified) statement names: only to find the seen folder."""
    try:
        text = Note.parse(source.read(STATEMENT, MAX_MANIFEST)).text
        return Statement.parse(text).origin
    except CustodyError:
        return None


def verify_path(
    path: Path,
    trust: Trust,
    *,
    seen_dir: Path | None,
    probe: bool = True,
    progress: Progress | None = None,
    policy: Policy | None = None,
    jobs: int | None = None,
) -> BundleReport:
    """Verify the bundle at `path` (folder or ZIP); see `custody.bundle.verify.verify_bundle`.

    Loads the checkpoints seen before from `seen_dir` (None: none, and nothing
    is recorded), re-probes media when `probe` and PyAV is installed (in `jobs`
    threads, default one per core, ahead of the checks that need them), and
    records the bundle's checkpoint (and those proved consistent with it) when
    the checkpoint checks passed and the log key was given, not taken from the bundle.

    Raises BundleVerificationError (with the report), UnsafeBundleError,
    InputError (not a bundle, unreadable).
    """
    with (
        open_bundle(path, progress) as source,
        tempfile.TemporaryDirectory(prefix="custody-verify-") as tmp,
    ):
        store = SeenStore(seen_dir) if seen_dir is not None else None
        origin = _origin_hint(source)
        seen = store.load(origin) if store is not None and origin is not None else []
        prober = FfmpegProber(source, Path(tmp), jobs) if probe and ffmpeg_available() else None
        try:
            if prober is not None:
                prober.prefetch()
            report = verify_bundle(source, trust, seen=seen, prober=prober, policy=policy)
        except BundleVerificationError as exc:
            _remember(store, exc.report, trust)
            _annotate(exc.report, source, prober, probe)
            raise
        finally:
            if prober is not None:
                prober.close()
        _remember(store, report, trust)
        _annotate(report, source, prober, probe)
        return report


def _annotate(
    report: BundleReport, source: _Source, prober: FfmpegProber | None, probe: bool
) -> None:
    if source.ignored:
        report.notes.append(f"ignored operating-system files: {', '.join(source.ignored[:5])}")
    has_media = any(i.media for i in report.items)
    if has_media and prober is None:
        why = "--no-probe" if not probe else "PyAV is not installed"
        report.notes.append(f"media not re-probed ({why}): files checked by BLAKE3 only")


def _remember(store: SeenStore | None, report: BundleReport, trust: Trust) -> None:
    if store is None or report.origin is None:
        return
    if trust.bundle_keys:
        report.notes.append("checkpoints not recorded as seen: the log key came from the bundle")
        return
    if report.conflict is not None:
        kept = store.keep_conflict(report.origin, report.conflict)
        report.notes.append(
            f"the contradicting checkpoint is kept as evidence: {display_path(kept)}"
        )
    if report.record:
        added = store.record(report.origin, report.record)
        if added:
            report.notes.append(
                f"recorded as seen: checkpoint size(s) {', '.join(map(str, added))} in "
                f"{display_path(store.folder(report.origin))}"
            )


def _exported_key(text: str, where: str) -> VerifierKey:
    try:
        entry = SignedEntry.parse(text.encode()).entry
        vkey = entry.get("vkey") if entry.type == "key" else None
        if vkey is None:
            raise FormatError("it is a custody entry, but not a key entry with a vkey")
        return VerifierKey.parse(vkey)
    except CustodyError as exc:
        raise UsageError(
            f"{where}: not a key file: {exc.message}",
            hint="give the file 'custody key export NAME' wrote, or the verifier key itself",
        ) from exc


def parse_trust(values: Sequence[str], option: str = "--trust") -> tuple[VerifierKey, ...]:
    """Verifier keys from --trust (or `option`) values: a key, or a file of keys (one per line).

    Raises UsageError naming the value that is neither.
    """
    keys: list[VerifierKey] = []
    for value in values:
        try:
            keys.append(VerifierKey.parse(value))
            continue
        except FormatError as exc:
            error = exc
        path = Path(value)
        try:
            is_file = path.is_file()
        except OSError:
            # is_file() lets some errors through (a name too long to be a file's, a
            # folder that cannot be searched): no file of keys can be read there either.
            is_file = False
        if not is_file:
            raise UsageError(
                f"{option} {value[:60]!r} is not a verifier key: {error.message}",
                hint="a verifier key looks like 'name+1a2b3c4d+AQ...'; or give a file of them",
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {option} file {value}: {exc}") from exc
        if text.startswith(ENTRY_V1 + "\n"):
            # The file `custody key export` writes: a party's self-signed key entry.
            keys.append(_exported_key(text, f"{option} file {value}"))
            continue
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                keys.append(VerifierKey.parse(line))
            except FormatError as exc:
                raise UsageError(f"{option} file {value} line {n}: {exc.message}") from exc
    return tuple(keys)
