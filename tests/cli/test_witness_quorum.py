"""verify-bundle --witness VKEY... --quorum N: require cosignatures by witnesses you trust.

The verdict lists every policy (witnesses, published, timestamps) as met, not met or
not checked, so counsel sees what a VERIFIED did and did not cover.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import PASSPHRASE, CliRunnerNS

from custody.app.home import Custody
from custody.model.entry import Entry, sign_entry


@pytest.fixture
def bundle(cli: type[CliRunnerNS], home: Path, tmp_path: Path) -> Path:
    """A bundle whose checkpoint the clerk (court) cosigned and counsel (defence) did not."""
    cli.run("key", "new", "clerk", "--role", "court")
    cli.run("key", "new", "counsel", "--role", "defence")
    cli.run("case", "new", "C-9")
    with Custody.open(home) as c:
        entry = Entry.build(
            "consent",
            datetime.now(UTC),
            [
                ("action", "grant"),
                ("owner", "alice"),
                ("case", "C-9"),
                ("purpose", "p"),
                ("onward", "any"),
            ],
        )
        c.log.append(sign_entry(entry, [c.keystore.unlock("alice", lambda _p: PASSPHRASE)]))
    cp = tmp_path / "cp"
    cli.run("log", "checkpoint", "--out", str(cp))
    cosigned = tmp_path / "cosigned"
    cli.run("witness", "cosign", str(cp), "--key", "clerk", "--out", str(cosigned))
    cli.run("log", "add-cosignature", str(cosigned))
    out = tmp_path / "bundle"
    cli.run("export", "C-9", "--to", str(out))
    return out


def verify(cli: type[CliRunnerNS], bundle: Path, *args: str, code: int = 0) -> str:
    log_key = cli.run("log", "key").stdout.strip()
    argv = ("verify-bundle", str(bundle), "--trust", log_key, "--seen", str(bundle.parent / "s"))
    r = cli.run(*argv, *args) if code == 0 else cli.fail(code, *argv, *args)
    return r.stdout + r.stderr


def key(cli: type[CliRunnerNS], name: str) -> str:
    return cli.run("key", "show", name).stdout.strip()


def test_without_witness_keys_the_policy_is_not_checked(
    cli: type[CliRunnerNS], bundle: Path
) -> None:
    out = verify(cli, bundle)
    assert "witnesses: not checked: the checkpoint carries 1 cosignature;" in out
    assert "published: not checked: give --published SOURCE" in out
    report = json.loads(verify(cli, bundle, "--json"))
    policies = {p["name"]: p for p in report["policies"]}
    assert policies["witnesses"]["checked"] is False
    assert policies["published"]["checked"] is False


def test_a_witness_that_cosigned_meets_the_policy(cli: type[CliRunnerNS], bundle: Path) -> None:
    out = verify(cli, bundle, "--witness", key(cli, "clerk"))
    assert "witnesses: met: 1 of the 1 witnesses given with --witness cosigned" in out
    assert out.rstrip().endswith("VERIFIED")


def test_the_key_export_file_is_accepted(
    cli: type[CliRunnerNS], bundle: Path, tmp_path: Path
) -> None:
    exported = tmp_path / "clerk.key"
    exported.write_bytes(cli.run("key", "export", "clerk").stdout_bytes)
    out = verify(cli, bundle, "--witness", str(exported))
    assert "witnesses: met" in out


def test_a_missing_cosignature_fails_by_default(cli: type[CliRunnerNS], bundle: Path) -> None:
    out = verify(
        cli, bundle, "--witness", key(cli, "clerk"), "--witness", key(cli, "counsel"), code=1
    )
    assert "witnesses: NOT MET: 1 of the 2 witnesses" in out
    assert "no valid cosignature by counsel" in out
    assert "only 1 of the 2 witness cosignatures required by --quorum" in out
    assert "NOT VERIFIED" in out


def test_a_quorum_of_one_of_two_is_met(cli: type[CliRunnerNS], bundle: Path) -> None:
    out = verify(
        cli,
        bundle,
        "--witness",
        key(cli, "clerk"),
        "--witness",
        key(cli, "counsel"),
        "--quorum",
        "1",
    )
    assert "witnesses: met: 1 of the 2 witnesses" in out and "1 required" in out


def test_a_quorum_larger_than_the_witnesses_is_a_usage_error(
    cli: type[CliRunnerNS], bundle: Path
) -> None:
    out = verify(cli, bundle, "--witness", key(cli, "clerk"), "--quorum", "2", code=2)
    assert "--quorum 2 is more than the 1 witness key given with --witness" in out
    out = verify(cli, bundle, "--quorum", "1", code=2)
    assert "--quorum needs the witnesses' keys" in out


def test_a_bad_witness_key_names_the_option(cli: type[CliRunnerNS], bundle: Path) -> None:
    out = verify(cli, bundle, "--witness", "not-a-key", code=2)
    assert "--witness 'not-a-key' is not a verifier key" in out
