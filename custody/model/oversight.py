"""What an oversight body asks of a log: the findings of an audit and the counts of a
transparency report (docs/transparency.md, docs/spec/transparency.md).  Pure.

Both read a `Ledger`, one pass over a log's entries in log order (index, SignedEntry):
the parties' roles and organisations, the items and the entries that brought them in,
consents, requests and their answers, emergency disclosures and their reviews,
retention dates, disposals and the policies in force.  The entries are taken as the
log holds them (the log, or `log verify`, has checked them against the custody rules);
this module counts and lists, it does not judge an entry again.

* `audit(ledger, now)` -> `Finding`s in sections (`SECTIONS`), each naming its entry;
  `select` filters them by case, party and time.
* `count_period(ledger, start, end, as_of)` -> the counts of `COUNTS`, each the sorted
  list of log indices it counted; `report_text` writes the `custody/transparency/v1`
  note text and `parse_report` reads one back (untrusted input: FormatError naming the
  line).

No clock: `now` and `as_of` are given by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from custody.errors import CustodyError, FormatError
from custody.model.describe import describe
from custody.model.entry import SignedEntry, format_time, parse_time
from custody.model.rules import entry_hash
from custody.model.times import claimed_time
from custody.model.types import (
    ANALYSIS_KINDS,
    DEFAULT_REVIEW_HOURS,
    Access,
    Analysis,
    Consent,
    Derive,
    Disposal,
    Handoff,
    Ingest,
    KeyEvent,
    Policy,
    Refusal,
    Request,
    Retention,
    Review,
    Typed,
    parse_typed,
)

# -- the ledger: one pass over the log ------------------------------------------------------


@dataclass(frozen=True)
class PartyInfo:
    """A party as its `register` key entry declared it."""

    name: str
    role: str
    org: str  # "" when the key entry records none


@dataclass
class ItemInfo:
    """An item and the entry (ingest or derive) that brought it into its case."""

    case: str
    item: str
    exhibit: str
    name: str
    index: int
    time: datetime
    by: str
    legal_basis: str | None  # None for a derived item
    consent: str | None = None  # the ingest's `consent` field (entry hash)
    recorded: str | None = None
    location: str | None = None


@dataclass
class ConsentInfo:
    """A consent grant and its revocation, if any."""

    hash: str
    index: int
    time: datetime
    owner: str
    case: str
    items: frozenset[str]
    purpose: str
    until: date | None
    request: str | None
    revoked_at: int | None = None

    def covers(self, case: str, item: str) -> bool:
        return self.case == case and (not self.items or item in self.items)


@dataclass
class Answer:
    """An answer to a request: a consent grant naming it, or a refusal."""

    index: int
    time: datetime
    owner: str
    outcome: str  # "consent" | "refusal"


@dataclass
class RequestInfo:
    """A request for footage and its answers, in log order."""

    hash: str
    index: int
    time: datetime
    case: str
    by: str
    owner: str | None
    purpose: str
    area: str | None
    answer_by: date | None
    answers: list[Answer] = field(default_factory=list)

    @property
    def answer_deadline(self) -> datetime | None:
        """The first moment after the answer-by date (answers from then on are late)."""
        return None if self.answer_by is None else _day_start(self.answer_by + timedelta(days=1))


@dataclass
class ReviewInfo:
    index: int
    time: datetime
    by: str
    outcome: str
    note: str


@dataclass
class EmergencyInfo:
    """An emergency disclosure (an ingest with legal-basis emergency) and its review."""

    hash: str
    index: int
    time: datetime
    case: str
    item: str
    exhibit: str
    by: str
    justification: str
    review_hours: int
    policy_index: int | None  # the policy in force at the ingest, if any
    review: ReviewInfo | None = None

    @property
    def due(self) -> datetime:
        return self.time + timedelta(hours=self.review_hours)


@dataclass(frozen=True)
class Event:
    """One entry of the log, typed, with its claimed time."""

    index: int
    time: datetime
    typed: Typed


@dataclass
class Ledger:
    """What the audit and the transparency report read, from one pass over the log."""

    size: int = 0
    events: list[Event] = field(default_factory=list)
    parties: dict[str, PartyInfo] = field(default_factory=dict)
    items: dict[tuple[str, str], ItemInfo] = field(default_factory=dict)
    consents: dict[str, ConsentInfo] = field(default_factory=dict)
    requests: dict[str, RequestInfo] = field(default_factory=dict)
    emergencies: dict[str, EmergencyInfo] = field(default_factory=dict)
    #: (index, claimed time, entry), in log order
    retentions: list[tuple[int, datetime, Retention]] = field(default_factory=list)
    disposals: dict[tuple[str, str], Event] = field(default_factory=dict)
    policies: list[tuple[int, Policy]] = field(default_factory=list)
    _by_case: dict[str, list[tuple[int, datetime, Retention]]] | None = field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def of(cls, entries: Iterable[tuple[int, SignedEntry]]) -> Ledger:
        """The ledger of `entries`, which must be a log's entries from 0 in order.

        Raises FormatError naming the entry when one is out of order or its type or a
        field is unknown or malformed (a log that `custody log verify` accepts has none).
        """
        ledger = cls()
        for index, signed in entries:
            if index != ledger.size:
                raise FormatError(f"entry {index} comes where entry {ledger.size} should")
            try:
                typed = parse_typed(signed.entry)
                when = claimed_time(signed)
            except CustodyError as exc:
                raise FormatError(f"entry {index}: {exc.message}") from None
            ledger._add(index, signed, when, typed)
            ledger.size += 1
        return ledger

    def retentions_of(self, case: str) -> list[tuple[int, datetime, Retention]]:
        """The retention entries of `case`, in log order."""
        if self._by_case is None:
            self._by_case = {}
            for rec in self.retentions:
                self._by_case.setdefault(rec[2].case, []).append(rec)
        return self._by_case.get(case, [])

    def exhibit(self, case: str, item: str) -> str:
        info = self.items.get((case, item))
        return info.exhibit if info is not None else f"{case}/{item[:12]}"

    def exhibits(self) -> dict[str, str]:
        return {info.item: info.exhibit for info in self.items.values()}

    def policy_at(self, index: int) -> tuple[int, Policy] | None:
        """The policy in force for an entry at `index`: the newest policy before it."""
        found = None
        for p_index, policy in self.policies:
            if p_index >= index:
                break
            found = (p_index, policy)
        return found

    def _add(self, index: int, signed: SignedEntry, when: datetime, t: Typed) -> None:
        self.events.append(Event(index, when, t))
        if isinstance(t, KeyEvent):
            if t.action == "register" and t.party not in self.parties:
                self.parties[t.party] = PartyInfo(t.party, t.role or "", t.org or "")
        elif isinstance(t, Ingest):
            self._ingest(index, signed, when, t)
        elif isinstance(t, Derive):
            self.items.setdefault(
                (t.case, t.item),
                ItemInfo(t.case, t.item, t.exhibit, t.name, index, when, t.by, None),
            )
        elif isinstance(t, Consent):
            self._consent(index, signed, when, t)
        elif isinstance(t, Request):
            self.requests[entry_hash(signed.data)] = RequestInfo(
                entry_hash(signed.data),
                index,
                when,
                t.case,
                t.by,
                t.owner,
                t.purpose,
                t.area,
                t.answer_by_date,
            )
        elif isinstance(t, Refusal):
            req = self.requests.get(t.request)
            if req is not None:
                req.answers.append(Answer(index, when, t.owner, "refusal"))
        elif isinstance(t, Review):
            em = self.emergencies.get(t.ingest)
            if em is not None and em.review is None:
                em.review = ReviewInfo(index, when, t.by, t.outcome, t.note)
        elif isinstance(t, Retention):
            self.retentions.append((index, when, t))
            self._by_case = None
        elif isinstance(t, Disposal):
            self.disposals.setdefault((t.case, t.item), Event(index, when, t))
        elif isinstance(t, Policy):
            self.policies.append((index, t))

    def _ingest(self, index: int, signed: SignedEntry, when: datetime, t: Ingest) -> None:
        self.items.setdefault(
            (t.case, t.item),
            ItemInfo(
                t.case,
                t.item,
                t.exhibit,
                t.name,
                index,
                when,
                t.by,
                t.legal_basis,
                t.consent,
                t.recorded,
                t.location,
            ),
        )
        if t.legal_basis == "emergency":
            policy = self.policy_at(index)
            h = entry_hash(signed.data)
            self.emergencies[h] = EmergencyInfo(
                h,
                index,
                when,
                t.case,
                t.item,
                t.exhibit,
                t.by,
                t.justification or "",
                policy[1].review_hours if policy else DEFAULT_REVIEW_HOURS,
                policy[0] if policy else None,
            )

    def _consent(self, index: int, signed: SignedEntry, when: datetime, t: Consent) -> None:
        if t.action == "grant":
            h = entry_hash(signed.data)
            self.consents[h] = ConsentInfo(
                h,
                index,
                when,
                t.owner,
                t.case or "",
                frozenset(t.items),
                t.purpose or "",
                t.until_date,
                t.request,
            )
            req = None if t.request is None else self.requests.get(t.request)
            if req is not None:
                req.answers.append(Answer(index, when, t.owner, "consent"))
        elif t.consent is not None:
            grant = self.consents.get(t.consent)
            if grant is not None and grant.revoked_at is None:
                grant.revoked_at = index


def _day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


# -- the audit -------------------------------------------------------------------------------

#: The sections of an audit, in the order they are shown: (key, title).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("access", "Accesses: who opened what, and why"),
    ("consent", "Uses outside a consent: purpose, expiry, revocation"),
    ("emergency", "Emergency disclosures and their reviews"),
    ("retention", "Items past their retention date"),
    ("analysis", "Automated analyses, by kind"),
    ("handoff", "Handoffs out of the agency"),
    ("unplaced", "Clips taken under a request's consent without a recorded time or place"),
    ("disposal", "Disposals"),
)


@dataclass(frozen=True)
class Finding:
    """One line of an audit: an entry, and what the oversight body should know of it."""

    section: str  # a key of SECTIONS
    index: int  # the entry it is about
    time: datetime  # that entry's claimed time
    case: str
    parties: tuple[str, ...]  # the parties named by that entry
    text: str  # one sentence
    flag: str = ""  # a short label: "purpose differs", "overdue", "to a court", ...
    kind: str = ""  # analyses: the kind

    def as_json(self) -> dict[str, object]:
        return {
            "section": self.section,
            "entry": self.index,
            "time": format_time(self.time),
            "case": self.case,
            "parties": list(self.parties),
            "text": self.text,
            "flag": self.flag or None,
        }


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def audit(ledger: Ledger, now: datetime) -> list[Finding]:
    """Every finding of the audit at `now` (overdue reviews and retention dates are judged
    at `now`), section by section, each in log order."""
    out: list[Finding] = []
    exhibits = ledger.exhibits()
    for ev in ledger.events:
        t = ev.typed
        if isinstance(t, Access):
            out.append(
                Finding(
                    "access",
                    ev.index,
                    ev.time,
                    t.case,
                    (t.by,),
                    f"{ledger.exhibit(t.case, t.item)}: {describe(t.entry, exhibits=exhibits)}",
                    t.action,
                )
            )
        if isinstance(t, Access | Analysis):
            out.extend(_consent_findings(ledger, ev, t))
        if isinstance(t, Analysis):
            out.append(
                Finding(
                    "analysis",
                    ev.index,
                    ev.time,
                    t.case,
                    (t.by,),
                    f"{t.kind} of {ledger.exhibit(t.case, t.item)} by {t.by} with {t.tool} "
                    f"{t.tool_version} for {t.purpose!r}"
                    + (f", under warrant {t.warrant}" if t.warrant else ""),
                    t.kind,
                    t.kind,
                )
            )
        if isinstance(t, Handoff):
            out.extend(_handoff_finding(ledger, ev, t))
        if isinstance(t, Disposal):
            out.append(
                Finding(
                    "disposal",
                    ev.index,
                    ev.time,
                    t.case,
                    (t.by,),
                    f"{ledger.exhibit(t.case, t.item)} disposed of by {t.by}: {t.reason}",
                )
            )
        if isinstance(t, Ingest):
            out.extend(_unplaced_finding(ledger, ev, t))
    out.extend(_emergency_findings(ledger, now))
    out.extend(_retention_findings(ledger, now))
    order = {key: n for n, (key, _title) in enumerate(SECTIONS)}
    return sorted(out, key=lambda f: (order[f.section], f.index))


def _consent_findings(ledger: Ledger, ev: Event, t: Access | Analysis) -> list[Finding]:
    """A use (access, analysis) of an item taken in on consent, outside every consent
    that could cover it: revoked, expired, or for another purpose."""
    item = ledger.items.get((t.case, t.item))
    if item is None or item.legal_basis != "consent":
        return []
    if item.consent is not None and item.consent in ledger.consents:
        candidates = [ledger.consents[item.consent]]
    else:
        candidates = [
            c for c in ledger.consents.values() if c.index < ev.index and c.covers(t.case, t.item)
        ]
    what = f"{'access' if isinstance(t, Access) else t.kind} of {item.exhibit} by {t.by}"
    if not candidates:
        return [_use(ev, t, "no consent", f"{what}: no consent grant on this log covers it")]
    live = [c for c in candidates if c.revoked_at is None or c.revoked_at > ev.index]
    if not live:
        c = candidates[-1]
        return [
            _use(
                ev,
                t,
                "after revocation",
                f"{what} after consent entry {c.index} was revoked at entry {c.revoked_at}",
            )
        ]
    current = [c for c in live if c.until is None or ev.time < _day_start(c.until) + timedelta(1)]
    if not current:
        c = live[-1]
        return [
            _use(
                ev,
                t,
                "after expiry",
                f"{what} on {ev.time.date()}, after consent entry {c.index} expired "
                f"(until {c.until})",
            )
        ]
    if any(_norm(c.purpose) == _norm(t.purpose) for c in current):
        return []
    c = current[-1]
    return [
        _use(
            ev,
            t,
            "purpose differs",
            f"{what} for {t.purpose!r}; consent entry {c.index} was given for "
            f"{c.purpose!r} (for a person to judge)",
        )
    ]


def _use(ev: Event, t: Access | Analysis, flag: str, text: str) -> Finding:
    return Finding("consent", ev.index, ev.time, t.case, (t.by,), text, flag)


def handoff_class(ledger: Ledger, sender: str, receiver: str) -> str:
    """Where a handoff goes: "court" (the receiver's role is court), "within" (both
    parties record the same organisation and the receiver is not a lab) or "elsewhere"
    (docs/spec/transparency.md §3)."""
    to = ledger.parties.get(receiver)
    frm = ledger.parties.get(sender)
    if to is not None and to.role == "court":
        return "court"
    if to is not None and frm is not None and to.role != "lab" and to.org and to.org == frm.org:
        return "within"
    return "elsewhere"


def _handoff_finding(ledger: Ledger, ev: Event, t: Handoff) -> list[Finding]:
    where = handoff_class(ledger, t.sender, t.receiver)
    if where == "within":
        return []
    to = ledger.parties.get(t.receiver)
    frm = ledger.parties.get(t.sender)
    to_desc = (
        f"{t.receiver} ({to.role}{', ' + to.org if to and to.org else ''})" if to else (t.receiver)
    )
    frm_org = frm.org if frm and frm.org else "no organisation recorded"
    items = ", ".join(ledger.exhibit(t.case, i) for i in t.items)
    return [
        Finding(
            "handoff",
            ev.index,
            ev.time,
            t.case,
            (t.sender, t.receiver),
            f"{items} handed from {t.sender} ({frm_org}) to {to_desc} for {t.purpose!r}",
            "to a court" if where == "court" else "out of the agency",
        )
    ]


def _unplaced_finding(ledger: Ledger, ev: Event, t: Ingest) -> list[Finding]:
    grant = None if t.consent is None else ledger.consents.get(t.consent)
    if grant is None or grant.request is None:
        return []
    req = ledger.requests.get(grant.request)
    if req is None:
        return []
    missing = []
    if t.recorded is None:
        missing.append("recorded time")
    if req.area is not None and t.location is None:
        missing.append("recorded location")
    if not missing:
        return []
    return [
        Finding(
            "unplaced",
            ev.index,
            ev.time,
            t.case,
            (t.by,),
            f"{t.exhibit} ({t.name}) taken under consent entry {grant.index} answering "
            f"request entry {req.index} has no {' and no '.join(missing)}: whether it lies "
            "in the request's window and area cannot be checked",
            "unplaced",
        )
    ]


def _emergency_findings(ledger: Ledger, now: datetime) -> list[Finding]:
    out = []
    for em in ledger.emergencies.values():
        policy = f"policy entry {em.policy_index}" if em.policy_index is not None else "default"
        head = (
            f"{em.exhibit} disclosed in an emergency by {em.by}: {em.justification!r}; "
            f"review due {format_time(em.due)} ({em.review_hours} h, {policy})"
        )
        parties: tuple[str, ...] = (em.by,)
        r = em.review
        if r is not None:
            late = r.time > em.due
            flag = f"{r.outcome}{', late' if late else ''}"
            text = f"{head}; {r.outcome} by {r.by} at entry {r.index} ({format_time(r.time)})"
            if late:
                text += ", after the due time"
            parties = (em.by, r.by)
        elif now > em.due:
            flag, text = "overdue", f"{head}; NOT REVIEWED: overdue"
        else:
            flag, text = "pending", f"{head}; not reviewed yet"
        out.append(Finding("emergency", em.index, em.time, em.case, parties, text, flag))
    return out


def newest_retention(
    retentions: Iterable[tuple[int, Retention]], item: str
) -> tuple[int, Retention] | None:
    """The retention that applies to `item` among one case's retention entries (index,
    entry) in log order: the newest naming the item, else the newest naming the case
    without an item (`custody retention due` and the counts read it the same way)."""
    own = whole = None
    for index, r in retentions:
        if r.item == item:
            own = (index, r)
        elif r.item is None:
            whole = (index, r)
    return own or whole


def retention_in_force(
    ledger: Ledger, case: str, item: str, before: datetime | None = None
) -> tuple[int, Retention] | None:
    """The retention that applies to an item (`newest_retention`), among the entries
    claimed before `before`, if given."""
    return newest_retention(
        (
            (index, r)
            for index, when, r in ledger.retentions_of(case)
            if before is None or when < before
        ),
        item,
    )


def past_retention(ledger: Ledger, cut: datetime) -> list[tuple[ItemInfo, int, Retention]]:
    """Items past their retention date at `cut` and not disposed of before it: (item,
    index of the retention entry in force, that entry), in the order they came in."""
    out = []
    for info in sorted(ledger.items.values(), key=lambda i: i.index):
        if info.time >= cut:
            continue
        disposal = ledger.disposals.get((info.case, info.item))
        if disposal is not None and disposal.time < cut:
            continue
        found = retention_in_force(ledger, info.case, info.item, cut)
        if found is None:
            continue
        index, r = found
        if _day_start(r.until_date) + timedelta(days=1) <= cut:
            out.append((info, index, r))
    return out


def _retention_findings(ledger: Ledger, now: datetime) -> list[Finding]:
    out = []
    for info, index, r in past_retention(ledger, now):
        days = (now.date() - r.until_date).days
        scope = "its own" if r.item is not None else "the case's"
        out.append(
            Finding(
                "retention",
                info.index,
                info.time,
                info.case,
                (info.by, r.by),
                f"{info.exhibit} ({info.name}) was to be kept until {r.until} ({scope} "
                f"retention, entry {index}, by {r.by}: {r.basis}); {days} day"
                f"{'' if days == 1 else 's'} past it and not disposed of",
                "past retention",
            )
        )
    return out


def select(
    findings: Iterable[Finding],
    *,
    case: str | None = None,
    party: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Finding]:
    """The findings of `case`, naming `party`, whose entry's claimed time is in
    [start, end] (each bound optional)."""
    return [
        f
        for f in findings
        if (case is None or f.case == case)
        and (party is None or party in f.parties)
        and (start is None or f.time >= start)
        and (end is None or f.time <= end)
    ]


# -- the transparency counts ----------------------------------------------------------------

VERSION = "custody/transparency/v1"

#: Every count of a transparency report, in the order the note lists them
#: (docs/spec/transparency.md §Counts defines each).
COUNTS: tuple[str, ...] = (
    "requests.sent",
    "requests.consented",
    "requests.declined",
    "requests.unanswered",
    "requests.answered-late",
    "received.consent",
    "received.warrant",
    "received.emergency",
    "received.other",
    "emergency.upheld",
    "emergency.rejected",
    "emergency.reviewed-late",
    "emergency.overdue",
    "access.view",
    "access.export",
    "handoff.within",
    "handoff.court",
    "handoff.elsewhere",
    *(f"analysis.{kind}" for kind in ANALYSIS_KINDS),
    "disposals",
    "retention.past",
)

Counts = dict[str, list[int]]

#: What each count is, in a few words (the report's tables; docs/transparency.md says more).
LABELS: dict[str, str] = {
    "requests.sent": "Requests for footage sent",
    "requests.consented": "Owners who consented to a request",
    "requests.declined": "Owners who declined a request",
    "requests.unanswered": "Requests not answered by their answer-by date",
    "requests.answered-late": "Answers given after the answer-by date",
    "received.consent": "Items received on consent",
    "received.warrant": "Items received under a warrant",
    "received.emergency": "Items received as emergency disclosures",
    "received.other": "Items received on another or no stated basis",
    "emergency.upheld": "Emergency disclosures upheld on review",
    "emergency.rejected": "Emergency disclosures rejected on review",
    "emergency.reviewed-late": "Emergency reviews made after their due time",
    "emergency.overdue": "Emergency disclosures not reviewed by their due time",
    "access.view": "Footage viewed",
    "access.export": "Footage exported",
    "handoff.within": "Handoffs within one organisation",
    "handoff.court": "Handoffs to a court",
    "handoff.elsewhere": "Handoffs to anyone else",
    **{f"analysis.{k}": f"Analyses: {k.replace('-', ' ')}" for k in ANALYSIS_KINDS},
    "disposals": "Items disposed of",
    "retention.past": "Items past their retention date at the end of the period",
}


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[first moment of `start`, first moment after `end`) in UTC."""
    return _day_start(start), _day_start(end) + timedelta(days=1)


def count_period(ledger: Ledger, start: date, end: date, as_of: datetime) -> Counts:
    """The counts of `COUNTS` for the days [start, end], judged at `as_of` (what is overdue,
    unanswered or past retention is judged at the earlier of `as_of` and the end of the
    period).  Each count is the ascending list of the log indices it counted."""
    lo, hi = period_bounds(start, end)
    placed = _placed(ledger, lo, hi, min(hi, as_of))
    return {name: sorted(i for i, _t in placed[name]) for name in COUNTS}


#: (index, the moment that places it in a period) of each entry a count counted
Placed = dict[str, list[tuple[int, datetime]]]


def _placed(ledger: Ledger, lo: datetime, hi: datetime, cut: datetime) -> Placed:
    """What each count counts in [lo, hi) with the cut `cut`, and when each counted thing
    happened (an entry's claimed time; an unanswered request's last day; an overdue
    disclosure's due time; for retention.past, the cut)."""
    counts: Placed = {name: [] for name in COUNTS}

    def within(t: datetime) -> bool:
        return lo <= t < hi

    for ev in ledger.events:
        if within(ev.time):
            name = _event_count(ledger, ev)
            if name is not None:
                counts[name].append((ev.index, ev.time))
    for req in ledger.requests.values():
        deadline = req.answer_deadline
        for ans in req.answers:
            if not within(ans.time):
                continue
            answered = "requests.consented" if ans.outcome == "consent" else "requests.declined"
            counts[answered].append((ans.index, ans.time))
            if deadline is not None and ans.time >= deadline:
                counts["requests.answered-late"].append((ans.index, ans.time))
        if deadline is None:
            continue
        last_day = deadline - timedelta(seconds=1)
        if within(last_day) and deadline <= cut and not any(a.time < deadline for a in req.answers):
            counts["requests.unanswered"].append((req.index, last_day))
    for em in ledger.emergencies.values():
        r = em.review
        if r is not None and within(r.time):
            counts[f"emergency.{r.outcome}"].append((r.index, r.time))
            if r.time > em.due:
                counts["emergency.reviewed-late"].append((r.index, r.time))
        if within(em.due) and em.due < cut and (r is None or r.time > em.due):
            counts["emergency.overdue"].append((em.index, em.due))
    counts["retention.past"] = [(info.index, cut) for info, _i, _r in past_retention(ledger, cut)]
    return counts


def _event_count(ledger: Ledger, ev: Event) -> str | None:
    """The count an entry itself adds to, in the period of its claimed time."""
    t = ev.typed
    if isinstance(t, Request):
        return "requests.sent"
    if isinstance(t, Ingest):
        basis = t.legal_basis
        return f"received.{basis if basis in ('consent', 'warrant', 'emergency') else 'other'}"
    if isinstance(t, Access):
        return f"access.{t.action}"
    if isinstance(t, Handoff):
        return f"handoff.{handoff_class(ledger, t.sender, t.receiver)}"
    if isinstance(t, Analysis):
        return f"analysis.{t.kind}"
    if isinstance(t, Disposal):
        return "disposals"
    return None


def months(start: date, end: date) -> list[tuple[str, date, date]]:
    """The calendar months the days [start, end] touch: (YYYY-MM, first day, last day),
    each clipped to the period."""
    out = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        first = date(y, m, 1)
        nxt = date(y + (m == 12), m % 12 + 1, 1)
        out.append((f"{y:04d}-{m:02d}", max(first, start), min(nxt - timedelta(days=1), end)))
        y, m = nxt.year, nxt.month
    return out


#: The longest period a report may cover, in days (a bound on its size and work).
MAX_PERIOD_DAYS = 3700


@dataclass(frozen=True)
class Report:
    """The content of a `custody/transparency/v1` note (docs/spec/transparency.md)."""

    origin: str
    size: int
    root: bytes
    start: date
    end: date
    as_of: datetime
    counts: Mapping[str, Sequence[int]]
    monthly: Mapping[str, Mapping[str, int]]  # YYYY-MM -> count name -> number


def compute(
    ledger: Ledger, origin: str, root: bytes, start: date, end: date, as_of: datetime
) -> Report:
    """The report of the period over the whole ledger (its size is the checkpoint's).

    One pass for the period: a month's number of a count is what the count would be over
    the month's part of the period (docs/spec/transparency.md §1.7), which for every count
    but retention.past is the number of the period's entries placed in that month; the
    items past retention are judged at each month's own end.
    """
    check_period(start, end)
    lo, hi = period_bounds(start, end)
    placed = _placed(ledger, lo, hi, min(hi, as_of))
    monthly: dict[str, dict[str, int]] = {}
    for label, _first, last in months(start, end):
        monthly[label] = {name: 0 for name in COUNTS}
        month_cut = min(period_bounds(last, last)[1], as_of)
        monthly[label]["retention.past"] = len(past_retention(ledger, month_cut))
    for name in COUNTS:
        if name == "retention.past":
            continue
        for _i, t in placed[name]:
            monthly[f"{t.year:04d}-{t.month:02d}"][name] += 1
    counts = {name: sorted(i for i, _t in placed[name]) for name in COUNTS}
    return Report(origin, ledger.size, root, start, end, as_of, counts, monthly)


def check_period(start: date, end: date) -> None:
    if end < start:
        raise FormatError(f"the period ends ({end}) before it starts ({start})")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise FormatError(f"the period {start} to {end} is longer than {MAX_PERIOD_DAYS} days")


def encode_indices(indices: Sequence[int]) -> str:
    """Ascending indices as `a,b,c-d` (a run of two or more consecutive ones as `c-d`),
    or `-` when there are none."""
    if not indices:
        return "-"
    parts: list[str] = []
    run_start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(run_start) if run_start == prev else f"{run_start}-{prev}")
        if i is not None:
            run_start = prev = i
    return ",".join(parts)


_NUM = r"(?:0|[1-9][0-9]{0,18})"
_INDICES = re.compile(rf"-|{_NUM}(?:-{_NUM})?(?:,{_NUM}(?:-{_NUM})?)*")


def decode_indices(text: str, size: int, what: str) -> list[int]:
    """The inverse of `encode_indices`, refusing anything not in its canonical form or
    naming an index at or beyond `size`; FormatError naming `what`."""
    if not _INDICES.fullmatch(text):
        raise FormatError(f"{what}: {text[:40]!r} is not a list of log indices")
    if text == "-":
        return []
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        lo = int(a)
        hi = int(b) if b else lo
        if (b and hi <= lo) or (out and lo <= out[-1] + 1):
            raise FormatError(f"{what}: {text[:40]!r} is not in ascending, merged form")
        if hi >= size:
            raise FormatError(f"{what}: index {hi} is not in a log of {size} entries")
        out.extend(range(lo, hi + 1))
    return out


def report_text(r: Report) -> str:
    """The note text of a report (docs/spec/transparency.md §Text)."""
    import base64

    lines = [
        VERSION,
        f"log {r.origin}",
        f"checkpoint {r.size} {base64.b64encode(r.root).decode()}",
        f"period {r.start.isoformat()} {r.end.isoformat()}",
        f"as-of {format_time(r.as_of)}",
    ]
    for name in COUNTS:
        indices = r.counts[name]
        lines.append(f"count {name} {len(indices)} {encode_indices(indices)}")
    for label, row in r.monthly.items():
        for name in COUNTS:
            lines.append(f"month {label} {name} {row[name]}")
    return "\n".join(lines) + "\n"


#: The most lines a report's text may have: the header, the counts, and the months.
MAX_LINES = 5 + len(COUNTS) * (1 + MAX_PERIOD_DAYS // 28 + 2)


def parse_report(text: str) -> Report:
    """A report from its note text, exactly as `report_text` writes it.

    Raises FormatError naming the line that is wrong (untrusted input; fuzzed).
    """
    import base64
    import binascii

    if not text.endswith("\n"):
        raise FormatError("transparency report: the text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_LINES:
        raise FormatError(f"transparency report: more than {MAX_LINES} lines")
    if lines[0] != VERSION:
        raise FormatError(
            f"transparency report: line 1 is {lines[0][:60]!r}, not {VERSION!r}",
            hint="is it a custody transparency report, from this version of custody?",
        )
    if len(lines) < 5 + len(COUNTS):
        raise FormatError(f"transparency report: only {len(lines)} lines")

    def field(n: int, key: str, parts: int) -> list[str]:
        words = lines[n].split(" ")
        if words[0] != key or len(words) != parts + 1 or any(not w for w in words):
            raise FormatError(
                f"transparency report line {n + 1}: expected '{key}' and {parts} value"
                f"{'s' if parts > 1 else ''}, got {lines[n][:60]!r}"
            )
        return words[1:]

    (origin,) = field(1, "log", 1)
    size_text, root_text = field(2, "checkpoint", 2)
    if not re.fullmatch(_NUM, size_text):
        raise FormatError(f"transparency report line 3: size {size_text[:30]!r} is not a number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != 32 or base64.b64encode(root).decode() != root_text:
        raise FormatError("transparency report line 3: the root hash is not 32 bytes of base64")
    start_text, end_text = field(3, "period", 2)
    start, end = _date(start_text, 4), _date(end_text, 4)
    try:
        check_period(start, end)
    except FormatError as exc:
        raise FormatError(f"transparency report line 4: {exc.message}") from None
    (as_of_text,) = field(4, "as-of", 1)
    try:
        as_of = parse_time(as_of_text, "as-of")
    except CustodyError:
        raise FormatError(
            f"transparency report line 5: {as_of_text[:40]!r} is not a time like "
            "2026-12-31T23:59:59Z"
        ) from None
    size = int(size_text)
    counts: dict[str, list[int]] = {}
    for n, name in enumerate(COUNTS, start=5):
        got_name, number, indices = field(n, "count", 3)
        if got_name != name:
            raise FormatError(
                f"transparency report line {n + 1}: count {got_name[:40]!r} where "
                f"{name!r} should be"
            )
        counts[name] = decode_indices(indices, size, f"transparency report count {name}")
        if number != str(len(counts[name])):
            raise FormatError(
                f"transparency report count {name}: says {number[:20]!r} but lists "
                f"{len(counts[name])} entries"
            )
    monthly: dict[str, dict[str, int]] = {}
    n = 5 + len(COUNTS)
    for label, _lo, _hi in months(start, end):
        row: dict[str, int] = {}
        for name in COUNTS:
            if n >= len(lines):
                raise FormatError(f"transparency report: month {label} {name} is missing")
            got_label, got_name, number = field(n, "month", 3)
            if (got_label, got_name) != (label, name):
                raise FormatError(
                    f"transparency report line {n + 1}: month {got_label[:10]!r} "
                    f"{got_name[:40]!r} where {label} {name} should be"
                )
            if not re.fullmatch(_NUM, number):
                raise FormatError(
                    f"transparency report month {label} {name}: {number[:20]!r} is not a number"
                )
            row[name] = int(number)
            n += 1
        monthly[label] = row
    if n != len(lines):
        raise FormatError(f"transparency report line {n + 1}: unexpected {lines[n][:60]!r}")
    return Report(origin, size, root, start, end, as_of, counts, monthly)


def _date(text: str, line: int) -> date:
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise FormatError(f"transparency report line {line}: {text[:40]!r} is not a date")


def differences(claimed: Report, recomputed: Report) -> list[str]:
    """What differs between a report and the one recomputed from the log: one line each,
    naming the count (empty when they agree)."""
    out = []
    for name in COUNTS:
        a, b = list(claimed.counts[name]), list(recomputed.counts[name])
        if a != b:
            extra = sorted(set(a) - set(b))
            missing = sorted(set(b) - set(a))
            detail = []
            if extra:
                detail.append(f"lists {encode_indices(extra)} which the log does not count")
            if missing:
                detail.append(f"leaves out {encode_indices(missing)}")
            out.append(
                f"count {name} is {len(a)} in the report but {len(b)} recomputed from the log"
                + (f" ({'; '.join(detail)})" if detail else "")
            )
    for label, row in recomputed.monthly.items():
        for name in COUNTS:
            got = claimed.monthly.get(label, {}).get(name)
            if got != row[name]:
                out.append(
                    f"month {label} count {name} is {got} in the report but {row[name]} "
                    "recomputed from the log"
                )
    return out
