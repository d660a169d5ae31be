"""One plain sentence per log entry: the only place an entry becomes words.

`custody history`, the court report, `custody verify-bundle` and `custody derive`
all list entries as sentences; they all call `describe()`, so an event reads the
same wherever it is shown and a new entry type is described once (docs/spec/entry.md
lists the types).

A sentence is written from the point of view of one item when `about` is given (the
BLAKE3 digest whose timeline is being shown): a derive entry then says whether the
item was made from another or another was made from it, and a handoff names only the
*other* items that moved with it.  `exhibits` maps BLAKE3 digests to exhibit numbers
so that items are named as a reader knows them.

The text is plain and unescaped: values come from the log and are user-controlled,
so a renderer that lays it out (HTML, PDF) escapes it.  Entry values never hold
control characters (custody.model.entry refuses them), so the CLI prints it as is.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping

from custody.errors import FormatError
from custody.model.entry import Entry
from custody.model.types import (
    Access,
    Analysis,
    Consent,
    Derive,
    Disposal,
    Handoff,
    Hold,
    Ingest,
    KeyEvent,
    Policy,
    Refusal,
    Reject,
    Request,
    Retention,
    Review,
    parse_typed,
)

__all__ = ["describe", "entry_ref", "keeping", "label", "signed_with_shared_key"]

_NO_EXHIBITS: Mapping[str, str] = {}


def label(blake3: str | None, exhibits: Mapping[str, str] | None = None) -> str:
    """How a sentence names an item: its exhibit number, else a shortened digest."""
    if blake3 is None:
        return "?"
    return (exhibits or _NO_EXHIBITS).get(blake3, f"item {blake3[:16]}…")


_NO_INDEXES: Mapping[str, int] = {}


def entry_ref(what: str, ehash: str | None, indexes: Mapping[str, int] | None = None) -> str:
    """How a sentence names another entry by its entry hash: ``request (entry 12)`` when
    `indexes` (entry hash -> log index) knows it, else ``request 1a2b3c4d5e6f…``."""
    if ehash is None:
        return f"{what} ?"
    index = (indexes or _NO_INDEXES).get(ehash)
    return f"{what} (entry {index})" if index is not None else f"{what} {ehash[:12]}…"


def describe(
    entry: Entry,
    *,
    about: str | None = None,
    exhibits: Mapping[str, str] | None = None,
    accepted: str | None = None,
    indexes: Mapping[str, int] | None = None,
) -> str:
    """One sentence saying what `entry` records, e.g. ``handed from bob to carol for
    forensic examination; authority Order 2026/88``.

    `about` is the BLAKE3 digest of the item whose timeline this is (None for a case's
    or a log's list); `exhibits` maps digests to exhibit numbers.  `accepted` is a
    handoff's claimed time when it is not its `time` line (the receiver countersigned
    later than the sender offered, `custody.model.times.claimed_time`): the sentence
    then says ``offered at <time line>, accepted at <accepted>``.  `indexes` maps entry
    hashes to log indexes, so that an entry naming another (a consent answering a
    request, a review of an emergency ingest, a hold's release) says ``request (entry
    12)`` rather than a shortened hash (`entry_ref`).  Never raises: an
    entry of a type this version does not know, or one whose fields do not parse,
    is described by its fields (`key=value ...`), so a listing never hides an entry.
    """
    try:
        typed = parse_typed(entry)
    except FormatError:
        return _fields(entry)
    known = exhibits or _NO_EXHIBITS
    refs = indexes or _NO_INDEXES
    if isinstance(typed, Ingest):
        return _ingest(typed, refs)
    if isinstance(typed, Derive):
        return _derive(typed, about, known)
    if isinstance(typed, Handoff):
        text = _handoff(typed, about, known)
        if accepted is not None and accepted != entry.time:
            text += f"; offered at {entry.time}, accepted at {accepted}"
        return text
    if isinstance(typed, Consent):
        return _consent(typed, known, refs)
    if isinstance(typed, Reject):
        return _reject(typed)
    if isinstance(typed, Access):
        return _access(typed)
    if isinstance(typed, KeyEvent):
        return _key(typed)
    return _oversight(typed, about, known, refs) or _fields(entry)


def _oversight(
    typed: object, about: str | None, exhibits: Mapping[str, str], refs: Mapping[str, int]
) -> str | None:
    """The sentences of the request, review, retention, hold, disposal, analysis and
    policy entries (docs/spec/entry.md), or None for another type."""
    if isinstance(typed, Request):
        return _request(typed)
    if isinstance(typed, Refusal):
        text = f"{typed.owner} declines {entry_ref('request', typed.request, refs)}"
        return text + (f": {typed.reason}" if typed.reason else " (no reason given)")
    if isinstance(typed, Review):
        return (
            f"{entry_ref('emergency disclosure', typed.ingest, refs)} of "
            f"{_this(typed.item, about, exhibits)} {typed.outcome} on review by {typed.by}: "
            f"{typed.note}"
        )
    if isinstance(typed, Retention):
        scope = _scope(typed.item, about, exhibits)
        return f"{scope} to be kept until {typed.until}, set by {typed.by}; basis: {typed.basis}"
    if isinstance(typed, Hold):
        scope = _scope(typed.item, about, exhibits)
        if typed.action == "release":
            held = entry_ref("legal hold", typed.hold, refs)
            return f"{held} on {scope} released by {typed.by}: {typed.reason}"
        return f"legal hold on {scope} placed by {typed.by}: {typed.reason}"
    if isinstance(typed, Disposal):
        what = _this(typed.item, about, exhibits)
        return f"{what} disposed of by {typed.by}: {typed.reason}"
    if isinstance(typed, Analysis):
        return _analysis(typed, about, exhibits)
    if isinstance(typed, Policy):
        return _policy(typed)
    return None


def _this(item: str, about: str | None, exhibits: Mapping[str, str]) -> str:
    return "this item" if about is not None and about == item else label(item, exhibits)


def _scope(item: str | None, about: str | None, exhibits: Mapping[str, str]) -> str:
    """What a retention or hold applies to: an item, or every item of the case."""
    if item is None:
        return "every item of the case"
    return _this(item, about, exhibits)


def _request(e: Request) -> str:
    asked = f"asks {e.owner}" if e.owner else "asks for footage"
    text = f"{e.by} {asked}" + (" for footage" if e.owner else "")
    text += f" from {e.start} to {e.end}"
    if e.area:
        area = e.area.split(",")
        text += f" within {area[2].strip()} m of {area[0].strip()},{area[1].strip()}"
    text += f" for {e.purpose}"
    if e.answer_by:
        text += f"; answer by {e.answer_by}"
    if e.ref:
        text += f"; reference {e.ref}"
    return text


def _analysis(e: Analysis, about: str | None, exhibits: Mapping[str, str]) -> str:
    text = (
        f"{e.kind} analysis of {_this(e.item, about, exhibits)} by {e.by} with {e.tool} "
        f"{e.tool_version} for {e.purpose}"
    )
    if e.warrant:
        text += f"; warrant {e.warrant}"
    if e.result:
        named = f" {e.result_name}" if e.result_name else ""
        text += f"; result{named} BLAKE3 {e.result}"
    return text


def _policy(e: Policy) -> str:
    parts = [
        "forbids " + ", ".join(e.forbid) if e.forbid else "forbids no kind of analysis",
    ]
    if e.warrant_required:
        parts.append("requires a warrant for " + ", ".join(e.warrant_required))
    parts.append(f"emergency disclosures to be reviewed within {e.review_hours} hours")
    text = "log policy: " + "; ".join(parts)
    return text + (f"; note: {e.note}" if e.note else "")


def _fields(entry: Entry) -> str:
    """The fallback: every field but the case and the item(s), as `key=value`."""
    return " ".join(f"{k}={v}" for k, v in entry.fields if k not in ("item", "case"))


def _ingest(e: Ingest, refs: Mapping[str, int]) -> str:
    text = f"{e.exhibit} ({e.name}) ingested by {e.by}"
    if e.source:
        text += f" from {e.source}"
    if e.legal_basis:
        text += f"; legal basis {e.legal_basis}"
    if e.ref:
        text += f" ({e.ref})" if e.legal_basis else f"; reference {e.ref}"
    if e.consent:
        text += f"; under {entry_ref('consent', e.consent, refs)}"
    if e.justification:
        text += f"; emergency disclosure, justified: {e.justification}"
    if e.recorded or e.location:
        text += "; recorded" + (f" at {e.recorded}" if e.recorded else "")
        text += f" at location {e.location}" if e.location else ""
    return text


def _derive(e: Derive, about: str | None, exhibits: Mapping[str, str]) -> str:
    # The ffmpeg command line is a parameter too, but far too long for a sentence;
    # `custody log entry N` and the report's derived-clips table show it.
    params = [p for p in e.params if not p.startswith("ffmpeg ")]
    how = e.op + (f" ({', '.join(params)})" if params else "")
    parent = label(e.parent, exhibits)
    if about is not None and about == e.parent and about != e.item:
        text = f"{e.exhibit} ({e.name}) made from this item by {e.by}: {how}"
    elif about is not None and about == e.item:
        text = f"made by {e.by} from {parent}: {how}"
    else:
        text = f"{e.exhibit} ({e.name}) made by {e.by} from {parent}: {how}"
    return text + f"; reason: {e.reason}"


def _handoff(e: Handoff, about: str | None, exhibits: Mapping[str, str]) -> str:
    text = f"handed from {e.sender} to {e.receiver} for {e.purpose}"
    if e.authority:
        text += f"; authority {e.authority}"
    if about is None:
        return text + f"; items {', '.join(label(i, exhibits) for i in e.items)}"
    others = [label(i, exhibits) for i in e.items if i != about]
    return text + (f"; together with {', '.join(others)}" if others else "")


def _consent(e: Consent, exhibits: Mapping[str, str], refs: Mapping[str, int]) -> str:
    if e.action == "revoke":
        return f"{e.owner} revokes {entry_ref('consent', e.consent, refs)}"
    scope = ", ".join(label(i, exhibits) for i in e.items) or "every item of the case"
    text = f"{e.owner} consents to use for {e.purpose} ({scope}; onward sharing {e.onward}"
    text += f"; until {e.until})" if e.until else ")"
    return text + (f", answering {entry_ref('request', e.request, refs)}" if e.request else "")


def _reject(e: Reject) -> str:
    return f"offer from {e.sender} refused by {e.by}: {e.reason}"


def _access(e: Access) -> str:
    text = f"{e.action} by {e.by} for {e.purpose}"
    return text + (f"; exported file BLAKE3 {e.out}" if e.out else "")


def _key(e: KeyEvent) -> str:
    if e.action == "register":
        who = e.role if not e.org else f"{e.role}, {e.org}"
        return f"key of {e.party} registered ({who})" + _kept(e)
    if e.action == "rotate":
        return f"key of {e.party} rotated" + _kept(e)
    return f"key of {e.party} revoked" + (f": {e.reason}" if e.reason else "")


def _kept(e: KeyEvent) -> str:
    # Entries made before custody recorded it keep their sentence; the caveats of the
    # entries that key signs say the keeping is not recorded.
    return f"; {keeping(e)}" if e.kept is not None else ""


def _others(n: int) -> str:
    return "another party's key" if n == 1 else f"{n} other parties' keys"


def keeping(key: KeyEvent, *, log: bool = True) -> str:
    """Where a (registered or rotated) key's private key was kept, as its entry records
    it: ``kept in a home shared with another party's key``, ``held by det-jones``,
    ``kept in a home holding no other party's key``, or ``where the key was kept is not
    recorded`` (an entry made before custody recorded it).  `log`: also name the log key
    the home held (`kept-log`)."""
    if key.kept is None:
        return "where the key was kept is not recorded"
    with_log = f" (with the log key of {key.kept_log})" if key.kept_log and log else ""
    if key.kept == "own":
        return f"kept in a home holding no other party's key{with_log}"
    text = f"held by {key.held_by}" if key.held_by else "kept"
    if key.held_by and key.others:
        text += f", in a home that also held {_others(key.others)}"
    elif not key.held_by:
        text += f" in a home shared with {_others(key.others)}"
    return text + with_log


def _what(typed: object, signer: str) -> str | None:
    """What `signer`'s signature on an entry is, in words, for the entries whose signer
    should hold the key alone (consents, acceptances, refusals), else None."""
    if isinstance(typed, Consent):
        return "consent" if typed.action == "grant" else "revocation of consent"
    if isinstance(typed, Handoff):
        return "acceptance" if signer == typed.receiver else None
    if isinstance(typed, Reject):
        return "refusal"
    if isinstance(typed, Refusal):
        return "refusal of a request"
    return None


def signed_with_shared_key(entry: Entry, signer: str, key: KeyEvent | None) -> str | None:
    """The caveat for one signature on `entry`, or None: a plain sentence when `signer`
    signed it with a key it did not hold alone, e.g. ``owner-garcia's consent was signed
    with a key held by det-jones``.

    `key` is the `key` entry (register or rotate) of the signer's key valid at the
    entry's index, or None if unknown.  The signatures that matter are the ones a party
    gives for itself: an owner's consent or its revocation, a receiver's acceptance of a
    handoff (its countersignature), a refusal of an offer or of a request.  One of those
    made with a key recorded as kept shared has a caveat; one made with a key whose
    keeping is not recorded has one saying so (not guessing).  Other signatures (an
    ingest, a sender's release, a key entry) have none.  Never raises.
    """
    try:
        typed = parse_typed(entry)
    except FormatError:
        return None
    what = _what(typed, signer)
    if what is None or key is None:
        return None
    if key.kept is None:
        return f"where the key that signed {signer}'s {what} was kept is not recorded"
    if key.kept != "shared":
        return None
    return f"{signer}'s {what} was signed with a key {keeping(key, log=False)}"
