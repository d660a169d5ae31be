"""The whole story, owner -> agency -> lab -> court, across two custody homes.

The owner keeps a home of their own; the agency's home is shared by the agency,
the lab and the court (one database, many users).  Offers, media and receipts
travel between the homes as files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import clips
import pytest
from conftest import CliResult, invoke

CASE = "2026-0142"


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *args: str) -> CliResult:
        r = invoke(*args, "--home", str(self.root))
        assert r.code == 0, r
        return r

    def refuse(self, code: int, *args: str) -> CliResult:
        r = invoke(*args, "--home", str(self.root))
        assert r.code == code, r
        assert r.stderr.startswith("custody: error: ") and "Traceback" not in r.stderr
        return r


@pytest.fixture
def world(tmp_path: Path) -> dict[str, object]:
    owner, agency = Home(tmp_path / "owner-home"), Home(tmp_path / "agency-home")
    owner.run("init", "--origin", "garcia.example/doorbell-log")
    agency.run("init", "--origin", "metro-police.example/custody")
    owner.run("key", "new", "garcia", "--role", "owner", "--org", "12 Elm St")
    agency.run("key", "new", "jones", "--role", "agency", "--org", "Metro Police")
    agency.run("key", "new", "lab1", "--role", "lab", "--org", "State Forensic Lab")
    agency.run("key", "new", "judge", "--role", "court", "--org", "County Court")
    # The owner's log learns the detective's key (exchanged out of band).
    agency.run("key", "export", "jones", "--out", str(tmp_path / "jones.keyentry"))
    owner.run("key", "import", str(tmp_path / "jones.keyentry"))
    clip = clips.make_clip(tmp_path / "doorbell.mp4")
    owner.run("case", "new", CASE, "--title", "Burglary at 12 Elm St")
    owner.run(
        "ingest",
        str(clip),
        "--case",
        CASE,
        "--by",
        "garcia",
        "--source",
        "doorbell export",
        "--legal-basis",
        "consent",
    )
    return {"owner": owner, "agency": agency, "clip": clip, "tmp": tmp_path}


def _offer(home: Home, tmp: Path, name: str, *args: str) -> Path:
    out = tmp / name
    home.run("handoff", "offer", f"{CASE}/0001", *args, "--out", str(out))
    return out


def test_owner_to_agency_to_lab_to_court(world: dict[str, object]) -> None:
    owner, agency = world["owner"], world["agency"]
    clip, tmp = world["clip"], world["tmp"]
    assert isinstance(owner, Home) and isinstance(agency, Home)
    assert isinstance(clip, Path) and isinstance(tmp, Path)

    # Consent: for the investigation, onward sharing only to a court.
    owner.run(
        "consent",
        "grant",
        "--owner",
        "garcia",
        "--case",
        CASE,
        "--purpose",
        "burglary investigation",
        "--onward",
        "court",
        "--until",
        "2099-12-31",
    )

    # Owner -> agency, across homes: offer + media travel; a swapped file is caught.
    offer1 = _offer(
        owner,
        tmp,
        "offer1",
        "--from",
        "garcia",
        "--to",
        "jones",
        "--purpose",
        "police investigation",
    )
    media = tmp / "received"
    media.mkdir()
    clips.edit_metadata(clip, media / "doorbell.mp4", creation_time="2020-01-01T00:00:00Z")
    r = agency.refuse(3, "handoff", "accept", str(offer1), "--by", "jones", "--media", str(media))
    assert "doorbell.mp4 is not the file offered" in r.stderr
    shutil.copy(clip, media / "doorbell.mp4")
    r = agency.run("handoff", "accept", str(offer1), "--by", "jones", "--media", str(media))
    assert "signed by garcia and jones" in r.stdout
    # The owner's side takes the receipt: its own log now shows the handoff too.
    owner.run("handoff", "receipt", str(offer1) + ".receipt")
    # Taking the same receipt again records nothing twice (a re-run after a crash).
    again = owner.run("handoff", "receipt", str(offer1) + ".receipt").stdout
    assert "handoff already recorded here as log entry" in again
    hist = json.loads(owner.run("history", f"{CASE}/0001", "--json").stdout)["timeline"]
    assert [e["type"] for e in hist] == ["ingest", "consent", "handoff"]
    assert hist[-1]["signed_by"] == ["garcia", "jones"]

    # Agency -> lab is beyond the consent (onward: court only): refused, naming it.
    r = agency.refuse(
        4,
        "handoff",
        "offer",
        f"{CASE}/0001",
        "--from",
        "jones",
        "--to",
        "lab1",
        "--purpose",
        "enhancement",
        "--out",
        str(tmp / "offer-lab"),
    )
    assert "consent" in r.stderr and "(entry " in r.stderr and "onward court" in r.stderr
    # A non-holder cannot hand it off.
    r = agency.refuse(
        4,
        "handoff",
        "offer",
        f"{CASE}/0001",
        "--from",
        "lab1",
        "--to",
        "judge",
        "--purpose",
        "x",
        "--out",
        str(tmp / "offer-x"),
    )
    assert "current holder is 'jones'" in r.stderr

    # The owner widens the consent at home; the signed entry travels to the agency.
    # (The owner's key reached the agency's log with the first offer's context.)
    r = agency.refuse(2, "key", "import", str(_export(owner, tmp, "garcia")))
    assert "already on this log" in r.stderr
    out = owner.run(
        "consent",
        "grant",
        "--owner",
        "garcia",
        "--case",
        CASE,
        "--purpose",
        "lab analysis and court",
        "--onward",
        "any",
    ).stdout
    wider = tmp / "consent2.entry"
    wider.write_bytes(owner.run("log", "entry", out.split("log entry ")[1].split()[0]).stdout_bytes)
    assert "entry" in agency.run("log", "import", str(wider)).stdout
    offer2 = _offer(
        agency,
        tmp,
        "offer2",
        "--from",
        "jones",
        "--to",
        "lab1",
        "--purpose",
        "enhancement",
        "--authority",
        "Warrant 2026-77",
    )
    # The lab refuses the first offer; a refused offer cannot be accepted afterwards.
    agency.run("handoff", "reject", str(offer2), "--by", "lab1", "--reason", "wrong exhibit form")
    r = agency.refuse(4, "handoff", "accept", str(offer2), "--by", "lab1")
    assert "already accepted or refused" in r.stderr
    offer3 = _offer(
        agency,
        tmp,
        "offer3",
        "--from",
        "jones",
        "--to",
        "lab1",
        "--purpose",
        "enhancement",
        "--authority",
        "Warrant 2026-77",
    )
    agency.run("handoff", "accept", str(offer3), "--by", "lab1")
    agency.run(
        "open",
        f"{CASE}/0001",
        "--by",
        "lab1",
        "--purpose",
        "analysis",
        "--out",
        str(tmp / "lab-copy.mp4"),
    )
    assert (tmp / "lab-copy.mp4").read_bytes() == clip.read_bytes()
    # The lab makes a trim and a redaction for the jury; both are provably derived.
    trim = json.loads(
        agency.run(
            "derive",
            "trim",
            f"{CASE}/0001",
            "--start",
            "0.5",
            "--end",
            "1.5",
            "--by",
            "lab1",
            "--reason",
            "the door opening",
            "--json",
        ).stdout
    )
    redact = json.loads(
        agency.run(
            "derive",
            "redact",
            f"{CASE}/0001",
            "--box",
            "10,10,40,30",
            "--start",
            "0.5",
            "--end",
            "1.0",
            "--by",
            "lab1",
            "--reason",
            "a passer-by's face",
            "--json",
        ).stdout
    )
    assert trim["exhibit"] == f"{CASE}/0002" and redact["exhibit"] == f"{CASE}/0003"
    for exhibit in (f"{CASE}/0002", f"{CASE}/0003"):
        lineage = agency.run("derive", "lineage", exhibit).stdout
        assert "PROVEN" in lineage
    # Only the holder may take footage out.
    r = agency.refuse(
        4, "open", f"{CASE}/0001", "--by", "jones", "--purpose", "x", "--out", str(tmp / "nope.mp4")
    )
    assert "current holder is 'lab1'" in r.stderr and not (tmp / "nope.mp4").exists()

    # Lab -> court.
    offer4 = _offer(
        agency,
        tmp,
        "offer4",
        "--from",
        "lab1",
        "--to",
        "judge",
        "--purpose",
        "trial exhibit",
        "--authority",
        "Order 7",
    )
    agency.run("handoff", "accept", str(offer4), "--by", "judge")

    # The lab's key is revoked: it signs nothing new; its earlier entries still verify.
    agency.run("key", "revoke", "lab1", "--reason", "workstation compromised")
    r = agency.refuse(
        4, "open", f"{CASE}/0001", "--by", "lab1", "--purpose", "x", "--out", str(tmp / "x.mp4")
    )
    assert "revoked" in r.stderr
    # A key rotation: the new key signs from now on.
    agency.run("key", "rotate", "judge")
    agency.run(
        "open",
        f"{CASE}/0001",
        "--by",
        "judge",
        "--purpose",
        "screening",
        "--out",
        str(tmp / "court-copy.mp4"),
    )

    timeline = json.loads(agency.run("history", f"{CASE}/0001", "--json").stdout)["timeline"]
    kinds = [e["type"] for e in timeline]
    assert kinds == [
        "ingest",
        "consent",
        "handoff",
        "consent",
        "reject",
        "handoff",
        "access",
        "derive",
        "derive",
        "handoff",
        "access",
    ]
    handoffs = [e for e in timeline if e["type"] == "handoff"]
    assert [(h["fields"]["from"], h["fields"]["to"]) for h in handoffs] == [
        ("garcia", "jones"),
        ("jones", "lab1"),
        ("lab1", "judge"),
    ]
    assert all(len(h["signed_by"]) == 2 for h in handoffs)

    for home in (owner, agency):
        out = json.loads(home.run("log", "verify", "--json").stdout)
        assert out["verdict"] == "ok"

    # The owner's receipt still checks out against the agency's newer checkpoint.
    new_cp = agency.run("log", "checkpoint").stdout_bytes
    (tmp / "newer.cp").write_bytes(new_cp)
    receipt_size = _receipt_size(offer1)
    new_size = int(new_cp.decode().split("\n")[1])
    agency.run("log", "checkpoint")
    cons = agency.run("log", "consistency", str(receipt_size), str(new_size), "--json").stdout
    (tmp / "cons.json").write_text(cons)
    r = invoke(
        "handoff",
        "check-receipt",
        str(offer1) + ".receipt",
        "--checkpoint",
        str(tmp / "newer.cp"),
        "--consistency",
        str(tmp / "cons.json"),
    )
    assert r.code == 0, r
    assert r.stdout.startswith("OK: the receipt's checkpoint")


def _export(home: Home, tmp: Path, name: str) -> Path:
    out = tmp / f"{name}.keyentry"
    home.run("key", "export", name, "--out", str(out))
    return out


def _receipt_size(offer: Path) -> int:
    from custody.app.events import Receipt
    from custody.tlog.checkpoint import Checkpoint
    from custody.tlog.note import Note

    receipt = Receipt.parse((offer.parent / (offer.name + ".receipt")).read_bytes(), "r")
    return Checkpoint.parse(Note.parse(receipt.proof.checkpoint).text).size


def test_consent_revoked_or_expired_is_refused(world: dict[str, object]) -> None:
    owner, tmp = world["owner"], world["tmp"]
    assert isinstance(owner, Home) and isinstance(tmp, Path)
    r = owner.refuse(
        4,
        "handoff",
        "offer",
        f"{CASE}/0001",
        "--from",
        "garcia",
        "--to",
        "jones",
        "--purpose",
        "x",
        "--out",
        str(tmp / "o0"),
    )
    assert "no consent on this log covers" in r.stderr
    owner.run(
        "consent",
        "grant",
        "--owner",
        "garcia",
        "--case",
        CASE,
        "--purpose",
        "p",
        "--onward",
        "none",
        "--until",
        "2020-01-01",
    )
    r = owner.refuse(
        4,
        "handoff",
        "offer",
        f"{CASE}/0001",
        "--from",
        "garcia",
        "--to",
        "jones",
        "--purpose",
        "x",
        "--out",
        str(tmp / "o1"),
    )
    assert "expired on 2020-01-01" in r.stderr
    grant = owner.run(
        "consent",
        "grant",
        "--owner",
        "garcia",
        "--case",
        CASE,
        "--purpose",
        "p",
        "--onward",
        "none",
    ).stdout
    index = grant.split("log entry ")[1].split()[0]
    owner.run("consent", "revoke", index, "--owner", "garcia")
    r = owner.refuse(
        4,
        "handoff",
        "offer",
        f"{CASE}/0001",
        "--from",
        "garcia",
        "--to",
        "jones",
        "--purpose",
        "x",
        "--out",
        str(tmp / "o2"),
    )
    assert f"(entry {index}) was revoked at entry" in r.stderr
    # Only the owner who gave a consent can revoke it, and only once.
    owner.refuse(4, "consent", "revoke", index, "--owner", "garcia")
    owner.run("log", "verify")


def test_items_taken_in_under_a_warrant_need_no_consent(world: dict[str, object]) -> None:
    agency, clip, tmp = world["agency"], world["clip"], world["tmp"]
    assert isinstance(agency, Home) and isinstance(clip, Path) and isinstance(tmp, Path)
    agency.run("case", "new", "W-1")
    agency.run(
        "ingest",
        str(clip),
        "--case",
        "W-1",
        "--by",
        "jones",
        "--legal-basis",
        "warrant",
        "--ref",
        "Warrant 2026-9",
    )
    agency.run(
        "handoff",
        "offer",
        "W-1/0001",
        "--from",
        "jones",
        "--to",
        "lab1",
        "--purpose",
        "analysis",
        "--out",
        str(tmp / "w"),
    )
    agency.run("handoff", "accept", str(tmp / "w"), "--by", "lab1")
    shown = agency.run("show", "W-1/0001").stdout
    assert "holder      lab1" in shown and "Warrant 2026-9" in shown
