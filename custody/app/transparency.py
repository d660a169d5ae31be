"""The signed transparency report: made from the log, signed with the log key, written as
JSON or HTML, and checked against the log (docs/spec/transparency.md, docs/transparency.md).

* `make_report` signs (or reuses) the checkpoint of the log's current size with the log
  key, counts the period over the entries up to that size
  (`custody.model.oversight.compute`) and signs the `custody/transparency/v1` note text
  with the same key;
* `report_json` is the JSON file (the signed note and the counts in a convenient form);
  the HTML file is `custody.report.transparency_html.render`;
* `check_report` reads either file (or the bare note), verifies the signature, that the
  checkpoint's root is this log's root at that size, and that every count, index and
  monthly number, in the note and in the file's convenient copy, is what the entries
  give.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from custody.app.home import Custody
from custody.errors import FormatError, InputError, UsageError, VerificationError
from custody.infra.files import replace_durably
from custody.model.entry import SignedEntry, format_time
from custody.model.oversight import (
    COUNTS,
    VERSION,
    Ledger,
    Report,
    compute,
    differences,
    parse_report,
    report_text,
)
from custody.tlog.checkpoint import open_checkpoint
from custody.tlog.note import (
    Note,
    SignatureError,
    UnverifiedNoteError,
    VerifierKey,
    open_note,
    sign_note,
)

PassphraseFn = Callable[[str], str]

#: The largest report file `check_report` reads (a report of ten years of a busy log fits).
MAX_REPORT_FILE = 64 << 20
#: The element of the HTML file that holds the signed note (docs/spec/transparency.md).
HTML_NOTE_ID = "custody-transparency-note"


class ReportMismatchError(VerificationError):
    """A transparency report that does not match the log it claims to be computed from."""


def ledger_of(c: Custody, size: int) -> Ledger:
    """The ledger of the log's first `size` entries."""
    return Ledger.of((i, SignedEntry.parse(d)) for i, d in c.store.iter_entries(0, size))


def make_report(
    c: Custody, start: date, end: date, passphrase: PassphraseFn, now: datetime
) -> tuple[bytes, Report]:
    """The signed note of the period's report at the log's current size, and its content.

    Raises UsageError when this home does not hold the log key (as `log checkpoint`) or
    the period is not one, KeyFileError for a wrong passphrase.
    """
    try:
        compute(Ledger(), c.origin, bytes(32), start, end, now)  # the period, before a prompt
    except FormatError as exc:
        raise UsageError(f"--from/--to: {exc.message}") from None
    signer = c.log_signer(passphrase, what="sign a transparency report")
    checkpoint = open_checkpoint(c.log.checkpoint(signer), c.log_key).checkpoint
    report = compute(ledger_of(c, checkpoint.size), c.origin, checkpoint.root, start, end, now)
    return sign_note(report_text(report), [signer]), report


def convenient(report: Report) -> dict[str, Any]:
    """The report's content as plain JSON values (the convenient copy in the JSON file)."""
    return {
        "log": report.origin,
        "checkpoint": {"size": report.size, "root": base64.b64encode(report.root).decode()},
        "period": {"from": report.start.isoformat(), "to": report.end.isoformat()},
        "as_of": format_time(report.as_of),
        "counts": {
            name: {"count": len(report.counts[name]), "indices": list(report.counts[name])}
            for name in COUNTS
        },
        "months": {label: dict(row) for label, row in report.monthly.items()},
    }


def report_json(note: bytes, report: Report) -> bytes:
    """The JSON file: the format, the signed note's exact text and the convenient copy."""
    doc = {"format": VERSION, "note": note.decode("utf-8"), **convenient(report)}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def write_report(path: Path, data: bytes) -> None:
    """Write a report file, replacing it whole (a reader never sees half of one)."""
    try:
        replace_durably(path, data, 0o644)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc


def output_kind(path: Path) -> str:
    """ "json" or "html" from the file name; UsageError otherwise."""
    kind = path.suffix.lower().lstrip(".")
    if kind == "htm":
        kind = "html"
    if kind not in ("json", "html"):
        raise UsageError(
            f"--out {path}: the name must end in .json or .html (the file's kind)",
        )
    return kind


# -- checking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """A report that matched the log."""

    report: Report
    kind: str  # "json" | "html" | "note"
    log_size: int  # the log's size now (the report's is report.size)


def read_report_file(data: bytes, name: str) -> tuple[str, bytes, Callable[[Report], list[str]]]:
    """(kind, signed note bytes, the check of the file's own copy of the counts) of a
    report file (JSON, HTML, or the bare note).  Untrusted: FormatError naming the file.
    """
    head = data.lstrip()[:200].lower()
    if head.startswith(b"{"):
        return _from_json(data, name)
    if head.startswith((b"<!doctype", b"<html")):
        return _from_html(data, name)
    if data.startswith(VERSION.encode() + b"\n"):
        return "note", data, lambda _r: []
    raise FormatError(
        f"{name} is not a transparency report (JSON, HTML or a {VERSION} note)",
        hint="give the file 'custody transparency --out' wrote",
    )


def _from_json(data: bytes, name: str) -> tuple[str, bytes, Callable[[Report], list[str]]]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{name} is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(doc, dict) or doc.get("format") != VERSION:
        raise FormatError(f"{name}: its 'format' is not {VERSION!r}")
    note = doc.get("note")
    if not isinstance(note, str):
        raise FormatError(f"{name} has no 'note' (the signed report) as text")

    def check(report: Report) -> list[str]:
        want = convenient(report)
        out = []
        for key, value in want.items():
            if key in ("counts", "months"):
                continue
            if doc.get(key) != value:
                out.append(f"the file's '{key}' differs from the signed note's")
        counts = doc.get("counts")
        for count in COUNTS:
            got = counts.get(count) if isinstance(counts, dict) else None
            if got != want["counts"][count]:
                out.append(f"the file's count {count} differs from the signed note's")
        if doc.get("months") != want["months"]:
            out.append("the file's monthly counts differ from the signed note's")
        return out

    return "json", note.encode("utf-8"), check


_PRE = re.compile(rb'<pre id="' + HTML_NOTE_ID.encode() + rb'">([^<]*)</pre>')
_CELL = re.compile(
    rb'<td(?: class="n")? data-count="([a-z.-]{1,40})"(?: data-month="([0-9-]{7})")?>([^<]*)</td>'
)


def _from_html(data: bytes, name: str) -> tuple[str, bytes, Callable[[Report], list[str]]]:
    found = _PRE.findall(data)
    if len(found) != 1:
        raise FormatError(
            f"{name}: the HTML file does not hold exactly one signed note "
            f'(<pre id="{HTML_NOTE_ID}">)'
        )
    try:
        note = html.unescape(found[0].decode("utf-8"))
    except UnicodeDecodeError:
        raise FormatError(f"{name}: the signed note in the HTML file is not UTF-8") from None
    cells = _CELL.findall(data)

    def check(report: Report) -> list[str]:
        out = []
        seen = 0
        for count_b, month_b, value_b in cells:
            count, month = count_b.decode(), month_b.decode()
            value = value_b.decode("utf-8", "replace").strip()
            if count not in COUNTS:
                out.append(f"the HTML table names a count {count!r} the report has none of")
                continue
            if month:
                want = report.monthly.get(month, {}).get(count)
                where = f"the HTML table's {month} {count}"
            else:
                want, where = len(report.counts[count]), f"the HTML table's count {count}"
            seen += 1
            if value != str(want):
                out.append(f"{where} says {value[:20]!r}, the signed note {want}")
        expected = len(COUNTS) * (1 + len(report.monthly))
        if not out and seen != expected:
            out.append(f"the HTML tables show {seen} counts, the signed note has {expected}")
        return out

    return "html", note.encode("utf-8"), check


def check_report(c: Custody, data: bytes, name: str, log_key: VerifierKey | None = None) -> Checked:
    """Check a report file against this home's log (docs/spec/transparency.md §Checking).

    Raises FormatError for a file that is not a report, a VerificationError subclass
    (exit 1) for a bad signature, another log, a checkpoint that is not this log's tree,
    or a count, index or monthly number that differs from the entries, naming it.
    """
    if len(data) > MAX_REPORT_FILE:
        raise FormatError(f"{name} is larger than {MAX_REPORT_FILE >> 20} MiB: not a report")
    kind, note, file_check = read_report_file(data, name)
    key = log_key or c.log_key
    try:
        report = parse_report(open_note(note, [key]).text)
    except (SignatureError, UnverifiedNoteError) as exc:
        # Say which count was changed, where the text still reads as a report of this log.
        try:
            problems = _problems(c, name, parse_report(Note.parse(note).text), file_check)
        except FormatError as bad:
            problems = [bad.message]
        changed = f": {problems[0]}" if problems else ""
        raise ReportMismatchError(
            f"{name}: {exc.message}{changed}",
            hint="the report was changed after it was signed, or was not signed by this log's key",
        ) from None
    if key.name != report.origin:
        raise ReportMismatchError(
            f"{name} is signed by key '{key.name}', not by the log key '{report.origin}'"
        )
    problems = _problems(c, name, report, file_check)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ReportMismatchError(
            f"{name}: {problems[0]}{more}",
            hint="the report was changed after it was signed, or is not of these entries",
        )
    return Checked(report, kind, c.log.size())


def _problems(
    c: Custody, name: str, report: Report, file_check: Callable[[Report], list[str]]
) -> list[str]:
    """What differs between `report` and the entries of this log (empty: nothing).

    Raises ReportMismatchError when the report is of another log or of a tree this log
    does not have.
    """
    if report.origin != c.origin:
        raise ReportMismatchError(
            f"{name} reports on log '{report.origin}'; this home's log is '{c.origin}'",
            hint="check it in a home of that log",
        )
    size = c.log.size()
    if report.size > size:
        raise ReportMismatchError(
            f"{name} was computed at size {report.size}; this log has {size} entries",
            hint="check it against the log operator's database, or a newer copy of it",
        )
    _, root = c.log.root(report.size)
    if root != report.root:
        raise ReportMismatchError(
            f"{name}: this log's root at size {report.size} is not the report's checkpoint "
            "root (another log, or the log was rewritten)",
            hint="run 'custody log verify'",
        )
    recomputed = compute(
        ledger_of(c, report.size), report.origin, root, report.start, report.end, report.as_of
    )
    return differences(report, recomputed) + file_check(report)
