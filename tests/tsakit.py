"""A local RFC 3161 time-stamping authority for tests: openssl behind a tiny HTTP server.

`make_tsa(folder)` makes a CA (self-signed root) and a TSA certificate it issues
(extendedKeyUsage critical timeStamping, as RFC 3161 §2.3 requires), and an openssl.cnf
whose `[tsa]` section `openssl ts -reply` reads.  `TsaServer` answers each POST of a
TimeStampReq (application/timestamp-query) by piping it through the real
`openssl ts -reply` binary and returning the TimeStampResp
(application/timestamp-reply).  Nothing is mocked: the tokens are what openssl makes,
and the tests verify them with `openssl ts -verify` as well as with custody.

`tsa` is a session fixture (one CA and one server for the whole run); test modules
import it (`from tsakit import tsa  # noqa: F401`).
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused

[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_tsa ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.55555.1
other_policies = 1.3.6.1.4.1.55555.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _openssl(*args: str, cwd: Path, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, input=stdin, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr.decode()}")
    return done.stdout


@dataclass(frozen=True)
class TsaFiles:
    """The files of one test TSA."""

    dir: Path
    cnf: Path
    ca_cert: Path  # the root of the chain (PEM)
    tsa_cert: Path  # the TSA's own certificate (PEM)
    subject: str  # the TSA certificate's subject, as openssl prints it (CN=...)


def make_tsa(folder: Path, name: str = "Custody Test TSA") -> TsaFiles:
    """A CA and a TSA certificate it issued, and the openssl.cnf of `openssl ts -reply`."""
    folder.mkdir(parents=True, exist_ok=True)
    cnf = folder / "openssl.cnf"
    cnf.write_text(_CNF.format(dir=folder))
    (folder / "serial").write_text("01\n")
    run = lambda *a: _openssl(*a, cwd=folder)  # noqa: E731
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run(
        "req",
        "-new",
        "-x509",
        "-config",
        str(cnf),
        "-extensions",
        "v3_ca",
        "-key",
        "ca.key",
        "-subj",
        f"/CN={name} Root",
        "-days",
        "3650",
        "-out",
        "ca.pem",
    )
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "tsa.key")
    run(
        "req",
        "-new",
        "-config",
        str(cnf),
        "-key",
        "tsa.key",
        "-subj",
        f"/CN={name}",
        "-out",
        "tsa.csr",
    )
    run(
        "x509",
        "-req",
        "-in",
        "tsa.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        str(cnf),
        "-extensions",
        "v3_tsa",
        "-days",
        "3650",
        "-out",
        "tsa.pem",
    )
    (folder / "chain.pem").write_bytes((folder / "ca.pem").read_bytes())
    return TsaFiles(folder, cnf, folder / "ca.pem", folder / "tsa.pem", f"CN={name}")


def reply(files: TsaFiles, request: bytes) -> bytes:
    """`openssl ts -reply` on one DER TimeStampReq: the DER TimeStampResp."""
    return _openssl(
        "ts",
        "-reply",
        "-config",
        str(files.cnf),
        "-queryfile",
        "/dev/stdin",
        "-out",
        "/dev/stdout",
        cwd=files.dir,
        stdin=request,
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    files: TsaFiles
    lock: threading.Lock
    mode: list[str]  # "ok" | "garbage" | "rejection": what the server answers

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.headers.get("Content-Type") != "application/timestamp-query":
            self.send_error(415, "expected application/timestamp-query")
            return
        mode = self.mode[0]
        if mode == "garbage":
            answer = b"this is not a timestamp response"
        elif mode == "rejection":
            # PKIStatusInfo { status rejection(2), failInfo badAlg }: no token.
            answer = bytes.fromhex("3009300702010203020780")
        else:
            with self.lock:  # openssl increments the serial file
                try:
                    answer = reply(self.files, body)
                except RuntimeError as exc:
                    self.send_error(400, str(exc)[:200])
                    return
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


class TsaServer:
    """`openssl ts -reply` behind http.server on a loopback port, in a thread."""

    def __init__(self, files: TsaFiles) -> None:
        self.files = files
        self.mode = ["ok"]
        handler = type(
            "Handler", (_Handler,), {"files": files, "lock": threading.Lock(), "mode": self.mode}
        )
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> TsaServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@dataclass(frozen=True)
class Tsa:
    url: str
    files: TsaFiles
    server: TsaServer


def verify_with_openssl(files: TsaFiles, token: Path, data: bytes, workdir: Path) -> str:
    """`openssl ts -verify` of a DER TimeStampToken over `data`; its output (raises if not OK)."""
    src = workdir / "stamped-data"
    src.write_bytes(data)
    out = _openssl(
        "ts",
        "-verify",
        "-token_in",
        "-in",
        str(token),
        "-data",
        str(src),
        "-CAfile",
        str(files.ca_cert),
        cwd=workdir,
    )
    return out.decode()


@pytest.fixture(scope="session")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tsa]:
    """One local TSA for the session: its URL, certificates and server."""
    files = make_tsa(tmp_path_factory.mktemp("tsa"))
    with TsaServer(files) as server:
        yield Tsa(server.url, files, server)


_SHARED: list[TsaServer] = []


def shared_tsa_url() -> str:
    """The URL of one TSA for this process, started on first use (for tests that cannot
    take a fixture, such as the crash-point scenarios); it stops when the process ends."""
    if not _SHARED:
        import tempfile

        server = TsaServer(make_tsa(Path(tempfile.mkdtemp(prefix="custody-test-tsa-"))))
        server.__enter__()
        _SHARED.append(server)
    return _SHARED[0].url
