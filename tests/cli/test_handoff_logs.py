"""Handoffs between two logs, and `custody open`, under the sequences and faults of issue 9.

Home A (the agency, party `det`) holds case C1; home B (the court, party `clerk`) receives
its exhibits.  Offers, media and receipts travel between the homes as files.  The crash
tests run the real `custody` executable (a crash point ends the process with `os._exit`,
which would end pytest itself if run in-process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CliResult, invoke

from custody.infra.crash import CRASH_STATUS, ENV_CRASH_AT

CASE = "C1"
CUSTODY = Path(sys.executable).with_name("custody")


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
        assert r.stderr.startswith("custody: error: ") and "Traceback" not in r.stderr, r
        lines = r.stderr.rstrip("\n").split("\n")
        assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("  hint: ")), r
        return r

    def subprocess(self, *args: str, crash_at: str | None = None) -> CliResult:
        """Run the installed `custody` in a child process (for crash points)."""
        env = dict(os.environ)
        env.pop(ENV_CRASH_AT, None)
        if crash_at is not None:
            env[ENV_CRASH_AT] = crash_at
        done = subprocess.run(
            [str(CUSTODY), *args, "--home", str(self.root)],
            capture_output=True,
            env=env,
            check=False,
            timeout=120,
        )
        return CliResult(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))

    def entry_types(self) -> list[str]:
        out = json.loads(self.run("history", f"{CASE}/0001", "--json").stdout)
        return [e["type"] for e in out["timeline"]]

    def entry_index_of_last_handoff(self) -> int:
        out = json.loads(self.run("history", f"{CASE}/0001", "--json").stdout)
        return int([e for e in out["timeline"] if e["type"] == "handoff"][-1]["index"])

    def log_size(self) -> int:
        return int(json.loads(self.run("log", "verify", "--json").stdout)["size"])

    def verify(self) -> None:
        out = json.loads(self.run("log", "verify", "--json").stdout)
        assert out["verdict"] == "ok", out


@pytest.fixture
def homes(tmp_path: Path) -> tuple[Home, Home, Path]:
    """Home A with `det` holding C1/0001 and C1/0002 (taken under a warrant); home B with
    `clerk`, a court party.  Returns (A, B, a folder for the files that travel)."""
    a, b = Home(tmp_path / "agency"), Home(tmp_path / "court")
    a.run("init", "--origin", "agency.example/custody")
    b.run("init", "--origin", "court.example/custody")
    a.run("key", "new", "det", "--role", "agency", "--org", "Metro Police")
    b.run("key", "new", "clerk", "--role", "court", "--org", "County Court")
    # An offer goes only to a party the sender's log knows: A imports clerk's key.
    b.run("key", "export", "clerk", "--out", str(tmp_path / "clerk.keyentry"))
    a.run("key", "import", str(tmp_path / "clerk.keyentry"))
    a.run("case", "new", CASE)
    exports = tmp_path / "exports"
    exports.mkdir()
    for n in (1, 2):
        (exports / f"statement-{n}.txt").write_text(f"statement number {n}\n")
    for n in (1, 2):
        a.run(
            "ingest",
            str(exports / f"statement-{n}.txt"),
            "--case",
            CASE,
            "--by",
            "det",
            "--legal-basis",
            "warrant",
            "--ref",
            "Warrant 2026-9",
        )
    travel = tmp_path / "travel"
    travel.mkdir()
    return a, b, travel


def _offer(a: Home, travel: Path, n: int) -> Path:
    out = travel / f"offer{n}"
    a.run(
        "handoff",
        "offer",
        f"{CASE}/000{n}",
        "--from",
        "det",
        "--to",
        "clerk",
        "--purpose",
        "trial exhibit",
        "--out",
        str(out),
    )
    return out


def _open(home: Home, n: int, by: str, out: Path) -> CliResult:
    return home.run(
        "open", f"{CASE}/000{n}", "--by", by, "--purpose", "send to the court", "--out", str(out)
    )


def test_a_normal_sequence_of_two_handoffs_does_not_block_the_case(
    homes: tuple[Home, Home, Path],
) -> None:
    a, b, travel = homes
    media = travel / "media"
    media.mkdir()
    # Offer 0001, take the copy to send (an access on A while det still holds it) ...
    offer1 = _offer(a, travel, 1)
    _open(a, 1, "det", media / "statement-1.txt")
    r = b.run("handoff", "accept", str(offer1), "--by", "clerk", "--media", str(media))
    assert "signed by det and clerk" in r.stdout
    a.run("handoff", "receipt", str(offer1) + ".receipt")
    # ... then the same for 0002: A's log now holds det's access to 0001 *before* the
    # first handoff, while B's log recorded that handoff first.
    _open(a, 2, "det", media / "statement-2.txt")
    offer2 = _offer(a, travel, 2)
    r = b.run("handoff", "accept", str(offer2), "--by", "clerk", "--media", str(media))
    assert "signed by det and clerk" in r.stdout
    a.run("handoff", "receipt", str(offer2) + ".receipt")

    for home in (a, b):
        home.verify()
        shown = home.run("show", f"{CASE}/0002").stdout
        assert "holder      clerk" in shown
    # A's access to 0001 stays on A, where it was made in order; B did not copy it after
    # its own record of the handoff (it would read as an access by a non-holder), and said so.
    assert a.entry_types() == ["ingest", "access", "handoff"]
    assert b.entry_types() == ["ingest", "handoff"]
    assert "not copied" in r.stderr and "access" in r.stderr


def test_every_entry_made_while_an_offer_was_out_stays_on_the_sender(
    homes: tuple[Home, Home, Path],
) -> None:
    """Each entry the receiving log's order refuses is not copied, and named; the rest
    of the case still moves, and a re-run of the accept appends nothing."""
    a, b, travel = homes
    media = travel / "media"
    media.mkdir()
    offer1 = _offer(a, travel, 1)
    _open(a, 1, "det", media / "statement-1.txt")
    b.run("handoff", "accept", str(offer1), "--by", "clerk", "--media", str(media))
    # While the receipt travels, A's log still has det as the holder of 0001: a second
    # access there is valid in A's order.
    _open(a, 1, "det", travel / "another-copy.txt")
    a.run("handoff", "receipt", str(offer1) + ".receipt")
    _open(a, 2, "det", media / "statement-2.txt")
    offer2 = _offer(a, travel, 2)
    r = b.run("handoff", "accept", str(offer2), "--by", "clerk", "--media", str(media))
    assert r.stderr.count("was not copied to this log") == 2, r
    b.verify()
    a.run("handoff", "receipt", str(offer2) + ".receipt")
    a.verify()
    # Re-accepting the same offer appends nothing (the entries are on B already or are
    # not copied), and says so.
    size = b.log_size()
    r = b.run("handoff", "accept", str(offer2), "--by", "clerk", "--media", str(media))
    assert r.stdout.startswith("already accepted at entry ") and b.log_size() == size


def test_a_forged_context_entry_refuses_the_offer(homes: tuple[Home, Home, Path]) -> None:
    from custody.app.events import Offer

    a, b, travel = homes
    offer = Offer.parse(_offer(a, travel, 1).read_bytes(), "offer")
    ingest = next(d for d in offer.context if b"type ingest" in d)
    forged = ingest.replace(b"statement-1.txt", b"statement-9.txt")
    bad = travel / "forged-offer"
    bad.write_bytes(
        Offer(offer.handoff, tuple(forged if d == ingest else d for d in offer.context)).encode()
    )
    size = b.log_size()
    r = b.refuse(1, "handoff", "accept", str(bad), "--by", "clerk", "--media", str(travel))
    assert "the offer's context entry" in r.stderr and "(ingest)" in r.stderr
    assert b.log_size() == size


# -- crashes in `handoff accept` and `handoff receipt` ------------------------------------


def _no_temp_files(folder: Path) -> None:
    left = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert left == [], left


def test_a_crash_after_the_handoff_is_committed_is_finished_by_a_rerun(
    homes: tuple[Home, Home, Path],
) -> None:
    a, b, travel = homes
    media = travel / "media"
    media.mkdir()
    offer = _offer(a, travel, 1)
    _open(a, 1, "det", media / "statement-1.txt")
    accept = ("handoff", "accept", str(offer), "--by", "clerk", "--media", str(media))
    before = b.log_size()
    r = b.subprocess(*accept, crash_at="accept.handoff-committed")
    assert r.code == CRASH_STATUS, r
    # The handoff is on B's log; no receipt was written.
    assert b.entry_types() == ["ingest", "handoff"]
    assert not (travel / "offer1.receipt").exists()
    size = b.log_size()
    assert size > before
    # A hidden temp file of an interrupted receipt write (what a kill inside the
    # write leaves) is cleared too.
    (travel / ".offer1.receipt.0123abcd.tmp").write_bytes(b"half a receipt")
    r = b.subprocess(*accept)
    assert r.code == 0, r
    index = b.entry_index_of_last_handoff()
    assert r.stdout == (
        f"already accepted at entry {index}; receipt written to {travel / 'offer1.receipt'}\n"
    )
    assert b.log_size() == size  # nothing appended twice
    _no_temp_files(travel)
    b.verify()
    # The received copy is in B's store, and the receipt does its job on A's side.
    _open(b, 1, "clerk", travel / "court-copy.txt")
    a.run("handoff", "receipt", str(travel / "offer1.receipt"))
    assert a.entry_types() == ["ingest", "access", "handoff"]
    a.verify()


def test_a_crash_after_the_receipt_is_written_is_finished_by_a_rerun(
    homes: tuple[Home, Home, Path],
) -> None:
    a, b, travel = homes
    media = travel / "media"
    media.mkdir()
    offer = _offer(a, travel, 1)
    _open(a, 1, "det", media / "statement-1.txt")
    accept = ("handoff", "accept", str(offer), "--by", "clerk", "--media", str(media))
    r = b.subprocess(*accept, crash_at="accept.receipt-written")
    assert r.code == CRASH_STATUS, r
    first = (travel / "offer1.receipt").read_bytes()
    size = b.log_size()
    r = b.subprocess(*accept)
    assert r.code == 0, r
    assert r.stdout.startswith("already accepted at entry ") and "receipt written to" in r.stdout
    assert b.log_size() == size
    from custody.app.events import Receipt

    # The receipt is re-written for the same doubly signed entry.
    again = Receipt.parse((travel / "offer1.receipt").read_bytes(), "receipt")
    assert again.entry == Receipt.parse(first, "receipt").entry
    _no_temp_files(travel)
    a.run("handoff", "receipt", str(travel / "offer1.receipt"))
    a.verify()
    b.verify()


def test_handoff_receipt_is_idempotent_after_a_crash(homes: tuple[Home, Home, Path]) -> None:
    a, b, travel = homes
    media = travel / "media"
    media.mkdir()
    offer = _offer(a, travel, 1)
    _open(a, 1, "det", media / "statement-1.txt")
    b.run("handoff", "accept", str(offer), "--by", "clerk", "--media", str(media))
    receipt = str(travel / "offer1.receipt")
    r = a.subprocess("handoff", "receipt", receipt, crash_at="receipt.recorded")
    assert r.code == CRASH_STATUS, r
    assert a.entry_types() == ["ingest", "access", "handoff"]
    assert not (a.root / "receipts").exists() or not list((a.root / "receipts").iterdir())
    size = a.log_size()
    r = a.subprocess("handoff", "receipt", receipt)
    assert r.code == 0, r
    index = a.entry_index_of_last_handoff()
    assert r.stdout == (
        "receipt verified against court.example/custody; handoff already recorded here as "
        f"log entry {index}\n"
    )
    assert a.log_size() == size
    assert len(list((a.root / "receipts").glob("*.receipt"))) == 1
    assert len(list((a.root / "known-logs").glob("*.vkey"))) == 1
    # A third run is the same no-op.
    assert "already recorded" in a.run("handoff", "receipt", receipt).stdout
    a.verify()


def test_an_offer_names_an_unknown_case(homes: tuple[Home, Home, Path]) -> None:
    a, _b, travel = homes
    r = a.refuse(
        3, "handoff", "offer", f"{CASE}/0001", "--case", "NOPE", "--from", "det",
        "--to", "clerk", "--purpose", "x", "--out", str(travel / "nope-offer"),
    )  # fmt: skip
    assert r.stderr.startswith("custody: error: no case 'NOPE'")
    assert not (travel / "nope-offer").exists()


# -- `custody open` ------------------------------------------------------------------------


def test_open_names_an_unknown_case(homes: tuple[Home, Home, Path]) -> None:
    a, _b, travel = homes
    size = a.log_size()
    r = a.refuse(
        3, "open", f"{CASE}/0001", "--case", "NOPE", "--by", "det", "--purpose", "x",
        "--out", str(travel / "x.txt"),
    )  # fmt: skip
    assert r.stderr.startswith("custody: error: no case 'NOPE'")
    a.run("case", "new", "C2")
    r = a.refuse(
        3, "open", f"{CASE}/0001", "--case", "C2", "--by", "det", "--purpose", "x",
        "--out", str(travel / "x.txt"),
    )  # fmt: skip
    assert "C1/0001 is not in case 'C2'" in r.stderr
    assert a.log_size() == size and not (travel / "x.txt").exists()


def test_open_never_writes_through_or_replaces_a_symbolic_link(
    homes: tuple[Home, Home, Path],
) -> None:
    a, _b, travel = homes
    size = a.log_size()
    link = travel / "out.txt"
    target = travel / "elsewhere" / "target.txt"
    link.symlink_to(target)
    args = ("open", f"{CASE}/0001", "--by", "det", "--purpose", "x", "--out", str(link))
    r = a.refuse(3, *args)
    assert r.stderr.startswith(f"custody: error: {link} is a symbolic link")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert not target.exists() and a.log_size() == size
    # A link to an existing file is an existing path, as before.
    target.parent.mkdir()
    target.write_text("keep me\n")
    r = a.refuse(2, *args)
    assert "already exists; refusing to overwrite it" in r.stderr
    assert target.read_text() == "keep me\n" and link.is_symlink()


def test_a_crash_after_the_access_is_logged_is_told_on_the_rerun(
    homes: tuple[Home, Home, Path],
) -> None:
    a, _b, travel = homes
    out = travel / "copy.txt"
    args = ("open", f"{CASE}/0001", "--by", "det", "--purpose", "court", "--out", str(out))
    size = a.log_size()
    r = a.subprocess(*args, crash_at="open.access-committed")
    assert r.code == CRASH_STATUS, r
    # The access is on the log; the copy never reached `out` (an unfinished one is left).
    assert a.log_size() == size + 1 and a.entry_types() == ["ingest", "access"]
    assert not out.exists()
    assert [p.name for p in travel.iterdir() if p.name.endswith(".part")]
    r = a.subprocess(*args)
    assert r.code == 0, r
    # The re-run logs its own access (the first is on record), says what it removed.
    assert "removed 1 unfinished copy" in r.stderr
    assert r.stdout == f"{out}\n"
    assert out.read_text() == "statement number 1\n"
    assert a.log_size() == size + 2 and a.entry_types() == ["ingest", "access", "access"]
    _no_temp_files(travel)
    a.verify()


def test_open_writes_onto_a_file_system_without_hard_links(
    homes: tuple[Home, Home, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT and exFAT (a USB stick) refuse hard links: the copy is renamed into place."""
    import errno

    from custody.app import events

    def no_links(src: object, dst: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(events.os, "link", no_links)
    a, _b, travel = homes
    out = travel / "stick" / "copy.txt"
    out.parent.mkdir()
    _open(a, 1, "det", out)
    assert out.read_text() == "statement number 1\n"
    assert [p.name for p in out.parent.iterdir()] == ["copy.txt"]
