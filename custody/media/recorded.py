"""When and where a clip says it was recorded, read from its metadata snapshot (pure).

A camera or phone usually writes the moment recording started and, sometimes, where
it was, into the container's tags; the metadata snapshot (`custody/snapshot/v1` from
ffprobe, `custody/snapshot/v2` in-process: the same `tags` objects either way;
`custody.media.digest.snapshot_bytes`) keeps them.  An `ingest` entry records them
as `recorded` (`YYYY-MM-DDTHH:MM:SSZ`) and `location` (`LAT,LON`) so that the custody
rules can hold a clip to the time window and area of the request its consent answers
(docs/spec/entry.md §ingest, docs/spec/request.md).

Read, in this order (tag names compared without regard to case):

* time: the format's `creation_time`, then `com.apple.quicktime.creationdate`, then
  the first stream's `creation_time` that parses; ISO 8601 with `T` or a space,
  optional fraction, and `Z`, a `+HH:MM`/`+HHMM`/`+HH` offset or no zone (taken as
  UTC, which is what MP4 and QuickTime store); converted to UTC and truncated to the
  second.  The containers' zero times, 1904-01-01T00:00:00 (MP4's epoch) and
  1970-01-01T00:00:00 (a camera whose clock was never set), mean "not known".
* place: the format's `com.apple.quicktime.location.ISO6709`, then `location`, then
  `location-eng` (the tag ffmpeg maps the MP4 `©xyz` box to), in ISO 6709 annex H
  form: `+DD.DDDD+DDD.DDDD` (degrees), `+DDMM.MM+DDDMM.MM` (degrees and minutes) or
  `+DDMMSS.S+DDDMMSS.S` (and seconds), optionally an altitude `+AAA.A`, a `CRS...`
  suffix and the closing `/`.  Output: decimal degrees, rounded to 6 places (about
  0.1 m), without trailing zeros.

Anything malformed or out of range is None, never an exception: the tags are
whatever the device (or whoever edited the file) wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

#: Tag values longer than this are not a time or a place.
_MAX_TAG = 200
_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,12}))?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)
_ZERO_TIMES = ("1904-01-01T00:00:00Z", "1970-01-01T00:00:00Z")
_ISO6709_RE = re.compile(
    r"([+-])(\d{2}|\d{4}|\d{6})(\.\d{1,12})?"
    r"([+-])(\d{3}|\d{5}|\d{7})(\.\d{1,12})?"
    r"(?:[+-]\d{1,9}(?:\.\d{1,12})?)?"
    r"(?:CRS[A-Za-z0-9_:.-]{0,64})?/?",
    re.ASCII,
)
TIME_TAGS = ("creation_time", "com.apple.quicktime.creationdate")
LOCATION_TAGS = ("com.apple.quicktime.location.iso6709", "location", "location-eng")


@dataclass(frozen=True)
class Recorded:
    """What a clip's metadata says of its recording: the `recorded` and `location`
    field values of its ingest entry, each None when the metadata does not say."""

    time: str | None = None  # YYYY-MM-DDTHH:MM:SSZ
    location: str | None = None  # LAT,LON in decimal degrees


def parse_creation_time(value: object) -> str | None:
    """An ISO 8601 creation time as `YYYY-MM-DDTHH:MM:SSZ` (UTC, to the second), or None."""
    if not isinstance(value, str) or len(value) > _MAX_TAG:
        return None
    m = _TIME_RE.fullmatch(value.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    zone = m.group(8)
    try:
        tz = UTC if zone in (None, "Z") else _offset(zone)
        if tz is None:
            return None
        when = datetime(year, month, day, hour, minute, second, tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    if len(text) != 20 or text in _ZERO_TIMES:
        return None
    return text


def _offset(zone: str) -> timezone | None:
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or "0")
    if hours > 14 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if zone[0] == "-" else delta)


def _angle(sign: str, whole: str, fraction: str | None, degree_digits: int) -> float | None:
    """Decimal degrees from ISO 6709 D[D]D, DDDMM or DDDMMSS digits and a fraction of the
    last unit; None if minutes or seconds are 60 or more."""
    frac = float("0" + fraction) if fraction else 0.0
    degrees = int(whole[:degree_digits])
    rest = whole[degree_digits:]
    if not rest:
        value = degrees + frac
    elif len(rest) == 2:
        minutes = int(rest) + frac
        if minutes >= 60:
            return None
        value = degrees + minutes / 60
    else:
        minutes, seconds = int(rest[:2]), int(rest[2:]) + frac
        if minutes >= 60 or seconds >= 60:
            return None
        value = degrees + minutes / 60 + seconds / 3600
    return -value if sign == "-" else value


def _decimal(x: float) -> str:
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def parse_iso6709(value: object) -> str | None:
    """An ISO 6709 point (annex H string) as `LAT,LON` in decimal degrees, or None."""
    if not isinstance(value, str) or len(value) > _MAX_TAG:
        return None
    m = _ISO6709_RE.fullmatch(value.strip())
    if m is None:
        return None
    lat = _angle(m.group(1), m.group(2), m.group(3), 2)
    lon = _angle(m.group(4), m.group(5), m.group(6), 3)
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None
    return f"{_decimal(lat)},{_decimal(lon)}"


def _tags(obj: object) -> dict[str, object]:
    """The `tags` object of a snapshot's format or stream, keys lower-cased (first wins)."""
    if not isinstance(obj, Mapping):
        return {}
    tags = obj.get("tags")
    if not isinstance(tags, Mapping):
        return {}
    out: dict[str, object] = {}
    for key, value in tags.items():
        if isinstance(key, str):
            out.setdefault(key.lower(), value)
    return out


def recorded_of(metadata: Mapping[str, Any]) -> Recorded:
    """When and where the clip of this metadata snapshot (the parsed `custody/snapshot/v1`
    or `v2` dict: `format`, `streams`) says it was recorded; see the module's docstring."""
    fmt = _tags(metadata.get("format"))
    streams = metadata.get("streams")
    stream_tags = [_tags(s) for s in streams] if isinstance(streams, list) else []
    time = None
    for candidate in [fmt.get(k) for k in TIME_TAGS] + [
        t.get("creation_time") for t in stream_tags
    ]:
        time = parse_creation_time(candidate)
        if time is not None:
            break
    location = None
    for key in LOCATION_TAGS:
        location = parse_iso6709(fmt.get(key))
        if location is not None:
            break
    return Recorded(time, location)
