"""RFC 3161 trusted time: `custody log timestamp` against a local TSA, bundles with
tokens, and `verify-bundle --tsa-cert` bounding when each entry was appended.

The TSA is real: `openssl ts -reply` behind a small HTTP handler (tests/tsakit.py), and
the stored tokens are checked with `openssl ts -verify` as well as by custody.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PASSPHRASE, CliRunnerNS, invoke
from tsakit import Tsa, make_tsa, tsa, verify_with_openssl  # noqa: F401

from custody.app.home import Custody
from custody.bundle.timestamps import Token
from custody.model.entry import Entry, format_time, sign_entry
from custody.tlog.note import Note

CASE = "C-1"


@pytest.fixture(autouse=True)
def _no_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exports without the court report (rendering it takes a second; tested elsewhere)."""
    import custody.app.export

    monkeypatch.setattr(custody.app.export, "_find_reports", lambda *_a, **_k: [])


def consent(home: Path, when: datetime, purpose: str, out: Path) -> Path:
    """A consent by alice (the owner) for case C-1, signed in her home with claimed time
    `when`, written to `out` for `custody log import`."""
    with Custody.open(home) as c:
        entry = Entry.build(
            "consent",
            when,
            [
                ("action", "grant"),
                ("owner", "alice"),
                ("case", CASE),
                ("purpose", purpose),
                ("onward", "any"),
            ],
        )
        out.write_bytes(sign_entry(entry, [c.keystore.unlock("alice", lambda _p: PASSPHRASE)]))
    return out


def stamp(cli: type[CliRunnerNS], tsa: Tsa) -> dict[str, object]:  # noqa: F811
    cli.run("log", "checkpoint")
    r = cli.run(
        "log", "timestamp", "--tsa", tsa.url, "--tsa-cert", str(tsa.files.ca_cert), "--json"
    )
    out: dict[str, object] = json.loads(r.stdout)
    return out


def vkey(cli: type[CliRunnerNS]) -> str:
    return cli.run("log", "key").stdout.strip()


def test_log_timestamp_stores_a_token_openssl_verifies(
    cli: type[CliRunnerNS],
    home: Path,
    tsa: Tsa,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli.run("log", "checkpoint")
    # The TSA's own certificate (pinned) and the root of its chain, in one PEM file.
    both = tmp_path / "tsa-and-root.pem"
    both.write_bytes(tsa.files.tsa_cert.read_bytes() + tsa.files.ca_cert.read_bytes())
    r = cli.run("log", "timestamp", "--tsa", tsa.url, "--tsa-cert", str(both))
    with Custody.open(home) as c:
        row = c.store.checkpoint()
        assert row is not None
        size, note = int(row.size), bytes(row.note)
    assert f"timestamped checkpoint {size} at " in r.stdout
    assert "by CN=Custody Test TSA (verified with --tsa-cert)" in r.stdout
    files = list((home / "timestamps" / str(size)).glob("*.tst"))
    assert len(files) == 1
    body = Note.parse(note).text.encode()
    # The token is over the checkpoint's body (no signature lines); openssl agrees.
    assert "Verification: OK" in verify_with_openssl(tsa.files, files[0], body, tmp_path)
    with pytest.raises(RuntimeError):
        verify_with_openssl(tsa.files, files[0], note, tmp_path)
    # Once stamped, a checkpoint is not stamped again.
    again = cli.run("log", "timestamp", "--tsa", tsa.url, "--json")
    assert json.loads(again.stdout)["already"] is True
    assert len(list((home / "timestamps" / str(size)).glob("*.tst"))) == 1
    # A log that grew past its latest checkpoint is stamped, with a warning.
    cli.run("key", "new", "carol", "--role", "lab")
    cli.run("log", "checkpoint")
    cli.run("key", "new", "dave", "--role", "lab")
    grown = invoke("log", "timestamp", "--tsa", tsa.url)
    assert grown.code == 0, grown
    assert "custody: warning: the log has 1 entries beyond checkpoint" in grown.stderr


def test_log_timestamp_errors(
    cli: type[CliRunnerNS],
    home: Path,
    tsa: Tsa,  # noqa: F811
    tmp_path: Path,
) -> None:
    r = cli.fail(2, "log", "timestamp", "--tsa", tsa.url)
    assert "the log has no checkpoint to timestamp yet" in r.stderr
    cli.run("log", "checkpoint")
    r = cli.fail(3, "log", "timestamp", "--tsa", "http://127.0.0.1:9/tsa")
    assert "cannot reach the TSA http://127.0.0.1:9/tsa" in r.stderr
    r = cli.fail(2, "log", "timestamp", "--tsa", "ftp://example.org/tsa")
    assert "is not an http:// or https:// URL" in r.stderr
    other = make_tsa(tmp_path / "other", "Other TSA")
    r = cli.fail(1, "log", "timestamp", "--tsa", tsa.url, "--tsa-cert", str(other.ca_cert))
    assert "does not chain to the --tsa-cert given" in r.stderr
    try:
        tsa.server.mode[0] = "garbage"
        r = cli.fail(3, "log", "timestamp", "--tsa", tsa.url)
        assert f"the answer of the TSA {tsa.url} is not an RFC 3161 timestamp response" in r.stderr
        tsa.server.mode[0] = "rejection"
        r = cli.fail(1, "log", "timestamp", "--tsa", tsa.url)
        assert f"the TSA {tsa.url} refused the request: status rejection" in r.stderr
    finally:
        tsa.server.mode[0] = "ok"
    assert not (home / "timestamps").exists() or not list((home / "timestamps").rglob("*.tst"))


def _bundle(cli: type[CliRunnerNS], tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    cli.run("export", CASE, "--to", str(out))
    return out


def test_a_bundle_with_timestamps_reports_each_entrys_interval(
    cli: type[CliRunnerNS],
    home: Path,
    tsa: Tsa,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli.run("case", "new", CASE)
    now = datetime.now(UTC).replace(microsecond=0)
    cli.run("log", "import", str(consent(home, now, "first", tmp_path / "c1.entry")))
    first = stamp(cli, tsa)
    cli.run("log", "import", str(consent(home, now, "second", tmp_path / "c2.entry")))
    second = stamp(cli, tsa)
    n1, n2 = int(first["size"]), int(second["size"])  # type: ignore[call-overload]
    bundle = _bundle(cli, tmp_path, "bundle")
    assert (bundle / f"timestamps/{n1}.tst").is_file()
    assert (bundle / f"timestamps/{n2}.tst").is_file()
    assert (bundle / f"consistency/{n1}.json").is_file()
    key = vkey(cli)
    # Without --tsa-cert: verified, the timestamps not checked (and said so).
    r = cli.run("verify-bundle", str(bundle), "--trust", key)
    assert "timestamps: not checked: the bundle holds 2 timestamp tokens" in r.stdout
    # With it: each entry's interval, in the verdict and in the JSON.
    r = cli.run("verify-bundle", str(bundle), "--trust", key, "--tsa-cert", str(tsa.files.ca_cert))
    assert (
        "timestamps: met: 2 RFC 3161 tokens by CN=Custody Test TSA verified; every entry's "
        "claimed time within its interval" in r.stdout
    )
    assert f"appended before {first['time']} (checkpoint {n1})" in r.stdout
    assert (
        f"appended after {first['time']} (checkpoint {n1}) and before {second['time']} "
        f"(checkpoint {n2})" in r.stdout
    )
    j = json.loads(
        cli.run(
            "verify-bundle",
            str(bundle),
            "--trust",
            key,
            "--json",
            "--tsa-cert",
            str(tsa.files.ca_cert),
        ).stdout
    )
    times = {t["index"]: t for t in j["times"]}
    second_consent = n1  # imported after the first timestamp: the entry at index n1
    assert times[second_consent]["status"] == "within"
    assert times[second_consent]["interval"]["after"]["size"] == n1
    assert times[second_consent]["interval"]["before"]["size"] == n2
    assert [t["size"] for t in j["timestamps"]] == [n1, n2]
    # The TSA's own certificate with its root also verifies (the signer is pinned).
    cli.run(
        "verify-bundle",
        str(bundle),
        "--trust",
        key,
        "--tsa-cert",
        str(tsa.files.tsa_cert),
        "--tsa-cert",
        str(tsa.files.ca_cert),
    )


def test_a_backdated_consent_fails_naming_the_entry(
    cli: type[CliRunnerNS],
    home: Path,
    tsa: Tsa,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli.run("case", "new", CASE)
    stamped = stamp(cli, tsa)
    taken = datetime.strptime(str(stamped["time"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    # alice signs a consent claiming two days ago, and the log imports it only now.
    old = taken - timedelta(days=2, hours=1)
    cli.run("log", "import", str(consent(home, old, "backdated", tmp_path / "old.entry")))
    with Custody.open(home) as c:
        index = c.log.size() - 1
    bundle = _bundle(cli, tmp_path, "bundle")
    key = vkey(cli)
    r = cli.fail(
        1, "verify-bundle", str(bundle), "--trust", key, "--tsa-cert", str(tsa.files.ca_cert)
    )
    want = (
        f"log entry {index} (consent by alice) claims {format_time(old)}, but it was appended "
        f"after {stamped['time']} (timestamp over checkpoint {stamped['size']}): backdated by "
        "2 days 1 h"
    )
    assert want in r.stderr
    assert "timestamps: NOT MET" in r.stdout
    # A tolerance larger than the gap lets it pass; the interval is still reported.
    ok = cli.run(
        "verify-bundle",
        str(bundle),
        "--trust",
        key,
        "--time-tolerance",
        "200000",
        "--tsa-cert",
        str(tsa.files.ca_cert),
    )
    assert f"appended after {stamped['time']}" in ok.stdout
    # Without --tsa-cert, nothing is claimed about time.
    cli.run("verify-bundle", str(bundle), "--trust", key)


def test_a_wrong_tsa_cert_or_a_swapped_token_fails(
    cli: type[CliRunnerNS],
    home: Path,
    tsa: Tsa,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli.run("case", "new", CASE)
    now = datetime.now(UTC).replace(microsecond=0)
    cli.run("log", "import", str(consent(home, now, "first", tmp_path / "c1.entry")))
    n1 = int(stamp(cli, tsa)["size"])  # type: ignore[call-overload]
    cli.run("log", "import", str(consent(home, now, "second", tmp_path / "c2.entry")))
    n2 = int(stamp(cli, tsa)["size"])  # type: ignore[call-overload]
    bundle = _bundle(cli, tmp_path, "bundle")
    key = vkey(cli)
    other = make_tsa(tmp_path / "other", "Other TSA")
    r = cli.fail(1, "verify-bundle", str(bundle), "--trust", key, "--tsa-cert", str(other.ca_cert))
    assert f"timestamps/{n1}.tst does not verify with the TSA certificate given" in r.stderr
    r = cli.fail(
        1, "verify-bundle", str(bundle), "--trust", key, "--tsa-cert", str(tsa.files.tsa_cert)
    )
    assert "is not self-signed" in r.stderr
    # Another TSA's certificate pinned, with the right root: the signer is not it.
    r = cli.fail(
        1,
        "verify-bundle",
        str(bundle),
        "--trust",
        key,
        "--tsa-cert",
        str(other.tsa_cert),
        "--tsa-cert",
        str(tsa.files.ca_cert),
    )
    assert "was signed by CN=Custody Test TSA, not by the TSA certificate given" in r.stderr
    # A token for another checkpoint: swap the two tokens' bytes (and the manifest's
    # digests would catch the edit too: the token check names the imprint).
    swapped = tmp_path / "swapped"
    shutil.copytree(bundle, swapped)
    a, b = swapped / f"timestamps/{n1}.tst", swapped / f"timestamps/{n2}.tst"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    r = cli.fail(
        1,
        "verify-bundle",
        str(swapped),
        "--trust",
        key,
        "--tsa-cert",
        str(tsa.files.ca_cert),
        "--json",
    )
    j = json.loads(r.stdout)
    messages = [f["message"] for f in j["failures"] if f["check"] == "timestamps"]
    assert any(f"is not a timestamp of checkpoint {n1}" in m for m in messages), messages
    assert Token.parse(da).gen_time <= Token.parse(db).gen_time


def test_a_bundle_without_tokens_fails_when_time_is_demanded(
    cli: type[CliRunnerNS],
    home: Path,
    tsa: Tsa,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli.run("case", "new", CASE)
    now = datetime.now(UTC).replace(microsecond=0)
    cli.run("log", "import", str(consent(home, now, "first", tmp_path / "c1.entry")))
    bundle = _bundle(cli, tmp_path, "bundle")
    r = cli.fail(
        1, "verify-bundle", str(bundle), "--trust", vkey(cli), "--tsa-cert", str(tsa.files.ca_cert)
    )
    assert "the bundle holds no RFC 3161 timestamp token" in r.stderr
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    r = cli.fail(1, "verify-bundle", str(bundle), "--trust", vkey(cli), "--tsa-cert", str(bad))
    assert "is not an X.509 certificate" in r.stderr
