"""The append interval of an entry from timestamped checkpoints, and the verdict on its
claimed time (docs/spec/timestamp.md §5-6): table-driven, no TSA needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custody.bundle.timestamps import (
    VerifiedStamp,
    check_times,
    format_span,
    interval_for,
    timestamp_path,
    timestamp_size,
    wrap_token,
)

T0 = datetime(2026, 11, 3, 9, 0, 0, tzinfo=UTC)


def stamp(size: int, hours: float) -> VerifiedStamp:
    return VerifiedStamp(size, T0 + timedelta(hours=hours), "CN=TSA", timestamp_path(size))


STAMPS = [stamp(6, 0), stamp(10, 24), stamp(3, -24)]


@pytest.mark.parametrize(
    ("index", "after", "before"),
    [
        (0, None, 3),  # before the first timestamped checkpoint: no lower bound
        (2, None, 3),
        (3, 3, 6),  # checkpoint 3 does not contain entry 3; checkpoint 6 does
        (5, 3, 6),
        (6, 6, 10),
        (9, 6, 10),
        (10, 10, None),  # after the last one: no upper bound
        (99, 10, None),
    ],
)
def test_interval_for(index: int, after: int | None, before: int | None) -> None:
    iv = interval_for(index, STAMPS)
    assert (iv.after.size if iv.after else None) == after
    assert (iv.before.size if iv.before else None) == before


def test_no_stamps_no_bounds() -> None:
    iv = interval_for(4, [])
    assert iv.after is None and iv.before is None
    assert iv.sentence() == "no timestamp bounds it"


TOL = timedelta(minutes=10)


@pytest.mark.parametrize(
    ("index", "type_", "claimed_hours", "status"),
    [
        (7, "consent", 1, "within"),
        (7, "consent", -0.1, "within"),  # 6 min before the lower bound: within tolerance
        (7, "consent", -0.2, "backdated"),  # 12 min before it
        (7, "consent", 24.1, "within"),  # 6 min after the upper bound
        (7, "handoff", 25, "late"),
        (7, "key", -48, "key-made-earlier"),  # a key made before its import: reported
        (0, "consent", -1000, "within"),  # open lower bound
        (50, "access", 10_000, "within"),  # open upper bound
    ],
)
def test_check_times(index: int, type_: str, claimed_hours: float, status: str) -> None:
    claimed = T0 + timedelta(hours=claimed_hours)
    [found] = check_times({index: (type_, f"{type_} by alice", claimed)}, STAMPS, TOL)
    assert found.status == status
    assert found.failed == (status in ("backdated", "late"))
    assert found.to_json()["status"] == status


def test_a_backdated_entry_is_named_with_its_gap() -> None:
    claimed = datetime(2026, 11, 1, 10, 0, 0, tzinfo=UTC)
    [found] = check_times({7: ("consent", "consent by owner", claimed)}, STAMPS, TOL)
    assert found.sentence() == (
        "log entry 7 (consent by owner) claims 2026-11-01T10:00:00Z, but it was appended "
        "after 2026-11-03T09:00:00Z (timestamp over checkpoint 6): backdated by 1 day 23 h"
    )
    late = check_times({4: ("handoff", "handoff by bob", T0 + timedelta(hours=3))}, STAMPS, TOL)
    assert "already in the log at 2026-11-03T09:00:00Z (timestamp over checkpoint 6)" in (
        late[0].sentence()
    )
    assert "dated 3 h too late" in late[0].sentence()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5 s"),
        (600, "10 min"),
        (3600, "1 h"),
        (3 * 3600 + 300, "3 h 5 min"),
        (86400, "1 day"),
        (2 * 86400 + 3600, "2 days 1 h"),
    ],
)
def test_format_span(seconds: int, text: str) -> None:
    assert format_span(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("timestamps/6.tst", 6),
        ("timestamps/0.tst", 0),
        ("timestamps/06.tst", None),
        ("timestamps/6.der", None),
        ("timestamps/x/6.tst", None),
        ("consistency/6.json", None),
        ("timestamps/" + "9" * 21 + ".tst", None),
    ],
)
def test_timestamp_paths(name: str, size: int | None) -> None:
    assert timestamp_size(name) == size
    if size is not None:
        assert timestamp_path(size) == name


def test_wrap_token_encodes_der_lengths() -> None:
    assert wrap_token(b"\x30\x00") == bytes.fromhex("300730030201003000")
    long = b"\x04" + b"\x82\x01\x00" + b"a" * 256
    wrapped = wrap_token(long)
    assert wrapped[:4] == bytes.fromhex("30820109") and wrapped.endswith(long)
