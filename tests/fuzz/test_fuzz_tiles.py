"""Fuzzing the parsers of published logs (C2SP tlog-tiles) and of the monitor's state.

What a monitor or `verify-bundle --published` reads comes from someone else's web
server: tile paths, tile bytes, entry bundles, and (from its own disk, but a file
anyone could edit) its state.  Each parser gets mutations of genuine inputs and random
bytes under `fuzzkit.check`: it returns a value or raises CustodyError, never anything
else, never hangs, never allocates out of proportion.  `TileReader` is also run over a
whole published tree whose tiles are mutated, as the monitor reads it.
"""

from __future__ import annotations

import base64
import json

from fuzzkit import check, fuzz_settings, inputs
from hypothesis import given
from hypothesis import strategies as st

from custody.app.monitor import STATE_V1, MonitorState
from custody.errors import NotFoundError
from custody.tlog import merkle
from custody.tlog.tiles import (
    Tile,
    TileReader,
    decode_entries,
    decode_tile,
    encode_entries,
    encode_tile,
    parse_path,
    tiles_for_size,
)

SIZE = 300
_TREE = merkle.MemoryTree()
for _i in range(SIZE):
    _TREE.append(f"entry {_i}".encode())
FILES = {
    t.path(): encode_tile([_TREE._nodes[(t.level * 8, t.first + i)] for i in range(t.width)])
    for t in tiles_for_size(SIZE)
}
PATHS = [
    p.encode()
    for p in [*FILES, "tile/entries/x001/x234/067.p/8", "tile/3/x123/x456/789", "checkpoint"]
]
BUNDLES = [encode_entries([b"a", b"", b"custody/entry/v1\ntype access\n"]), encode_entries([b"x"])]
STATE = MonitorState("test.example/custody", SIZE, _TREE.root(), b"note\n", "/pub").encode()


@fuzz_settings()
@given(inputs(PATHS))
def test_parse_path(data: bytes) -> None:
    def run() -> None:
        tile, entries = parse_path(data.decode("utf-8", "replace"))
        assert (tile.entries_path() if entries else tile.path()) == data.decode()

    check(run)


@fuzz_settings()
@given(inputs(list(FILES.values())), st.integers(1, 256))
def test_decode_tile(data: bytes, width: int) -> None:
    check(lambda: decode_tile(Tile(0, 0, width), data))


@fuzz_settings()
@given(inputs(BUNDLES), st.integers(1, 256))
def test_decode_entries(data: bytes, width: int) -> None:
    check(lambda: decode_entries(Tile(0, 0, width), data))


@fuzz_settings()
@given(st.sampled_from(sorted(FILES)), inputs(list(FILES.values())), st.integers(0, SIZE))
def test_tile_reader_over_mutated_tiles(path: str, data: bytes, size: int) -> None:
    files = {**FILES, path: data}

    def read(p: str) -> bytes:
        if p not in files:
            raise NotFoundError(p)
        return files[p]

    def run() -> None:
        reader = TileReader(read, size)
        reader.verify(_TREE.root(size) if size else merkle.EMPTY_ROOT)
        if size:
            reader.consistency_proof(max(1, size // 2), size)
            reader.inclusion_proof(size - 1, size)

    check(run)


def _state_seeds() -> list[bytes]:
    doc = json.loads(STATE)
    other = dict(doc, size=2**64, root=base64.b64encode(b"\0" * 31).decode())
    return [STATE, json.dumps(other).encode(), json.dumps({"format": STATE_V1}).encode()]


@fuzz_settings()
@given(inputs(_state_seeds()))
def test_monitor_state(data: bytes) -> None:
    check(lambda: MonitorState.parse(data, "state.json"))
