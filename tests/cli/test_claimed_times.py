"""Claimed times in order (issue 11, deliver 6; docs/spec/entry.md rule 5).

A handoff's time is the moment the receiver countersigned (a cosignature/v1 line), so
the demo's disorder (a handoff listed before the access made while its offer travelled)
no longer happens; a log written before that still verifies and reports the disorder;
an entry made in a home whose clock is set back is refused; an entry imported from
another home keeps its signer's time and is reported, not refused.

The clock cannot be set back for the CLI here, so the entries that must claim another
time than now are made with the library (`now=`) or signed by the test, as another
home (or an older custody) would have.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PASSPHRASE, CliRunnerNS, invoke

from custody.app import events
from custody.app.home import Custody
from custody.errors import EXIT_REFUSED, PolicyError
from custody.infra.indexer import append_indexed
from custody.model.entry import Entry, SignedEntry, format_time, sign_entry
from custody.model.times import span
from custody.tlog.note import add_signatures

CASE = "C1"


def _pw(_prompt: str) -> str:
    return PASSPHRASE


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def case(home: Path, cli: type[CliRunnerNS], tmp_path: Path) -> Path:
    """The `home` fixture (alice owner, bob agency) with cory (court) and C1/0001, held
    by bob under a warrant."""
    cli.run("key", "new", "cory", "--role", "court", "--org", "County Court")
    cli.run("case", "new", CASE)
    exhibit = tmp_path / "statement.txt"
    exhibit.write_text("the statement\n")
    cli.run(
        "ingest", str(exhibit), "--case", CASE, "--by", "bob",
        "--legal-basis", "warrant", "--ref", "W-1",
    )  # fmt: skip
    return home


def _offer_made_earlier(tmp_path: Path, minutes: int) -> tuple[Path, events.Offer, datetime]:
    """An offer bob wrote `minutes` ago (an offer appends nothing), as a file."""
    offered = _now() - timedelta(minutes=minutes)
    with Custody.open() as c:
        offer = events.make_offer(
            c, [f"{CASE}/0001"], sender="bob", receiver="cory", purpose="trial",
            authority=None, case=None, passphrase=_pw, now=offered,
        )  # fmt: skip
    path = tmp_path / "offer"
    path.write_bytes(offer.encode())
    return path, offer, offered


def _access(cli: type[CliRunnerNS], tmp_path: Path) -> None:
    """bob copies the exhibit out while the offer travels (the demo's entry 9)."""
    out = tmp_path / "copy.txt"
    cli.run(
        "open", f"{CASE}/0001", "--by", "bob", "--purpose", "copy for the file", "--out", str(out)
    )


def _timeline() -> list[dict[str, object]]:
    doc = json.loads(invoke("history", f"{CASE}/0001", "--json").stdout)
    return list(doc["timeline"])


def _verify_json(cli: type[CliRunnerNS]) -> dict[str, object]:
    doc = json.loads(cli.run("log", "verify", "--json").stdout)
    assert doc["verdict"] == "ok"
    return dict(doc)


def test_a_handoff_accepted_later_has_the_accept_time(
    case: Path, cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    offer_path, _offer, offered = _offer_made_earlier(tmp_path, 20)
    _access(cli, tmp_path)
    before = _now()
    cli.run("handoff", "accept", str(offer_path), "--by", "cory")
    after = _now()
    access, handoff = [e for e in _timeline() if e["type"] in ("access", "handoff")]
    accepted = datetime.fromisoformat(str(handoff["time"]))
    assert before <= accepted <= after
    assert handoff["offered"] == format_time(offered)
    assert str(handoff["time"]) >= str(access["time"])  # the demo's disorder is gone
    assert _verify_json(cli)["time_order"] == []
    assert "note:" not in cli.run("log", "verify").stdout
    # On the log: the sender's Ed25519 line and the receiver's cosignature/v1 line.
    with Custody.open() as c:
        data = c.store.entry(int(str(handoff["index"])))
    assert data is not None
    signed = SignedEntry.parse(data)
    assert [s.name for s in signed.note.signatures] == ["bob", "cory"]
    assert [len(s.signature) for s in signed.note.signatures] == [64, 72]
    assert signed.entry.time == format_time(offered)


def test_an_old_style_disordered_handoff_still_verifies_and_is_reported(
    case: Path, cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    _path, offer, offered = _offer_made_earlier(tmp_path, 20)
    _access(cli, tmp_path)
    # What custody wrote before issue 11: the receiver's Ed25519 signature, no time of its
    # own, so the handoff claims the offer's time.  (Appended as a log written then.)
    with Custody.open() as c:
        cory = c.signer("cory", _pw)
        with c.log.transaction() as w:
            index = append_indexed(w, add_signatures(offer.handoff, [cory]), imported=True)
    expected = (
        f"log entry {index} (handoff) claims {format_time(offered)}, 20 min before log entry "
        f"{index - 1} (access) — more than the 10 min tolerance"
    )
    text = cli.run("log", "verify").stdout
    assert text.startswith("OK: the log verifies")
    assert f"  note: {expected}\n" in text
    (found,) = _verify_json(cli)["time_order"]  # type: ignore[misc]
    assert found["index"] == index and found["previous_index"] == index - 1
    assert found["message"] == expected and found["seconds_before"] >= 1200
    handoff = next(e for e in _timeline() if e["type"] == "handoff")
    assert handoff["time"] == format_time(offered) and "offered" not in handoff

    # verify-bundle over the bundle's entries in index order: VERIFIED, with the note.
    cli.run("log", "checkpoint")
    vkey = cli.run("log", "key").stdout.strip()
    bundle = tmp_path / "bundle"
    cli.run("export", CASE, "--to", str(bundle))
    r = invoke("verify-bundle", str(bundle), "--trust", vkey, "--no-probe")
    assert r.code == 0, r
    assert r.stdout.rstrip().endswith("VERIFIED")
    assert expected in r.stdout
    r = invoke("verify-bundle", str(bundle), "--trust", vkey, "--no-probe", "--json")
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "VERIFIED"
    assert expected in doc["notes"]
    assert [d["index"] for d in doc["time_order"]] == [index]


def test_an_entry_made_with_a_clock_set_back_is_refused(
    case: Path, cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    with Custody.open() as c:
        size = c.log.size()
        with pytest.raises(PolicyError) as err:
            events.open_item(
                c, f"{CASE}/0001", by="bob", purpose="p", out=tmp_path / "x.txt", case=None,
                passphrase=_pw, now=_now() - timedelta(hours=1),
            )  # fmt: skip
        assert c.log.size() == size  # nothing appended
    assert err.value.exit_code == EXIT_REFUSED
    assert err.value.message.startswith("refused: the access entry claims ")
    assert f" before log entry {size - 1} (ingest), the entry before it" in err.value.message
    assert "more than the 10 min tolerance" in err.value.message
    assert "clock may be set back" in (err.value.hint or "")
    # Within the tolerance it is fine (two machines' clocks differ a little).
    with Custody.open() as c:
        events.open_item(
            c, f"{CASE}/0001", by="bob", purpose="p", out=tmp_path / "y.txt", case=None,
            passphrase=_pw, now=_now() - timedelta(minutes=9),
        )  # fmt: skip


def test_an_imported_old_consent_is_accepted_and_reported(
    case: Path, cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    """The owner signs in its own home; the consent reaches the agency two hours later."""
    owner = tmp_path / "owner-home"
    cli.run("init", "--origin", "garcia.example/consents", "--home", str(owner))
    cli.run("key", "new", "garcia", "--role", "owner", "--home", str(owner))
    key_file = tmp_path / "garcia.keyentry"
    cli.run("key", "export", "garcia", "--home", str(owner), "--out", str(key_file))
    cli.run("key", "import", str(key_file))
    with Custody.open(owner) as c:
        garcia = c.signer("garcia", _pw)
    signed_at = _now() - timedelta(hours=2)
    consent = Entry.build(
        "consent", signed_at,
        [("action", "grant"), ("owner", "garcia"), ("case", CASE), ("purpose", "trial"),
         ("onward", "court")],
    )  # fmt: skip
    path = tmp_path / "consent.entry"
    path.write_bytes(sign_entry(consent, [garcia]))
    out = cli.run("log", "import", str(path)).stdout
    index = int(out.rsplit("entry ", 1)[1])
    (found,) = _verify_json(cli)["time_order"]  # type: ignore[misc]
    assert (found["index"], found["type"]) == (index, "consent")
    assert (found["previous_index"], found["previous_type"]) == (index - 1, "key")
    assert found["claimed"] == format_time(signed_at)
    # About two hours: the key entry was made a moment before `signed_at` was taken.
    assert 7200 - 60 < found["seconds_before"] <= 7200
    gap = span(timedelta(seconds=found["seconds_before"]))
    assert f"note: log entry {index} (consent) claims {format_time(signed_at)}, {gap}" in (
        cli.run("log", "verify").stdout
    )
    # Entries made here afterwards are compared with the consent: later, so accepted.
    _access(cli, tmp_path)
    assert os.path.exists(tmp_path / "copy.txt")


def test_an_imported_entry_from_a_clock_ahead_is_refused(
    case: Path, cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    """An owner's consent signed on a machine two hours fast is refused at import:
    taken, it would make every later entry of this log look set back."""
    owner = tmp_path / "owner-home"
    cli.run("init", "--origin", "garcia.example/consents", "--home", str(owner))
    cli.run("key", "new", "garcia", "--role", "owner", "--home", str(owner))
    key_file = tmp_path / "garcia.keyentry"
    cli.run("key", "export", "garcia", "--home", str(owner), "--out", str(key_file))
    cli.run("key", "import", str(key_file))
    with Custody.open(owner) as c:
        garcia = c.signer("garcia", _pw)
    consent = Entry.build(
        "consent", _now() + timedelta(hours=2),
        [("action", "grant"), ("owner", "garcia"), ("case", CASE), ("purpose", "trial"),
         ("onward", "court")],
    )  # fmt: skip
    path = tmp_path / "consent.entry"
    path.write_bytes(sign_entry(consent, [garcia]))
    home = Path(os.environ["CUSTODY_HOME"])
    with Custody.open(home) as c:
        size = c.log.size()
    r = invoke("log", "import", str(path))
    assert r.code == EXIT_REFUSED, r
    assert r.stderr.startswith("custody: error: refused: the consent entry claims ")
    assert "after this computer's clock" in r.stderr and "10 min tolerance" in r.stderr
    assert "Traceback" not in r.stderr
    with Custody.open(home) as c:
        assert c.log.size() == size  # nothing appended
    _access(cli, tmp_path)  # the log still takes its own entries
