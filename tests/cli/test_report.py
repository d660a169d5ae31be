"""The case report (HTML and PDF), on real clips, through the library and the CLI."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import clips
import pytest
from conftest import PASSPHRASE, invoke

from custody.app import evidence
from custody.app.home import Custody
from custody.errors import InputError
from custody.infra import ffmpeg as media
from custody.infra.indexer import append_indexed
from custody.infra.store import ItemRow
from custody.infra.vault import Vault
from custody.model.entry import Entry, sign_entry
from custody.report import court as report

CASE = "C1"
EVIL = "<img src=x onerror=alert(1)>.mp4"  # '/' cannot be in a file name; '<' '>' '=' can
EVIL_TITLE = "<script>alert(1)</script> & 'Elm St'"
NON_ASCII = "Überwachung_Łódź_č.mp4"
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
# The entries this test signs itself claim the real time: the home's own entries (made by
# the CLI) do, and the log refuses an entry claiming a time well before the one before it
# (docs/spec/entry.md rule 5).


def _later() -> datetime:
    """Now, to the second: read when an entry is signed, not when the module is collected
    (a run of the whole suite can take longer than the tolerance)."""
    return datetime.now(UTC).replace(microsecond=0)


pdftotext = shutil.which("pdftotext")


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clips made once for the module: the original, a trimmed copy, a second camera."""
    d = tmp_path_factory.mktemp("report-footage")
    orig = clips.make_clip(d / "orig.mp4", seconds=2.0)
    return {
        "orig": orig,
        "trim": clips.trim_copy(orig, d / "trim.mp4", 1.0, 2.0),
        "other": clips.make_clip(d / "other.mp4", seconds=1.0, pattern="smptebars"),
        "csv": clips.write_csv(d / "export-log.csv"),
    }


@dataclass
class Scenario:
    home: Path
    items: dict[str, ItemRow]  # by file name
    trim: ItemRow


def _signer(c: Custody, name: str):  # type: ignore[no-untyped-def]
    return c.signer(name, lambda _prompt: PASSPHRASE)


@pytest.fixture
def scenario(cli, home: Path, footage: dict[str, Path], tmp_path: Path) -> Scenario:  # type: ignore[no-untyped-def]
    """Case C1: a clip with a hostile name, one with a non-ASCII name and an attachment,
    ingested by bob; the first handed to alice, who makes a trimmed copy; a checkpoint."""
    src = tmp_path / "export"
    src.mkdir()
    shutil.copy(footage["orig"], src / EVIL)
    shutil.copy(footage["other"], src / NON_ASCII)
    shutil.copy(footage["csv"], src / "export-log.csv")
    cli.run("case", "new", CASE, "--title", EVIL_TITLE)
    cli.run(
        "ingest",
        str(src / EVIL),
        str(src / NON_ASCII),
        str(src / "export-log.csv"),
        *("--case", CASE, "--by", "bob", "--sha256", "--source", "doorbell export"),
        *("--legal-basis", "warrant", "--ref", "W-2026-17"),
    )
    with Custody.open() as c:
        rows = {r.name: r for r in c.store.items_in_case(CASE)}
        bob, alice = _signer(c, "bob"), _signer(c, "alice")
        parent = rows[EVIL]
        # A handoff bob -> alice, signed by both (the handoff command is not ours to call).
        handoff = Entry.build(
            "handoff",
            _later(),
            [
                ("case", CASE),
                ("item", parent.blake3),
                ("from", "bob"),
                ("to", "alice"),
                ("purpose", "frame analysis <lab>"),
                ("authority", "Order 2026/88"),
                ("offer", secrets.token_hex(16)),
            ],
        )
        _append(c, sign_entry(handoff, [bob, alice]))
        # alice derives a trimmed copy: stored, measured and recorded like an ingest.
        p = evidence.prepare(Vault(c.home.vault_root), evidence.Source(footage["trim"]), True, None)
        assert p.info is not None
        fields: list[tuple[str, str | int | None]] = [
            ("case", CASE),
            ("parent", parent.blake3),
            ("item", p.blake3),
            ("exhibit", f"{CASE}/0004"),
            ("name", "excerpt.mp4"),
            ("size", p.size),
            ("sha256", p.sha256),
            ("kind", "media"),
            ("metadata", p.info.metadata_digest),
            ("content", p.info.content_digest),
            *[
                (
                    "stream",
                    f"{s.index} {s.codec_type} {s.codec_name} {s.packets} {s.digest} "
                    f"{s.extradata or '-'}",
                )
                for s in p.info.streams
            ],
            ("op", "trim"),
            ("param", "start 00:00:01.000"),
            ("param", "end 00:00:02.000"),
            ("tool", p.info.tool),
            ("reason", "jury excerpt"),
            ("by", "alice"),
        ]
        _append(c, sign_entry(Entry.build("derive", _later(), fields), [alice]))
        # The copy was only staged: it enters the store once its entry is committed.
        assert p.staged is not None
        p.staged.place()
        trim = c.store.items_in_case(CASE)[-1]
    cli.run("log", "checkpoint")
    return Scenario(home, rows, trim)


def _append(c: Custody, data: bytes) -> int:
    """Append as custody's own commands do: the log checks, the indexer records."""
    with c.log.transaction() as w:
        return append_indexed(w, data)


def _build() -> report.Report:
    with Custody.open() as c:
        return report.build_report(c, CASE, now=NOW)


def _pdf_text(pdf: Path | bytes) -> str:
    """The PDF's text, as poppler's pdftotext extracts it."""
    assert pdftotext is not None
    data = pdf.read_bytes() if isinstance(pdf, Path) else pdf
    out = subprocess.run([pdftotext, "-", "-"], input=data, capture_output=True, check=True)
    return out.stdout.decode("utf-8")


def test_html_report_is_complete_self_contained_and_escaped(
    scenario: Scenario, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    with Custody.open() as c:
        report.write_report(c, CASE, "html", out, now=NOW)
    page = out.read_text(encoding="utf-8")

    # The verdict, the case, the checkpoint, the tools.
    assert "Verification PASSED" in page
    assert "test.example/custody" in page and "custody 0.1.0" in page
    assert media.ffmpeg_version() in page
    # Every hash of every exhibit, and the parties.
    for row in [*scenario.items.values(), scenario.trim]:
        assert row.blake3 in page
        assert row.sha256 is not None and row.sha256 in page
        if row.kind == "media":
            assert row.metadata_digest in page and row.content_digest in page
    for party in ("alice", "bob", "Metro Police"):
        assert party in page
    # Handoff table with both signatures verified; derived clip with parent and params.
    assert "frame analysis &lt;lab&gt;" in page and "Order 2026/88" in page
    assert "<td>bob</td><td>alice</td>" in page and "✓ both verified" in page
    parent = scenario.items[EVIL].exhibit
    assert re.search(rf"<td>{re.escape(parent)}</td><td>trim</td>", page)
    assert "start 00:00:01.000; end 00:00:02.000" in page
    # The holder by the log, and the derived clip's own integrity block naming its parent.
    assert "<tr><th>Current holder</th><td>alice</td></tr>" in page
    assert f"<tr><th>Derived from</th><td>{parent}</td></tr>" in page
    assert "902(14)" in page and "penalty of perjury" in page

    # Hostile text is escaped wherever it appears; nothing can run or load.
    assert "<script>" not in page and "<img src=x" not in page
    assert escape(EVIL) in page and escape(EVIL_TITLE) in page
    assert "default-src 'none'" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)
    # Frames: 4 per clip with a picture (3 clips), none for the CSV attachment.
    assert page.count('src="data:image/jpeg;base64,') == 12


@pytest.mark.skipif(pdftotext is None, reason="pdftotext (poppler-utils) is not installed")
def test_pdf_report_text_has_hashes_parties_and_verdict(
    cli, scenario: Scenario, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report.pdf"
    r = cli.run("report", CASE, "--out", str(out))  # format from the extension
    assert "verification PASSED" in r.stdout
    assert out.read_bytes().startswith(b"%PDF-")
    text = _pdf_text(out)
    assert "Verification PASSED" in text
    for row in [*scenario.items.values(), scenario.trim]:
        # Each digest is set on one line: the text extraction finds it whole.
        assert row.blake3 in text, row.name
        assert row.sha256 is not None and row.sha256 in text
    for party in ("alice", "bob", "Metro Police"):
        assert party in text
    assert NON_ASCII in text  # Unicode names print as recorded (DejaVu, .ci/sysdeps.sh)
    assert EVIL in text and "Order 2026/88" in text
    assert "902(14)" in text


def test_tampered_object_makes_the_report_fail_naming_the_exhibit(
    cli, scenario: Scenario, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    row = scenario.items[NON_ASCII]
    path = Vault(scenario.home / "vault").path_for(row.blake3)
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    built = _build()
    assert not built.passed
    [failure] = built.failures
    assert failure.subject == row.exhibit
    assert f"{row.exhibit}: evidence store object {row.blake3} is damaged" in failure.detail
    item = next(i for i in built.items if i.exhibit == row.exhibit)
    assert not item.thumbnails and "failed verification" in (item.thumbnail_note or "")

    page = report.render_html(built).decode()
    assert "Verification FAILED" in page and "Do not sign" in page
    assert f"Exhibit {row.exhibit}: {NON_ASCII} (FAILED)" in page

    out = tmp_path / "report.pdf"
    r = invoke("report", CASE, "--format", "pdf", "--out", str(out), "--json")
    assert r.code == 1, r
    assert f"the report records a failed verification: {row.exhibit}:" in r.stderr
    assert json.loads(r.stdout)["verdict"] == "failed"
    if pdftotext is not None:
        text = _pdf_text(out)
        assert "Verification FAILED" in text and row.exhibit in text


def test_entries_after_the_checkpoint_are_marked(  # type: ignore[no-untyped-def]
    cli, home: Path, footage: dict[str, Path]
) -> None:
    cli.run("case", "new", CASE)
    cli.run(
        "ingest", str(footage["csv"]), "--case", CASE, "--by", "bob", "--legal-basis", "warrant"
    )
    cli.run("log", "checkpoint")
    with Custody.open() as c:
        [row] = c.store.items_in_case(CASE)
        access = Entry.build(
            "access",
            _later(),
            [
                ("case", CASE),
                ("item", row.blake3),
                ("by", "bob"),
                ("purpose", "review"),
                ("action", "view"),
            ],
        )
        index = _append(c, sign_entry(access, [_signer(c, "bob")]))
    built = _build()
    assert built.passed, built.failures
    assert any("newer than the checkpoint" in n for n in built.notes)
    [item] = built.items
    assert [(t.type, t.covered) for t in item.timeline] == [("ingest", True), ("access", False)]
    assert item.timeline[-1].index == index
    assert "view by bob for review" in item.timeline[-1].summary
    assert f"<td>{index} †</td>" in report.render_html(built).decode()


def test_edited_log_entry_fails_and_the_report_still_renders(  # type: ignore[no-untyped-def]
    cli, home: Path, footage: dict[str, Path]
) -> None:
    cli.run("case", "new", CASE)
    cli.run(
        "ingest",
        str(footage["csv"]),
        "--case",
        CASE,
        "--by",
        "bob",
        "--source",
        "DVR",
        "--legal-basis",
        "warrant",
    )
    db = sqlite3.connect(home / "custody.db")
    for (trigger,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        db.execute(f"DROP TRIGGER {trigger}")  # an attacker with the database file
    [(index, data)] = db.execute("SELECT idx, data FROM entries WHERE etype = 'ingest'")
    db.execute("UPDATE entries SET data = ? WHERE idx = ?", (data.replace(b"DVR", b"DVD"), index))
    db.commit()
    db.close()

    built = _build()
    assert built.verdict == "FAILED"
    details = [f.detail for f in built.failures]
    assert details[0].startswith(f"log entry {index}: signature by 'bob' does not verify")
    assert f"{CASE}/0001: its signed record, log entry {index}, did not verify" in " ".join(details)
    assert "Verification FAILED" in report.render_html(built).decode()
    pdf = report.render_pdf(built)
    if pdftotext is not None:
        assert "Verification FAILED" in _pdf_text(pdf)


def test_cli_report_refuses_bad_format_and_unknown_case(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli.run("case", "new", CASE)
    cli.fail(2, "report", CASE, "--format", "docx", "--out", str(tmp_path / "r.docx"))
    cli.fail(2, "report", CASE, "--out", str(tmp_path / "report"))
    cli.fail(3, "report", "NOPE", "--out", str(tmp_path / "r.html"))
    # An empty case still makes a (passing) report, with no checkpoint noted.
    r = cli.run("report", CASE, "--out", str(tmp_path / "r.html"), "--json")
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "passed" and doc["exhibits"] == []
    assert any("no signed checkpoint" in n for n in doc["notes"])


def test_pdf_without_dejavu_falls_back_to_core_fonts(  # type: ignore[no-untyped-def]
    cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.run("case", "new", CASE, "--title", NON_ASCII)
    monkeypatch.setattr(report, "_FONT_DIRS", ())
    out = tmp_path / "core.pdf"
    report.save(report.render_pdf(_build()), out)
    if pdftotext is not None:
        text = _pdf_text(out)
        assert "Verification PASSED" in text
        # Outside Latin-1, characters are shown as code points, never dropped.
        assert "Überwachung_<U+0141>ód<U+017A>_<U+010D>.mp4" in text


def test_thumbnails(footage: dict[str, Path], tmp_path: Path) -> None:
    frames = media.thumbnails(footage["orig"], 3, 96)
    assert len(frames) == 3 and all(f.startswith(b"\xff\xd8") for f in frames)
    assert len(set(frames)) == 3  # different moments of the clip
    sound = tmp_path / "sound.m4a"
    clips.ffmpeg("-i", footage["orig"], "-map", "0:a", "-c", "copy", sound)
    assert media.thumbnails(sound) == []
    with pytest.raises(InputError, match="is not media"):
        media.thumbnails(footage["csv"])


def test_control_characters_are_shown_not_obeyed() -> None:
    assert report._visible("clip\u202egpj.exe") == "clip<U+202E>gpj.exe"
    assert report._visible("a\nb") == "a<U+000A>b"
