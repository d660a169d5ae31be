"""An agency on one shared log (issue 10, parts 1 and 5): personal homes, one database,
one shared evidence-store folder.

The log operator creates the log with `custody init --db URL --vault DIR`; investigators
attach their own homes with `custody join --db URL`.  Here the database is one SQLite
file that every home names (the one-machine form of the agency); `agency_homes(url)`
takes any database URL, so the same story runs on PostgreSQL too.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
from agencykit import (
    CASE,
    Home,
    agency_homes,
    checkpoint_signer,
    ingest_args,
    ingest_process,
    three_home_story,
)
from agencykit import ingest_and_offer as _ingest_and_offer


@pytest.fixture(autouse=True)
def _no_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CUSTODY_VAULT", "CUSTODY_PARTY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def agency(tmp_path: Path) -> dict[str, Home]:
    return agency_homes(f"sqlite:///{tmp_path / 'db' / 'custody.db'}", tmp_path)


def _mkdb_dir(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir(exist_ok=True)


@pytest.fixture(autouse=True)
def _db_folder(tmp_path: Path) -> None:
    _mkdb_dir(tmp_path)


def test_ingest_handoff_open_across_three_homes(agency: dict[str, Home], tmp_path: Path) -> None:
    three_home_story(agency, tmp_path)


def test_accept_without_a_checkpoint_is_pending_then_rerun_writes_the_receipt(
    agency: dict[str, Home], tmp_path: Path
) -> None:
    alice, bob, operator = agency["alice"], agency["bob"], agency["operator"]
    _clip, offer = _ingest_and_offer(alice, tmp_path)
    r = bob.invoke("handoff", "accept", str(offer), "--by", "bob", "--wait", "0")
    assert r.code == 75, r
    assert "signed by alice and bob" in r.stdout, r
    assert r.stderr.startswith("custody: pending: ") and "Traceback" not in r.stderr, r
    assert not offer.with_name("offer.receipt").exists()
    operator.run("log", "checkpoint")
    r = bob.run("handoff", "accept", str(offer), "--by", "bob", "--wait", "0")
    assert "already accepted" in r.stdout, r
    assert offer.with_name("offer.receipt").is_file()


def test_default_party_from_custody_toml_and_environment(
    agency: dict[str, Home], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, operator = agency["alice"], agency["bob"], agency["operator"]
    _clip, offer = _ingest_and_offer(alice, tmp_path)
    operator.run("log", "checkpoint")
    r = bob.refuse(2, "handoff", "accept", str(offer), "--wait", "0")
    assert "--by is required" in r.stderr, r
    settings = bob.root / "custody.toml"
    settings.write_text(settings.read_text() + 'party = "carol"\n')
    monkeypatch.setenv("CUSTODY_PARTY", "bob")  # the environment wins over the file
    signer = checkpoint_signer(operator)
    try:
        r = bob.run("handoff", "accept", str(offer), "--wait", "60")
    finally:
        signer.send_signal(signal.SIGINT)
        signer.communicate(timeout=30)
    assert signer.returncode == 0
    assert "signed by alice and bob" in r.stdout, r


def test_shared_vault_folders_keep_the_group_mode(agency: dict[str, Home], tmp_path: Path) -> None:
    vault = tmp_path / "share" / "vault"
    assert stat.S_IMODE(vault.stat().st_mode) == 0o2770
    alice = agency["alice"]
    clip = tmp_path / "a.txt"
    clip.write_text("evidence\n")
    alice.run("case", "new", CASE)
    old = os.umask(0o077)  # a private umask must not shut the group out of the share
    try:
        alice.run(*ingest_args(clip))
    finally:
        os.umask(old)
    objects = [p for p in (vault / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1
    assert stat.S_IMODE(objects[0].stat().st_mode) == 0o444
    for folder in (vault / "objects", objects[0].parent, vault / "staging"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o2770, folder


def test_a_missing_share_is_named_with_the_override(
    agency: dict[str, Home], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = agency["alice"]
    alice.run("case", "new", CASE)
    moved = tmp_path / "elsewhere"
    (tmp_path / "share" / "vault").rename(moved)
    clip = tmp_path / "a.txt"
    clip.write_text("evidence\n")
    ingest = ingest_args(clip)
    r = alice.refuse(3, *ingest)
    assert "is not there" in r.stderr and "CUSTODY_VAULT" in r.stderr, r
    monkeypatch.setenv("CUSTODY_VAULT", str(moved))
    alice.run(*ingest)
    assert any(p.is_file() for p in (moved / "objects").rglob("*"))
    alice.run("vault", "check", "--vault", str(moved))


def test_vault_check_names_the_exhibit_of_an_altered_or_missing_object(
    agency: dict[str, Home], tmp_path: Path
) -> None:
    alice, audrey = agency["alice"], agency["audrey"]
    alice.run("case", "new", CASE)
    for name in ("one.txt", "two.txt"):
        (tmp_path / name).write_text(f"evidence {name}\n")
        alice.run(*ingest_args(tmp_path / name))
    shown = json.loads(audrey.run("case", "show", CASE, "--json").stdout)
    digests = {i["exhibit"]: i["blake3"] for i in shown["items"]}
    objects = tmp_path / "share" / "vault" / "objects"
    first = objects / digests[f"{CASE}/0001"][:2] / digests[f"{CASE}/0001"]
    os.chmod(first, 0o644)
    first.write_text("evidence one.txx\n")  # same size, other bytes
    (objects / digests[f"{CASE}/0002"][:2] / digests[f"{CASE}/0002"]).unlink()
    assert audrey.invoke("vault", "check", "--quick").code == 1  # the missing one
    r = audrey.invoke("vault", "check")
    assert r.code == 1, r
    assert f"altered object: exhibit {CASE}/0001  {digests[f'{CASE}/0001']}  one.txt" in r.stdout
    assert f"entry without object: exhibit {CASE}/0002" in r.stdout and "two.txt" in r.stdout
    doc = json.loads(audrey.invoke("vault", "check", "--json").stdout)
    assert [(d["exhibit"], d["name"]) for d in doc["altered_objects"]] == [
        (f"{CASE}/0001", "one.txt")
    ]
    assert [(m["exhibit"], m["name"]) for m in doc["entries_without_objects"]] == [
        (f"{CASE}/0002", "two.txt")
    ]
    quick = json.loads(audrey.invoke("vault", "check", "--quick", "--json").stdout)
    assert quick["altered_objects"] == [] and not quick["rehashed"]


def test_concurrent_ingests_of_one_file_from_two_homes_store_it_once(
    agency: dict[str, Home], tmp_path: Path
) -> None:
    alice, bob, audrey = agency["alice"], agency["bob"], agency["audrey"]
    alice.run("case", "new", "C8")
    clip = tmp_path / "same.bin"
    clip.write_bytes(os.urandom(3 << 20))
    procs = [ingest_process(clip, "C8", who, h) for who, h in (("alice", alice), ("bob", bob)) * 2]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
        assert b"Traceback" not in err
    said = b"".join(out for out, _ in outs).decode()
    assert said.count("ingested ") >= 1 and said.count("C8/0001") == 4, said
    objects = [p for p in (tmp_path / "share" / "vault" / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1
    assert not any((tmp_path / "share" / "vault" / "staging").iterdir())
    shown = json.loads(audrey.run("case", "show", "C8", "--json").stdout)
    assert [i["exhibit"] for i in shown["items"]] == ["C8/0001"]
    entries = [
        audrey.run("log", "entry", str(i)).stdout_bytes
        for i in range(json.loads(audrey.run("log", "verify", "--json").stdout)["size"])
    ]
    assert sum(b"\ntype ingest\n" in e for e in entries) == 1
    audrey.run("vault", "check")


# -- join ---------------------------------------------------------------------------------


def test_join_refuses_what_is_not_a_log(tmp_path: Path) -> None:
    me = Home(tmp_path / "me")
    r = me.refuse(2, "join", "--db", "not a url")
    assert "is not a database URL" in r.stderr, r
    r = me.refuse(3, "join", "--db", f"sqlite:///{tmp_path / 'nothing.db'}")
    assert "no custody database" in r.stderr, r
    r = me.refuse(2, "join", "--db", "postgresql+psycopg://me:secret@db.example/custody")
    assert "password" in r.stderr and "pgpass" in r.stderr, r
    assert not me.root.exists()  # nothing made for a refused join


def test_join_refuses_an_empty_database_and_an_existing_home(
    agency: dict[str, Home], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'custody.db'}"
    r = agency["alice"].refuse(2, "join", "--db", url)
    assert "is a custody home already" in r.stderr, r
    r = agency["operator"].refuse(2, "join", "--db", url)
    assert "is a custody home already" in r.stderr, r
    # A custody database without a log: `db` commands may make one (schema only).
    from custody.infra.store import Store

    Store.open(f"sqlite:///{tmp_path / 'empty.db'}", create=True).close()
    r = Home(tmp_path / "me").refuse(3, "join", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert "holds no custody log" in r.stderr, r


def test_join_with_a_vault_override_and_a_log_without_a_shared_store(tmp_path: Path) -> None:
    solo = Home(tmp_path / "solo")
    solo.run("init", "--origin", "solo.example/log")
    url = f"sqlite:///{solo.root / 'custody.db'}"
    r = Home(tmp_path / "me").run("join", "--db", url)
    assert "records no shared evidence store" in r.stderr, r
    r = Home(tmp_path / "me2").run("join", "--db", url, "--vault", str(solo.root / "vault"))
    assert "warning" not in r.stderr, r
    text = (tmp_path / "me2" / "custody.toml").read_text()
    assert f'vault = "{solo.root / "vault"}"' in text
    r = Home(tmp_path / "me3").refuse(3, "join", "--db", url, "--vault", str(tmp_path / "no"))
    assert "is not a folder" in r.stderr, r


def test_bad_custody_toml_is_one_line_naming_file_and_key(agency: dict[str, Home]) -> None:
    alice = agency["alice"]
    settings = alice.root / "custody.toml"
    settings.write_text('db = "sqlite:///x"\ncolour = "blue"\n')
    r = alice.refuse(3, "log", "key")
    assert str(settings) in r.stderr and "'colour'" in r.stderr, r
    settings.write_text("db = 3\n")
    r = alice.refuse(3, "log", "key")
    assert str(settings) in r.stderr and "'db'" in r.stderr, r
    settings.write_text('db = "unterminated\n')
    r = alice.refuse(3, "log", "key")
    assert str(settings) in r.stderr and "not valid TOML" in r.stderr, r


def test_checkpoint_every_signs_as_the_log_grows_and_stops_on_sigterm(
    agency: dict[str, Home], tmp_path: Path
) -> None:
    alice, operator = agency["alice"], agency["operator"]
    signer = checkpoint_signer(operator, "0.2")
    try:
        alice.run("case", "new", CASE)
        # The signer is running (its first checkpoint is printed) before the log grows,
        # however long it took to start on a loaded machine.
        assert signer.stdout is not None
        first = signer.stdout.readline()
        for n in range(3):
            (tmp_path / f"{n}.txt").write_text(f"clip {n}\n")
            alice.run(*ingest_args(tmp_path / f"{n}.txt"))
            time.sleep(1.0)
    finally:
        signer.send_signal(signal.SIGTERM)
        out, err = signer.communicate(timeout=30)
    assert signer.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"stopped" in err
    lines = (first + out).decode().splitlines()
    sizes = [int(line.split()[1]) for line in lines]
    assert sizes == sorted(set(sizes)) and len(sizes) >= 2, lines  # one line per new size
    assert sizes[-1] == 5, lines  # 2 keys, 3 ingests: every entry is covered at the end
    verdict = json.loads(alice.run("log", "verify", "--json").stdout)
    assert verdict["latest_checkpoint"] == verdict["size"]


def test_checkpoint_every_bounds(agency: dict[str, Home]) -> None:
    operator = agency["operator"]
    operator.refuse(2, "log", "checkpoint", "--every", "0")
    operator.refuse(2, "log", "checkpoint", "--every", "86401")
    agency["alice"].refuse(2, "log", "checkpoint", "--every", "1")


def test_the_default_party_signs_ingest_offer_and_open(
    agency: dict[str, Home], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`party` in custody.toml (or CUSTODY_PARTY) stands for --by / --from wherever a
    command asks which party signs; the option, when given, still wins."""
    alice = agency["alice"]
    settings = alice.root / "custody.toml"
    settings.write_text(settings.read_text() + 'party = "alice"\n')
    clip = tmp_path / "a.txt"
    clip.write_text("evidence\n")
    alice.run("case", "new", CASE)
    alice.run(*ingest_args(clip, by=None))
    copy = tmp_path / "copy.txt"
    alice.run("open", f"{CASE}/0001", "--purpose", "review", "--out", str(copy))
    alice.run(
        "handoff", "offer", f"{CASE}/0001", "--to", "bob", "--purpose", "lab",
        "--out", str(tmp_path / "offer"),
    )  # fmt: skip
    shown = json.loads(alice.run("history", f"{CASE}/0001", "--json").stdout)
    assert [(e["type"], e["signed_by"]) for e in shown["timeline"]] == [
        ("ingest", ["alice"]),
        ("access", ["alice"]),
    ], shown
    # An explicit option wins: bob's key is not in alice's home, so this fails on it.
    r = alice.refuse(3, "open", f"{CASE}/0001", "--by", "bob", "--purpose", "x",
                     "--out", str(tmp_path / "c2"))  # fmt: skip
    assert "bob" in r.stderr, r
