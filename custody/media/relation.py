"""How much of a file's content an ingested record shares, stream by stream (pure).

`custody.media.compare.classify` calls a file *content modified* against an ingested one
when any one stream has a run of distinctive packets in common.  That is the right test
for one record, but not for choosing which exhibit a file is a modified copy of: clips
of one camera, or test footage from one generator, can share an identical video stream
while everything else differs, and then every such exhibit "matches" an unrelated clip
equally well.  `relation` counts the streams a `ContentModified` verdict shows content
in common; `names_original` is the rule `custody verify` applies before it names an
exhibit as a file's original (docs/ingest.md, "Which exhibit a modified file is named
against").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from custody.media.compare import MIN_EVIDENCE, ContentModified, MediaRecord, StreamChange

# Span kinds whose ingested packets have no identical counterpart in the candidate.
_LOST = ("replaced", "missing")


@dataclass(frozen=True)
class Relation:
    """The streams (by index) of which the candidate keeps content, out of `streams`
    (the streams of either file)."""

    shared: tuple[int, ...]
    streams: int

    @property
    def strong(self) -> bool:
        """Content in common in most streams (more than half): a modified copy."""
        return 2 * len(self.shared) > self.streams

    def describe(self, kinds: Sequence[str]) -> str:
        """``stream 0 (video)`` / ``streams 0 (video) and 2 (audio)``, from `kinds`
        (each stream's codec type, by index)."""
        named = [
            f"{i} ({kinds[i]})" if i < len(kinds) and kinds[i] else str(i) for i in self.shared
        ]
        noun = "stream" if len(named) == 1 else "streams"
        text = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        return f"{noun} {text}"


def _keeps_content(change: StreamChange) -> bool:
    if change.status == "retimed":
        return True  # identical packets, other timestamps
    if change.status != "modified":
        return False  # missing, added, or a stream of another type
    lost = sum(s.old_end - s.old_first for s in change.spans if s.kind in _LOST)
    return change.old_packets - lost >= MIN_EVIDENCE


def relation(verdict: ContentModified, ingested: MediaRecord, candidate: MediaRecord) -> Relation:
    """Which streams of `ingested` the `candidate` keeps content of, by `verdict`
    (what `classify` found of the two): a stream it does not list is identical."""
    total = max(len(ingested.packets.streams), len(candidate.packets.streams))
    changes: dict[int, list[StreamChange]] = {}
    for change in verdict.streams:
        changes.setdefault(change.index, []).append(change)
    shared = tuple(
        index
        for index in range(total)
        if all(_keeps_content(change) for change in changes.get(index, ()))
    )
    return Relation(shared=shared, streams=total)


def stream_kinds(record: MediaRecord) -> list[str]:
    """Each stream's codec type (``video``, ``audio``), by index."""
    return [h.media_type for h in record.packets.streams]


def names_original(weak: Sequence[tuple[str, Relation]], file_name: str) -> int | None:
    """Of the exhibits a file shares content with in only a minority of streams (their
    recorded names and relations, none `strong`), the one position to name as its
    original, or None.

    Rule: only an exhibit recorded under the file's own name, and only when it is the
    one such exhibit; sharing a stream with an exhibit of another name is reported, not
    taken for descent.
    """
    same_name = [i for i, (name, _) in enumerate(weak) if name == file_name]
    return same_name[0] if len(same_name) == 1 else None
