"""`custody witness serve`: a C2SP tlog-witness HTTP server over a custody home.

The server answers ``POST /add-checkpoint`` (c2sp.org/tlog-witness) with the
update rule of `custody witness cosign`: `custody.app.witness.add_checkpoint`
verifies the log's signature, checks the protocol's conditions and that the
checkpoint extends the one cosigned last, cosigns, and saves the state
durably, per origin, in the home's `WitnessStore` (whose per-origin lock makes
concurrent requests for one log take turns) before the response is sent.
``GET /<sha256(origin), hex>/checkpoint`` returns the checkpoint cosigned last
(the spec's monitoring retrieval).  docs/spec/witness-http.md.

Bounded: request bodies of at most `MAX_REQUEST` bytes (413 beyond, 411
without a length), a socket timeout per connection.  Each request is logged in
one line to `log` (stderr in the CLI).  The clock is the caller's: `clock()`
gives the POSIX time each cosignature claims.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from custody.app.witness import UnknownLogError, WitnessStore, add_checkpoint
from custody.errors import (
    CustodyError,
    FormatError,
    StorageError,
    UsageError,
    VerificationError,
)
from custody.tlog.note import Signer, VerifierKey
from custody.tlog.witness import ForkError, RollbackError
from custody.tlog.witnessproto import (
    ADD_CHECKPOINT_PATH,
    MAX_REQUEST,
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    ProtocolError,
    SizeConflictError,
    encode_cosignatures,
    encode_size,
)

__all__ = ["REQUEST_TIMEOUT", "WitnessServer", "log_keys", "parse_listen", "status_of"]

REQUEST_TIMEOUT = 30.0  # seconds a connection may take to send its request
_TEXT = "text/plain; charset=utf-8"
_CHECKPOINT_PATH = re.compile(r"/([0-9a-f]{64})/checkpoint")


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`); UsageError naming --listen otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(
            f"--listen {value!r} is not HOST:PORT", hint="e.g. --listen 127.0.0.1:8080"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def log_keys(keys: Iterable[VerifierKey]) -> dict[str, VerifierKey]:
    """The logs a witness witnesses, by origin (the log key's name); one key per origin.

    Raises UsageError for a key of another type than Ed25519 or two keys of one origin.
    """
    out: dict[str, VerifierKey] = {}
    for key in keys:
        if key.alg != 0x01:
            raise UsageError(
                f"--log {key.name}: a log's verifier key is Ed25519 (type 0x01), not "
                f"{key.alg:#04x}",
                hint="pass the key 'custody log key' prints in the log's home",
            )
        if key.name in out and out[key.name] != key:
            raise UsageError(
                f"--log: two keys for the log {key.name!r}",
                hint="a witness pins one key per log origin",
            )
        out[key.name] = key
    return out


def status_of(exc: CustodyError) -> int:
    """The HTTP status c2sp.org/tlog-witness gives a refusal of a parsed request
    (docs/spec/witness-http.md); a malformed body is 400 before this is asked.

    500 for what is the witness's own trouble: its state unreadable or unsaved.
    """
    if isinstance(exc, ProtocolError):
        return exc.status
    if isinstance(exc, UnknownLogError):
        return 404
    if isinstance(exc, ForkError | RollbackError):
        return 422
    if isinstance(exc, VerificationError):
        return 403
    return 500


class _ServerV6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = _TEXT
    detail: str = ""


class WitnessServer:
    """A running witness: bind with `WitnessServer(...)`, then `serve_forever()` or
    `start()` (a thread), and `stop()`.

    Raises StorageError when the address cannot be bound.
    """

    def __init__(
        self,
        store: WitnessStore,
        witness: Signer,
        logs: dict[str, VerifierKey],
        *,
        host: str,
        port: int,
        clock: Callable[[], int],
        log: TextIO | None = None,
        stamp: Callable[[], str] | None = None,
    ) -> None:
        self.store = store
        self.witness = witness
        self.logs = dict(logs)
        self.clock = clock
        self._log = log
        self._stamp = stamp
        self._log_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        handler = _handler_for(self)
        server_class = _ServerV6 if ":" in host else http.server.ThreadingHTTPServer
        try:
            self.httpd = server_class((host, port), handler)
        except OSError as exc:
            raise StorageError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="is another process using the port? port 0 picks a free one",
            ) from exc
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        """The witness's prefix URL (http://host:port), as clients pass it to --url."""
        address = self.httpd.server_address
        host = address[0] if isinstance(address[0], str) else address[0].decode()
        port = address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        """Serve in a background thread (tests, and the CLI, which waits for a signal)."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, let the request in progress finish, close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def log_line(self, line: str) -> None:
        if self._log is None:
            return
        prefix = f"{self._stamp()} " if self._stamp is not None else ""
        with self._log_lock:
            self._log.write(prefix + line + "\n")
            self._log.flush()

    # -- the endpoints ---------------------------------------------------------------------

    def add_checkpoint(self, body: bytes) -> _Reply:
        try:
            request = AddCheckpoint.parse(body)
            cp = request.parsed
        except FormatError as exc:
            return _Reply(400, (exc.message + "\n").encode("utf-8"), detail=exc.message)
        try:
            sig, state = add_checkpoint(
                self.store, request, self.witness, self.logs, timestamp=self.clock()
            )
        except SizeConflictError as exc:
            return _Reply(
                409,
                encode_size(exc.size),
                SIZE_CONTENT_TYPE,
                f"{cp.origin} old {exc.old}, cosigned {exc.size}",
            )
        except CustodyError as exc:
            status = status_of(exc)
            return _Reply(
                status, (exc.message + "\n").encode("utf-8"), detail=f"{cp.origin}: {exc.message}"
            )
        except Exception as exc:  # never a traceback to the client, nor a dropped connection
            what = f"internal error: {type(exc).__name__}: {exc}"
            return _Reply(500, b"internal error\n", detail=what)
        return _Reply(
            200,
            encode_cosignatures([sig]),
            detail=f"{cp.origin} old {request.old_size} size {state.size}: cosigned",
        )

    def checkpoint(self, origin_hash: str) -> _Reply:
        for origin in self.logs:
            if hashlib.sha256(origin.encode("utf-8")).hexdigest() == origin_hash:
                try:
                    state = self.store.load(origin)
                except CustodyError as exc:
                    return _Reply(500, (exc.message + "\n").encode("utf-8"), detail=exc.message)
                if state is not None:
                    return _Reply(200, state.checkpoint, detail=f"{origin} size {state.size}")
        return _Reply(404, b"no checkpoint cosigned for that log\n", detail="not cosigned")


def _handler_for(server: WitnessServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends
        timeout = REQUEST_TIMEOUT
        server_version = "custody-witness"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request is written by _send instead

        def _send(self, reply: _Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            detail = f" {reply.detail}" if reply.detail else ""
            server.log_line(
                f"{self.client_address[0]} {self.command} {self.path} {reply.status}{detail}"
            )

        def do_POST(self) -> None:
            if self.path != ADD_CHECKPOINT_PATH:
                self._send(_Reply(404, b"not found\n", detail="no such endpoint"))
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                self._send(_Reply(411, b"a Content-Length is required\n", detail="no length"))
                return
            if int(length) > MAX_REQUEST:
                self.close_connection = True
                self._send(
                    _Reply(
                        413,
                        f"the body may be at most {MAX_REQUEST} bytes\n".encode(),
                        detail=f"{length} bytes",
                    )
                )
                return
            body = self.rfile.read(int(length))
            self._send(server.add_checkpoint(body))

        def do_GET(self) -> None:
            m = _CHECKPOINT_PATH.fullmatch(self.path)
            if m is None:
                self._send(_Reply(404, b"not found\n", detail="no such endpoint"))
                return
            self._send(server.checkpoint(m.group(1)))

    return Handler
