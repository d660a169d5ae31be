"""RFC 3161 trusted time over the log's checkpoints: `custody log timestamp`.

docs/spec/timestamp.md.  `timestamp_checkpoint` asks a time-stamping authority (TSA)
for a token over the latest stored checkpoint that has none: a TimeStampReq with the
SHA-256 message imprint of the checkpoint's body (its signed text, not its signature
lines: cosignatures added later do not change it), a random 64-bit nonce and certReq
set, POSTed as `application/timestamp-query`.  The answer must be granted, carry the
nonce and the imprint, and (with the TSA's certificate given) verify; the token is then
kept write-once as `<home>/timestamps/<size>/<hex SHA-256 of the body>.tst` (DER
TimeStampToken; temp file, fsync, link), which exports put into bundles.

Only the latest checkpoint is stamped: a token over an older one, taken after the log
had grown past it, would claim that later entries were appended after its genTime
when they were not (spec, "What a timestamp proves").
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc3161_client

from custody.app.home import Custody
from custody.bundle.timestamps import (
    MAX_TOKEN,
    Token,
    load_certificates,
    parse_response,
    verify_token,
)
from custody.errors import InputError, StorageError, UsageError, VerificationError
from custody.infra.crash import crash_point
from custody.infra.files import write_new
from custody.model.entry import format_time
from custody.tlog.checkpoint import Checkpoint
from custody.tlog.note import Note

__all__ = [
    "TSA_TIMEOUT",
    "Stamped",
    "TimestampStore",
    "checkpoint_body",
    "post_request",
    "timestamp_checkpoint",
]

# Seconds to wait for a TSA's answer.
TSA_TIMEOUT = 30.0

Post = Callable[[str, bytes], bytes]


def checkpoint_body(note: bytes) -> bytes:
    """The bytes a token stamps: the checkpoint note's signed text (no signature lines)."""
    return Note.parse(note).text.encode("utf-8")


class TimestampStore:
    """Tokens over this log's checkpoints: `<home>/timestamps/<size>/<sha256 of body>.tst`.

    Write-once files, like the cosignature store (`custody.app.witness.CosignatureStore`).
    """

    def __init__(self, home_root: Path) -> None:
        self.root = home_root / "timestamps"

    def path(self, size: int, body: bytes) -> Path:
        return self.root / str(size) / f"{hashlib.sha256(body).hexdigest()}.tst"

    def add(self, size: int, body: bytes, token: bytes) -> Path:
        path = self.path(size, body)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
        write_new(path, token, mode=0o444)
        return path

    def tokens(self, size: int, body: bytes) -> list[bytes]:
        """The stored tokens over the checkpoint of `size` with this body (0 or 1)."""
        path = self.path(size, body)
        try:
            with path.open("rb") as f:
                return [f.read(MAX_TOKEN + 1)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc

    def sizes(self) -> list[int]:
        """The checkpoint sizes that have a token folder, ascending."""
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit())


@dataclass(frozen=True)
class Stamped:
    """The outcome for one checkpoint: stamped now, or already stamped before."""

    size: int
    path: Path
    gen_time: str
    tsa: str
    serial: int
    verified: bool  # checked against a --tsa-cert
    already: bool
    log_size: int  # the log's size when it was stamped: entries beyond `size` are unbounded

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "file": str(self.path),
            "time": self.gen_time,
            "tsa": self.tsa,
            "serial": self.serial,
            "verified": self.verified,
            "already": self.already,
            "log_size": self.log_size,
        }


def post_request(url: str, request: bytes) -> bytes:
    """POST a DER TimeStampReq to `url`; the answer's bytes (at most MAX_TOKEN).

    Raises StorageError naming the URL when the TSA cannot be reached or answers with
    an HTTP error, UsageError for a URL that is not http(s).
    """
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--tsa {url!r} is not an http:// or https:// URL")
    req = urllib.request.Request(
        url,
        data=request,
        method="POST",
        headers={"Content-Type": "application/timestamp-query"},
    )
    try:
        with urllib.request.urlopen(req, timeout=TSA_TIMEOUT) as resp:
            data: bytes = resp.read(MAX_TOKEN + 1)
    except urllib.error.HTTPError as exc:
        raise StorageError(
            f"the TSA {url} answered HTTP {exc.code} ({exc.reason})",
            hint="check the URL: it must be the TSA's RFC 3161 endpoint",
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StorageError(
            f"cannot reach the TSA {url}: {reason}",
            hint="check the URL and the network; nothing was stored",
        ) from None
    return data


def timestamp_checkpoint(
    c: Custody,
    tsa_url: str,
    *,
    tsa_cert: bytes | None = None,
    post: Post = post_request,
) -> Stamped:
    """Obtain and keep an RFC 3161 token over the latest stored checkpoint.

    If it has one already, returns it (`already`).  `tsa_cert` (PEM or DER: the TSA's
    certificate, with the root of its chain unless it is self-signed) makes the
    token's signature chain checked before it is stored.

    Raises UsageError (no checkpoint yet), StorageError (the TSA
    cannot be reached; the store cannot be written), FormatError or VerificationError
    (a bad answer: not a response, refused, another nonce or imprint, a signature that
    does not verify).
    """
    row = c.store.checkpoint()
    if row is None:
        raise UsageError(
            "the log has no checkpoint to timestamp yet",
            hint="sign one with 'custody log checkpoint' first",
        )
    note = bytes(row.note)
    body = checkpoint_body(note)
    size = Checkpoint.parse(Note.parse(note).text).size
    store = TimestampStore(c.home.root)
    trusted = [] if tsa_cert is None else load_certificates(tsa_cert, "--tsa-cert")
    for old in store.tokens(size, body):
        token = Token.parse(old, str(store.path(size, body)))
        verified = False
        if trusted:
            verify_token(token, body, size, trusted, str(store.path(size, body)))
            verified = True
        return Stamped(
            size,
            store.path(size, body),
            format_time(token.gen_time),
            token.tsa_name(),
            token.serial,
            verified,
            already=True,
            log_size=c.log.size(),
        )

    # rfc3161-client draws the random 64-bit nonce (from the OS's CSPRNG); it is read
    # back from the request and checked in the answer.
    request = (
        rfc3161_client.TimestampRequestBuilder()
        .data(body)
        .hash_algorithm(rfc3161_client.HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    if request.nonce is None:  # pragma: no cover - asked for above
        raise UsageError("the timestamp request carries no nonce")
    nonce = int(request.nonce)
    answer = post(tsa_url, request.as_bytes())
    token = parse_response(answer, f"the TSA {tsa_url}")
    if token.nonce != nonce:
        raise VerificationError(
            f"the TSA {tsa_url} answered with another nonce ({token.nonce}, asked {nonce}): "
            "the answer is not to this request",
            hint="a replayed or misrouted answer; nothing was stored",
        )
    where = f"the token of the TSA {tsa_url}"
    if token.imprint != hashlib.sha256(body).digest():
        raise VerificationError(
            f"{where} stamps another message imprint than checkpoint {size}'s body",
            hint="nothing was stored",
        )
    verified = False
    if trusted:
        verify_token(token, body, size, trusted, where)
        verified = True
    if len(token.der) > MAX_TOKEN:  # pragma: no cover - bounded by parse_response
        raise InputError(f"{where} is too large")
    path = store.add(size, body, token.der)
    crash_point("timestamp.token-stored")
    return Stamped(
        size,
        path,
        format_time(token.gen_time),
        token.tsa_name(),
        token.serial,
        verified,
        already=False,
        log_size=c.log.size(),
    )
