"""The recorded time and place of a clip, from its metadata snapshot's tags
(custody.media.recorded), on real ffprobe output and on the tag variants devices write."""

from __future__ import annotations

from pathlib import Path

import clips
import pytest

from custody.media.digest import parse_snapshot, snapshot_bytes
from custody.media.recorded import Recorded, parse_creation_time, parse_iso6709, recorded_of
from custody.model.types import parse_location


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-03-01T10:15:00.000000Z", "2026-03-01T10:15:00Z"),  # ffmpeg's MP4 form
        ("2026-03-01T10:15:00Z", "2026-03-01T10:15:00Z"),
        ("2026-03-01 10:15:00", "2026-03-01T10:15:00Z"),  # no zone: UTC
        ("2026-03-01T10:15:59.999Z", "2026-03-01T10:15:59Z"),  # truncated, not rounded
        ("2026-03-01T11:15:00+01:00", "2026-03-01T10:15:00Z"),
        ("2026-03-01T11:15:00+0100", "2026-03-01T10:15:00Z"),  # Apple's creationdate
        ("2026-03-01T05:15:00-05", "2026-03-01T10:15:00Z"),
        ("2026-03-01T00:30:00+01:00", "2026-02-28T23:30:00Z"),  # crosses midnight
        (" 2026-03-01T10:15:00Z ", "2026-03-01T10:15:00Z"),
    ],
)
def test_creation_time_variants(text: str, want: str) -> None:
    assert parse_creation_time(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-13-01T10:15:00Z",  # month 13
        "2026-02-30T10:15:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T10:15:00+15:00",  # no such offset
        "2026-03-01T10:15Z",  # no seconds
        "1904-01-01T00:00:00.000000Z",  # MP4's zero time: not set
        "1970-01-01T00:00:00Z",  # a clock never set
        "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
        "2026-03-01T10:15:00Z" + "0" * 300,
    ],
)
def test_creation_time_malformed_is_none(text: str) -> None:
    assert parse_creation_time(text) is None


def test_creation_time_not_text_is_none() -> None:
    assert parse_creation_time(20260301) is None
    assert parse_creation_time(None) is None


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("+51.5074-000.1278/", "51.5074,-0.1278"),
        ("+51.5074-000.1278+011.000/", "51.5074,-0.1278"),  # with altitude
        ("-33.8688+151.2093/", "-33.8688,151.2093"),
        ("+40.7484-073.9857+001.000CRSWGS_84/", "40.7484,-73.9857"),
        ("+4042.90-07359.42/", "40.715,-73.990333"),  # degrees and minutes
        ("+404230-0735930/", "40.708333,-73.991667"),  # degrees, minutes, seconds
        ("+51.5074-000.1278", "51.5074,-0.1278"),  # no closing slash
        ("+00.0000+000.0000/", "0,0"),
    ],
)
def test_iso6709_variants(text: str, want: str) -> None:
    got = parse_iso6709(text)
    assert got == want
    lat, lon = parse_location(got)  # what an ingest entry's `location` must be
    assert (lat, lon) == tuple(float(x) for x in want.split(","))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "51.5074,-0.1278",  # not ISO 6709
        "+91.0000-000.1278/",  # latitude over 90
        "+51.5074-180.5000/",  # longitude over 180
        "+5160.00-00007.00/",  # 60 minutes
        "+1.5-000.1278/",  # one latitude digit
        "+51.5074/",
        "+51.5074-000.1278//",
        None,
        3.5,
    ],
)
def test_iso6709_malformed_is_none(text: object) -> None:
    assert parse_iso6709(text) is None


def test_recorded_of_real_clip(tmp_path: Path) -> None:
    clip = clips.make_clip(
        tmp_path / "door.mp4",
        creation_time="2026-03-01T10:15:00Z",
        location="+51.5074-000.1278+011.000/",
    )
    metadata = parse_snapshot(
        snapshot_bytes(clips.ffprobe_json(clip, "-show_format", "-show_streams"))
    )
    assert recorded_of(metadata) == Recorded("2026-03-01T10:15:00Z", "51.5074,-0.1278")


def test_recorded_of_plain_location_tag(tmp_path: Path) -> None:
    """`-metadata location=...` in an MP4 (the ©xyz box) is read as well."""
    clip = tmp_path / "plain.mp4"
    clips.ffmpeg(
        *("-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-t", "1", "-pix_fmt", "yuv420p"),
        *("-metadata", "creation_time=2026-03-01T10:15:00Z"),
        *("-metadata", "location=-33.8688+151.2093/"),
        clip,
    )
    metadata = parse_snapshot(
        snapshot_bytes(clips.ffprobe_json(clip, "-show_format", "-show_streams"))
    )
    assert recorded_of(metadata) == Recorded("2026-03-01T10:15:00Z", "-33.8688,151.2093")


def test_recorded_of_clip_without_tags(tmp_path: Path) -> None:
    clip = clips.make_clip(tmp_path / "bare.mp4", creation_time=None, location=None)
    metadata = parse_snapshot(
        snapshot_bytes(clips.ffprobe_json(clip, "-show_format", "-show_streams"))
    )
    assert recorded_of(metadata) == Recorded(None, None)


def test_recorded_of_order_and_fallbacks() -> None:
    # The format's creation_time first; a stream's when the format has none or a bad one.
    assert recorded_of(
        {
            "format": {"tags": {"creation_time": "garbage"}},
            "streams": [
                {"tags": {"creation_time": "1904-01-01T00:00:00Z"}},
                {"tags": {"CREATION_TIME": "2026-03-01T10:15:00Z"}},
            ],
        }
    ) == Recorded("2026-03-01T10:15:00Z", None)
    assert recorded_of(
        {
            "format": {
                "tags": {
                    "creation_time": "2026-03-01T10:15:00Z",
                    "com.apple.quicktime.location.ISO6709": "+51.5074-000.1278/",
                    "location": "+10.0000+010.0000/",
                }
            },
            "streams": [{"tags": {"creation_time": "2020-01-01T00:00:00Z"}}],
        }
    ) == Recorded("2026-03-01T10:15:00Z", "51.5074,-0.1278")
    # Apple's creationdate (local time with its offset) when there is no creation_time.
    assert recorded_of(
        {"format": {"tags": {"com.apple.quicktime.creationdate": "2026-03-01T11:15:00+0100"}}}
    ) == Recorded("2026-03-01T10:15:00Z", None)


@pytest.mark.parametrize(
    "metadata",
    [{}, {"format": None}, {"format": {"tags": []}}, {"streams": "x"}, {"streams": [1, None]}],
)
def test_recorded_of_odd_shapes(metadata: dict[str, object]) -> None:
    assert recorded_of(metadata) == Recorded(None, None)
