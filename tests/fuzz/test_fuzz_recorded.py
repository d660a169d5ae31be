"""Fuzzing the parsers of clip tags (custody.media.recorded) and of request files
(custody.app.requests.read_request).

The tag parsers read whatever a device or an editor wrote: they must return None or a
value the entry format accepts, never raise.  A request file comes from another
custody home: `read_request` must return a request or raise InputError naming the
file, never anything else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import fuzzkit
from fuzzkit import check, fuzz_settings, inputs
from hypothesis import given
from hypothesis import strategies as st

from custody.app.requests import read_request
from custody.errors import InputError
from custody.media.recorded import parse_creation_time, parse_iso6709, recorded_of
from custody.model.entry import parse_time, sign_entry
from custody.model.types import Request, build, parse_location
from custody.tlog.note import Signer

TIMES = [
    b"2026-03-01T10:15:00.000000Z",
    b"2026-03-01 10:15:00",
    b"2026-03-01T11:15:00+0100",
    b"2026-03-01T05:15:00-05:00",
]
PLACES = [
    b"+51.5074-000.1278/",
    b"+51.5074-000.1278+011.000/",
    b"+4042.90-07359.42/",
    b"+404230-0735930CRSWGS_84/",
]


def _texts(seeds: list[bytes]) -> st.SearchStrategy[str]:
    return st.one_of(
        inputs(seeds).map(lambda b: b.decode("utf-8", "replace")),
        st.text(max_size=80),
    )


@fuzz_settings()
@given(_texts(TIMES))
def test_creation_time(text: str) -> None:
    got = parse_creation_time(text)
    if got is not None:  # what an ingest entry's `recorded` must be
        assert parse_time(got, "recorded").tzinfo is UTC


@fuzz_settings()
@given(_texts(PLACES))
def test_iso6709(text: str) -> None:
    got = parse_iso6709(text)
    if got is not None:  # what an ingest entry's `location` must be
        lat, lon = parse_location(got)
        assert -90 <= lat <= 90 and -180 <= lon <= 180


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_TAGS = st.dictionaries(
    st.sampled_from(
        [
            "creation_time",
            "CREATION_TIME",
            "location",
            "location-eng",
            "com.apple.quicktime.location.ISO6709",
            "com.apple.quicktime.creationdate",
        ]
    ),
    _texts(TIMES + PLACES) | _JSON,
    max_size=4,
)


@fuzz_settings()
@given(
    st.dictionaries(
        st.sampled_from(["format", "streams", "version"]),
        _JSON
        | st.fixed_dictionaries({"tags": _TAGS})
        | st.lists(st.fixed_dictionaries({"tags": _TAGS}), max_size=3),
        max_size=3,
    )
)
def test_recorded_of(metadata: dict[str, object]) -> None:
    got = recorded_of(metadata)
    if got.time is not None:
        parse_time(got.time, "recorded")
    if got.location is not None:
        parse_location(got.location)


@cache
def _request_files() -> list[bytes]:
    bob = Signer.from_seed("bob", bytes(range(32)))
    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    out = []
    for extra in (
        {},
        {
            "area": "51.5074,-0.1278,200",
            "answer_by": "2026-03-09",
            "owner": "carol",
            "ref": "INC-7",
        },
    ):
        typed = build(
            Request,
            when,
            case="2026-0142",
            by="bob",
            purpose="burglary",
            start="2026-03-01T10:00:00Z",
            end="2026-03-01T11:00:00Z",
            **extra,
        )
        out.append(sign_entry(typed.entry, [bob]))
    return out


@fuzz_settings()
@given(st.deferred(lambda: fuzzkit.inputs(_request_files())))
def test_read_request(data: bytes) -> None:
    def parse() -> None:
        try:
            rf = read_request(data, "request.entry")
        except InputError as exc:
            assert exc.message.startswith("request.entry "), exc.message
            raise
        assert rf.request.start_time <= rf.request.end_time

    check(parse)


def test_read_request_seeds_parse() -> None:
    """The genuine files parse (so that the fuzzer mutates something real)."""
    for data in _request_files():
        assert read_request(data, "r").request.case == "2026-0142"
