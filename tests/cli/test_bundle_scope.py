"""Bundles tell only what they must (issue 9, finding 12; docs/spec/bundle.md §2.1).

One log holds two cases.  Case A: bob ingests a clip, hands it to carol, whose key is
later revoked; bob's key is rotated between the handoff and a later access.  Case B: an
informant (an owner party with an organisation) consents.  A's bundle must carry
nothing of the informant (not their name, not their organisation, in no file, folder
or ZIP), and must still carry the whole key timeline of bob and carol.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import clips
import pytest
from conftest import PASSPHRASE, invoke

from custody.bundle.verify import Manifest

INFORMANT = "nightjar-informant"
INFORMANT_ORG = "Quiet Harbour Trust"
SECRETS = (INFORMANT.encode(), INFORMANT_ORG.encode())


def ok(*args: str) -> str:
    r = invoke(*args)
    assert r.code == 0, r
    return r.stdout


@dataclass
class TwoCases:
    home: Path
    vkey: str
    index: dict[str, int]


def _last_index(home: Path) -> int:
    """The index of the entry the last command appended."""
    from custody.app.home import Custody

    with Custody.open(home) as c:
        return c.log.size() - 1


@pytest.fixture(scope="module")
def two_cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoCases]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        mp.delenv("CUSTODY_DB", raising=False)
        root = tmp_path_factory.mktemp("two-cases")
        home = root / "agency"
        h = str(home)
        mp.setenv("CUSTODY_HOME", h)
        ok("init", "--home", h, "--origin", "scope.example/custody")
        ok("key", "new", "bob", "--role", "agency", "--org", "Metro Police", "--home", h)
        ok("key", "new", "carol", "--role", "lab", "--org", "Forensic Lab", "--home", h)
        ok("key", "new", INFORMANT, "--role", "owner", "--org", INFORMANT_ORG, "--home", h)
        ok("case", "new", "A-1", "--home", h)
        ok("case", "new", "B-2", "--home", h)
        clip = clips.make_clip(root / "footage" / "door.mp4")
        notes = clips.write_sidecar_json(root / "footage" / "tip.json")
        base = ("--by", "bob", "--legal-basis", "warrant", "--ref", "W-1", "--home", h)
        ok("ingest", str(clip), "--case", "A-1", *base)
        ok("ingest", str(notes), "--case", "B-2", *base)
        ok(
            "consent",
            "grant",
            "--owner",
            INFORMANT,
            "--case",
            "B-2",
            "--purpose",
            "the tip-off",
            "--home",
            h,
        )
        offer = root / "offer.json"
        ok(
            "handoff",
            "offer",
            "A-1/0001",
            "--from",
            "bob",
            "--to",
            "carol",
            "--purpose",
            "examination",
            "--out",
            str(offer),
            "--home",
            h,
        )
        ok("handoff", "accept", str(offer), "--by", "carol", "--home", h)
        offer2 = root / "offer2.json"
        ok(
            "handoff",
            "offer",
            "A-1/0001",
            "--from",
            "carol",
            "--to",
            "bob",
            "--purpose",
            "back to the agency",
            "--out",
            str(offer2),
            "--home",
            h,
        )
        ok("handoff", "accept", str(offer2), "--by", "bob", "--home", h)
        ok("key", "revoke", "carol", "--reason", "left the lab", "--home", h)
        index = {"revoke-carol": _last_index(home)}
        ok("key", "rotate", "bob", "--home", h)
        index["rotate-bob"] = _last_index(home)
        ok(
            "open",
            "A-1/0001",
            "--by",
            "bob",
            "--purpose",
            "review",
            "--out",
            str(root / "viewed.mp4"),
            "--home",
            h,
        )
        index["access"] = _last_index(home)
        vkey = ok("log", "key", "--home", h).strip()
        yield TwoCases(home, vkey, index)


def _pdf_streams(data: bytes) -> list[bytes]:
    """The decompressed content streams of a PDF (fpdf2 deflates them)."""
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            out.append(zlib.decompress(m.group(1)))
        except zlib.error:
            out.append(m.group(1))
    return out


def _leaks(name: str, data: bytes) -> list[str]:
    texts = [data, *(_pdf_streams(data) if name.endswith(".pdf") else [])]
    return [f"{name}: {s.decode()}" for s in SECRETS for t in texts if s in t]


def _folder_leaks(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        found += [f"path {rel}: {s.decode()}" for s in SECRETS if s.decode() in rel]
        if path.is_file():
            found += _leaks(rel, path.read_bytes())
    return found


def _zip_leaks(archive: Path) -> list[str]:
    found = _leaks(archive.name, archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            found += [f"member {info.filename}" for s in SECRETS if s.decode() in info.filename]
            found += _leaks(info.filename, zf.read(info))
    return found


def _verify_md_parties(text: str) -> list[str]:
    section = text.split("## Parties in this bundle", 1)[1].split("## Items", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row.split("|")[1].strip() for row in rows[1:]]  # skip the header row


def test_a_case_bundle_carries_nothing_of_another_case_informant(
    two_cases: TwoCases, tmp_path: Path
) -> None:
    h = str(two_cases.home)
    folder, archive = tmp_path / "a-bundle", tmp_path / "a-bundle.zip"
    ok("export", "A-1", "--to", str(folder), "--with-media", "--home", h)
    ok("export", "A-1", "--to", str(archive), "--home", h)
    assert _folder_leaks(folder) == []
    assert _zip_leaks(archive) == []
    # The search does find the informant where they belong: in case B's bundle.
    other = tmp_path / "b-bundle"
    ok("export", "B-2", "--to", str(other), "--home", h)
    assert _folder_leaks(other)
    # Only bob and carol, the parties of A's entries, with their whole key timeline.
    m = Manifest.parse((folder / "MANIFEST.json").read_bytes())
    assert sorted({p.name for p in m.parties}) == ["bob", "carol"]
    assert sorted(_verify_md_parties((folder / "VERIFY.md").read_text())) == [
        "bob",
        "bob",
        "carol",
    ]
    indexes = {e.index for e in m.entries}
    assert {two_cases.index["revoke-carol"], two_cases.index["rotate-bob"]} <= indexes
    carol = next(p for p in m.parties if p.name == "carol")
    assert (
        carol.ended_at == two_cases.index["revoke-carol"] and carol.end == "revoked: left the lab"
    )
    old_bob = next(p for p in m.parties if p.name == "bob" and p.ended_at is not None)
    assert old_bob.ended_at == two_cases.index["rotate-bob"] and old_bob.end == "rotated"
    # Both verify, and say nothing of parties carried beyond need.
    for bundle in (folder, archive):
        r = invoke("verify-bundle", str(bundle), "--trust", two_cases.vkey, "--no-probe")
        assert r.code == 0, r
        assert "tells more than it must" not in r.stdout
    # The access after the rotation is signed with bob's new key, checked from the
    # rotation entry the bundle carries.
    r = invoke("verify-bundle", str(folder), "--trust", two_cases.vkey, "--no-probe", "--json")
    doc = json.loads(r.stdout)
    events = [e for i in doc["items"] for e in i["events"]]
    assert any(e["index"] == two_cases.index["access"] and e["type"] == "access" for e in events)
