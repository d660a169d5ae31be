"""C2SP tlog-tiles: a Merkle log published as static files (c2sp.org/tlog-tiles).

A log of ``n`` entries is published as a ``checkpoint`` (the signed note) and *tiles*:
a tile at level ``L``, index ``N`` holds the hashes of the tree nodes at level ``8 * L``
with indices ``N * 256 .. N * 256 + W - 1``, concatenated (``W * 32`` bytes).  A full
tile has ``W = 256``; the rightmost tile of a level, when the tree's size does not fill
it, is partial (``1 <= W < 256``) and named with a ``.p/<W>`` suffix.  The hashes in a
tile are the leaves of a perfect subtree of height 8, so a full tile hashes (as a Merkle
tree of its hashes) to one hash of the tile above it.  With entries published, the
entry bundle ``tile/entries/<N>[.p/<W>]`` holds entries ``N * 256 ..`` each as a
big-endian uint16 length followed by the entry's bytes.  docs/spec/tiles.md describes
the layout byte for byte.

This module is pure: paths, tile encoding and decoding, which tiles a tree of a given
size has, and `TileReader`, which answers node hashes, tree hashes and RFC 9162 proofs
(planned by `custody.tlog.merkle`) from tiles that the caller reads with a
``read(path) -> bytes`` function, and verifies that tiles hash to their parents and to
the checkpoint's root.  Fetching (a folder, an http(s) URL) is the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from custody.errors import FormatError, NotFoundError, VerificationError
from custody.tlog import merkle

__all__ = [
    "CHECKPOINT_PATH",
    "HEIGHT",
    "MAX_ENTRY",
    "WIDTH",
    "Tile",
    "TileError",
    "TileReader",
    "decode_entries",
    "decode_tile",
    "encode_entries",
    "encode_tile",
    "new_tiles",
    "parse_path",
    "tiles_for_size",
]

HEIGHT = 8
"""Tile height: a tile spans 8 levels of the tree."""

WIDTH = 1 << HEIGHT
"""Hashes (or entries) in a full tile: 256."""

MAX_ENTRY = 0xFFFF
"""The largest entry an entry bundle can hold (its length is a uint16)."""

CHECKPOINT_PATH = "checkpoint"

# Tile levels of a 64-bit tree: stored levels 0, 8, .., 56 (RFC 9162 sizes are uint64).
_MAX_LEVEL = 63 // HEIGHT
_MAX_INDEX = merkle.MAX_SIZE >> HEIGHT
# At most 7 groups of three digits: enough for any index below 2^64.
_PATH = re.compile(
    r"tile/(?:(?P<level>0|[1-9][0-9]?)|(?P<entries>entries))/"
    r"(?P<index>(?:x[0-9]{3}/){0,6}[0-9]{3})(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
)


class TileError(VerificationError):
    """A published tile is malformed, missing, or does not hash to its parent or the root."""


@dataclass(frozen=True, order=True)
class Tile:
    """A tile coordinate: `level` (0..7), `index` within the level, `width` (1..256).

    Raises FormatError (from the constructor) for a coordinate outside those bounds.
    """

    level: int
    index: int
    width: int = WIDTH

    def __post_init__(self) -> None:
        if not 0 <= self.level <= _MAX_LEVEL:
            raise FormatError(f"tile level {self.level} is outside 0..{_MAX_LEVEL}")
        if not 0 <= self.index <= _MAX_INDEX:
            raise FormatError(f"tile index {self.index} is outside 0..2^56-1")
        if not 1 <= self.width <= WIDTH:
            raise FormatError(f"tile width {self.width} is outside 1..{WIDTH}")

    @property
    def full(self) -> bool:
        return self.width == WIDTH

    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]``, N in 3-digit groups, all but the last ``x``-prefixed."""
        return f"tile/{self.level}/{_encode_index(self.index)}{self._suffix()}"

    def entries_path(self) -> str:
        """``tile/entries/<N>[.p/<W>]``: the entry bundle of a level-0 tile."""
        if self.level != 0:
            raise FormatError(f"only level-0 tiles have entry bundles, not level {self.level}")
        return f"tile/entries/{_encode_index(self.index)}{self._suffix()}"

    def _suffix(self) -> str:
        return "" if self.full else f".p/{self.width}"

    @property
    def first(self) -> int:
        """The index, at stored level ``8 * level``, of the tile's first hash."""
        return self.index << HEIGHT


def _encode_index(n: int) -> str:
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def parse_path(path: str) -> tuple[Tile, bool]:
    """Parse a tile or entry-bundle path; returns the tile and whether it is an entry bundle.

    Only the canonical encoding is accepted (the one `Tile.path` writes): no leading
    ``x000`` group, no ``.p/256``, no leading zeros in the width.

    Raises:
        FormatError: anything else, naming the path.
    """
    if not isinstance(path, str) or len(path) > 64:
        raise FormatError(f"not a tile path: {path[:64]!r}")
    m = _PATH.fullmatch(path)
    if m is None:
        raise FormatError(f"not a tile path: {path!r}", hint="tile/<L>/<N>[.p/<W>]")
    index = int(m["index"].replace("x", "").replace("/", ""))
    width = int(m["width"]) if m["width"] else WIDTH
    entries = m["entries"] is not None
    try:
        tile = Tile(0 if entries else int(m["level"]), index, width)
    except FormatError as exc:
        raise FormatError(f"not a tile path: {path!r} ({exc.message})") from None
    canonical = tile.entries_path() if entries else tile.path()
    if canonical != path:
        raise FormatError(f"not a canonical tile path: {path!r} (it is written {canonical!r})")
    return tile, entries


def _level_size(size: int, level: int) -> int:
    """How many hashes the tree of `size` entries has at stored level ``8 * level``."""
    return size >> (HEIGHT * level)


def _tile_at(size: int, level: int, index: int) -> Tile:
    """Tile `index` of `level` as it is in the tree of `size` entries (full or partial)."""
    n = _level_size(size, level)
    return Tile(level, index, min(WIDTH, n - (index << HEIGHT)))


def tiles_for_size(size: int) -> list[Tile]:
    """Every tile of the tree of `size` entries, level by level, left to right.

    Per level ``L`` with ``n = size >> 8L`` hashes (while ``n > 0``): ``n // 256`` full
    tiles, then a partial tile of width ``n % 256`` if that is not zero.
    """
    return new_tiles(0, size)


def new_tiles(old: int, new: int) -> list[Tile]:
    """The tiles of the tree of `new` entries that the tree of `old` entries lacks.

    Full tiles that were already full at `old` are left out; a tile that was partial
    at `old` and has grown is included (at its width at `new`).

    Raises:
        FormatError: a size is outside 0..2^64-1 or ``old > new``.
    """
    if not 0 <= old <= new <= merkle.MAX_SIZE:
        raise FormatError(f"no tiles from tree size {old} to {new}")
    out: list[Tile] = []
    level = 0
    while (n_new := _level_size(new, level)) > 0:
        n_old = _level_size(old, level)
        for index in range(n_old >> HEIGHT, n_new >> HEIGHT):
            out.append(Tile(level, index))
        rest = n_new & (WIDTH - 1)
        if rest and n_new != n_old:
            out.append(Tile(level, n_new >> HEIGHT, rest))
        level += 1
    return out


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_tile(hashes: Sequence[bytes]) -> bytes:
    """A tile's bytes: its hashes, concatenated.

    Raises:
        FormatError: no hashes, more than 256, or one that is not 32 bytes.
    """
    if not 1 <= len(hashes) <= WIDTH:
        raise FormatError(f"a tile holds 1..{WIDTH} hashes, not {len(hashes)}")
    if any(len(h) != merkle.HASH_SIZE for h in hashes):
        raise FormatError(f"a tile holds {merkle.HASH_SIZE}-byte hashes")
    return b"".join(hashes)


def decode_tile(tile: Tile, data: bytes) -> list[bytes]:
    """The hashes of `tile` from its bytes; FormatError unless it is exactly ``W * 32`` bytes."""
    want = tile.width * merkle.HASH_SIZE
    if len(data) != want:
        raise FormatError(
            f"{tile.path()} is {len(data)} bytes, not {want} ({tile.width} hashes of 32 bytes)"
        )
    return [data[i : i + merkle.HASH_SIZE] for i in range(0, want, merkle.HASH_SIZE)]


def encode_entries(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length and its bytes.

    Raises:
        FormatError: no entries, more than 256, or one longer than 65535 bytes.
    """
    if not 1 <= len(entries) <= WIDTH:
        raise FormatError(f"an entry bundle holds 1..{WIDTH} entries, not {len(entries)}")
    out = bytearray()
    for i, e in enumerate(entries):
        if len(e) > MAX_ENTRY:
            raise FormatError(
                f"entry {i} of the bundle is {len(e)} bytes; tlog-tiles bundles hold at most "
                f"{MAX_ENTRY}",
                hint="publish without --with-entries",
            )
        out += len(e).to_bytes(2, "big") + e
    return bytes(out)


def decode_entries(tile: Tile, data: bytes) -> list[bytes]:
    """The `tile.width` entries of an entry bundle; FormatError for any other content."""
    out: list[bytes] = []
    pos = 0
    where = tile.entries_path()
    while pos < len(data):
        if len(out) == tile.width:
            raise FormatError(f"{where} has bytes after its {tile.width} entries")
        if pos + 2 > len(data):
            raise FormatError(f"{where} ends inside the length of entry {len(out)}")
        n = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + n > len(data):
            raise FormatError(f"{where}: entry {len(out)} is cut short ({n} bytes announced)")
        out.append(data[pos : pos + n])
        pos += n
    if len(out) != tile.width:
        raise FormatError(f"{where} holds {len(out)} entries, not {tile.width}")
    return out


# ---------------------------------------------------------------------------------------------
# Reading a tree from tiles


class TileReader:
    """The tree of `size` entries, read from its tiles with ``read(path) -> bytes``.

    `read` raises `custody.errors.NotFoundError` for a path that is not published; a
    partial tile that is missing is read from the full tile that replaced it (the spec
    lets a log delete partial tiles once the full one exists).  Tiles are read once
    and cached.  Every method raises `TileError` for a tile that is missing or
    malformed, and `merkle.ProofError` for impossible arguments.
    """

    def __init__(self, read: Callable[[str], bytes], size: int) -> None:
        if not 0 <= size <= merkle.MAX_SIZE:
            raise merkle.ProofError(f"tree size {size} is outside 0..2^64-1")
        self._read = read
        self.size = size
        self._cache: dict[tuple[int, int], list[bytes]] = {}

    def hashes(self, tile: Tile) -> list[bytes]:
        """The hashes of `tile` (its coordinate must be one of this tree's tiles)."""
        key = (tile.level, tile.index)
        got = self._cache.get(key)
        if got is None:
            got = self._fetch(tile)
            self._cache[key] = got
        return got

    def _fetch(self, tile: Tile) -> list[bytes]:
        try:
            try:
                return decode_tile(tile, self._read(tile.path()))
            except NotFoundError:
                if tile.full:
                    raise
                # A partial tile may have been deleted once its full tile was published.
                full = Tile(tile.level, tile.index)
                return decode_tile(full, self._read(full.path()))[: tile.width]
        except NotFoundError as exc:
            raise TileError(
                f"tile {tile.path()} of the tree of size {self.size} is not published "
                f"({exc.message})",
                hint="the publisher must write every tile before the checkpoint that covers it",
            ) from None
        except FormatError as exc:
            raise TileError(f"tile {exc.message}", hint="the published tile is damaged") from None

    def tile(self, level: int, index: int) -> Tile:
        """Tile `index` at `level` of this tree, at its width in the tree."""
        n = _level_size(self.size, level)
        if index << HEIGHT >= n:
            raise merkle.ProofError(
                f"the tree of size {self.size} has no tile {index} at level {level}"
            )
        return _tile_at(self.size, level, index)

    def node(self, node: merkle.NodeId) -> bytes:
        """The hash of the perfect subtree `node` = (level, index); it must be complete
        in this tree (``(index + 1) << level <= size``)."""
        level, index = node
        if level < 0 or index < 0 or (index + 1) << level > self.size:
            raise merkle.ProofError(
                f"node (level {level}, index {index}) is not complete in a tree of size {self.size}"
            )
        tile_level, sub = divmod(level, HEIGHT)
        first = index << sub  # at stored level 8 * tile_level
        t = self.tile(tile_level, first >> HEIGHT)
        hashes = self.hashes(t)
        start = first - t.first
        return merkle.root_from_leaves(hashes[start : start + (1 << sub)])

    def nodes(self, ids: Iterable[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        return {i: self.node(i) for i in ids}

    def tree_hash(self, size: int | None = None) -> bytes:
        """The root of the tree at `size` (default: this tree's size; at most that)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise merkle.ProofError(f"tree size {size} is beyond the tiles' size {self.size}")
        if size == 0:
            return merkle.EMPTY_ROOT
        plan = [merkle.range_nodes(0, size)]
        return merkle.assemble(plan, self.nodes(plan[0]))[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 inclusion proof of entry `index` in the tree at `size`."""
        size = self.size if size is None else size
        if size > self.size:
            raise merkle.ProofError(f"tree size {size} is beyond the tiles' size {self.size}")
        plan = merkle.inclusion_proof_nodes(index, size)
        return merkle.assemble(plan, self.nodes(n for g in plan for n in g))

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof from `old` to `new` (default: this tree's size)."""
        new = self.size if new is None else new
        if new > self.size:
            raise merkle.ProofError(f"tree size {new} is beyond the tiles' size {self.size}")
        plan = merkle.consistency_proof_nodes(old, new)
        return merkle.assemble(plan, self.nodes(n for g in plan for n in g))

    def leaf_hashes(self, tile_index: int) -> list[bytes]:
        """The leaf hashes of level-0 tile `tile_index` (for checking an entry bundle)."""
        return self.hashes(self.tile(0, tile_index))

    def verify(self, root: bytes, tiles: Iterable[Tile] | None = None) -> int:
        """Check the tiles against `root` (the checkpoint's); returns how many full tiles
        were checked against their parents.

        The tree hash computed from the tiles' right border (every partial tile and the
        tiles holding the nodes of ``range_nodes(0, size)``) must be `root`; each full
        tile in `tiles` (default: every tile of the tree) must hash, as a perfect tree of
        its 256 hashes, to its parent hash in the tile above.  Together these tie every
        byte of the checked tiles to `root`.

        Raises:
            TileError: a tile is missing or malformed, or does not hash to its parent.
            merkle.RootMismatchError: the tree hash from the tiles is not `root`.
        """
        todo = list(tiles_for_size(self.size) if tiles is None else tiles)
        got = self.tree_hash()
        if got != root:
            raise merkle.RootMismatchError(
                f"the tree hash computed from the tiles of size {self.size} is "
                f"{got[:4].hex()}..., not the checkpoint's root {root[:4].hex()}...",
                got=got,
                want=root,
                hint="a published tile was altered, or the checkpoint is not of these tiles",
            )
        checked = 0
        for tile in todo:
            self.hashes(tile)  # a partial tile is malformed -> TileError
            if not tile.full:
                continue
            parent_tile = self.tile(tile.level + 1, tile.index >> HEIGHT)
            parent = self.hashes(parent_tile)[tile.index & (WIDTH - 1)]
            if merkle.root_from_leaves(self.hashes(tile)) != parent:
                raise TileError(
                    f"tile {tile.path()} does not hash to its parent in {parent_tile.path()}",
                    hint="a published tile was altered or the log rewrote its history",
                )
            checked += 1
        return checked
