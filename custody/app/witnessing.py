"""`custody log witness`: ask witnesses over HTTP (C2SP tlog-witness) to cosign the log.

For each witness URL (its c2sp.org/tlog-witness prefix), `witness_log` sends the
log's latest stored checkpoint to ``<url>/add-checkpoint`` with a consistency
proof from the size that witness last cosigned, as this home remembers it
(`WitnessRecords`, `<home>/witnesses/<sha256(url)>.json`; 0 on first contact).
A 409 names the size the witness really has: the request is sent once more,
with a proof from there.  A 200's cosignature lines are verified with the
cosignature/v1 key of a registered witness party (registered the way any party
is, with `custody key import` of the file `custody key export` writes in the
witness's home), stored with `custody.app.witness.add_cosignature` (so later
exports carry them), and the record is updated.  docs/spec/witness-http.md.

Nothing here decides what a witness may cosign: that is the witness's rule.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custody.app.home import Custody
from custody.app.witness import WITNESS_ROLES, add_cosignature, cosignature_keys
from custody.bundle.verify import load_json
from custody.errors import (
    CustodyError,
    FormatError,
    InputError,
    NotFoundError,
    StorageError,
    UsageError,
    VerificationError,
)
from custody.infra.crash import crash_point
from custody.infra.files import replace_durably
from custody.tlog.checkpoint import open_checkpoint
from custody.tlog.note import Note, VerifierKey, append_signatures
from custody.tlog.witnessproto import (
    ADD_CHECKPOINT_PATH,
    MAX_RESPONSE,
    AddCheckpoint,
    parse_cosignatures,
    parse_size,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "RECORD_V1",
    "WitnessOutcome",
    "WitnessRecord",
    "WitnessRecords",
    "WitnessUnreachableError",
    "WitnessingReport",
    "normalize_url",
    "witness_log",
]

RECORD_V1 = "custody/witness-record/v1"
DEFAULT_TIMEOUT = 10.0  # seconds for each connection, request and response
_MAX_RECORD = 1 << 16
_MAX_REASON = 300


class WitnessUnreachableError(InputError):
    """Too few witnesses cosigned, and at least one could not be reached at all (exit 3)."""


def normalize_url(url: str) -> str:
    """A witness prefix URL without a trailing slash; UsageError if not http(s)://host..."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(
            f"--url {url!r} is not an http:// or https:// URL",
            hint="pass the witness's prefix, e.g. --url http://witness.example:8080",
        )
    if parsed.query or parsed.fragment:
        raise UsageError(f"--url {url!r}: a witness prefix has no query or fragment")
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


# -- the log's record of each witness --------------------------------------------------------


@dataclass(frozen=True)
class WitnessRecord:
    """What a witness at `url` last cosigned for this log, as far as this home knows."""

    url: str
    witness: str  # the witness party's name
    size: int
    root: bytes
    cosigned_at: int

    def encode(self) -> bytes:
        obj = {
            "version": RECORD_V1,
            "url": self.url,
            "witness": self.witness,
            "size": self.size,
            "root": base64.b64encode(self.root).decode("ascii"),
            "cosigned_at": self.cosigned_at,
        }
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, where: str) -> WitnessRecord:
        """Parse a record file; FormatError naming the file."""
        obj = load_json(data, where)
        try:
            if obj.get("version") != RECORD_V1:
                raise FormatError(f"{where}: version is not {RECORD_V1}")
            record = cls(
                url=str(obj["url"]),
                witness=str(obj["witness"]),
                size=int(obj["size"]),
                root=base64.b64decode(str(obj["root"]), validate=True),
                cosigned_at=int(obj["cosigned_at"]),
            )
        except FormatError:
            raise
        except (KeyError, ValueError, TypeError) as exc:
            raise FormatError(
                f"{where} is damaged: {exc}",
                hint="delete it: the next 'custody log witness' starts from size 0 and the "
                "witness's 409 gives its size",
            ) from None
        if record.size < 0 or len(record.root) != 32:
            raise FormatError(f"{where}: size or root out of range")
        return record


class WitnessRecords:
    """`<home>/witnesses/<sha256(url)>.json`, each replaced atomically."""

    def __init__(self, home_root: Path) -> None:
        self.root = home_root / "witnesses"

    def path(self, url: str) -> Path:
        return self.root / f"{hashlib.sha256(url.encode('utf-8')).hexdigest()}.json"

    def load(self, url: str) -> WitnessRecord | None:
        path = self.path(url)
        try:
            with path.open("rb") as f:
                data = f.read(_MAX_RECORD + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        record = WitnessRecord.parse(data, str(path))
        if record.url != url:
            raise StorageError(f"{path} is the record of another witness ({record.url})")
        return record

    def save(self, record: WitnessRecord) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create {self.root}: {exc.strerror}") from exc
        replace_durably(self.path(record.url), record.encode())
        crash_point("witness.record-saved")


# -- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessOutcome:
    """What one witness answered: cosigned (`ok`), refused (`status`), or unreachable."""

    url: str
    ok: bool
    reachable: bool
    status: int | None  # the HTTP status of its last answer
    reason: str  # a plain sentence: what it said, or why the answer was not taken
    old_size: int  # the size the last request was from
    witness: str | None = None
    timestamp: int | None = None
    retried: bool = False  # a 409 was answered by sending the checkpoint again

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "reachable": self.reachable,
            "status": self.status,
            "reason": self.reason,
            "old_size": self.old_size,
            "witness": self.witness,
            "timestamp": self.timestamp,
            "retried": self.retried,
        }

    def line(self) -> str:
        if self.ok:
            return (
                f"{self.url}: cosigned by {self.witness} at {self.timestamp} (from size "
                f"{self.old_size}{', after a 409' if self.retried else ''})"
            )
        if not self.reachable:
            return f"{self.url}: unreachable: {self.reason}"
        status = f"HTTP {self.status}" if self.status is not None else "refused"
        return f"{self.url}: {status}: {self.reason}"


@dataclass(frozen=True)
class WitnessingReport:
    """The checkpoint sent and every witness's outcome; `quorum` cosignatures were needed."""

    origin: str
    size: int
    root: bytes
    quorum: int
    outcomes: list[WitnessOutcome] = field(default_factory=list)

    @property
    def cosigned(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def ok(self) -> bool:
        return self.cosigned >= self.quorum

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode("ascii"),
            "quorum": self.quorum,
            "cosigned": self.cosigned,
            "ok": self.ok,
            "witnesses": [o.to_json() for o in self.outcomes],
        }

    def raise_for_quorum(self) -> None:
        """VerificationError (exit 1) when fewer than `quorum` cosigned and some witness
        refused; WitnessUnreachableError (exit 3) when the rest were all unreachable."""
        if self.ok:
            return
        failed = [o for o in self.outcomes if not o.ok]
        what = "; ".join(o.line() for o in failed)
        message = (
            f"{self.cosigned} of {len(self.outcomes)} witness(es) cosigned size {self.size}, "
            f"{self.quorum} needed: {what}"
        )
        if all(not o.reachable for o in failed):
            raise WitnessUnreachableError(message, hint="is the witness running at that URL?")
        raise VerificationError(
            message,
            hint="a 409 or 422 from a witness that cosigned this log before may mean the log "
            "was rewritten: keep the checkpoints",
        )


# -- HTTP ------------------------------------------------------------------------------------


def _post(url: str, body: bytes, timeout: float) -> tuple[int, str, bytes]:
    """POST `body` to `url` + /add-checkpoint; (status, content type, body at most
    MAX_RESPONSE + 1 bytes).  Raises OSError or http.client.HTTPException."""
    parts = urllib.parse.urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.netloc, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        conn.request(
            "POST",
            parts.path + ADD_CHECKPOINT_PATH,
            body=body,
            headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "custody"},
        )
        response = conn.getresponse()
        data = response.read(MAX_RESPONSE + 1)
        return response.status, response.getheader("Content-Type", ""), data
    finally:
        conn.close()


def _said(data: bytes) -> str:
    text = data[:_MAX_REASON].decode("utf-8", "replace").strip().replace("\n", " ")
    return text or "(empty body)"


# -- the use case ------------------------------------------------------------------------


def witness_log(
    c: Custody,
    urls: Sequence[str],
    *,
    quorum: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> WitnessingReport:
    """Send the latest stored checkpoint to each witness and keep what they cosign.

    Returns the report (check it with `raise_for_quorum`).  Raises UsageError for
    a bad URL or quorum, NotFoundError when the log has no checkpoint yet, and
    StorageError when a cosignature or a record cannot be stored.
    """
    prefixes = list(dict.fromkeys(normalize_url(u) for u in urls))
    if not prefixes:
        raise UsageError("name at least one witness with --url")
    need = len(prefixes) if quorum is None else quorum
    if not 1 <= need <= len(prefixes):
        raise UsageError(
            f"--quorum {need} is not between 1 and the {len(prefixes)} witness(es) given"
        )
    row = c.store.checkpoint()
    if row is None:
        raise NotFoundError(
            "the log has no checkpoint yet", hint="sign one with 'custody log checkpoint'"
        )
    note = bytes(row.note)
    cp = open_checkpoint(note, c.log_key).checkpoint
    keys = {
        ident: key
        for ident, (key, role) in cosignature_keys(c.log.parties()).items()
        if role in WITNESS_ROLES
    }
    records = WitnessRecords(c.home.root)
    report = WitnessingReport(cp.origin, cp.size, cp.root, need)
    for url in prefixes:
        report.outcomes.append(_ask(c, url, note, cp.size, keys, records, timeout))
    return report


def _ask(
    c: Custody,
    url: str,
    note: bytes,
    size: int,
    keys: dict[tuple[str, bytes], VerifierKey],
    records: WitnessRecords,
    timeout: float,
) -> WitnessOutcome:
    record = records.load(url)
    old = record.size if record is not None else 0
    retried = False
    while True:
        if old > size:
            return WitnessOutcome(
                url,
                False,
                True,
                None,
                f"the witness has cosigned size {old}, more than this log's latest checkpoint "
                f"({size}): sign a newer checkpoint ('custody log checkpoint') and try again",
                old,
                retried=retried,
            )
        proof = [] if old in (0, size) else c.log.consistency_proof(old, size)
        body = AddCheckpoint(old, tuple(proof), note).encode()
        try:
            status, _ctype, data = _post(url, body, timeout)
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            return WitnessOutcome(url, False, False, None, reason, old, retried=retried)
        if status == 409 and not retried:
            try:
                old = parse_size(data)
            except FormatError as exc:
                return WitnessOutcome(
                    url, False, True, 409, f"its 409 body is malformed: {exc.message}", old
                )
            retried = True
            continue
        if status != 200:
            return WitnessOutcome(url, False, True, status, _said(data), old, retried=retried)
        return _take(c, url, note, data, keys, records, old, retried)


def _take(
    c: Custody,
    url: str,
    note: bytes,
    data: bytes,
    keys: dict[tuple[str, bytes], VerifierKey],
    records: WitnessRecords,
    old: int,
    retried: bool,
) -> WitnessOutcome:
    """Verify a 200's cosignatures with registered witness keys, store them, update the record."""
    try:
        signatures = parse_cosignatures(data)
        present = {(s.name, s.key_id) for s in Note.parse(note).signatures}
        known = [s for s in signatures if (s.name, s.key_id) in keys]
        fresh = [s for s in known if (s.name, s.key_id) not in present]
        if not known:
            names = ", ".join(sorted({s.name for s in signatures}))
            raise InputError(
                f"it cosigned as {names}, not a witness party of this log (register its key: "
                "'custody key export' in the witness's home, 'custody key import' here)"
            )
        merged = append_signatures(note, fresh) if fresh else note
        opened = open_checkpoint(merged, c.log_key, [keys[(s.name, s.key_id)] for s in known])
    except CustodyError as exc:
        return WitnessOutcome(url, False, True, 200, f"answer not taken: {exc.message}", old)
    if not opened.cosignatures:  # pragma: no cover - open_checkpoint raises instead
        return WitnessOutcome(url, False, True, 200, "no valid cosignature", old)
    add_cosignature(c, merged)
    key, timestamp = opened.cosignatures[0]
    cp = opened.checkpoint
    records.save(WitnessRecord(url, key.name, cp.size, cp.root, timestamp))
    return WitnessOutcome(url, True, True, 200, "cosigned", old, key.name, timestamp, retried)
