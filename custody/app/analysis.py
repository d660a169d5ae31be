"""Automated analysis on record, and the log's policy for it (docs/lifecycle.md).

The library behind `custody analysis record` and `custody policy set|show`.

* An `analysis` entry, signed by the item's holder, says that software analysed the
  footage: the kind (face recognition, licence plates, ...), the tool and its
  version, the purpose, the warrant it was done under, and the BLAKE3 of the result
  file (the file itself is not stored; ingest or derive it to keep it as evidence).
* A `policy` entry, signed with the log key (only the log operator's home holds it),
  says which kinds the log forbids, which need a warrant, and within how many hours
  an emergency disclosure must be reviewed.  A newer policy replaces the older whole.

The rules (a forbidden kind refused; a warrant-required kind refused without a
warrant; the holder only; not on a restricted or disposed item) are
`custody.model.rules`, applied by the log before it appends: a refused analysis
appends nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from custody.app.evidence import display, recorded_name, resolve_item
from custody.app.home import Custody
from custody.errors import FormatError, InputError, UsageError
from custody.infra.indexer import append_indexed_one
from custody.infra.store import Store
from custody.infra.vault import hash_file
from custody.model.entry import SignedEntry, sign_entry
from custody.model.types import (
    ANALYSIS_KINDS,
    DEFAULT_REVIEW_HOURS,
    Analysis,
    Policy,
    build,
    parse_typed,
)

PassphraseFn = Callable[[str], str]

__all__ = ["Analysed", "PolicyShown", "current_policy", "record_analysis", "set_policy"]


def _kind(kind: str, option: str) -> str:
    if kind not in ANALYSIS_KINDS:
        raise UsageError(f"{option} {kind!r} is not one of: {', '.join(ANALYSIS_KINDS)}")
    return kind


def _required(value: str, option: str, why: str) -> str:
    if not value.strip():
        raise UsageError(f"{option} is required: {why}")
    return value


@dataclass(frozen=True)
class Analysed:
    """What `record_analysis` did: the entry's index, the exhibit, the kind, and the
    result file's digest and recorded name, if one was given."""

    index: int
    exhibit: str
    kind: str
    result: str | None
    result_name: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "exhibit": self.exhibit,
            "kind": self.kind,
            "result": self.result,
            "result_name": self.result_name,
        }


def record_analysis(
    c: Custody,
    ref: str,
    *,
    by: str,
    kind: str,
    tool: str,
    tool_version: str,
    purpose: str,
    result: Path | None = None,
    warrant: str | None = None,
    case: str | None = None,
    passphrase: PassphraseFn,
    now: datetime,
) -> Analysed:
    """Record that `by` (the holder) analysed an item with software (signed `analysis`).

    The result file, if given, is hashed (BLAKE3) and its name recorded; it is not
    copied into the evidence store.  Raises UsageError for an unknown kind or an
    empty tool, version or purpose; InputError when the result file cannot be read;
    NotFoundError for an unknown item; PolicyError when the rules refuse (the log's
    policy forbids the kind, or requires a warrant and none is given; not the
    holder; a restricted or disposed item): nothing is appended then.
    """
    _kind(kind, "--kind")
    _required(tool, "--tool", "name the software")
    _required(tool_version, "--tool-version", "say which version of it")
    _required(purpose, "--purpose", "say what the analysis is for")
    if warrant is not None:
        _required(warrant, "--warrant", "give the warrant's reference")
    row = resolve_item(c, ref, case)
    digest = name = None
    if result is not None:
        if not result.is_file():
            raise InputError(f"--result {display(result)} is not a file")
        digest = hash_file(result).blake3_hex
        name = recorded_name(os.fsencode(result.name))[0]
    try:
        typed = build(
            Analysis,
            now,
            case=row.case_id,
            item=row.blake3,
            by=by,
            kind=kind,
            tool=tool,
            tool_version=tool_version,
            purpose=purpose,
            warrant=warrant,
            result=digest,
            result_name=name,
        )
    except FormatError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None
    signer = c.signer(by, passphrase)
    index = append_indexed_one(c.log, sign_entry(typed.entry, [signer]))
    return Analysed(index, row.exhibit, kind, digest, name)


# -- the log's policy -----------------------------------------------------------------


@dataclass(frozen=True)
class PolicyShown:
    """The policy in force: its entry (None: no policy entry yet, the defaults apply)."""

    index: int | None
    time: str | None
    forbid: tuple[str, ...]
    warrant_required: tuple[str, ...]
    review_hours: int
    note: str | None
    replaced: int = 0  # how many earlier policy entries it replaced

    def as_json(self) -> dict[str, Any]:
        return {
            "entry": self.index,
            "time": self.time,
            "forbid": list(self.forbid),
            "warrant_required": list(self.warrant_required),
            "review_within_hours": self.review_hours,
            "note": self.note,
            "replaced": self.replaced,
            "default": self.index is None,
        }


def current_policy(c: Custody) -> PolicyShown:
    """The policy in force: the newest `policy` entry, or the defaults (nothing
    forbidden, no warrant required, reviews within DEFAULT_REVIEW_HOURS hours)."""
    with c.store.session() as s:
        rows = Store.type_entries(s, "policy")
    if not rows:
        return PolicyShown(None, None, (), (), DEFAULT_REVIEW_HOURS, None)
    index, data = rows[-1]
    typed = parse_typed(SignedEntry.parse(data).entry)
    assert isinstance(typed, Policy)
    return PolicyShown(
        index,
        typed.time,
        typed.forbid,
        typed.warrant_required,
        typed.review_hours,
        typed.note,
        replaced=len(rows) - 1,
    )


def set_policy(
    c: Custody,
    *,
    forbid: Sequence[str],
    warrant_required: Sequence[str],
    review_within: int | None,
    note: str | None,
    passphrase: PassphraseFn,
    now: datetime,
) -> int:
    """Record a new policy, signed with the log key; it replaces the one in force whole
    (a kind no longer listed is allowed again).

    Raises UsageError for an unknown kind, a kind both forbidden and warrant-required,
    review hours below 1, or a home that does not hold the log key (the message
    `log checkpoint` gives there); KeyFileError for a wrong passphrase; PolicyError
    when the log refuses the entry.
    """
    forbid = tuple(dict.fromkeys(_kind(k, "--forbid") for k in forbid))
    warrant_required = tuple(
        dict.fromkeys(_kind(k, "--warrant-required") for k in warrant_required)
    )
    both = [k for k in forbid if k in warrant_required]
    if both:
        raise UsageError(
            f"{both[0]} is both forbidden and allowed with a warrant",
            hint="give it to --forbid or to --warrant-required, not both",
        )
    if review_within is not None and review_within < 1:
        raise UsageError(f"--review-within {review_within} must be at least 1 (hours)")
    try:
        typed = build(
            Policy,
            now,
            forbid=forbid,
            warrant_required=warrant_required,
            review_within=None if review_within is None else str(review_within),
            note=note or None,
        )
    except FormatError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None
    signer = c.log_signer(passphrase, what="sign the log's policy")
    return append_indexed_one(c.log, sign_entry(typed.entry, [signer]))
