"""RFC 3161 timestamp tokens over checkpoints, and the append interval of each entry (pure).

docs/spec/timestamp.md.  A token (`TimeStampToken`, RFC 3161 §2.4.2: a CMS SignedData
over a TSTInfo) is taken over a checkpoint's **body**, the signed text
`<origin>\\n<size>\\n<base64 root>\\n` (with any extension lines), never its signature
lines, so cosignatures added later do not change what was stamped.  The message imprint
is SHA-256 of those bytes.

From verified tokens, every entry of a bundle gets the interval in which it was appended
(`interval_for`): after the genTime of the latest timestamped checkpoint that does not
contain it (size <= index), before the genTime of the earliest one that does
(size > index).  `check_times` compares each entry's claimed time with its interval.

Parsing and verification use rfc3161-client (Trail of Bits; the CMS signature and the
certificate chain are checked by OpenSSL through it) and cryptography; no I/O and no
clock here: the caller reads the files and passes the bytes.  Tokens are parsed as the
`timeStampToken` of a granted TimeStampResp (`wrap_token`), the only form the library
reads; that wrapper is the one piece of DER this module writes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc3161_client
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from custody.errors import FormatError, InputError, VerificationError
from custody.model.entry import format_time
from custody.model.times import span

__all__ = [
    "MAX_TOKEN",
    "SHA256_OID",
    "EntryTime",
    "Interval",
    "TimestampError",
    "Token",
    "VerifiedStamp",
    "check_times",
    "format_span",
    "interval_for",
    "load_certificates",
    "parse_response",
    "timestamp_path",
    "timestamp_size",
    "verify_token",
    "wrap_token",
]

SHA256_OID = "2.16.840.1.101.3.4.2.1"
# A token is a few KiB (a signature and one or two certificates); 1 MiB is generous.
MAX_TOKEN = 1 << 20
_TOKEN_FILE = re.compile(r"timestamps/(0|[1-9][0-9]*)\.tst")
_MAX_DIGITS = 20
_STATUS = {
    0: "granted",
    1: "granted with modifications",
    2: "rejection",
    3: "waiting",
    4: "revocation warning",
    5: "revocation notification",
}


class TimestampError(VerificationError):
    """A timestamp token does not verify: not by a trusted TSA, or not over that checkpoint."""


def timestamp_path(size: int) -> str:
    """The bundle path of the token over the checkpoint of `size`: `timestamps/<size>.tst`."""
    return f"timestamps/{size}.tst"


def timestamp_size(name: str) -> int | None:
    """The checkpoint size of a bundle path `timestamps/<size>.tst`, else None."""
    m = _TOKEN_FILE.fullmatch(name)
    if m is None or len(m.group(1)) > _MAX_DIGITS:
        return None
    return int(m.group(1))


# ---------------------------------------------------------------------------------
# Tokens


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def wrap_token(token: bytes) -> bytes:
    """The DER TimeStampResp `{status granted, timeStampToken token}` (RFC 3161 §2.4.2).

    rfc3161-client parses responses, not bare tokens; a stored token is read through
    this wrapper (status `SEQUENCE { INTEGER 0 }`, then the token as it is).
    """
    content = bytes.fromhex("3003020100") + token
    return b"\x30" + _der_length(len(content)) + content


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(no subject)"


@dataclass(frozen=True)
class Token:
    """A parsed TimeStampToken: its DER bytes and the TSTInfo fields custody reads."""

    der: bytes
    response: Any  # rfc3161_client.TimeStampResponse (untyped in the library)
    gen_time: datetime
    serial: int
    nonce: int | None
    imprint_alg: str
    imprint: bytes
    policy: str

    @classmethod
    def parse(cls, data: bytes, where: str = "timestamp token") -> Token:
        """Parse a DER TimeStampToken; FormatError naming `where` if it is not exactly one."""
        if len(data) > MAX_TOKEN:
            raise FormatError(f"{where} is {len(data):,} bytes: larger than a timestamp token")
        if not data:
            raise FormatError(f"{where} is empty")
        return cls._from_response(wrap_token(data), data, where)

    @classmethod
    def _from_response(cls, response: bytes, der: bytes, where: str) -> Token:
        try:
            resp = rfc3161_client.decode_timestamp_response(response)
            token = bytes(resp.time_stamp_token())
            info = resp.tst_info
            gen_time = info.gen_time
            nonce = info.nonce
            imprint = info.message_imprint
            out = cls(
                der=token,
                response=resp,
                gen_time=gen_time if gen_time.tzinfo else gen_time.replace(tzinfo=UTC),
                serial=int(info.serial_number),
                nonce=None if nonce is None else int(nonce),
                imprint_alg=imprint.hash_algorithm.dotted_string,
                imprint=bytes(imprint.message),
                policy=info.policy.dotted_string,
            )
        except (ValueError, TypeError, OverflowError, AttributeError) as exc:
            raise FormatError(
                f"{where} is not an RFC 3161 timestamp token: {str(exc)[:160]}"
            ) from None
        if token != der:
            raise FormatError(f"{where} is not one DER TimeStampToken (extra or re-encoded bytes)")
        return out

    def certificates(self) -> list[x509.Certificate]:
        """The certificates the token embeds (RFC 3161 certReq); FormatError if damaged."""
        try:
            return [
                x509.load_der_x509_certificate(bytes(c))
                for c in self.response.signed_data.certificates
            ]
        except ValueError as exc:
            raise FormatError(f"a certificate in the token is damaged: {exc}") from None

    def signer(self) -> x509.Certificate | None:
        """The embedded certificate named by the token's SignerInfo, if it embeds it."""
        infos = list(self.response.signed_data.signer_infos)
        if len(infos) != 1:
            return None
        si = infos[0]
        for cert in self.certificates():
            if cert.issuer == si.issuer and cert.serial_number == si.serial_number:
                return cert
        return None

    def tsa_name(self) -> str:
        """Who stamped it: the signer certificate's subject, else the TSTInfo's tsa name."""
        cert = self.signer()
        if cert is not None:
            return _subject(cert)
        name = getattr(self.response.tst_info, "name", None)
        value = getattr(name, "value", None)
        if isinstance(value, x509.Name):
            return value.rfc4514_string()
        return "an unnamed TSA"


def parse_response(data: bytes, where: str) -> Token:
    """A TSA's TimeStampResp (RFC 3161 §2.4.2): its token, if the status is granted.

    Raises FormatError (not a response; `where` names the TSA) or VerificationError
    (the TSA refused: its status and text).
    """
    if len(data) > MAX_TOKEN:
        raise FormatError(f"the answer of {where} is {len(data):,} bytes: not a timestamp reply")
    try:
        resp = rfc3161_client.decode_timestamp_response(data)
        status = int(resp.status)
        text = "; ".join(str(s) for s in (resp.status_string or []))
    except ValueError as exc:
        msg = str(exc)
        raise FormatError(
            f"the answer of {where} is not an RFC 3161 timestamp response: {msg[:160]}",
            hint="check the URL: it must be the TSA's RFC 3161 endpoint",
        ) from None
    if status not in (0, 1):
        raise VerificationError(
            f"{where} refused the request: status {_STATUS.get(status, status)}"
            + (f" ({text})" if text else ""),
            hint="check the TSA's URL and that it accepts SHA-256 requests",
        )
    try:
        token = bytes(resp.time_stamp_token())
    except (ValueError, TypeError) as exc:
        raise FormatError(
            f"{where} granted the request but sent no usable token: {str(exc)[:160]}"
        ) from None
    # Read back through `Token.parse`, as a stored token is read: one code path, and the
    # status the verifier sees is `granted` whether or not the TSA modified the request.
    return Token.parse(token, f"the token of {where}")


# ---------------------------------------------------------------------------------
# Verification against trusted certificates


def load_certificates(data: bytes, where: str) -> list[x509.Certificate]:
    """Certificates from PEM (one or more) or DER bytes; InputError naming `where`."""
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise InputError(
            f"{where} is not an X.509 certificate (PEM or DER): {str(exc)[:120]}",
            hint="give the TSA's certificate or the root of its chain, as a .pem or .der file",
        ) from None
    if not certs:
        raise InputError(f"{where} holds no certificate")
    return certs


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


@dataclass(frozen=True)
class VerifiedStamp:
    """A token that verified: the checkpoint size it stamps, when, and by whom."""

    size: int
    gen_time: datetime
    tsa: str
    where: str

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "time": format_time(self.gen_time),
            "tsa": self.tsa,
            "file": self.where,
        }


def verify_token(
    token: Token, body: bytes, size: int, trusted: Sequence[x509.Certificate], where: str
) -> VerifiedStamp:
    """Check `token` over the checkpoint body `body` against `trusted` certificates.

    `trusted` are roots (self-signed: a chain from the token's signer must end at one)
    or the TSA's own certificate, which is then pinned (the token's signer must be it)
    and must be self-signed or come with its root.  The imprint must be SHA-256 of
    `body`; the CMS signature, the signer's critical timeStamping key usage and its
    validity at genTime are checked by rfc3161-client.

    Raises TimestampError naming `where` and what failed.
    """
    if token.imprint_alg != SHA256_OID:
        raise TimestampError(
            f"{where}: the token's message imprint is not SHA-256 ({token.imprint_alg})"
        )
    if token.imprint != hashlib.sha256(body).digest():
        raise TimestampError(
            f"{where} is not a timestamp of checkpoint {size}: its imprint "
            f"{token.imprint.hex()[:16]}… is not SHA-256 of that checkpoint's body",
            hint="the token was taken over another checkpoint, or the file was swapped",
        )
    roots = [c for c in trusted if _self_issued(c)]
    pinned = [c for c in trusted if not _self_issued(c)]
    if not roots:
        raise TimestampError(
            f"{where}: the --tsa-cert given is not self-signed ({_subject(pinned[0])}), and "
            "no root of its chain was given",
            hint="give the root certificate of the TSA's chain with --tsa-cert as well",
        )
    signer = token.signer()
    leaves: list[x509.Certificate | None] = [None]
    if pinned:
        leaves = [p for p in pinned if signer is None or p == signer]
        if not leaves:
            assert signer is not None
            raise TimestampError(
                f"{where} was signed by {_subject(signer)}, not by the TSA certificate given "
                f"({', '.join(_subject(p) for p in pinned)})",
                hint="check which TSA the agency used",
            )
    last = ""
    for leaf in leaves:
        builder = rfc3161_client.VerifierBuilder(
            tsa_certificate=leaf, roots=list(roots), intermediates=[]
        )
        try:
            builder.build().verify(token.response, token.imprint)
        except rfc3161_client.VerificationError as exc:
            last = str(exc)
            continue
        except ValueError as exc:  # a malformed token the library could not check
            last = str(exc)
            continue
        tsa = _subject(leaf) if leaf is not None else token.tsa_name()
        return VerifiedStamp(size, token.gen_time, tsa, where)
    if "unable to get local issuer" in last or "certificate verify error" in last:
        last = "its signer's certificate does not chain to the --tsa-cert given"
    raise TimestampError(
        f"{where} does not verify with the TSA certificate given: {last[:200]}",
        hint="give the TSA's certificate or the root of its chain (--tsa-cert)",
    )


def certificate_subjects(certs: Iterable[x509.Certificate]) -> list[str]:
    return [_subject(c) for c in certs]


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


# ---------------------------------------------------------------------------------
# Intervals


@dataclass(frozen=True)
class Interval:
    """When an entry was appended: after `after`, before `before` (None: open)."""

    after: VerifiedStamp | None
    before: VerifiedStamp | None

    def to_json(self) -> dict[str, Any]:
        return {
            "after": None if self.after is None else self.after.to_json(),
            "before": None if self.before is None else self.before.to_json(),
        }

    def sentence(self) -> str:
        if self.after is None and self.before is None:
            return "no timestamp bounds it"
        parts = []
        if self.after is not None:
            parts.append(f"after {format_time(self.after.gen_time)} (checkpoint {self.after.size})")
        if self.before is not None:
            parts.append(
                f"before {format_time(self.before.gen_time)} (checkpoint {self.before.size})"
            )
        return "appended " + " and ".join(parts)


def interval_for(index: int, stamps: Iterable[VerifiedStamp]) -> Interval:
    """The interval in which entry `index` was appended, from verified stamps.

    Lower bound: the latest timestamped checkpoint that does not contain the entry
    (the largest size <= index); upper bound: the earliest that does (the smallest
    size > index).  Either may be open (None).
    """
    after: VerifiedStamp | None = None
    before: VerifiedStamp | None = None
    for s in stamps:
        if s.size <= index:
            if after is None or (s.size, s.gen_time) > (after.size, after.gen_time):
                after = s
        elif before is None or (s.size, s.gen_time) < (before.size, before.gen_time):
            before = s
    return Interval(after, before)


def format_span(delta: timedelta) -> str:
    """A duration in words: `45 s`, `12 min`, `3 h 5 min`, `1 day 23 h`."""
    return span(delta, days_in_words=True)


@dataclass(frozen=True)
class EntryTime:
    """One entry's claimed time against its interval: `within`, `backdated`, `late`
    (claimed after it was already in the log), or `key-made-earlier` (a `key` entry:
    its time is when the key was made, which may be before its import: reported only)."""

    index: int
    label: str  # e.g. "consent by alice"
    claimed: datetime
    interval: Interval
    status: str
    by: timedelta | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("backdated", "late")

    def sentence(self) -> str:
        head = f"log entry {self.index} ({self.label}) claims {format_time(self.claimed)}"
        if self.status == "backdated":
            assert self.interval.after is not None and self.by is not None
            a = self.interval.after
            return (
                f"{head}, but it was appended after {format_time(a.gen_time)} (timestamp "
                f"over checkpoint {a.size}): backdated by {format_span(self.by)}"
            )
        if self.status == "late":
            assert self.interval.before is not None and self.by is not None
            b = self.interval.before
            return (
                f"{head}, but it was already in the log at {format_time(b.gen_time)} "
                f"(timestamp over checkpoint {b.size}): dated {format_span(self.by)} too late"
            )
        if self.status == "key-made-earlier":
            return (
                f"{head}, {format_span(self.by or timedelta())} before it was appended "
                "(a key's time is when it was made; it may be imported later)"
            )
        return f"{head}: {self.interval.sentence()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "entry": self.label,
            "claimed": format_time(self.claimed),
            "interval": self.interval.to_json(),
            "status": self.status,
            "by_seconds": None if self.by is None else int(self.by.total_seconds()),
            "message": self.sentence(),
        }


def check_times(
    entries: Mapping[int, tuple[str, str, datetime]],
    stamps: Sequence[VerifiedStamp],
    tolerance: timedelta,
) -> list[EntryTime]:
    """Each entry's claimed time against its append interval, in index order.

    `entries` maps a log index to (type, label, claimed time).  An entry claiming a
    time more than `tolerance` before its lower bound is `backdated`, more than
    `tolerance` after its upper bound `late`; a `key` entry before its lower bound is
    reported (`key-made-earlier`), never failed.
    """
    out = []
    for index in sorted(entries):
        type_, label, claimed = entries[index]
        interval = interval_for(index, stamps)
        status, by = "within", None
        if interval.after is not None and interval.after.gen_time - claimed > tolerance:
            by = interval.after.gen_time - claimed
            status = "key-made-earlier" if type_ == "key" else "backdated"
        elif interval.before is not None and claimed - interval.before.gen_time > tolerance:
            by = claimed - interval.before.gen_time
            status = "late"
        out.append(EntryTime(index, label, claimed, interval, status, by))
    return out
