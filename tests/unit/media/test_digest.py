"""custody.media.digest: file, metadata and content digests (docs/spec/media.md)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.errors import FormatError, UsageError
from custody.infra.vault import hash_file
from custody.media.digest import (
    CONTENT_VERSION,
    SNAPSHOT_VERSION,
    FileDigests,
    Hasher,
    StreamDigest,
    canonical_json,
    content_digest,
    hash_bytes,
    hash_stream,
    metadata_digest,
    parse_snapshot,
    snapshot_bytes,
)

needs_b3sum = pytest.mark.skipif(shutil.which("b3sum") is None, reason="b3sum not installed")


def _tool_digest(tool: str, path: Path) -> str:
    out = subprocess.run([tool, str(path)], capture_output=True, text=True, check=True).stdout
    return out.split()[0]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 40 MiB and an odd tail: several 16 MiB windows plus a partial one.
    path = tmp_path_factory.mktemp("digest") / "data.bin"
    path.write_bytes(os.urandom(40 * 1024 * 1024 + 12345))
    return path


@needs_b3sum
def test_hash_file_matches_b3sum_and_sha256sum(data_file: Path) -> None:
    digests = hash_file(data_file, sha256=True)
    assert digests.size == data_file.stat().st_size
    assert digests.blake3_hex == _tool_digest("b3sum", data_file)
    assert digests.sha256_hex == _tool_digest("sha256sum", data_file)


@needs_b3sum
def test_hash_stream_matches_b3sum(data_file: Path) -> None:
    seen: list[int] = []
    with data_file.open("rb", buffering=0) as f:
        digests = hash_stream(f, sha256=True, chunk_size=1 << 20, progress=seen.append)
    assert digests.blake3_hex == _tool_digest("b3sum", data_file)
    assert digests.sha256_hex == _tool_digest("sha256sum", data_file)
    assert sum(seen) == digests.size and max(seen) <= 1 << 20


@needs_b3sum
def test_small_file_and_empty_file_match_b3sum(tmp_path: Path) -> None:
    for name, content in (("one.bin", b"x"), ("empty.bin", b""), ("block.bin", b"a" * 1025)):
        path = tmp_path / name
        path.write_bytes(content)
        assert hash_file(path).blake3_hex == _tool_digest("b3sum", path)
        assert hash_bytes(content).blake3_hex == _tool_digest("b3sum", path)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=20_000),
    cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=12),
)
def test_any_chunking_gives_the_same_digests(data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    hasher = Hasher(sha256=True)
    last = 0
    for point in [*points, len(data)]:
        hasher.update(memoryview(data)[last:point])
        last = point
    got = hasher.finish()
    assert got == FileDigests(
        size=len(data),
        blake3=blake3.blake3(data).digest(),
        sha256=hashlib.sha256(data).digest(),
    )


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=5000), chunk=st.integers(min_value=1, max_value=700))
def test_hash_stream_any_chunk_size(data: bytes, chunk: int) -> None:
    got = hash_stream(io.BytesIO(data), chunk_size=chunk)
    assert got.blake3 == blake3.blake3(data).digest()
    assert got.sha256 is None and got.sha256_hex is None


def test_hasher_accepts_any_buffer_and_counts_bytes() -> None:
    hasher = Hasher()
    hasher.update(b"ab")
    hasher.update(bytearray(b"cd"))
    hasher.update(memoryview(b"ef").cast("B"))
    assert hasher.size == 6
    assert hasher.finish().blake3 == blake3.blake3(b"abcdef").digest()


def test_hash_stream_refuses_a_nonsense_chunk_size() -> None:
    with pytest.raises(UsageError, match="chunk_size"):
        hash_stream(io.BytesIO(b"x"), chunk_size=0)


def test_file_digests_validate() -> None:
    with pytest.raises(FormatError, match="32 bytes"):
        FileDigests(size=1, blake3=b"short")
    with pytest.raises(FormatError, match="negative"):
        FileDigests(size=-1, blake3=bytes(32))
    with pytest.raises(FormatError, match="SHA-256"):
        FileDigests(size=1, blake3=bytes(32), sha256=b"x")


# -- canonical JSON and the snapshot ----------------------------------------------


def test_canonical_json_is_jcs_for_strings_and_integers() -> None:
    value = {"b": [1, "x", True, None], "a": {"z": -5, "y": 'é\n"\\\u0001'}, "\u20ac": 0}
    assert (
        canonical_json(value)
        == ('{"a":{"y":"é\\n\\"\\\\\\u0001","z":-5},"b":[1,"x",true,null],"\u20ac":0}').encode()
    )


def test_canonical_json_sorts_keys_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB01.
    value = {"\ufb01": 1, "\U0001f600": 2}
    assert canonical_json(value) == '{"\U0001f600":2,"\ufb01":1}'.encode()


def test_canonical_json_refuses_floats_and_odd_values() -> None:
    with pytest.raises(FormatError, match=r"\$\.format\.duration is a fractional number"):
        canonical_json({"format": {"duration": 2.5}})
    with pytest.raises(FormatError, match="not a string"):
        canonical_json({1: "x"})
    with pytest.raises(FormatError, match="cannot carry"):
        canonical_json({"x": b"bytes"})
    with pytest.raises(FormatError, match="surrogate"):
        canonical_json({"x": "\ud800"})


PROBE: dict[str, Any] = {
    "streams": [{"index": 0, "codec_type": "video", "tags": {"creation_time": "2024"}}],
    "format": {"filename": "/evidence/clip.mp4", "format_name": "mov", "size": "10"},
}


def test_snapshot_drops_the_file_name_and_carries_the_version() -> None:
    data = snapshot_bytes(PROBE)
    assert b"filename" not in data and b"/evidence" not in data
    assert data == (
        b'{"format":{"format_name":"mov","size":"10"},'
        b'"streams":[{"codec_type":"video","index":0,"tags":{"creation_time":"2024"}}],'
        b'"version":"custody/snapshot/v1"}'
    )
    assert SNAPSHOT_VERSION == "custody/snapshot/v2"  # what custody writes now
    assert snapshot_bytes(PROBE, "custody/snapshot/v2") == data.replace(b"/v1", b"/v2")
    assert metadata_digest(data) == blake3.blake3(data).hexdigest()
    moved = {**PROBE, "format": {**PROBE["format"], "filename": "/elsewhere/other name.mp4"}}
    assert snapshot_bytes(moved) == data


def test_parse_snapshot_round_trips_and_refuses_anything_else() -> None:
    data = snapshot_bytes(PROBE)
    parsed = parse_snapshot(data)
    assert parsed["format"]["format_name"] == "mov"
    assert canonical_json(parsed) == data
    with pytest.raises(FormatError, match="not in canonical form"):
        parse_snapshot(json.dumps(parsed, indent=1).encode())
    with pytest.raises(FormatError, match="version"):
        parse_snapshot(canonical_json({**parsed, "version": "custody/snapshot/v9"}))
    with pytest.raises(FormatError, match="not UTF-8 JSON"):
        parse_snapshot(b"\xff")
    with pytest.raises(FormatError, match="not a JSON object"):
        parse_snapshot(b"[]")
    with pytest.raises(FormatError, match="format"):
        parse_snapshot(canonical_json({"version": SNAPSHOT_VERSION}))
    with pytest.raises(FormatError, match="no `format` object"):
        snapshot_bytes({"streams": []})
    with pytest.raises(FormatError, match="streams"):
        snapshot_bytes({"format": {}, "streams": {}})


# -- content digest ---------------------------------------------------------------


def _stream(index: int, kind: str = "video", extradata: str | None = "ab" * 32) -> StreamDigest:
    return StreamDigest(
        index=index,
        codec_type=kind,
        codec_name="h264" if kind == "video" else "aac",
        packets=30,
        digest=f"{index:02x}" * 32,
        extradata=extradata,
    )


def test_content_digest_follows_the_spec() -> None:
    streams = [_stream(0), _stream(1, "audio", None)]
    text = f"{CONTENT_VERSION}\n0 video 30 {'00' * 32} {'ab' * 32}\n1 audio 30 {'01' * 32} -\n"
    assert content_digest(streams) == blake3.blake3(text.encode()).hexdigest()
    # The codec name is a label, not content.
    renamed = [StreamDigest(0, "video", "avc", 30, "00" * 32, "ab" * 32), streams[1]]
    assert content_digest(renamed) == content_digest(streams)


def test_content_digest_needs_streams_in_index_order() -> None:
    with pytest.raises(FormatError, match="in order"):
        content_digest([_stream(1), _stream(0)])


def test_stream_digest_validates() -> None:
    with pytest.raises(FormatError, match="codec type"):
        StreamDigest(0, "smell", "x", 1, "00" * 32)
    with pytest.raises(FormatError, match="64 lowercase hex"):
        StreamDigest(0, "video", "h264", 1, "AB" * 32)
    with pytest.raises(FormatError, match="extradata"):
        StreamDigest(0, "video", "h264", 1, "00" * 32, "zz")
    with pytest.raises(FormatError, match="codec name"):
        StreamDigest(0, "video", "h 264", 1, "00" * 32)
    with pytest.raises(FormatError, match="negative"):
        StreamDigest(-1, "video", "h264", 1, "00" * 32)
    with pytest.raises(FormatError, match="packet count"):
        StreamDigest(0, "video", "h264", -1, "00" * 32)
