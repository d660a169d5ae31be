"""Fuzzing the RFC 3161 parsing path (docs/spec/timestamp.md): a token from a bundle,
a TSA's answer, a --tsa-cert file.  Each returns a value or raises CustodyError.

The seeds are genuine: a token and a response made by `openssl ts -reply` (tests/tsakit.py)
over a checkpoint body, and the TSA's certificates; where a token parses, it is verified
too, since that is where custody takes the bytes next.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fuzzkit import check, fuzz_settings, inputs
from hypothesis import given
from hypothesis import strategies as st
from tsakit import make_tsa, reply

from custody.bundle.timestamps import Token, load_certificates, parse_response, verify_token

BODY = b"test.example/custody\n6\nu0ftDG0rX5C7mp5H+5XwlfrQbB6y3lf5HSWhTKMNJ0k=\n"


@dataclass(frozen=True)
class Seeds:
    response: bytes
    token: bytes
    ca: bytes
    tsa: bytes


@functools.cache
def seeds() -> Seeds:
    import rfc3161_client

    files = make_tsa(Path(tempfile.mkdtemp(prefix="custody-fuzz-tsa-")))
    req = (
        rfc3161_client.TimestampRequestBuilder()
        .data(BODY)
        .hash_algorithm(rfc3161_client.HashAlgorithm.SHA256)
        .build()
    )
    response = reply(files, req.as_bytes())
    token = parse_response(response, "the test TSA").der
    return Seeds(response, token, files.ca_cert.read_bytes(), files.tsa_cert.read_bytes())


def _seeds(*names: str) -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: inputs([getattr(seeds(), n) for n in names]))


@fuzz_settings()
@given(_seeds("token", "response"))
def test_token_parse_and_verify(data: bytes) -> None:
    trusted = load_certificates(seeds().ca, "ca")

    def parse() -> None:
        token = Token.parse(data, "timestamps/6.tst")
        token.tsa_name()
        verify_token(token, BODY, 6, trusted, "timestamps/6.tst")

    check(parse)


@fuzz_settings()
@given(_seeds("response", "token"))
def test_tsa_response(data: bytes) -> None:
    def parse() -> None:
        token = parse_response(data, "the TSA")
        token.tsa_name()
        token.certificates()

    check(parse)


@fuzz_settings()
@given(_seeds("ca", "tsa"))
def test_tsa_certificate_file(data: bytes) -> None:
    check(lambda: load_certificates(data, "--tsa-cert"))


def test_the_genuine_token_verifies() -> None:
    s = seeds()
    stamp = verify_token(Token.parse(s.token), BODY, 6, load_certificates(s.ca, "ca"), "t")
    assert stamp.tsa == "CN=Custody Test TSA"
