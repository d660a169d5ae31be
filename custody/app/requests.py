"""Requests for footage and the owner's answer: the library behind `custody request
new|answer|list` (docs/spec/request.md).

* `new_request` (the agency's home): appends a signed `request` entry (case, asking
  party, purpose, time window, area, answer-by date) and writes the request file, the
  entry's exact bytes, for the owner.
* `read_request` parses a request file (untrusted input: every problem is one
  InputError naming the file); `answer_request` (the owner's home) signs the answer
  with the owner's key, a consent grant naming the request (`request HASH`, case and
  purpose from the request) or a `refusal`, and writes the answer file.  It appends
  nothing to the owner's own log, where the request is not: the agency appends the
  answer with `custody log import ANSWER`, and the rules check it there.
* `list_requests` reads every request on the log with its answers and a status:
  consented, declined, unanswered (the answer-by date passed with no answer) or
  awaiting.

A request is a durable step followed by a file: the entry is committed
(`request.entry-committed`), then the file written.  Running the same command again
after a crash in between finds the identical request on the log (same asking party,
case, owner, purpose, window, area, answer-by date and reference), appends nothing,
and writes its file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from custody.app.evidence import display, get_case
from custody.app.home import Custody
from custody.errors import CustodyError, FormatError, InputError, UsageError, VerificationError
from custody.infra.crash import crash_point
from custody.infra.files import write_new
from custody.infra.indexer import append_indexed_one
from custody.infra.store import Store
from custody.model.entry import SignedEntry, format_time, sign_entry
from custody.model.rules import entry_hash
from custody.model.types import ONWARD, Consent, Refusal, Request, Typed, build, parse_typed
from custody.tlog.note import VerifierKey, open_note

PassphraseFn = Callable[[str], str]

#: The most a request file may weigh: one signed entry.
MAX_REQUEST_FILE = 64 * 1024

__all__ = [
    "Answer",
    "NewRequest",
    "RequestFile",
    "RequestStatus",
    "answer_request",
    "list_requests",
    "new_request",
    "read_request",
    "window_time",
]


# -- times -----------------------------------------------------------------------------------

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(Z|[+-]\d{2}:\d{2})", re.ASCII)


def window_time(text: str, option: str, *, end: bool) -> str:
    """A window boundary as entries write it (`YYYY-MM-DDTHH:MM:SSZ`).

    Accepts `YYYY-MM-DDTHH:MM:SSZ`, the same with a `+HH:MM`/`-HH:MM` offset (converted
    to UTC), or a date `YYYY-MM-DD`: the whole day in UTC, from 00:00:00 (`end` False)
    or to 23:59:59 (`end` True).  UsageError naming `option` otherwise.
    """
    value = text.strip()
    try:
        if _DATE_RE.fullmatch(value):
            day = date.fromisoformat(value)
            when = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if end:
                when += timedelta(hours=23, minutes=59, seconds=59)
            return format_time(when)
        m = _TIME_RE.fullmatch(value)
        if m is not None:
            zone = "+00:00" if m.group(5) == "Z" else m.group(5)
            parsed = datetime.fromisoformat(
                f"{m.group(1)}T{m.group(2)}:{m.group(3)}:{m.group(4)}{zone}"
            )
            return format_time(parsed)
    except (ValueError, OverflowError):
        pass
    raise UsageError(
        f"{option} {text!r} is not a time like 2026-03-01T18:00:00Z (or +01:00) nor a date "
        "like 2026-03-01",
    )


def _option(build_it: Callable[[], Any], options: dict[str, str]) -> Any:
    """`build(...)`, its FormatError turned into a UsageError naming the option."""
    try:
        return build_it()
    except FormatError as exc:
        message = exc.message
        for key, option in options.items():
            # "request entry field 'start'", "key entry field 'owner'" (a name check), ...
            message = re.sub(rf"\b\w+ entry field '{re.escape(key)}'", option, message)
            message = message.replace(f"field '{key}'", option)
        raise UsageError(message, hint=exc.hint) from None


def _check_out(out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise UsageError(
            f"{display(out)} already exists; custody never overwrites a file",
            hint="choose another --out name",
        )


# -- a new request (the agency) ----------------------------------------------------------------


@dataclass(frozen=True)
class NewRequest:
    """A request on the log: its index and hash, the file written, and whether it was on
    the log already (an identical request: nothing was appended)."""

    index: int
    hash: str
    out: Path
    request: Request
    again: bool = False


_SAME = ("case", "by", "owner", "purpose", "start", "end", "area", "answer_by", "ref")


def new_request(
    c: Custody,
    *,
    case: str,
    by: str,
    purpose: str,
    start: str,
    end: str,
    area: str | None = None,
    answer_by: str | None = None,
    ref: str | None = None,
    owner: str | None = None,
    out: Path,
    passphrase: PassphraseFn,
    now: datetime,
) -> NewRequest:
    """Record a signed `request` entry by `by` and write its exact bytes to `out`.

    `start` and `end` are `YYYY-MM-DDTHH:MM:SSZ` (see `window_time`).  Raises
    UsageError for a bad value or an existing `out`, NotFoundError for an unknown case
    or party, the rules' RuleError (an owner may not ask), StorageError.
    """
    get_case(c, case)
    _check_out(out)
    if not purpose.strip():
        raise UsageError("--purpose is required: say what the footage is needed for")
    typed: Request = _option(
        lambda: build(
            Request,
            now,
            case=case,
            by=by,
            owner=owner,
            purpose=purpose,
            start=start,
            end=end,
            area=area,
            answer_by=answer_by,
            ref=ref,
        ),
        {
            "start": "--from",
            "end": "--to",
            "area": "--area",
            "answer-by": "--answer-by",
            "owner": "--owner",
            "case": "--case",
            "by": "--by",
        },
    )
    if typed.start_time > typed.end_time:  # pragma: no cover - Request.check refuses it
        raise UsageError("--from is after --to")
    c.party(by)
    with c.store.session() as s:
        existing = Store.type_entries(s, "request")
    for index, data in existing:
        other = parse_typed(SignedEntry.parse(data).entry)
        if all(getattr(other, k) == getattr(typed, k) for k in _SAME):
            assert isinstance(other, Request)
            write_new(out, data, 0o644)
            return NewRequest(index, entry_hash(data), out, other, again=True)
    signer = c.signer(by, passphrase)
    data = sign_entry(typed.entry, [signer])
    index = append_indexed_one(c.log, data)
    crash_point("request.entry-committed")
    write_new(out, data, 0o644)
    return NewRequest(index, entry_hash(data), out, typed)


# -- the request file (untrusted) ----------------------------------------------------------------


@dataclass(frozen=True)
class RequestFile:
    """A parsed request file: its exact bytes, entry hash and the typed request."""

    data: bytes
    hash: str
    request: Request
    where: str

    @property
    def signer(self) -> str:
        return self.request.by


def read_request(data: bytes, where: str) -> RequestFile:
    """Parse a request file's bytes (a signed `request` entry, exactly as on the
    agency's log); InputError naming `where` and the problem, never another error.

    The signature is not checked here (see `answer_request`): only that the entry is a
    well-formed request signed under the name of its asking party.
    """
    if len(data) > MAX_REQUEST_FILE:
        raise InputError(f"{where} is {len(data)} bytes: too large to be a request file")
    try:
        signed = SignedEntry.parse(data)
        typed: Typed = parse_typed(signed.entry)
    except CustodyError as exc:
        raise InputError(
            f"{where} is not a custody request file: {exc.message}",
            hint="a request file is written by 'custody request new --out FILE' and must "
            "be passed on unchanged",
        ) from None
    if not isinstance(typed, Request):
        raise InputError(
            f"{where} is a {signed.entry.type} entry, not a request",
            hint="pass the file the agency wrote with 'custody request new --out FILE'",
        )
    if typed.by not in signed.signer_names:
        raise InputError(
            f"{where} is not signed by its asking party '{typed.by}'",
            hint="ask the agency for the request file as 'custody request new' wrote it",
        )
    return RequestFile(data, entry_hash(data), typed, where)


# -- the answer (the owner) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An answer file written: `kind` "consent" or "refusal"; `checked` says whether the
    request's signature was verified against a key this home knows (None: the asking
    party is not a party of this home's log); `late`: past the answer-by date."""

    kind: str
    out: Path
    request: RequestFile
    checked: bool
    late: bool


def _check_request_signature(c: Custody, rf: RequestFile) -> bool:
    """Verify the request's signature if this home's log knows its asking party."""
    row = c.store.party(rf.request.by)
    if row is None:
        return False
    # Every key the party has had on this log: the request may predate a rotation.
    keys = [k.vkey for k in c.log.parties().party_keys(rf.request.by)]
    keys = keys or [VerifierKey.parse(row.vkey)]
    try:
        open_note(rf.data, keys)
    except VerificationError:
        raise VerificationError(
            f"{rf.where}: the signature of '{rf.request.by}' does not verify with the keys "
            f"this log has for '{rf.request.by}'",
            hint="the file was altered, or was not made by that party: do not answer it; "
            "ask the agency for it again",
        ) from None
    return True


def answer_request(
    c: Custody,
    rf: RequestFile,
    *,
    by: str,
    consent: bool,
    until: str | None = None,
    onward: str = "none",
    reason: str | None = None,
    out: Path,
    passphrase: PassphraseFn,
    now: datetime,
) -> Answer:
    """Sign the owner `by`'s answer to the request `rf` and write it to `out`.

    A consent grant (`consent` True): case and purpose from the request, `request` its
    hash, `until` and `onward` as given, no item (it covers the footage the request
    asks for; the request's window and area limit it at ingest).  Otherwise a
    `refusal` with `reason`.  Nothing is appended to this home's log.

    Raises UsageError (a bad option, `by` not an owner, a request addressed to another
    owner, an existing `out`), VerificationError (the request's signature does not
    verify with the key this log has for its asking party), NotFoundError, KeyFileError.
    """
    _check_out(out)
    req = rf.request
    party = c.party(by)
    if party.role != "owner":
        article = "an" if party.role[:1] in "aeiou" else "a"
        raise UsageError(
            f"'{by}' is {article} {party.role} party, not an owner: only the owner asked "
            "answers a request",
            hint="give the owner's key name with --by",
        )
    if req.owner is not None and req.owner != by:
        raise UsageError(
            f"{rf.where} asks '{req.owner}', not '{by}'",
            hint=f"only '{req.owner}' may answer it",
        )
    if onward not in ONWARD:
        raise UsageError(f"--onward {onward!r} is not one of {', '.join(ONWARD)}")
    if not consent and (until is not None or onward != "none"):
        raise UsageError("--until and --onward go with --consent, not with --decline")
    if consent and reason is not None:
        raise UsageError("--reason goes with --decline, not with --consent")
    if until is not None:
        try:
            if len(until) != 10:
                raise ValueError(until)
            date.fromisoformat(until)
        except ValueError:
            raise UsageError(f"--until {until!r} is not a date like 2026-12-31") from None
    checked = _check_request_signature(c, rf)
    typed: Typed
    if consent:
        typed = _option(
            lambda: build(
                Consent,
                now,
                action="grant",
                owner=by,
                case=req.case,
                purpose=req.purpose,
                until=until,
                onward=onward,
                request=rf.hash,
            ),
            {"until": "--until"},
        )
    else:
        typed = _option(
            lambda: build(
                Refusal, now, case=req.case, owner=by, request=rf.hash, reason=reason or None
            ),
            {"reason": "--reason"},
        )
    signer = c.signer(by, passphrase)
    data = sign_entry(typed.entry, [signer])
    write_new(out, data, 0o644)
    deadline = req.answer_by_date
    late = deadline is not None and now.date() > deadline
    return Answer("consent" if consent else "refusal", out, rf, checked, late)


# -- the requests on the log ---------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerRecord:
    """One answer on the log: a consent grant naming the request, or a refusal."""

    index: int
    owner: str
    kind: str  # "consent" | "refusal"
    time: str
    late: bool
    until: str | None = None
    onward: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entry": self.index,
            "owner": self.owner,
            "answer": self.kind,
            "time": self.time,
            "late": self.late,
        }
        for key in ("until", "onward", "reason"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class RequestStatus:
    """A request on the log, its answers (log order) and its status."""

    index: int
    hash: str
    request: Request
    answers: tuple[AnswerRecord, ...] = field(default=())
    status: str = "awaiting"  # consented | declined | unanswered | awaiting

    def as_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "entry": self.index,
            "hash": self.hash,
            "case": r.case,
            "by": r.by,
            "owner": r.owner,
            "purpose": r.purpose,
            "time": r.time,
            "start": r.start,
            "end": r.end,
            "area": r.area,
            "answer_by": r.answer_by,
            "ref": r.ref,
            "status": self.status,
            "answers": [a.as_json() for a in self.answers],
        }


def _status(answers: tuple[AnswerRecord, ...], answer_by: date | None, today: date) -> str:
    if any(a.kind == "consent" for a in answers):
        return "consented"
    if answers:
        return "declined"
    if answer_by is not None and today > answer_by:
        return "unanswered"
    return "awaiting"


def list_requests(c: Custody, *, case: str | None = None, today: date) -> list[RequestStatus]:
    """Every request on the log (of `case`, if given), in log order, with its answers.

    Status: `consented` (an owner consented), `declined` (every answer is a refusal),
    `unanswered` (no answer, and `today` is after the answer-by date) or `awaiting`.
    An answer after the answer-by date is accepted and marked late.
    """
    with c.store.session() as s:
        requests = Store.type_entries(s, "request")
        answers = Store.type_entries(s, "consent") + Store.type_entries(s, "refusal")
    by_request: dict[str, list[AnswerRecord]] = {}
    deadlines: dict[str, date | None] = {}
    out: list[tuple[int, str, Request]] = []
    for index, data in requests:
        typed = parse_typed(SignedEntry.parse(data).entry)
        assert isinstance(typed, Request)
        h = entry_hash(data)
        deadlines[h] = typed.answer_by_date
        if case is None or typed.case == case:
            out.append((index, h, typed))
    for index, data in sorted(answers, key=lambda pair: pair[0]):
        typed = parse_typed(SignedEntry.parse(data).entry)
        target = getattr(typed, "request", None)
        if target is None or target not in deadlines:
            continue
        deadline = deadlines[target]
        late = deadline is not None and typed.claimed_time.date() > deadline
        if isinstance(typed, Consent):
            record = AnswerRecord(
                index, typed.owner, "consent", typed.time, late, typed.until, typed.onward
            )
        else:
            assert isinstance(typed, Refusal)
            record = AnswerRecord(
                index, typed.owner, "refusal", typed.time, late, reason=typed.reason
            )
        by_request.setdefault(target, []).append(record)
    result = []
    for index, h, typed in out:
        got = tuple(by_request.get(h, ()))
        result.append(
            RequestStatus(index, h, typed, got, _status(got, typed.answer_by_date, today))
        )
    return result
