"""Handoffs that say what is wrong and what to do (issue 13, item 6).

Home A (an agency; bob holds C-1/0001, taken in under a warrant, and C-2/0001, taken in
on consent with no consent recorded yet) offers exhibits to clerk2, whose court home B
has its own log.  An offer to a party A does not know is refused before any custody
rule is asked; `--with-media DIR` writes the offered files next to the offer, logging
each copy once; what the offer prints is what the two sides then type.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3
import clips
import pytest
from conftest import CliResult, invoke


@dataclass(frozen=True)
class Homes:
    a: Path  # the agency's home: bob
    b: Path  # the court's home: clerk2
    tmp: Path
    clip: Path  # the bytes of C-1/0001

    def run(self, home: Path, *args: str) -> CliResult:
        r = invoke(*args, "--home", str(home))
        assert r.code == 0, r
        return r

    def fail(self, code: int, home: Path, *args: str) -> CliResult:
        r = invoke(*args, "--home", str(home))
        assert r.code == code, r
        assert r.stderr.startswith("custody: error: ") and "Traceback" not in r.stderr, r
        lines = r.stderr.rstrip("\n").split("\n")
        assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("  hint: ")), r
        return r

    def size(self, home: Path) -> int:
        return int(json.loads(self.run(home, "log", "verify", "--json").stdout)["size"])

    def import_clerk2(self) -> None:
        key = self.tmp / "clerk2.keyentry"
        self.run(self.b, "key", "export", "clerk2", "--out", str(key))
        self.run(self.a, "key", "import", str(key))


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Both homes, built once; every test gets its own copy."""
    root = tmp_path_factory.mktemp("handoff-clarity")
    door = clips.make_clip(root / "door.mp4")
    porch = clips.make_clip(root / "porch.mp4", pattern="smptebars", frequency=660)
    with pytest.MonkeyPatch.context() as mp:
        from conftest import PASSPHRASE

        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        for name in ("CUSTODY_HOME", "CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY"):
            mp.delenv(name, raising=False)
        w = Homes(root / "a", root / "b", root, door)
        w.run(w.a, "init", "--origin", "metro.example/custody")
        w.run(w.a, "key", "new", "bob", "--role", "agency", "--org", "Metro Police")
        w.run(w.a, "case", "new", "C-1", "--title", "Burglary")
        w.run(w.a, "case", "new", "C-2", "--title", "Doorbell")
        w.run(
            w.a, "ingest", str(door), "--case", "C-1", "--by", "bob",
            *("--legal-basis", "warrant", "--ref", "SW-1"),
        )  # fmt: skip
        w.run(
            w.a, "ingest", str(porch), "--case", "C-2", "--by", "bob",
            *("--legal-basis", "consent", "--ref", "CONSENT-1"),
        )  # fmt: skip
        w.run(w.b, "init", "--origin", "court.example/custody")
        w.run(w.b, "key", "new", "clerk2", "--role", "court", "--org", "County Court")
    yield root


@pytest.fixture
def homes(prebuilt: Path, tmp_path: Path) -> Homes:
    root = tmp_path / "world"
    shutil.copytree(prebuilt, root, symlinks=True)
    return Homes(root / "a", root / "b", tmp_path, root / "door.mp4")


UNKNOWN = (
    "custody: error: no party 'clerk2' on this log: import their key with `custody key import`"
)


def test_an_offer_to_a_party_this_log_does_not_know_is_refused_saying_so(homes: Homes) -> None:
    before = homes.size(homes.a)
    offer = homes.tmp / "offer"
    args = ("handoff", "offer", "C-1/0001", "--from", "bob", "--to", "clerk2")
    r = homes.fail(3, homes.a, *args, "--purpose", "trial", "--out", str(offer))
    assert r.stderr.splitlines()[0] == UNKNOWN, r
    assert "custody key export clerk2" in r.stderr and "custody key import" in r.stderr, r
    assert not offer.exists() and homes.size(homes.a) == before
    # --with-media copies nothing, and logs nothing, for such an offer.
    media = homes.tmp / "media"
    r = homes.fail(
        3, homes.a, *args, "--purpose", "trial", "--out", str(offer), "--with-media", str(media)
    )
    assert r.stderr.splitlines()[0] == UNKNOWN, r
    assert not media.exists() and homes.size(homes.a) == before


def test_the_unknown_party_is_named_before_any_consent_check(homes: Homes) -> None:
    # C-2/0001 was taken in on consent, and no consent covers handing it on: once clerk2
    # is known, that is the refusal (exit 4); before, the unknown party is.
    args = ("handoff", "offer", "C-2/0001", "--from", "bob", "--to", "clerk2", "--purpose", "x")
    r = homes.fail(3, homes.a, *args, "--out", str(homes.tmp / "o1"))
    assert r.stderr.splitlines()[0] == UNKNOWN, r
    homes.import_clerk2()
    r = homes.fail(4, homes.a, *args, "--out", str(homes.tmp / "o2"))
    assert r.stderr.startswith("custody: error: refused: ") and "consent" in r.stderr, r
    assert "clerk2' on this log" not in r.stderr


def test_with_media_writes_the_files_logs_each_access_once_and_the_instructions_work(
    homes: Homes,
) -> None:
    homes.import_clerk2()
    before = homes.size(homes.a)
    offer, media = homes.tmp / "offer", homes.tmp / "offer-media"
    r = homes.run(
        homes.a,
        *("handoff", "offer", "C-1/0001", "--from", "bob", "--to", "clerk2"),
        *("--purpose", "trial", "--out", str(offer), "--with-media", str(media)),
    )
    # The file, with the bytes ingested, under its ingested name.
    (copy,) = media.iterdir()
    assert copy.name == "door.mp4"
    want = blake3.blake3(homes.clip.read_bytes()).hexdigest()
    assert blake3.blake3(copy.read_bytes()).hexdigest() == want
    # One access entry, by bob, naming the handoff; nothing else appended.
    assert homes.size(homes.a) == before + 1
    entry = homes.run(homes.a, "log", "entry", str(before)).stdout
    assert "type access" in entry and "by bob" in entry and "to clerk2: trial" in entry, entry
    # The instructions: what to send, and the exact commands of both sides.
    out = r.stdout
    assert f"offer written to {offer}: 1 item(s) from bob to clerk2" in out, out
    assert f"access logged as log entry {before})" in out, out
    assert f"send clerk2 both the offer file {offer} and the folder {media}" in out, out
    accept = re.search(r"^  (custody handoff accept .*)$", out, re.M)
    receipt = re.search(r"(custody handoff receipt \S+)$", out, re.M)
    assert accept and receipt, out
    assert accept.group(1) == "custody handoff accept offer --by clerk2 --media offer-media"
    # Run them as printed, from the folder the offer and the media are in.
    accept_args = accept.group(1).split()[1:]
    accept_args[2] = str(offer)
    accept_args[-1] = str(media)
    homes.run(homes.b, *accept_args)
    receipt_args = receipt.group(1).split()[1:]
    receipt_args[-1] = str(homes.tmp / receipt_args[-1])
    done = homes.run(homes.a, *receipt_args)
    assert "handoff recorded here as log entry" in done.stdout, done
    history = json.loads(homes.run(homes.b, "history", "C-1/0001", "--json").stdout)
    assert [e["type"] for e in history["timeline"]][-1] == "handoff"


def test_with_media_into_a_taken_name_copies_and_logs_nothing(homes: Homes) -> None:
    homes.import_clerk2()
    before = homes.size(homes.a)
    media = homes.tmp / "media"
    media.mkdir()
    (media / "door.mp4").write_bytes(b"another file")
    offer = homes.tmp / "offer"
    r = homes.fail(
        2,
        homes.a,
        *("handoff", "offer", "C-1/0001", "--from", "bob", "--to", "clerk2"),
        *("--purpose", "trial", "--out", str(offer), "--with-media", str(media)),
    )
    assert "door.mp4 already exists" in r.stderr and "nothing copied" in r.stderr, r
    assert (media / "door.mp4").read_bytes() == b"another file"
    assert not offer.exists() and homes.size(homes.a) == before


def test_an_offer_without_media_says_how_to_send_the_files(homes: Homes) -> None:
    homes.import_clerk2()
    before = homes.size(homes.a)
    offer = homes.tmp / "offer"
    r = homes.run(
        homes.a,
        *("handoff", "offer", "C-1/0001", "--to", "clerk2", "--from", "bob"),
        *("--purpose", "trial", "--out", str(offer)),
    )
    assert "from bob to clerk2" in r.stdout and "None" not in r.stdout, r
    assert "--with-media DIR" in r.stdout, r
    assert "clerk2 runs: custody handoff accept offer --by clerk2 --media DIR" in r.stdout, r
    assert homes.size(homes.a) == before  # an offer alone appends nothing


def test_with_media_json_names_each_file_and_its_access_entry(homes: Homes) -> None:
    homes.import_clerk2()
    before = homes.size(homes.a)
    media = homes.tmp / "m"
    r = homes.run(
        homes.a,
        *("handoff", "offer", "C-1/0001", "--from", "bob", "--to", "clerk2", "--json"),
        *("--purpose", "trial", "--out", str(homes.tmp / "offer"), "--with-media", str(media)),
    )
    doc = json.loads(r.stdout)
    want = blake3.blake3(homes.clip.read_bytes()).hexdigest()
    assert doc["media"] == [{"path": str(media / "door.mp4"), "item": want, "index": before}]
    assert doc["items"] == [want] and doc["to"] == "clerk2"
