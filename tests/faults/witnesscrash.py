"""Crash-point scenarios of the witnesses (tests/faults/test_crash_points.py uses them).

`witness.state-saved`: a witness saved what it cosigned, then died before handing
the cosignature over (`witness cosign` in home B, the file way; `witness serve`
saves through the same `WitnessStore.save`).  The re-run cosigns the same
checkpoint again: the state is the same size, so the rule lets it.

`witness.record-saved`: `log witness` in home A stored the cosignature and saved
its record of the witness, then died.  The witness is a `WitnessServer` running
in the test process (home B's key), so that the crashed child and the re-run
reach the same one.  The re-run sends the same size again and is cosigned again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol

from conftest import PASSPHRASE, CliResult, invoke

from custody.app.witness import WitnessStore
from custody.app.witnessd import WitnessServer
from custody.tlog.checkpoint import cosignature_verifier_key, open_checkpoint
from custody.tlog.note import VerifierKey

ORIGIN_A = "a.example/log"
COSIGNED = (0, r"cosigned a\.example/log at size \d+ as clerk \(court\)")
WITNESSED = (0, r"witnessing a\.example/log at size \d+: 1 of 1 cosigned")
_SERVERS: dict[Path, WitnessServer] = {}


class _World(Protocol):
    @property
    def root(self) -> Path: ...
    @property
    def a(self) -> Path: ...
    @property
    def b(self) -> Path: ...


def _ok(home: Path, *args: str | Path) -> CliResult:
    result = invoke(*map(str, args), "--home", str(home))
    assert result.code == 0, result
    return result


def _clerk(w: _World, role: str) -> VerifierKey:
    _ok(w.b, "key", "new", "clerk", "--role", role)
    return VerifierKey.parse(_ok(w.b, "key", "show", "clerk").stdout.strip())


def cosign_command(w: _World) -> tuple[Path, list[str | Path]]:
    _clerk(w, "court")
    _ok(w.a, "log", "checkpoint", "--out", w.root / "a.checkpoint")
    log_key = _ok(w.a, "log", "key").stdout.strip()
    return w.b, [
        *("witness", "cosign", w.root / "a.checkpoint", "--key", "clerk"),
        *("--log-key", log_key, "--out", w.root / "cosigned"),
    ]


def cosigned_once(w: _World) -> None:
    log_key = VerifierKey.parse(_ok(w.a, "log", "key").stdout.strip())
    clerk = cosignature_verifier_key(VerifierKey.parse(_ok(w.b, "key", "show", "clerk").stdout))
    opened = open_checkpoint((w.root / "cosigned").read_bytes(), log_key, [clerk])
    assert [k.name for k, _ in opened.cosignatures] == ["clerk"]
    state = WitnessStore(w.b).load(ORIGIN_A)
    assert state is not None and state.size == opened.checkpoint.size


def record_command(w: _World) -> tuple[Path, list[str | Path]]:
    _clerk(w, "witness")
    _ok(w.b, "key", "export", "clerk", "--out", w.root / "clerk.keyentry")
    _ok(w.a, "key", "import", w.root / "clerk.keyentry")
    _ok(w.a, "log", "checkpoint")
    log_key = VerifierKey.parse(_ok(w.a, "log", "key").stdout.strip())
    from custody.app.home import Home

    signer = Home.locate(w.b, None).keystore.unlock("clerk", lambda _p: PASSPHRASE)
    server = WitnessServer(
        WitnessStore(w.b),
        signer,
        {ORIGIN_A: log_key},
        host="127.0.0.1",
        port=0,
        clock=lambda: 1_767_225_600,
    )
    server.start()
    _SERVERS[w.root] = server
    return w.a, ["log", "witness", "--url", server.url]


def recorded_once(w: _World) -> None:
    server = _SERVERS.pop(w.root)
    try:
        records = list((w.a / "witnesses").glob("*.json"))
        assert [p.name for p in records] == [
            hashlib.sha256(server.url.encode()).hexdigest() + ".json"
        ]
        record = json.loads(records[0].read_text())
        size = record["size"]
        assert record["witness"] == "clerk"
        stored = list((w.a / "cosignatures" / str(size)).glob("*.checkpoint"))
        assert len(stored) == 1, stored  # the same cosignature (same time): stored once
        log_key = VerifierKey.parse(_ok(w.a, "log", "key").stdout.strip())
        clerk = cosignature_verifier_key(VerifierKey.parse(_ok(w.b, "key", "show", "clerk").stdout))
        opened = open_checkpoint(stored[0].read_bytes(), log_key, [clerk])
        assert [k.name for k, _ in opened.cosignatures] == ["clerk"]
    finally:
        server.stop()
