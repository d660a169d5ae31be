"""Claimed times of log entries and the rule that keeps them in order (pure).

docs/spec/entry.md, rule 5 "claimed times in order".  An entry's claimed time is its
`time` line, except for a handoff that its receiver countersigned with a cosignature/v1
line: there the countersignature's timestamp, the moment the receiver took custody
(the `time` line stays the sender's, the moment of the offer).

On one log, an entry's claimed time may not be earlier than the previous entry's by
more than `TIME_TOLERANCE`.  The rule engine refuses an entry made in this home that
breaks it (a clock set back; `custody.model.rules.evaluate`); entries imported from
elsewhere keep their signer's time; verification reports each disorder
(`find_disorder`) and never fails for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from custody.errors import CustodyError
from custody.model.entry import Countersignature, Entry, SignedEntry, format_time, parse_time

__all__ = [
    "TIME_TOLERANCE",
    "Disorder",
    "OrderWatch",
    "Stamp",
    "claimed_time",
    "claimed_time_of",
    "countersigned_at",
    "disorder",
    "find_disorder",
    "offered_time",
    "span",
]

TIME_TOLERANCE = timedelta(minutes=10)
"""How much earlier than the previous entry's an entry's claimed time may be."""


def countersigned_at(signed: SignedEntry) -> Countersignature | None:
    """The receiver's cosignature/v1 line on a handoff, or None (not a handoff, an
    older handoff countersigned with Ed25519, or no `to` field)."""
    entry = signed.entry
    if entry.type != "handoff":
        return None
    receiver = entry.get("to")
    return None if receiver is None else signed.countersignature_by(receiver)


def claimed_time(signed: SignedEntry) -> datetime:
    """The entry's claimed time (aware, UTC).

    For a handoff countersigned with a cosignature/v1 line by its receiver, that
    line's timestamp (the moment the receiver countersigned); otherwise the entry's
    `time` line.  Verifies nothing: `custody.model.parties.check_entry` does.
    """
    cosig = countersigned_at(signed)
    if cosig is not None:
        return cosig.time
    return parse_time(signed.entry.time)


def claimed_time_of(data: bytes, entry: Entry) -> datetime:
    """`claimed_time` of entry bytes `data` already parsed as `entry` (only a handoff's
    bytes are parsed again, for its countersignature).  An entry whose bytes no
    longer parse has its `time` line's time."""
    if entry.type == "handoff":
        try:
            return claimed_time(SignedEntry.parse(data))
        except CustodyError:
            pass
    return parse_time(entry.time)


def offered_time(signed: SignedEntry) -> datetime:
    """The entry's `time` line: for a handoff, the moment the sender offered it."""
    return parse_time(signed.entry.time)


def span(delta: timedelta, *, days_in_words: bool = False) -> str:
    """A duration for a sentence: "45 s", "13 min", "2 h 5 min", "1 d 23 h" (with
    `days_in_words`: "1 day 23 h", "2 days")."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        h, m = divmod(seconds // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, rest = divmod(seconds, 86400)
    h = rest // 3600
    days = (f"{d} day" + ("s" if d > 1 else "")) if days_in_words else f"{d} d"
    return f"{days} {h} h" if h else days


@dataclass(frozen=True)
class Disorder:
    """Entry `index` claims a time more than the tolerance before entry `previous_index`."""

    index: int
    type: str
    claimed: datetime
    previous_index: int
    previous_type: str
    previous: datetime
    tolerance: timedelta = TIME_TOLERANCE

    @property
    def gap(self) -> timedelta:
        """How much earlier than the previous entry's this entry's claimed time is."""
        return self.previous - self.claimed

    def sentence(self) -> str:
        """e.g. "log entry 10 (handoff) claims 2026-11-23T13:45:00Z, 13 min before log
        entry 9 (access) — more than the 10 min tolerance"."""
        return (
            f"log entry {self.index} ({self.type}) claims {format_time(self.claimed)}, "
            f"{span(self.gap)} before log entry {self.previous_index} "
            f"({self.previous_type}) — more than the {span(self.tolerance)} tolerance"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "type": self.type,
            "claimed": format_time(self.claimed),
            "previous_index": self.previous_index,
            "previous_type": self.previous_type,
            "previous_claimed": format_time(self.previous),
            "seconds_before": int(self.gap.total_seconds()),
            "tolerance_seconds": int(self.tolerance.total_seconds()),
            "message": self.sentence(),
        }


@dataclass(frozen=True)
class Stamp:
    """An entry's place and claimed time: what the order rule compares with."""

    index: int
    type: str
    claimed: datetime

    @classmethod
    def of(cls, index: int, signed: SignedEntry) -> Stamp:
        return cls(index, signed.entry.type, claimed_time(signed))

    def after(
        self, previous: Stamp | None, tolerance: timedelta = TIME_TOLERANCE
    ) -> Disorder | None:
        """The Disorder if this entry claims a time more than `tolerance` before
        `previous` (None: no previous entry), else None."""
        if previous is None:
            return None
        return _compare(
            self.index,
            self.type,
            self.claimed,
            previous.index,
            previous.type,
            previous.claimed,
            tolerance,
        )


def disorder(
    index: int,
    signed: SignedEntry,
    previous_index: int,
    previous: SignedEntry,
    tolerance: timedelta = TIME_TOLERANCE,
) -> Disorder | None:
    """The Disorder if entry `index` claims a time more than `tolerance` before the
    previous entry's, else None."""
    return _compare(
        index,
        signed.entry.type,
        claimed_time(signed),
        previous_index,
        previous.entry.type,
        claimed_time(previous),
        tolerance,
    )


def _compare(
    index: int,
    type_: str,
    claimed: datetime,
    previous_index: int,
    previous_type: str,
    previous: datetime,
    tolerance: timedelta,
) -> Disorder | None:
    if previous - claimed <= tolerance:
        return None
    return Disorder(index, type_, claimed, previous_index, previous_type, previous, tolerance)


class OrderWatch:
    """Entries fed in log index order (`see`); `found` collects every Disorder."""

    def __init__(self, tolerance: timedelta = TIME_TOLERANCE) -> None:
        self.tolerance = tolerance
        self.previous: Stamp | None = None
        self.found: list[Disorder] = []

    def see(self, stamp: Stamp) -> Disorder | None:
        """Compare `stamp` with the entry seen before it, then remember it."""
        found = stamp.after(self.previous, self.tolerance)
        if found is not None:
            self.found.append(found)
        self.previous = stamp
        return found


def find_disorder(
    entries: Iterable[tuple[int, SignedEntry]], tolerance: timedelta = TIME_TOLERANCE
) -> Iterator[Disorder]:
    """Every entry (in the order given: log index order) whose claimed time is more
    than `tolerance` before that of the entry given just before it."""
    watch = OrderWatch(tolerance)
    for index, signed in entries:
        found = watch.see(Stamp.of(index, signed))
        if found is not None:
            yield found
