"""Media sidecar parsers refuse overlong numbers and deep nesting with FormatError.

Fuzzing findings of issue 9: a stream index (framehash `#tb`, `#media_type`,
`#codec_id`, `#extradata`; streamhash lines) or a snapshot number of 5000 digits made
int() raise ValueError (its 4300-digit limit), and a snapshot of 100,000 `[` made
json raise RecursionError.  Each is now the FormatError naming what is wrong.
"""

from __future__ import annotations

import sys

import pytest

from custody.errors import FormatError
from custody.media.compare import parse_framehash, parse_streamhash
from custody.media.digest import SNAPSHOT_VERSION, canonical_json, parse_snapshot

HUGE = "9" * 5000
HEADER = "#version: 2\n#hash: SHA256\n"
EXTRA = "ab" * 32


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"#tb {HUGE}: 1/25", "framehash line 3: #tb stream index has 5000 digits"),
        (f"#media_type {HUGE}: video", "framehash line 3: #media_type stream index has 5000"),
        (f"#codec_id {HUGE}: h264", "framehash line 3: #codec_id stream index has 5000"),
        (f"#extradata {HUGE}, 39, {EXTRA}", "framehash line 3: extradata stream index has 5000"),
        (f"#extradata 0, {HUGE}, {EXTRA}", "framehash line 3: extradata size has 5000 digits"),
        ("#tb 123456789012345678901: 1/25", "stream index has 21 digits; at most 20"),
    ],
)
def test_framehash_header_number_too_long(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message) as info:
        parse_framehash(f"{HEADER}{line}\n".encode())
    assert len(info.value.message) < 120


def test_framehash_packet_field_too_long_keeps_its_message() -> None:
    # Packet fields went through int() inside a try already: the message is unchanged.
    data = f"{HEADER}#tb 0: 1/25\n#media_type 0: video\n{HUGE},0,0,1,1,{'00' * 32}\n"
    with pytest.raises(FormatError, match=r"framehash line 5: stream .* is not an integer"):
        parse_framehash(data.encode())


def test_framehash_with_twenty_digit_index_still_parses_its_header() -> None:
    # Twenty digits are allowed; the stream is then refused for the gap before it.
    data = f"{HEADER}#tb 10000000000000000000: 1/25\n#media_type 10000000000000000000: video\n"
    with pytest.raises(FormatError, match="stream 0 has no #tb or #media_type header"):
        parse_framehash(data.encode())


def test_streamhash_index_too_long() -> None:
    with pytest.raises(FormatError) as info:
        parse_streamhash(f"{HUGE},v,SHA256={'0' * 64}\n".encode())
    assert info.value.message == (
        "streamhash line 1: stream index has 5000 digits; at most 20 are possible"
    )


def test_streamhash_index_of_twenty_digits_parses() -> None:
    index = 10**19
    assert parse_streamhash(f"{index},a,SHA256={'0' * 64}\n".encode()) == {
        index: ("audio", "0" * 64)
    }


@pytest.mark.parametrize(
    "data",
    [
        HUGE.encode(),
        b'{"format": {"size": ' + HUGE.encode() + b'}, "streams": []}',
    ],
)
def test_snapshot_number_too_long(data: bytes) -> None:
    with pytest.raises(FormatError) as info:
        parse_snapshot(data)
    assert info.value.message == "snapshot: a number has more than 4300 digits"


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 100_000], ids=["lists", "objects"])
def test_snapshot_nested_too_deeply(data: bytes) -> None:
    with pytest.raises(FormatError) as info:
        parse_snapshot(data)
    assert info.value.message == "snapshot: JSON nested too deeply to be ffprobe's"


def test_snapshot_nested_near_the_recursion_limit() -> None:
    # Around the recursion limit json.loads may accept a nesting that the canonical
    # encoder then cannot recurse through: every depth must parse or be a FormatError.
    tail = canonical_json({"streams": [], "version": SNAPSHOT_VERSION})[1:]
    limit = sys.getrecursionlimit()
    outcomes = set()
    for depth in range(limit - 150, limit + 10):
        data = b'{"format":{"x":' + b"[" * depth + b"]" * depth + b"}," + tail
        try:
            parse_snapshot(data)
            outcomes.add("parsed")
        except FormatError as exc:
            assert exc.message == "snapshot: JSON nested too deeply to be ffprobe's"
            outcomes.add("refused")
    assert outcomes == {"parsed", "refused"}


def test_snapshot_still_round_trips() -> None:
    data = canonical_json(
        {"format": {"size": "12", "nb_streams": 1}, "streams": [{}], "version": SNAPSHOT_VERSION}
    )
    assert parse_snapshot(data)["format"]["nb_streams"] == 1
