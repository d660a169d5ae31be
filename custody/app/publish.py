"""Publishing the log as C2SP tlog-tiles: `custody log publish --to DIR`.

What is published is the latest checkpoint the log has stored (with the witnesses'
cosignatures this home holds merged in, as exports carry them) and the tiles of the
tree at its size.  Publishing signs nothing: it needs no passphrase, so a cron job can
run it; entries appended after the latest checkpoint are published once someone runs
``custody log checkpoint`` (the report says how many are waiting).

The folder is written so that a reader never sees a checkpoint whose tiles are not
there, and a full tile never changes (docs/spec/tiles.md, "Writing"):

1. the checkpoint already in the folder, if any, must be one of this log's trees
   (same origin, at most as large, the same root at its size): a folder that holds
   another history is refused, never overwritten;
2. every tile the new checkpoint has and the previous one did not is written (a temp
   file, fsync, link or rename; then every folder written to is fsynced, once); a
   full tile that exists is compared
   byte for byte, and another content is a hard error (the log was rewritten); a
   partial tile is replaced by the larger one (old partial tiles stay, for readers of
   older checkpoints);
3. only then is ``checkpoint`` replaced, atomically.

Node hashes are read from the store a level range at a time (one query per 64 tiles),
so a first publish of a million-entry log reads ~4,000 ranges, not a million nodes.
One publisher per folder: two runs at once are not coordinated (one that finds a tile
appear under it stops with a StorageError; run it again).
"""

from __future__ import annotations

import fcntl
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custody.app.home import Custody
from custody.app.witness import merged_checkpoint
from custody.errors import CustodyError, NotFoundError, StorageError, UsageError, VerificationError
from custody.infra.crash import crash_point
from custody.infra.files import fsync_dir, no_space_error, reclaim, replace_durably
from custody.tlog.checkpoint import Checkpoint
from custody.tlog.note import Note
from custody.tlog.tiles import (
    CHECKPOINT_PATH,
    HEIGHT,
    Tile,
    encode_entries,
    encode_tile,
    new_tiles,
    tiles_for_size,
)

__all__ = ["PublishReport", "publish"]

# Tiles whose hashes one store query reads.
_BATCH = 64


@dataclass
class PublishReport:
    """What `publish` did: the published tree, and the files it wrote."""

    folder: Path
    origin: str
    size: int
    previous: int | None  # the size published before, None for a new folder
    log_size: int
    tiles_written: int = 0
    tiles_present: int = 0
    entry_bundles_written: int = 0
    checkpoint_written: bool = False
    written: list[str] = field(default_factory=list)
    folders: set[Path] = field(default_factory=set)  # folders written to, to fsync

    @property
    def waiting(self) -> int:
        """Entries appended after the published checkpoint."""
        return self.log_size - self.size

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "origin": self.origin,
            "size": self.size,
            "previous_size": self.previous,
            "log_size": self.log_size,
            "tiles_written": self.tiles_written,
            "tiles_present": self.tiles_present,
            "entry_bundles_written": self.entry_bundles_written,
            "checkpoint_written": self.checkpoint_written,
            "written": self.written,
        }


def _published_size(c: Custody, folder: Path) -> int | None:
    """The size of the checkpoint already in `folder`, checked to be a tree of this log.

    Raises VerificationError when it is another log's, larger than this log's latest
    checkpoint, or has another root at its size (the log was rewritten, or the folder
    belongs to a rebuilt log).
    """
    path = folder / CHECKPOINT_PATH
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        old = Checkpoint.parse(Note.parse(data).text)
    except CustodyError as exc:
        raise VerificationError(
            f"{path} is not a checkpoint ({exc.message})",
            hint="publish to an empty folder, or to the folder this log published before",
        ) from None
    if old.origin != c.origin:
        raise VerificationError(
            f"{path} is a checkpoint of '{old.origin}', not of this log '{c.origin}'",
            hint="publish each log to its own folder",
        )
    size = c.log.size()
    if old.size > size:
        raise VerificationError(
            f"{path} has size {old.size}, but this log has only {size} entries: "
            "the published log is not this one (or this log lost entries)",
            hint="restore the log, or publish to another folder; never to this one",
        )
    _, root = c.log.root(old.size)
    if root != old.root:
        raise VerificationError(
            f"{path} (size {old.size}) has another root than this log at that size: "
            "the published history is not this log's",
            hint="the log was rebuilt or rewritten; publish it to a new folder and tell the "
            "people who monitor it",
        )
    return old.size


def _tile_hashes(c: Custody, tiles: list[Tile]) -> dict[Tile, bytes]:
    """The bytes of `tiles` (all at one level, in index order) from the store's nodes."""
    out: dict[Tile, bytes] = {}
    for start in range(0, len(tiles), _BATCH):
        batch = tiles[start : start + _BATCH]
        level = batch[0].level * HEIGHT
        lo, hi = batch[0].first, batch[-1].first + batch[-1].width - 1
        nodes = c.store.nodes_at_level(level, lo, hi)
        for tile in batch:
            try:
                hashes = [nodes[tile.first + i] for i in range(tile.width)]
            except KeyError:
                raise StorageError(
                    f"the log's tree has no stored node at level {level} for {tile.path()}",
                    hint="the database is damaged: run 'custody log verify'",
                ) from None
            out[tile] = encode_tile(hashes)
    return out


def _entry_bundles(c: Custody, tiles: list[Tile]) -> dict[Tile, bytes]:
    out: dict[Tile, bytes] = {}
    for tile in tiles:
        rows = list(c.store.iter_entries(tile.first, tile.first + tile.width))
        out[tile] = encode_entries([data for _, data in rows])
    return out


def _write_file(path: Path, data: bytes, *, full: bool, report: PublishReport) -> bool:
    """Write one tile or bundle; returns whether it was written (False: already there).

    A full tile is write-once: the same bytes are left, other bytes are refused.
    """
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if existing == data:
        return False
    if existing is not None and full:
        raise VerificationError(
            f"{path} is already published with other content: full tiles never change, "
            "so the log was rewritten since it was published",
            hint="do not publish a rewritten log over its old tiles; investigate the log",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as exc:
        full_disk = no_space_error(exc, path.parent, f"cannot make {path.parent}")
        if full_disk is not None:
            raise full_disk from None
        raise StorageError(f"cannot make {path.parent}: {exc.strerror or exc}") from None
    _write_tile(path, data, replace=existing is not None, report=report)
    report.written.append(str(path.relative_to(report.folder)))
    return True


def _write_tile(path: Path, data: bytes, *, replace: bool, report: PublishReport) -> None:
    """A temp file beside `path`, fsync, then link (a new file: never overwrite) or
    rename (a partial tile replaced).  The folder is fsynced once, by `_sync_folders`,
    before the checkpoint that needs it: one fsync per folder, not per tile."""
    parent = path.parent
    if parent not in report.folders:
        # Temp files that no live process holds were left by a killed run.
        reclaim(parent, ".", suffix=".tmp")
        report.folders.add(parent)
    tmp = parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # so that another run's reclaim leaves it
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            if replace:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)
        finally:
            os.close(fd)
    except FileExistsError:
        raise StorageError(
            f"{path} appeared while publishing: is another 'custody log publish' "
            "writing to this folder?"
        ) from None
    except OSError as exc:
        full = no_space_error(exc, parent, f"cannot write {path}")
        if full is not None:
            raise full from None
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _sync_folders(report: PublishReport) -> None:
    # Each folder written to, and every folder above it up to the published one (a
    # folder made for a tile is an entry in its parent), deepest first.
    todo = {report.folder}
    for folder in report.folders:
        while folder != report.folder and folder not in todo:
            todo.add(folder)
            folder = folder.parent
    try:
        for folder in sorted(todo, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(folder)
    except OSError as exc:
        raise StorageError(f"cannot sync {report.folder}: {exc.strerror or exc}") from None


def publish(c: Custody, folder: Path, *, with_entries: bool = False) -> PublishReport:
    """Publish the log's latest checkpoint and its tiles into `folder` (see the module).

    Raises:
        NotFoundError: the log has no checkpoint yet.
        VerificationError: the folder holds another history, or a full tile differs.
        StorageError: the folder cannot be written (a full disk is named as such).
    """
    row = c.store.checkpoint()
    if row is None:
        raise NotFoundError(
            "the log has no checkpoint to publish yet",
            hint="sign one with 'custody log checkpoint', then publish",
        )
    size = int(row.size)
    note = merged_checkpoint(c, bytes(row.note))
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as exc:
        raise StorageError(f"cannot make {folder}: {exc.strerror or exc}") from None
    previous = _published_size(c, folder)
    report = PublishReport(folder, c.origin, size, previous, c.log.size())
    if previous is not None and previous > size:
        raise UsageError(
            f"{folder} already holds a checkpoint of size {previous}, newer than this log's "
            f"latest stored checkpoint (size {size})",
            hint="sign a checkpoint with 'custody log checkpoint', then publish",
        )
    todo = new_tiles(previous or 0, size)
    by_level: dict[int, list[Tile]] = {}
    for tile in todo:
        by_level.setdefault(tile.level, []).append(tile)
    for tiles in by_level.values():
        for tile, data in _tile_hashes(c, tiles).items():
            if _write_file(folder / tile.path(), data, full=tile.full, report=report):
                report.tiles_written += 1
            else:
                report.tiles_present += 1
    if with_entries:
        # Every bundle the folder lacks (it may have been published without entries
        # before); a full bundle already there is compared only when it is new.
        fresh = {t for t in todo if t.level == 0}
        level0 = [
            t
            for t in tiles_for_size(size)
            if t.level == 0 and (t in fresh or not (folder / t.entries_path()).exists())
        ]
        for start in range(0, len(level0), _BATCH):
            bundles = _entry_bundles(c, level0[start : start + _BATCH])
            for tile, data in bundles.items():
                path = folder / tile.entries_path()
                if _write_file(path, data, full=tile.full, report=report):
                    report.entry_bundles_written += 1
    _sync_folders(report)
    crash_point("publish.tiles-written")
    target = folder / CHECKPOINT_PATH
    try:
        current = target.read_bytes()
    except OSError:
        current = None
    if current != note:
        replace_durably(target, note, mode=0o644)
        report.checkpoint_written = True
        report.written.append(CHECKPOINT_PATH)
        crash_point("publish.checkpoint-written")
    return report
