"""The report a judge reads first, and times in order (issue 13, items 5, 7 and 8).

One case like the demo's, built once for the module: a real clip made with ffmpeg
carrying creation_time and device tags, ingested by bob; a trim declared to start at
0.400 s (it starts at the keyframe at 0.000 s) and a redaction of a box from 0.5 to
1.0 s; then a handoff to cory written as custody wrote them before issue 11 (claiming
the offer's time, 20 minutes before the derive entries), so that its claimed time is
out of order.  The report (PDF and HTML) and the history are made once and read by
every test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import clips
import pytest
from conftest import PASSPHRASE, invoke

from custody.app import events
from custody.app.home import Custody
from custody.infra.indexer import append_indexed
from custody.model.entry import format_time, parse_time
from custody.model.times import span
from custody.report import court as report
from custody.report.timeline import PALETTE, Holding
from custody.tlog.note import add_signatures

CASE = "C1"
pdftotext = shutil.which("pdftotext")
pdftoppm = shutil.which("pdftoppm")
needs_poppler = pytest.mark.skipif(
    pdftotext is None or pdftoppm is None, reason="poppler-utils is not installed"
)


@dataclass(frozen=True)
class Case:
    home: Path
    pdf: Path
    html: str
    text: str  # pdftotext -layout of the PDF
    pages: list[str]  # the same, page by page
    built: report.Report
    handoff: int  # the index of the out-of-order handoff
    vkeys: dict[str, str]  # the log's and the parties' verifier keys


@contextmanager
def _env(root: Path) -> Iterator[None]:
    """The environment the case is built in (as the autouse fixture sets it for tests)."""
    saved = dict(os.environ)
    os.environ.update(
        CUSTODY_HOME=str(root / "home"),
        CUSTODY_PASSPHRASE=PASSPHRASE,
        CUSTODY_KDF_PROFILE="fast",
        CUSTODY_SEEN=str(root / "seen"),
    )
    for name in ("CUSTODY_DB", "CUSTODY_DEBUG", "CUSTODY_VAULT"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(*args: str) -> str:
    r = invoke(*args)
    assert r.code == 0, r
    return str(r.stdout)


def _gap(case: Case) -> str:
    """How much earlier the handoff claims to be than the derive entry before it, in
    words (about 20 min: the seconds between the derive and the offer's time count)."""
    item = next(i for i in case.built.items if i.exhibit == "C1/0001")
    times = {t.index: parse_time(t.time) for t in item.timeline}
    gap = times[case.handoff - 1] - times[case.handoff]
    assert timedelta(minutes=19) <= gap <= timedelta(minutes=20)
    return span(gap)


def _line(text: str, heading: str) -> int:
    """Where the line that is `heading` (and only it) starts in `text`."""
    m = re.search(rf"^\f?{re.escape(heading)}$", text, re.M)
    assert m is not None, heading
    return m.start()


def _pdf_text(pdf: Path) -> str:
    assert pdftotext is not None
    return subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    root = tmp_path_factory.mktemp("report-summary")
    with _env(root):
        clip = clips.make_clip(root / "door.mp4", seconds=2.0, size="320x240")
        _run("init", "--origin", "test.example/custody")
        _run("key", "new", "bob", "--role", "agency", "--org", "Metro Police")
        _run("key", "new", "cory", "--role", "court", "--org", "County Court")
        _run("case", "new", CASE, "--title", "Burglary at Elm St")
        _run(
            "ingest", str(clip), "--case", CASE, "--by", "bob", "--legal-basis", "warrant",
            "--ref", "W-1", "--sha256",
        )  # fmt: skip
        _run(
            "derive", "trim", f"{CASE}/0001", "--start", "0.4", "--end", "1.2", "--by", "bob",
            "--reason", "the door opens",
        )  # fmt: skip
        _run(
            "derive", "redact", f"{CASE}/0001", "--box", "40,40,100,80", "--start", "0.5",
            "--end", "1.0", "--by", "bob", "--reason", "a bystander's face",
        )  # fmt: skip
        # A handoff as custody wrote them before issue 11: the receiver's Ed25519
        # signature, no time of its own, so it claims the offer's time, 20 min back.
        offered = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
        with Custody.open() as c:
            offer = events.make_offer(
                c, [f"{CASE}/0001"], sender="bob", receiver="cory", purpose="trial",
                authority=None, case=None, passphrase=lambda _p: PASSPHRASE, now=offered,
            )  # fmt: skip
            cory = c.signer("cory", lambda _p: PASSPHRASE)
            with c.log.transaction() as w:
                handoff = append_indexed(w, add_signatures(offer.handoff, [cory]), imported=True)
        _run("log", "checkpoint")
        pdf, html = root / "report.pdf", root / "report.html"
        r = invoke("report", CASE, "--out", str(pdf))
        assert r.code == 0 and r.stderr == "", r  # no progress when stderr is no terminal
        _run("report", CASE, "--out", str(html))
        with Custody.open() as c:
            built = report.build_report(c, CASE)
            vkeys = {"log": c.log_key.encode()} | {p.name: p.vkey for p in built.parties}
    text = _pdf_text(pdf) if pdftotext else ""
    return Case(root / "home", pdf, html.read_text(), text, text.split("\f"), built, handoff, vkeys)


@needs_poppler
def test_summary_page_then_inventory_then_exhibits(case: Case) -> None:
    headings = [
        "Summary",
        "What was checked",
        "The result",
        "What this does not cover",
        "Inventory of exhibits",
        "Who held each exhibit when",
        "Check this yourself",
        "4. Exhibits",
        "Exhibit C1/0001: door.mp4 (passed)",
    ]
    order = [_line(case.text, h) for h in headings]
    assert order == sorted(order)
    # The summary is a page of its own, in plain words, with the verdict.
    first = case.pages[0]
    assert "Summary" in first and "Inventory of exhibits" not in first
    assert case.pages[1].lstrip().startswith("Inventory of exhibits")  # one page, no more
    assert "PASSED: every exhibit is bit for bit the file recorded" in first
    flat = " ".join(first.split())
    for words in (
        "Anything before acquisition.",
        "Events the log was not told about.",
        "Trims and redactions (C1/0002, C1/0003) were proven against their parent",
        "C1/0002 is a trim declared to start at 0.400 s of C1/0001, but it starts at 0.000 s",
        "1 entry claims a time earlier than the entry listed before it",
    ):
        assert words in flat, words


@needs_poppler
def test_inventory_lists_every_exhibit_with_recorded_time_duration_size_verdict(
    case: Case,
) -> None:
    inventory = case.text[
        case.text.index("Inventory of exhibits") : case.text.index("Who held each exhibit")
    ]
    rows = [line.split() for line in inventory.splitlines() if line.startswith("C1/")]
    assert [r[0] for r in rows] == ["C1/0001", "C1/0002", "C1/0003"]
    sizes = {i.exhibit: f"{i.size:,}" for i in case.built.items}
    for row in rows:
        assert "2024-03-01T10:00:00Z" in row  # the clip's creation_time
        assert sizes[row[0]] in row and row[-2:] == ["✓", "passed"]
    assert rows[0][3:5] == ["2.000", "s"]
    trim = next(i for i in case.built.items if i.exhibit == "C1/0002")
    assert trim.facts.duration is not None and 0.9 < trim.facts.duration < 1.4
    assert f"{trim.facts.duration:.3f}" in rows[1]


@needs_poppler
def test_each_exhibit_page_has_recording_facts_and_the_trim_spans(case: Case) -> None:
    exhibits = " ".join(case.text[case.text.index("4. Exhibits") :].split())
    for label, value in (
        ("Recorded (its metadata)", "2024-03-01T10:00:00Z"),
        ("Duration", "2.000 s"),
        ("Resolution", "320x240"),
        ("Codecs", "h264 video, aac audio"),
        ("Device (its metadata)", f"{clips.MAKE} {clips.MODEL}"),
    ):
        assert f"{label} {value}" in exhibits, label
    assert exhibits.count("Resolution 320x240") == 3
    # The trim: declared and actual span side by side, and said in bold above its frames.
    assert "Declared span 0.400 – 1.200 s of C1/0001 Actual span 0.000 – " in exhibits
    assert "it starts 0.400 s before the declared start, at the keyframe at 0.000 s" in exhibits
    page = exhibits[exhibits.index("Exhibit C1/0002: door.trim.mp4") :]
    assert page.index("Declared span 0.400 – 1.200 s of C1/0001; actual span") < page.index(
        "4 frames, evenly spaced"
    )
    # The derived-clips table says it too, without the ffmpeg command line.
    derived = exhibits[exhibits.index("6. Derived clips") : exhibits.index("7. Emergency")]
    assert "declared 0.400–1.200 s; actual 0.000–" in derived
    assert "-nostdin" not in derived


@needs_poppler
def test_ffmpeg_command_lines_are_in_the_appendix_only(case: Case) -> None:
    t = case.text
    appendix = t.index("Appendix: ffmpeg command lines")
    assert appendix > t.index("Certification (FRE 902(14))")
    assert t.count("ffmpeg -nostdin") == 2  # the trim's and the redaction's
    assert t.index("ffmpeg -nostdin") > appendix
    assert "drawbox=40:40:100:80" in t[appendix:]


def test_timeline_picture_in_the_html(case: Case) -> None:
    m = re.search(r'<svg [^>]*class="holdings".*?</svg>', case.html, re.S)
    assert m is not None
    picture = m.group(0)
    # One bar per holding: C1/0001 bob then cory (a handoff mark), the copies with bob.
    titles = re.findall(r"<rect [^>]*><title>([^<]*)</title></rect>", picture)
    assert [t.split(" from ")[0] for t in titles] == [
        "C1/0001: held by bob",
        "C1/0001: held by cory",
        "C1/0002: held by bob",
        "C1/0003: held by bob",
    ]
    assert f"(log entry {case.handoff})" in titles[1]
    # The out-of-order handoff is drawn after the derive entries before it (log order),
    # and the caption gives its claimed time.
    item = next(i for i in case.built.items if i.exhibit == "C1/0001")
    times = {t.index: t.time for t in item.timeline}
    cory = next(h for h in case.built.holdings if h.holder == "cory")
    assert format_time(cory.start) == times[case.handoff - 1]
    assert cory.claimed is not None and format_time(cory.claimed) == times[case.handoff]
    assert f"cory from {times[case.handoff]} (entry {case.handoff}, out of order" in case.html
    assert picture.count("<line ") == 2  # the axis and the one handoff
    # The HTML loads nothing: the picture is inline, no href.
    assert "href" not in picture and "<script" not in case.html


def _chart_colours(pdf: Path, pages: list[str], tmp_path: Path) -> dict[tuple[int, int, int], int]:
    """Pixel counts by colour of the page with the picture, rendered at 100 dpi."""
    from PIL import Image

    page = next(n for n, p in enumerate(pages, 1) if "Who held each exhibit when" in p)
    assert pdftoppm is not None
    out = tmp_path / f"{pdf.stem}-page"
    subprocess.run(
        [pdftoppm, "-r", "100", "-f", str(page), "-l", str(page), "-png", str(pdf), str(out)],
        check=True,
    )
    (png,) = tmp_path.glob(f"{pdf.stem}-page*.png")
    with Image.open(png) as im:
        colours = im.convert("RGB").getcolors(1 << 20)
    assert colours is not None
    return {rgb: n for n, rgb in colours}


@needs_poppler
def test_timeline_picture_is_drawn_in_the_pdf(case: Case, tmp_path: Path) -> None:
    # The case's own picture: bob's and cory's colours, drawn (the page has no images).
    counts = _chart_colours(case.pdf, case.pages, tmp_path)
    bob, cory = PALETTE[0], PALETTE[1]
    assert counts.get(bob, 0) > 80 and counts.get(cory, 0) > 80
    # Bars are as long as the holding: bob a day, then cory a day (and its legend).
    day = timedelta(days=1)
    t0 = parse_time(case.built.generated) - 2 * day
    holdings = (
        Holding("C1/0001", "bob", t0, t0 + day, 2),
        Holding("C1/0001", "cory", t0 + day, None, 5),
    )
    pdf = tmp_path / "drawn.pdf"
    pdf.write_bytes(report.render_pdf(dataclasses.replace(case.built, holdings=holdings)))
    counts = _chart_colours(pdf, _pdf_text(pdf).split("\f"), tmp_path)
    assert counts.get(bob, 0) > 3000
    assert 0.8 < counts.get(bob, 0) / counts.get(cory, 1) < 1.25


def test_redaction_box_is_outlined_on_the_frames_inside_its_span(case: Case) -> None:
    section = case.html[case.html.index("Exhibit C1/0003") :]
    section = section[: section.index("</table>")]
    frames = re.findall(r'<span class="frame">.*?</span>(?=<span class="frame">|</div>)', section)
    assert len(frames) == 4
    # Frames at 0.25, 0.75, 1.25 and 1.75 s: only the second is inside 0.5-1.0 s.
    boxed = ['class="redbox"' in f for f in frames]
    assert boxed == [False, True, False, False]
    assert "left:12.5%;top:16.667%;width:31.25%;height:33.333%" in frames[1]
    assert "The red outline is the declared redaction box." in section
    # The original and the trim carry no outline.
    assert case.html.count('class="redbox"') == 1


@needs_poppler
def test_verifier_keys_are_whole_on_one_line(case: Case) -> None:
    lines = case.text.splitlines()
    for name, vkey in case.vkeys.items():
        assert any(vkey in line for line in lines), name
        # No line holds a piece of the key without all of it.
        key = vkey.split("+", 2)[2]
        assert all(vkey in line for line in lines if key[:12] in line), name
    assert sum(case.vkeys["log"] in line for line in lines) >= 4
    # The exact command, with the key, in "Check this yourself".
    section = case.text[_line(case.text, "Check this yourself") :]
    command = " ".join(section[: section.index("1. Case details")].split())
    assert f"custody verify-bundle BUNDLE --trust {case.vkeys['log']}" in command


@needs_poppler
def test_a_key_too_long_for_a_line_is_broken_only_at_its_plus_signs(
    case: Case, tmp_path: Path
) -> None:
    origin = "x" * 60 + ".example/" + "y" * 59  # 128 characters, the longest an origin is
    key = case.vkeys["log"].split("+", 2)[2]
    long_key = f"{origin}+0123abcd+{key}"
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(report.render_pdf(dataclasses.replace(case.built, log_vkey=long_key)))
    lines = [line.strip() for line in _pdf_text(pdf).splitlines()]
    pieces = [line for line in lines if origin[:20] in line or key[:12] in line]
    assert pieces
    for line in pieces:
        words = line.split()
        # Each line holds whole parts: the origin and its '+', the key id and its '+',
        # the key; never a part cut in two.
        part = words[-1]
        assert part in (
            long_key,
            f"{origin}+",
            f"{origin}+0123abcd+",
            "0123abcd+",
            f"0123abcd+{key}",
            key,
        )
        if part.startswith(origin[:20]) and part != long_key:
            assert part.endswith("+")


def test_the_report_flags_an_entry_whose_time_is_out_of_order(case: Case) -> None:
    item = next(i for i in case.built.items if i.exhibit == "C1/0001")
    rows = {t.index: t for t in item.timeline}
    assert [t.index for t in item.timeline] == sorted(rows)  # in log index order
    flagged = [t for t in item.timeline if t.disorder]
    assert [t.index for t in flagged] == [case.handoff]
    assert flagged[0].disorder is not None
    assert flagged[0].disorder.startswith(f"{_gap(case)} earlier than entry ")
    assert f"entry {case.handoff - 1} (derive), listed before it" in flagged[0].disorder
    assert case.built.disorders == (
        f"log entry {case.handoff} (handoff, on C1/0001's timeline) claims "
        f"{flagged[0].time}, {flagged[0].disorder}",
    )
    assert "(out of order)" in case.html and f"Claimed time {_gap(case)} earlier than" in case.html


def test_history_lists_in_log_order_and_flags_the_out_of_order_time(case: Case) -> None:
    out = _run("history", f"{CASE}/0001", "--home", str(case.home))
    entries = [int(m) for m in re.findall(r"^    entry (\d+)", out, re.M)]
    assert entries == sorted(entries) and case.handoff in entries
    lines = out.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith(f"    entry {case.handoff} "))
    assert lines[at + 1] == (
        f"      note: out of order: its claimed time is {_gap(case)} earlier than that of entry "
        f"{case.handoff - 1} (derive), listed before it; the log's order is the order of "
        "the record, a claimed time the signer's clock"
    )
    assert out.count("out of order") == 1
    doc = json.loads(_run("history", f"{CASE}/0001", "--home", str(case.home), "--json"))
    (found,) = doc["time_order"]
    assert (found["index"], found["previous_index"]) == (case.handoff, case.handoff - 1)
    assert found["type"] == "handoff" and found["previous_type"] == "derive"
    assert 1200 - 60 < found["seconds_before"] <= 1200 + 60
    assert found["message"] == lines[at + 1].removeprefix("      note: out of order: ")
    # An exhibit whose timeline reads in order has nothing flagged.
    doc = json.loads(_run("history", f"{CASE}/0002", "--home", str(case.home), "--json"))
    assert doc["time_order"] == []


def test_build_report_tells_its_progress(case: Case) -> None:
    told: list[str] = []
    saved = dict(os.environ)
    try:
        os.environ["CUSTODY_HOME"] = str(case.home)
        with Custody.open(case.home) as c:
            report.build_report(c, CASE, thumbnails=1, progress=told.append)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert told == [
        "re-verifying the whole log",
        "exhibit 1 of 3, C1/0001: re-hashing the stored file",
        "exhibit 2 of 3, C1/0002: re-hashing the stored file",
        "exhibit 3 of 3, C1/0003: re-hashing the stored file",
        "writing the report",
    ]


def test_cli_report_shows_progress_on_a_terminal_only(case: Case, tmp_path: Path) -> None:
    """On a terminal (a pseudo-terminal here) `custody report` says what it is doing on
    stderr; the module's fixture checked that it prints nothing there otherwise."""
    custody = Path(sys.executable).with_name("custody")
    env = {**os.environ, "CUSTODY_HOME": str(case.home), "COLUMNS": "120", "TERM": "xterm"}
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [str(custody), "report", CASE, "--out", str(tmp_path / "r.html")],
            stdout=subprocess.PIPE, stderr=slave, env=env, timeout=120, check=False,
        )  # fmt: skip
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the pty's other end is closed: all is read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0, seen
    assert proc.stdout.decode().startswith(f"wrote {tmp_path / 'r.html'}: case C1, 3 exhibits")
    shown = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", seen).decode("utf-8", "replace")
    assert f"report {CASE}: " in shown
    assert "exhibit" in shown or "laying out" in shown or "re-verifying" in shown
