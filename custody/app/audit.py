"""`custody audit`: an oversight body's questions answered from the log.

Who accessed what and why; uses outside a consent (another purpose, after its expiry
or revocation); emergency disclosures and their reviews (upheld, rejected, late,
overdue); items past retention; analyses by kind; handoffs out of the agency; clips
taken under a request's consent that cannot be placed in its window or area; disposals.
The findings are `custody.model.oversight.audit`'s, over the whole log, then filtered by
case, party and time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from custody.app.home import Custody
from custody.app.transparency import ledger_of
from custody.errors import CustodyError, NotFoundError, UsageError
from custody.model.entry import format_time, parse_time
from custody.model.oversight import SECTIONS, Finding, audit, select


@dataclass(frozen=True)
class Audit:
    """The findings of one audit, with what it was asked."""

    origin: str
    size: int  # entries read
    at: datetime  # when overdue reviews and retention were judged
    case: str | None
    party: str | None
    start: datetime | None
    end: datetime | None
    findings: tuple[Finding, ...]

    def section(self, key: str) -> list[Finding]:
        return [f for f in self.findings if f.section == key]

    def analyses_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(f.kind for f in self.section("analysis")).items()))

    def as_json(self) -> dict[str, Any]:
        return {
            "log": self.origin,
            "entries": self.size,
            "at": format_time(self.at),
            "filters": {
                "case": self.case,
                "party": self.party,
                "from": None if self.start is None else format_time(self.start),
                "to": None if self.end is None else format_time(self.end),
            },
            "sections": {
                key: {
                    "title": title,
                    "count": len(self.section(key)),
                    "findings": [f.as_json() for f in self.section(key)],
                }
                for key, title in SECTIONS
            },
            "analyses_by_kind": self.analyses_by_kind(),
        }

    def text(self) -> str:
        """The audit as plain text for a reader: a heading per section with its count,
        one line per finding naming its log entry."""
        scope = [
            f"case {self.case}" if self.case else "",
            f"party {self.party}" if self.party else "",
            f"from {format_time(self.start)}" if self.start else "",
            f"to {format_time(self.end)}" if self.end else "",
        ]
        shown = ", ".join(s for s in scope if s) or "the whole log"
        lines = [
            f"Audit of log {self.origin} ({self.size} entries) at {format_time(self.at)}: {shown}"
        ]
        for key, title in SECTIONS:
            found = self.section(key)
            extra = ""
            if key == "analysis" and found:
                extra = ": " + ", ".join(f"{k} {n}" for k, n in self.analyses_by_kind().items())
            lines.append("")
            lines.append(f"{title} ({len(found)}{extra})")
            if not found:
                lines.append("  none")
            for f in found:
                flag = f" [{f.flag}]" if f.flag and key not in ("access", "analysis") else ""
                lines.append(f"  entry {f.index}  {format_time(f.time)}  {f.case}  {f.text}{flag}")
        return "\n".join(lines) + "\n"


def parse_bound(text: str, option: str, *, end: bool = False) -> datetime:
    """A --from/--to value: a time `YYYY-MM-DDTHH:MM:SSZ`, or a date `YYYY-MM-DD` (its
    first moment for --from, its last second for --to); UsageError otherwise."""
    try:
        if len(text) == 10:
            day = parse_time(text + "T00:00:00Z", option)
            return day + timedelta(days=1, seconds=-1) if end else day
        return parse_time(text, option)
    except CustodyError:
        raise UsageError(
            f"{option} {text[:40]!r} is not a date like 2026-11-30 or a time like "
            "2026-11-30T18:00:00Z"
        ) from None


def run_audit(
    c: Custody,
    *,
    now: datetime,
    case: str | None = None,
    party: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Audit:
    """The audit of this home's log at `now`, filtered.

    Raises NotFoundError for a case or party the log does not know, UsageError when
    the time range is reversed.
    """
    if case is not None and c.store.case(case) is None:
        raise NotFoundError(
            f"no case {case!r} on this log", hint="list cases with 'custody case list'"
        )
    if party is not None and c.store.party(party) is None:
        raise NotFoundError(
            f"no party named '{party}' on this log", hint="list parties with 'custody key list'"
        )
    if start is not None and end is not None and end < start:
        raise UsageError(f"--to {format_time(end)} is before --from {format_time(start)}")
    size = c.log.size()
    findings = audit(ledger_of(c, size), now)
    chosen = select(findings, case=case, party=party, start=start, end=end)
    return Audit(c.origin, size, now, case, party, start, end, tuple(chosen))
