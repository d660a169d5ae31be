"""Who held each key (issue #10, part 3): `key new` records where a private key is kept;
`history`, `verify-bundle` and the report say when a consent or an acceptance was signed
with a key its party did not hold alone; the owner's own home signs a consent that the
agency imports (docs/handoff.md, "Consent from the owner's own home")."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from conftest import CliRunnerNS

CASE = "2026-0142"
CAVEAT = (
    "owner-garcia's consent was signed with a key kept in a home shared with another party's key"
)

pdftotext = shutil.which("pdftotext")


def _agency(cli: type[CliRunnerNS], tmp_path: Path, *basis: str) -> Path:
    """The agency's home: the log, det-jones, a case with one ingested file."""
    cli.run("init", "--origin", "metro-police.example/custody")
    cli.run("key", "new", "det-jones", "--role", "agency", "--org", "Metro Police")
    cli.run("case", "new", CASE, "--title", "Burglary")
    doc = tmp_path / "statement.txt"
    doc.write_text("the owner's statement\n")
    basis = basis or ("--legal-basis", "consent")
    cli.run("ingest", str(doc), "--case", CASE, "--by", "det-jones", *basis)
    return doc


def _key_entry(cli: type[CliRunnerNS], party: str, *home: str) -> str:
    listed = json.loads(cli.run("key", "list", "--json", *home).stdout)
    row = next(p for p in listed if p["name"] == party)
    return cli.run("log", "entry", str(row["entry"]), *home).stdout


def _outputs(cli: type[CliRunnerNS], tmp_path: Path) -> tuple[str, str, dict, str]:  # type: ignore[type-arg]
    """history, verify-bundle (text, --json) and the HTML report of the case."""
    history = cli.run("history", f"{CASE}/0001").stdout
    bundle = tmp_path / "bundle"
    cli.run("export", CASE, "--to", str(bundle))
    vkey = cli.run("log", "key").stdout.strip()
    text = cli.run("verify-bundle", str(bundle), "--trust", vkey, "--no-probe").stdout
    verdict = json.loads(
        cli.run("verify-bundle", str(bundle), "--trust", vkey, "--no-probe", "--json").stdout
    )
    out = tmp_path / "report.html"
    cli.run("report", CASE, "--out", str(out))
    return history, text, verdict, out.read_text(encoding="utf-8")


def test_a_consent_signed_in_the_agency_home_is_flagged_everywhere(
    cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    _agency(cli, tmp_path)
    cli.run("key", "new", "owner-garcia", "--role", "owner")
    entry = _key_entry(cli, "owner-garcia")
    assert "kept shared\nkept-others 1\nkept-log metro-police.example/custody\n" in entry
    cli.run("consent", "grant", "--owner", "owner-garcia", "--case", CASE, "--purpose", "x")

    history, text, verdict, page = _outputs(cli, tmp_path)
    assert f"note: {CAVEAT}" in history
    timeline = json.loads(cli.run("history", f"{CASE}/0001", "--json").stdout)["timeline"]
    consent = next(e for e in timeline if e["type"] == "consent")
    assert consent["caveats"] == [CAVEAT]

    # verify-bundle: a finding shown with the verdict, not a failure.
    assert CAVEAT in text and text.rstrip().endswith("VERIFIED")
    assert verdict["verdict"] == "VERIFIED"
    index = consent["index"]
    assert verdict["caveats"] == [
        {"entry": index, "index": index, "party": "owner-garcia", "text": CAVEAT}
    ]
    assert f"log entry {index}: {CAVEAT}" in page.replace("&#x27;", "'")
    if pdftotext is not None:
        pdf = tmp_path / "report.pdf"
        cli.run("report", CASE, "--out", str(pdf))
        out = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, check=True)
        flat = " ".join(out.stdout.decode().split())
        assert CAVEAT.replace("'", "’") in flat.replace("'", "’")


def test_held_by_names_the_keeper(cli: type[CliRunnerNS], tmp_path: Path) -> None:
    _agency(cli, tmp_path)
    cli.run("key", "new", "owner-lee", "--role", "owner", "--held-by", "det-jones")
    assert "kept shared\nkept-others 1\nkept-log metro-police.example/custody\n" + (
        "held-by det-jones\n"
    ) in _key_entry(cli, "owner-lee")
    cli.run("consent", "grant", "--owner", "owner-lee", "--case", CASE, "--purpose", "x")
    history = cli.run("history", f"{CASE}/0001").stdout
    assert (
        "note: owner-lee's consent was signed with a key held by det-jones, in a home that "
        "also held another party's key\n"
    ) in history
    # A bad --held-by is refused before anything is written, naming the option.
    r = cli.fail(2, "key", "new", "owner-kim", "--role", "owner", "--held-by", "Det Jones")
    assert "--held-by" in r.stderr
    r = cli.fail(2, "key", "new", "owner-kim", "--role", "owner", "--held-by", "owner-kim")
    assert "--held-by" in r.stderr
    names = [p["name"] for p in json.loads(cli.run("key", "list", "--json").stdout)]
    assert "owner-kim" not in names


def test_rotation_records_where_the_new_key_is_kept(cli: type[CliRunnerNS], tmp_path: Path) -> None:
    _agency(cli, tmp_path)
    cli.run("key", "new", "owner-garcia", "--role", "owner")
    r = cli.run("key", "rotate", "owner-garcia", "--held-by", "det-jones")
    rotated = cli.run("log", "entry", r.stdout.split("log entry ")[1].split(")")[0]).stdout
    assert "action rotate\n" in rotated
    assert (
        "kept shared\nkept-others 1\nkept-log metro-police.example/custody\n"
        + ("held-by det-jones\n")
        in rotated
    )
    # Rotated again: the retired key file of owner-garcia is not another keeper.
    r = cli.run("key", "rotate", "owner-garcia")
    again = cli.run("log", "entry", r.stdout.split("log entry ")[1].split(")")[0]).stdout
    assert "kept shared\nkept-others 1\nkept-log metro-police.example/custody\n\n" in again


def test_consent_from_the_owners_own_home_has_no_caveat(
    cli: type[CliRunnerNS], tmp_path: Path
) -> None:
    _agency(cli, tmp_path)
    owner = ("--home", str(tmp_path / "garcia"))
    cli.run("init", "--origin", "garcia.example/consents", *owner)
    cli.run("key", "new", "owner-garcia", "--role", "owner", *owner)
    assert "kept own\nkept-log garcia.example/consents\n" in _key_entry(cli, "owner-garcia", *owner)
    keyfile = tmp_path / "garcia.keyentry"
    cli.run("key", "export", "owner-garcia", "--out", str(keyfile), *owner)
    cli.run("key", "import", str(keyfile))
    r = cli.run(
        "consent", "grant", "--owner", "owner-garcia", "--case", CASE, "--purpose", "x", *owner
    )
    index = r.stdout.split("log entry ")[1].split()[0]
    signed = tmp_path / "consent.entry"
    signed.write_bytes(cli.run("log", "entry", index, *owner).stdout_bytes)
    cli.run("log", "import", str(signed))

    history, text, verdict, page = _outputs(cli, tmp_path)
    assert "owner-garcia consents to use for x" in history
    assert "note:" not in history
    assert "caveats" not in text and verdict["verdict"] == "VERIFIED"
    assert verdict["caveats"] == []
    assert "consent was signed with a key" not in page


def test_an_acceptance_in_a_shared_home_is_flagged(cli: type[CliRunnerNS], tmp_path: Path) -> None:
    _agency(cli, tmp_path, "--legal-basis", "warrant", "--ref", "W-1")
    cli.run("key", "new", "lab-ng", "--role", "lab", "--held-by", "det-jones")
    offer = tmp_path / "offer"
    cli.run(
        "handoff", "offer", f"{CASE}/0001", "--from", "det-jones", "--to", "lab-ng",
        "--purpose", "examination", "--out", str(offer),
    )  # fmt: skip
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(tmp_path / "statement.txt", media / "statement.txt")
    cli.run("handoff", "accept", str(offer), "--by", "lab-ng", "--media", str(media))
    history = cli.run("history", f"{CASE}/0001").stdout
    assert (
        "note: lab-ng's acceptance was signed with a key held by det-jones, in a home that "
        "also held another party's key\n"
    ) in history
    assert "det-jones's" not in history  # the sender's release is not a caveat
