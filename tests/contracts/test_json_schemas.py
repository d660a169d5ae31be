"""The output contract for scripts (docs/json/README.md): every command's --json output
validates against its JSON Schema in docs/json/, checked against real output.

One world is built per module: two custody homes (a log with an owner, an agency, a
lab and a court clerk; a second log that imports a key), real clips, a handoff, derived
clips, a bundle, a report, a request and its answer, a timestamp from a local TSA, a
published log.  Every command that has --json is run in it once with --json (and the
streaming batch commands once more with --jsonl), in the order a case would meet them;
each test then validates one command's output.  `test_every_json_command_has_a_schema`
fails when a command gains --json without a schema file (or a schema outlives its
command); `test_every_json_command_is_exercised` when the world forgets to run one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clips
import pytest
from conftest import PASSPHRASE, invoke

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

ROOT = Path(__file__).resolve().parents[2]
CUSTODY = Path(sys.executable).parent / "custody"
SCHEMAS = ROOT / "docs" / "json"
CASE = "C-1"
# Commands that print JSON but not through --json, or that serve rather than report.
NOT_REPORTING = {"witness serve", "verifier-page"}  # verifier-page writes a file, reports nothing
# Commands whose --json needs a PostgreSQL server (tested in test_db_schemas below).
POSTGRES_ONLY = {"db grant", "db roles"}
# The `home` of a command that takes no --home (it verifies what it is given, offline).
NO_HOME = Path("-no-home-")


def _commands() -> dict[str, set[str]]:
    """Every leaf command of `custody`, by its words, with its option names."""
    from typer.main import get_command

    from custody.cli.main import app

    found: dict[str, set[str]] = {}

    def walk(cmd: Any, words: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is not None:
            for name, sub in subs.items():
                walk(sub, [*words, name])
            return
        found[" ".join(words)] = {o for p in cmd.params for o in getattr(p, "opts", [])}

    walk(get_command(app), [])
    return found


def schema_name(command: str, kind: str = "json") -> str:
    """`verify-bundle` -> verify-bundle.schema.json; `log verify` -> log-verify.schema.json;
    the --jsonl lines of `ingest` -> ingest.jsonl.schema.json."""
    stem = command.replace(" ", "-")
    return f"{stem}.schema.json" if kind == "json" else f"{stem}.jsonl.schema.json"


# -- the world -------------------------------------------------------------------------------


@dataclass
class World:
    root: Path
    outputs: dict[str, list[Any]] = field(default_factory=dict)  # schema file -> documents
    ran: set[str] = field(default_factory=set)  # commands run with --json or --jsonl
    jsonl_runs: dict[str, int] = field(default_factory=dict)  # command -> --jsonl runs

    @property
    def a(self) -> Path:
        return self.root / "a"

    @property
    def b(self) -> Path:
        return self.root / "b"

    def run(self, *args: str | Path, home: Path | None = None, code: int = 0) -> str:
        """Run custody ARGS in a home (home A by default; NO_HOME: a command that reads no
        home); check the exit code; return stdout."""
        argv = [str(a) for a in args]
        if home != NO_HOME:
            argv += ["--home", str(home or self.a)]
        r = invoke(*argv)
        assert r.code == code, r
        return r.stdout

    def json(self, command: str, *args: str | Path, home: Path | None = None, code: int = 0) -> Any:
        """Run `custody COMMAND ARGS --json`; keep the document for its schema."""
        out = self.run(*command.split(), *args, "--json", home=home, code=code)
        doc = json.loads(out)
        self.outputs.setdefault(schema_name(command), []).append(doc)
        self.ran.add(command)
        return doc

    def lines(
        self, command: str, flag: str, *args: str | Path, home: Path | None = None, code: int = 0
    ) -> list[Any]:
        """Run a streaming command with --json (one object per file, as before) or --jsonl
        (one object per file, then a summary); keep each line for its schema."""
        out = self.run(*command.split(), *args, flag, home=home, code=code)
        docs = [json.loads(line) for line in out.splitlines()]
        assert docs, f"{command} {flag} printed nothing"
        kind = "json" if flag == "--json" else "jsonl"
        if kind == "jsonl":
            self.jsonl_runs[command] = self.jsonl_runs.get(command, 0) + 1
        self.outputs.setdefault(schema_name(command, kind), []).extend(docs)
        self.ran.add(command)
        return docs


def _serve(home: Path, key: str, log_key: str) -> tuple[subprocess.Popen[bytes], str]:
    """`custody witness serve` on a free loopback port; the process and its URL."""
    args = [str(CUSTODY), "witness", "serve", "--key", key, "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [*args, "--log", log_key, "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("listening on http://127.0.0.1:"), (line, proc.poll())
    return proc, line.split()[-1]


def _build(w: World, tsa_url: str, tsa_cert: Path) -> None:
    a, b = w.a, w.b
    r = w.root
    w.json("init", "--origin", "test.example/custody")
    w.json("init", "--origin", "b.example/log", home=b)
    for name, role in (("alice", "owner"), ("bob", "agency"), ("lab1", "lab"), ("clerk", "court")):
        w.json("key new", name, "--role", role, "--org", f"{name}'s org")
    w.json("key new", "carol", "--role", "agency", home=b)
    vkey = w.json("log key")["vkey"]
    w.json("key list")
    w.json("key show", "bob")
    w.json("key export", "bob", "--out", r / "bob.keyentry")
    w.json("key import", r / "bob.keyentry", home=b)
    w.json("join", "--db", f"sqlite:///{a / 'custody.db'}", "--party", "bob", home=r / "joined")

    clip1 = clips.make_clip(r / "doorbell.mp4")
    clip2 = clips.make_clip(r / "porch.mp4", pattern="smptebars")
    clip3 = clips.make_clip(r / "street.mp4", pattern="rgbtestsrc")
    w.json("case new", CASE, "--title", "Burglary at 12 Elm St")
    w.json("case new", "C-2")
    w.lines("ingest", "--json", clip1, "--case", CASE, "--by", "alice", "--legal-basis", "consent")
    w.lines(
        *("ingest", "--jsonl", clip1, clip2, "--case", CASE, "--by", "bob"),
        *("--legal-basis", "warrant", "--ref", "W-1", "--sha256"),
    )
    emergency = w.lines(
        *("ingest", "--json", clip3, "--case", "C-2", "--by", "bob"),
        *("--legal-basis", "emergency", "--justification", "a child was missing"),
    )[0]["index"]
    w.json("case list")
    w.json("case show", CASE)
    w.lines("verify", "--json", clip1)
    w.lines("verify", "--jsonl", clip1, r / "doorbell.mp4", clip2)
    # A folder audit: matched, moved (same bytes, another name), new; with --case, missing.
    folder = r / "seized"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(clip1, folder / "doorbell.mp4")
    shutil.copy(clip2, folder / "sub" / "renamed.mp4")
    (folder / "notes.txt").write_text("seized from the DVR\n", encoding="utf-8")
    w.json("verify", folder, "--case", CASE, code=1)
    w.lines("verify", "--jsonl", folder, "--case", "C-2", code=1)
    w.json("show", f"{CASE}/0001")
    w.json("history", f"{CASE}/0001")

    consent = w.json(
        *("consent grant", "--owner", "alice", "--case", CASE),
        *("--purpose", "burglary investigation", "--onward", "court"),
    )["index"]
    w.json(
        *("handoff offer", f"{CASE}/0001", "--from", "alice", "--to", "bob"),
        *("--purpose", "investigation", "--out", r / "offer1"),
    )
    receipt_size = w.json("handoff accept", r / "offer1", "--by", "bob")["checkpoint_size"]
    w.json("handoff receipt", r / "offer1.receipt")
    w.json(
        *("handoff offer", f"{CASE}/0001", "--from", "bob", "--to", "clerk"),
        *("--purpose", "trial", "--out", r / "offer2", "--with-media", r / "offer2-media"),
    )
    w.json("handoff reject", r / "offer2", "--by", "clerk", "--reason", "not yet")

    trim = w.json(
        *("derive trim", f"{CASE}/0001", "--start", "0", "--end", "1"),
        *("--by", "bob", "--reason", "excerpt"),
    )
    w.json(
        "derive redact", f"{CASE}/0001", "--box", "0,0,40,40", "--by", "bob", "--reason", "faces"
    )
    w.json(
        *("derive transcode", f"{CASE}/0001", "--codec", "libx264"),
        *("--by", "bob", "--reason", "for the court's player"),
    )
    w.json("derive lineage", trim["exhibit"])
    w.json("derive lineage", f"{CASE}/0001")
    w.json("open", f"{CASE}/0001", "--by", "bob", "--purpose", "review", "--out", r / "copy.mp4")
    w.json("review", str(emergency), "--by", "lab1", "--outcome", "upheld", "--note", "justified")
    w.json(
        "analysis record",
        f"{CASE}/0001",
        "--by",
        "bob",
        "--kind",
        "transcription",
        "--tool",
        "whisper",
        "--tool-version",
        "20231117",
        "--purpose",
        "transcript",
    )
    w.json("policy set", "--forbid", "face-recognition", "--note", "city ordinance")
    w.json("policy show")

    old = w.json("log checkpoint", "--out", r / "cp1")["size"]
    w.json("log entry", "0")
    w.json("log prove", "1")
    w.json(
        *("witness cosign", r / "cp1", "--key", "clerk", "--log-key", vkey),
        *("--out", r / "cp1.cosigned"),
    )
    w.json("log add-cosignature", r / "cp1.cosigned")
    w.json("log timestamp", "--tsa", tsa_url, "--tsa-cert", tsa_cert)

    w.json(
        *("request new", "--case", CASE, "--by", "bob", "--purpose", "burglary"),
        *("--from", "2024-03-01T09:00:00Z", "--to", "2024-03-01T11:00:00Z"),
        *("--out", r / "request.entry"),
    )
    w.json(
        *("request answer", r / "request.entry", "--by", "alice", "--consent"),
        *("--out", r / "answer.entry"),
    )
    w.json("log import", r / "answer.entry")
    w.json("request list")
    w.json("retention set", CASE, "--until", "2030-01-01", "--basis", "Records Act", "--by", "bob")
    w.json("retention due", "--as-of", "2031-01-01")
    w.json("hold", f"{CASE}/0002", "--reason", "appeal pending", "--by", "bob")
    w.json("hold", "release", f"{CASE}/0002", "--reason", "appeal decided", "--by", "bob")
    w.json("dispose", f"{CASE}/0002", "--by", "bob", "--reason", "not relevant")
    w.json("key rotate", "lab1")
    w.json("key revoke", "lab1", "--reason", "laptop stolen")
    w.json("consent revoke", str(consent), "--owner", "alice")

    new = w.json("log checkpoint")["size"]
    w.json("log consistency", str(old), str(new))
    w.run("log", "checkpoint", "--out", r / "cp2")
    (r / "consistency.json").write_text(
        w.run("log", "consistency", str(receipt_size), str(new), "--json"), encoding="utf-8"
    )
    w.json(
        *("handoff check-receipt", r / "offer1.receipt", "--checkpoint", r / "cp2"),
        *("--consistency", r / "consistency.json", "--log-key", vkey),
        home=NO_HOME,
    )
    w.json("log verify")
    w.json("vault check")
    w.json("db migrate")
    w.json("audit")
    w.json("audit", "--case", CASE, "--party", "bob")
    w.json("transparency", "--from", "2026-01-01", "--to", "2030-12-31", "--out", r / "t.json")
    w.json("transparency", "--check", r / "t.json")

    # A witness in home B cosigns over HTTP (custody witness serve, a child process).
    w.json("key new", "wit", "--role", "witness", home=b)
    w.json("key export", "wit", "--out", r / "wit.keyentry", home=b)
    w.json("key import", r / "wit.keyentry")
    server = _serve(b, "wit", vkey)
    try:
        w.json("log witness", "--url", server[1])
    finally:
        server[0].send_signal(signal.SIGTERM)
        server[0].communicate(timeout=60)
    w.json("log publish", "--to", r / "pub")
    w.json("monitor", r / "pub", "--log-key", vkey, "--state", r / "monitor-state", home=NO_HOME)
    w.json("export", CASE, "--to", r / "bundle", "--with-media")
    w.json(
        *("verify-bundle", r / "bundle", "--trust", vkey, "--no-probe"),
        *("--seen", r / "seen"),
        home=NO_HOME,
    )
    w.json("report", CASE, "--out", r / "report.html")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from tsakit import TsaServer, make_tsa

    root = tmp_path_factory.mktemp("json-world")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUSTODY_PASSPHRASE", PASSPHRASE)
        mp.setenv("CUSTODY_KDF_PROFILE", "fast")
        mp.setenv("CUSTODY_SEEN", str(root / "seen-checkpoints"))
        for name in ("CUSTODY_HOME", "CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY"):
            mp.delenv(name, raising=False)
        files = make_tsa(root / "tsa")
        w = World(root)
        with TsaServer(files) as server:
            _build(w, server.url, files.ca_cert)
        yield w
    shutil.rmtree(root, ignore_errors=True)


# -- the schemas -----------------------------------------------------------------------------


def _registry() -> Any:
    from referencing import Registry, Resource

    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def _validator(name: str) -> Any:
    path = SCHEMAS / name
    assert path.is_file(), f"no schema {path.relative_to(ROOT)}"
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=_registry(), format_checker=cls.FORMAT_CHECKER)


def _json_commands() -> list[str]:
    return sorted(c for c, opts in _commands().items() if "--json" in opts)


def _jsonl_commands() -> list[str]:
    return sorted(c for c, opts in _commands().items() if "--jsonl" in opts)


def test_every_schema_is_draft_2020_12_with_an_id_and_a_description() -> None:
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert doc.get("$schema") == "https://json-schema.org/draft/2020-12/schema", path
        assert doc.get("$id", "").endswith("/" + path.name), path
        assert doc.get("description"), path
        jsonschema.Draft202012Validator.check_schema(doc)


def test_every_reporting_command_has_json() -> None:
    missing = [
        c for c, opts in _commands().items() if "--json" not in opts and c not in NOT_REPORTING
    ]
    assert missing == [], f"commands without --json: {missing}"


def test_every_json_command_has_a_schema() -> None:
    wanted = {schema_name(c) for c in _json_commands()}
    wanted |= {schema_name(c, "jsonl") for c in _jsonl_commands()}
    # `custody verify DIR`, the folder audit, has shapes of its own (tests/cli/test_verify_dir.py
    # validates them against its real output).
    wanted |= {"verify-dir.schema.json", "verify-dir.jsonl.schema.json"}
    have = {p.name for p in SCHEMAS.glob("*.schema.json")} - {"common.schema.json"}
    assert sorted(wanted - have) == [], "commands with --json but no schema in docs/json/"
    assert sorted(have - wanted) == [], "schemas in docs/json/ for no command"


def test_every_json_command_is_exercised(world: World) -> None:
    expected = set(_json_commands()) - POSTGRES_ONLY
    assert sorted(expected - world.ran) == []


# `db grant` and `db roles` run on PostgreSQL only: test_postgres_commands_validate.
@pytest.mark.parametrize("command", sorted(set(_json_commands()) - POSTGRES_ONLY))
def test_json_output_validates(world: World, command: str) -> None:
    docs = world.outputs[schema_name(command)]
    validator = _validator(schema_name(command))
    for doc in docs:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{command}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
        )


@pytest.mark.parametrize("command", _jsonl_commands())
def test_jsonl_output_validates_and_ends_with_a_summary(world: World, command: str) -> None:
    docs = world.outputs[schema_name(command, "jsonl")]
    validator = _validator(schema_name(command, "jsonl"))
    for doc in docs:
        errors = list(validator.iter_errors(doc))
        assert not errors, f"{command} --jsonl: {errors[0].message}"
    # Each run's lines: files, then one summary ("final": true) last.
    finals = [i for i, d in enumerate(docs) if d.get("final") is True]
    assert finals and finals[-1] == len(docs) - 1, docs[-1]
    assert len(finals) == world.jsonl_runs[command], finals


# -- the shared vocabulary, across every output ----------------------------------------------

_TIME_KEYS = re.compile(r"(^|_)(at|time|timestamp|created|claimed)$")


# Records kept verbatim: a signed entry's own fields, a clip's ffprobe metadata snapshot.
VERBATIM = {"fields", "metadata"}


def _walk(doc: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield path, k, v
            if k not in VERBATIM:
                yield from _walk(v, f"{path}/{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _walk(v, f"{path}/{i}")


def _all_docs(world: World) -> Iterator[tuple[str, Any]]:
    for name, docs in world.outputs.items():
        for d in docs:
            yield name, d


def test_times_are_rfc3339_utc_with_z(world: World) -> None:
    for name, doc in _all_docs(world):
        for path, key, value in _walk(doc):
            if isinstance(value, str):
                assert not re.search(r"\d{2}:\d{2}:\d{2}(\.\d+)?[+-]00:?00$", value), (
                    f"{name} {path}/{key}: {value!r} is not written with Z"
                )
            if _TIME_KEYS.search(key) and isinstance(value, str) and "T" in value:
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", value), (
                    f"{name} {path}/{key}: {value!r}"
                )


def test_the_same_names_for_the_same_things(world: World) -> None:
    for name, doc in _all_docs(world):
        for path, key, value in _walk(doc):
            if key in ("index", "size") and value is not None and not isinstance(value, dict):
                assert isinstance(value, int) and not isinstance(value, bool), (
                    f"{name} {path}/{key}: {value!r} is not a number"
                )
            if key == "item" and isinstance(value, str):
                assert re.fullmatch(r"[0-9a-f]{64}", value), f"{name} {path}/item: {value!r}"
            if key == "exhibit" and isinstance(value, str):
                assert re.fullmatch(r"[^/\s]+/\d{4,}", value), f"{name} {path}/exhibit: {value!r}"
            if key == "verified":
                assert isinstance(value, bool), f"{name} {path}/verified: {value!r}"


def test_deprecated_names_stand_beside_their_new_names(world: World) -> None:
    pairs = {"log_index": "index", "blake3": "item"}
    seen = set()
    for name, doc in _all_docs(world):
        stack = [doc]
        while stack:
            d = stack.pop()
            if isinstance(d, dict):
                for old, new in pairs.items():
                    if old in d:
                        seen.add(old)
                        assert new in d and d[new] == d[old], f"{name}: {old} without {new}"
                stack.extend(v for k, v in d.items() if k not in VERBATIM)
            elif isinstance(d, list):
                stack.extend(d)
    assert seen == set(pairs), "the world no longer meets every deprecated name"
    # And the schemas say so.
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        text = path.read_text(encoding="utf-8")
        for old in pairs:
            for m in re.finditer(rf'"{old}": {{([^}}]*)}}', text):
                assert '"deprecated": true' in m.group(1), f"{path.name}: {old} not deprecated"


def test_postgres_commands_validate(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`db grant` and `db roles` need a PostgreSQL server (skipped, saying so, without)."""
    monkeypatch.setenv("CUSTODY_DB", pg_url)
    w = World(tmp_path)
    w.json("init", "--origin", "pg.example/custody")
    w.json("db grant", "alice", "--as", "investigator")
    w.json("db grant", "alice", "--as", "auditor")
    roles = w.json("db roles")
    assert {"user": "alice", "role": "auditor"} in roles, roles
    for command in sorted(POSTGRES_ONLY):
        validator = _validator(schema_name(command))
        for doc in w.outputs[schema_name(command)]:
            errors = list(validator.iter_errors(doc))
            assert not errors, f"{command}: {errors[0].message}"


def test_the_one_printer_applies_the_conventions() -> None:
    """custody/cli/jsonout.py, on values no world output happens to hold."""
    from datetime import UTC, datetime, timedelta, timezone

    from custody.cli.jsonout import plain

    digest = "ab" * 32
    doc = plain(
        {
            "at": datetime(2026, 3, 1, 11, 0, tzinfo=timezone(timedelta(hours=1))),
            "naive": datetime(2026, 3, 1, 10, 0),
            "text_time": "2026-03-01T10:00:00.250+00:00",
            "not_utc": "2026-03-01T10:00:00+01:00",
            "entry": 7,
            "log_index": True,  # not a log index: no alias
            "blake3": digest,
            "nested": [{"blake3": "abc"}, {"entry": 3, "index": 9}],
            "fields": {"entry": 4, "time": "2026-03-01T10:00:00+00:00"},
            "metadata": {"format": {"tags": {"creation_time": "2026-03-01T10:00:00+00:00"}}},
            "path": Path("/x/y"),
            "set": {"b", "a"},
        }
    )
    assert doc["at"] == "2026-03-01T10:00:00Z" and doc["naive"] == "2026-03-01T10:00:00Z"
    assert doc["text_time"] == "2026-03-01T10:00:00.250Z"
    assert doc["not_utc"] == "2026-03-01T10:00:00+01:00"  # not UTC: never silently shifted
    assert doc["index"] == 7 and doc["entry"] == 7
    assert doc["item"] == digest and doc["blake3"] == digest
    assert doc["nested"] == [{"blake3": "abc"}, {"entry": 3, "index": 9}]
    # Records kept verbatim: nothing renamed or rewritten inside them.
    assert doc["fields"] == {"entry": 4, "time": "2026-03-01T10:00:00+00:00"}
    assert doc["metadata"]["format"]["tags"]["creation_time"].endswith("+00:00")
    assert doc["path"] == "/x/y" and doc["set"] == ["a", "b"]
    assert "index" not in plain({"log_index": True})
    assert plain(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"
