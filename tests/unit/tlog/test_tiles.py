"""C2SP tlog-tiles (custody.tlog.tiles): paths, tiles of a tree, hashes and proofs from tiles.

Tiles are built from a `MemoryTree`'s stored nodes (the production node store's shape);
tree hashes and proofs read back from them are checked against the naive RFC 6962
reference in tests/merkle_reference.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merkle_reference import Reference

from custody.errors import FormatError, NotFoundError
from custody.tlog import merkle
from custody.tlog.tiles import (
    Tile,
    TileError,
    TileReader,
    decode_entries,
    decode_tile,
    encode_entries,
    encode_tile,
    new_tiles,
    parse_path,
    tiles_for_size,
)

Files = dict[str, bytes]


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def publish(data: list[bytes], *, drop_partials: bool = False) -> tuple[merkle.MemoryTree, Files]:
    """The tiles of a tree over `data`, as a publisher writes them."""
    tree = merkle.MemoryTree()
    for d in data:
        tree.append(d)
    files: Files = {}
    for tile in tiles_for_size(tree.size):
        nodes = tree._nodes  # the perfect nodes a log store keeps
        hashes = [nodes[(tile.level * 8, tile.first + i)] for i in range(tile.width)]
        files[tile.path()] = encode_tile(hashes)
    return tree, files


def reader(files: Files, size: int) -> TileReader:
    def read(path: str) -> bytes:
        if path not in files:
            raise NotFoundError(f"{path} is not published")
        return files[path]

    return TileReader(read, size)


# -- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (Tile(0, 0), "tile/0/000"),
        (Tile(0, 0, 1), "tile/0/000.p/1"),
        (Tile(1, 999, 255), "tile/1/999.p/255"),
        (Tile(0, 1000), "tile/0/x001/000"),
        (Tile(3, 1234067, 8), "tile/3/x001/x234/067.p/8"),
        (Tile(0, 123456789), "tile/0/x123/x456/789"),
    ],
)
def test_paths_round_trip(tile: Tile, path: str) -> None:
    assert tile.path() == path
    assert parse_path(path) == (tile, False)
    if tile.level == 0:
        entries_path = path.replace("tile/0/", "tile/entries/")
        assert tile.entries_path() == entries_path
        assert parse_path(entries_path) == (tile, True)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/0",
        "tile/0/0000",
        "tile/0/x000/001",  # not canonical: a leading zero group
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/0/000.p/012",
        "tile/8/000",  # no level 8 in a 64-bit tree
        "tile/00/000",
        "tile/-1/000",
        "tile/0/x1/000",
        "tile/entries/000.p/",
        "tile/0/000/",
        "../tile/0/000",
        "tile/0/x" + "001/x" * 8 + "000",
        "",
    ],
)
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(FormatError):
        parse_path(path)


def test_bad_coordinates_are_refused() -> None:
    for args in [(-1, 0, 1), (8, 0, 1), (0, -1, 1), (0, 0, 0), (0, 0, 257), (0, 2**56, 1)]:
        with pytest.raises(FormatError):
            Tile(*args)


# -- which tiles ----------------------------------------------------------------------------


def test_tiles_for_size() -> None:
    assert tiles_for_size(0) == []
    assert tiles_for_size(1) == [Tile(0, 0, 1)]
    assert tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tiles_for_size(300) == [Tile(0, 0), Tile(0, 1, 44), Tile(1, 0, 1)]
    big = tiles_for_size(70000)
    assert big[:1] == [Tile(0, 0)] and Tile(0, 273, 112) in big
    assert Tile(1, 1, 17) in big and Tile(2, 0, 1) in big and len(big) == 273 + 1 + 1 + 1 + 1


def test_new_tiles_are_what_the_old_tree_lacks() -> None:
    assert new_tiles(300, 300) == []
    assert new_tiles(300, 301) == [Tile(0, 1, 45)]
    assert new_tiles(300, 512) == [Tile(0, 1), Tile(1, 0, 2)]
    assert new_tiles(0, 300) == tiles_for_size(300)
    with pytest.raises(FormatError):
        new_tiles(5, 4)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 3000))
def test_new_tiles_complete_the_old_ones(a: int, b: int) -> None:
    old, new = sorted((a, b))
    have = {(t.level, t.index): t for t in tiles_for_size(old)}
    for t in new_tiles(old, new):
        have[(t.level, t.index)] = t
    assert sorted(have.values()) == sorted(tiles_for_size(new))


# -- encoding -------------------------------------------------------------------------------


def test_tile_encoding() -> None:
    hashes = [bytes([i]) * 32 for i in range(3)]
    assert decode_tile(Tile(0, 0, 3), encode_tile(hashes)) == hashes
    for bad in (b"", encode_tile(hashes)[:-1], encode_tile(hashes) + b"\0"):
        with pytest.raises(FormatError, match=r"tile/0/000\.p/3 is \d+ bytes, not 96"):
            decode_tile(Tile(0, 0, 3), bad)
    with pytest.raises(FormatError):
        encode_tile([])
    with pytest.raises(FormatError):
        encode_tile([b"short"])


def test_entry_bundles() -> None:
    data = [b"", b"a", b"x" * 65535]
    bundle = encode_entries(data)
    assert bundle[:2] == b"\0\0" and bundle[2:5] == b"\0\x01a"
    assert decode_entries(Tile(0, 0, 3), bundle) == data
    with pytest.raises(FormatError, match="at most 65535"):
        encode_entries([b"x" * 65536])
    for bad, why in [
        (bundle[:-1], "cut short"),
        (bundle + b"\0", "after its 3 entries"),
        (encode_entries(data[:2]), "holds 2 entries, not 3"),
        (bundle[:4], "cut short"),
        (b"\0", "inside the length"),
    ]:
        with pytest.raises(FormatError, match=why):
            decode_entries(Tile(0, 0, 3), bad)


# -- trees from tiles -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 255, 256, 257, 511, 512, 513, 700, 65536, 65537])
def test_tree_hash_from_tiles(n: int) -> None:
    data = entries(n)
    tree, files = publish(data)
    r = reader(files, n)
    assert r.tree_hash() == tree.root()
    assert r.verify(tree.root()) == n // 256 + n // 65536
    if n <= 2000:
        ref = Reference(data)
        assert r.tree_hash() == ref.root(n)
        for size in {1, n // 2 or 1, n - 1 or 1, n}:
            assert r.tree_hash(size) == ref.root(size)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 1200), st.data())
def test_proofs_from_tiles_match_the_reference(n: int, data: st.DataObject) -> None:
    leaves = entries(n)
    _, files = publish(leaves)
    ref = Reference(leaves)
    r = reader(files, n)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    assert r.inclusion_proof(index, size) == ref.inclusion_proof(index, size)
    assert r.consistency_proof(old, size) == ref.consistency_proof(old, size)
    merkle.verify_inclusion(
        index, size, merkle.leaf_hash(leaves[index]), r.inclusion_proof(index, size), ref.root(size)
    )


def test_partial_tiles_may_be_gone_once_full() -> None:
    """A reader of an older tree finds its partial tile in the full one."""
    old_tree, files = publish(entries(300))
    files.update(publish(entries(600))[1])
    del files["tile/0/001.p/44"]  # deleted: the full tile replaced it
    r = reader(files, 300)
    assert r.tree_hash() == old_tree.root()


def test_a_flipped_byte_is_caught() -> None:
    tree, files = publish(entries(700))
    for path in list(files):
        for pos in (0, len(files[path]) - 1):
            damaged = dict(files)
            raw = bytearray(files[path])
            raw[pos] ^= 1
            damaged[path] = bytes(raw)
            with pytest.raises((TileError, merkle.RootMismatchError)):
                reader(damaged, 700).verify(tree.root())


def test_missing_and_malformed_tiles() -> None:
    tree, files = publish(entries(300))
    del files["tile/0/001.p/44"]
    with pytest.raises(TileError, match=r"tile tile/0/001\.p/44 .* is not published"):
        reader(files, 300).verify(tree.root())
    _, files = publish(entries(300))
    files["tile/0/000"] = files["tile/0/000"][:-1]
    with pytest.raises(TileError, match=r"tile/0/000 is 8191 bytes, not 8192"):
        reader(files, 300).verify(tree.root())


def test_a_wrong_root_is_caught() -> None:
    _, files = publish(entries(300))
    with pytest.raises(merkle.RootMismatchError, match="not the checkpoint's root"):
        reader(files, 300).verify(b"\0" * 32)


def test_impossible_requests() -> None:
    _, files = publish(entries(10))
    r = reader(files, 10)
    with pytest.raises(merkle.ProofError):
        r.tree_hash(11)
    with pytest.raises(merkle.ProofError):
        r.node((4, 0))  # 16 leaves: not complete in a tree of 10
    with pytest.raises(merkle.ProofError):
        r.inclusion_proof(10, 10)
    with pytest.raises(merkle.ProofError):
        TileReader(lambda _p: b"", -1)
    assert reader({}, 0).tree_hash() == merkle.EMPTY_ROOT
