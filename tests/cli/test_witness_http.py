"""Witnesses over HTTP (C2SP tlog-witness): `custody witness serve` and `custody log witness`.

Two real `custody witness serve` processes on loopback, each with its own home and
key; the log registers both keys (key export / key import) and asks them to cosign as
it grows; the cosignatures reach bundles.  A witness that is ahead answers 409 and is
caught up; a log rebuilt with the same key but another history is refused by both
(422) and `custody monitor` sees the rewrite.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import PASSPHRASE, CliRunnerNS

from custody.app.home import Custody
from custody.app.witness import WitnessStore
from custody.app.witnessd import WitnessServer
from custody.model.entry import Entry, sign_entry
from custody.tlog.checkpoint import (
    Checkpoint,
    cosignature_verifier_key,
    open_checkpoint,
    sign_checkpoint,
)
from custody.tlog.merkle import EMPTY_ROOT, MemoryTree
from custody.tlog.note import Signer, append_signatures
from custody.tlog.witnessproto import MAX_REQUEST, AddCheckpoint, parse_cosignatures

ORIGIN = "test.example/custody"
CUSTODY = Path(sys.executable).parent / "custody"


@dataclass
class Witness:
    name: str
    home: Path
    url: str
    proc: subprocess.Popen[bytes]


def serve(home: Path, key: str, *log_keys: str) -> Witness:
    """Start `custody witness serve` on a free loopback port; wait for its address."""
    args = [str(CUSTODY), "witness", "serve", "--key", key, "--listen", "127.0.0.1:0"]
    for vkey in log_keys:
        args += ["--log", vkey]
    proc = subprocess.Popen(
        [*args, "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("listening on http://127.0.0.1:"), (line, proc.poll())
    return Witness(key, home, line.split()[-1], proc)


def stop(w: Witness) -> str:
    """SIGTERM the witness; it must exit 0.  Returns what it logged on stderr."""
    w.proc.send_signal(signal.SIGTERM)
    _, err = w.proc.communicate(timeout=60)
    assert w.proc.returncode == 0, err
    return err.decode()


def log_key(cli: type[CliRunnerNS], home: Path | None = None) -> str:
    where = [] if home is None else ["--home", str(home)]
    return cli.run("log", "key", *where).stdout.strip()


def make_witness_home(cli: type[CliRunnerNS], root: Path, name: str) -> Path:
    home = root / name
    cli.run("init", "--origin", f"{name}.example/witness", "--home", str(home))
    cli.run("key", "new", name, "--role", "witness", "--home", str(home))
    return home


def register(cli: type[CliRunnerNS], witness_home: Path, name: str, tmp: Path) -> None:
    """The log learns the witness's key the way it learns any party's."""
    exported = tmp / f"{name}.keyentry"
    cli.run("key", "export", name, "--out", str(exported), "--home", str(witness_home))
    cli.run("key", "import", str(exported))


def witness(cli: type[CliRunnerNS], *urls: str, home: Path | None = None) -> dict[str, object]:
    args = ["log", "witness", "--json"]
    for url in urls:
        args += ["--url", url]
    if home is not None:
        args += ["--home", str(home)]
    return json.loads(cli.run(*args).stdout)  # type: ignore[no-any-return]


def grow(cli: type[CliRunnerNS], name: str, home: Path | None = None) -> int:
    where = [] if home is None else ["--home", str(home)]
    cli.run("key", "new", name, "--role", "lab", *where)
    note = cli.run("log", "checkpoint", *where).stdout
    return int(note.split("\n")[1])


@dataclass
class World:
    log: Path
    rebuilt: Path  # a copy of the log's home taken right after init: the same log key
    a: Witness
    b: Witness


@pytest.fixture
def world(cli: type[CliRunnerNS], tmp_path: Path) -> Iterator[World]:
    log = Path(os.environ["CUSTODY_HOME"])
    cli.run("init", "--origin", ORIGIN)
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(log, rebuilt)
    cli.run("key", "new", "alice", "--role", "owner", "--org", "Alice's house")
    cli.run("key", "new", "bob", "--role", "agency", "--org", "Metro Police")
    homes = {n: make_witness_home(cli, tmp_path, n) for n in ("clerk-a", "clerk-b")}
    for name, home in homes.items():
        register(cli, home, name, tmp_path)
    vkey = log_key(cli)
    a = serve(homes["clerk-a"], "clerk-a", vkey)
    try:
        b = serve(homes["clerk-b"], "clerk-b", vkey)
    except BaseException:
        stop(a)
        raise
    w = World(log, rebuilt, a, b)
    try:
        yield w
    finally:
        for each in (a, b):
            if each.proc.poll() is None:
                stop(each)


def outcomes(report: dict[str, object]) -> list[dict[str, object]]:
    out = report["witnesses"]
    assert isinstance(out, list)
    return out


def test_two_witnesses_cosign_as_the_log_grows(
    cli: type[CliRunnerNS], world: World, tmp_path: Path
) -> None:
    sizes = []
    for n in range(3):
        size = grow(cli, f"lab-{n}")
        report = witness(cli, world.a.url, world.b.url)
        assert report["ok"] is True and report["cosigned"] == 2 and report["size"] == size
        old = sizes[-1] if sizes else 0
        for o in outcomes(report):
            assert o["ok"] is True and o["status"] == 200, o
            assert o["old_size"] == old and o["retried"] is False, o
        assert {o["witness"] for o in outcomes(report)} == {"clerk-a", "clerk-b"}
        sizes.append(size)
    # The log's record of each witness: <home>/witnesses/<sha256(url)>.json.
    records = sorted((world.log / "witnesses").glob("*.json"))
    assert len(records) == 2
    assert {json.loads(p.read_text())["size"] for p in records} == {sizes[-1]}
    # A case with an entry, witnessed, exported: the bundle carries both cosignatures.
    cli.run("case", "new", "C-9")
    with Custody.open(world.log) as c:
        entry = Entry.build(
            "consent",
            datetime.now(UTC),
            [
                ("action", "grant"),
                ("owner", "alice"),
                ("case", "C-9"),
                ("purpose", "p"),
                ("onward", "any"),
            ],
        )
        c.log.append(sign_entry(entry, [c.keystore.unlock("alice", lambda _p: PASSPHRASE)]))
    cli.run("log", "checkpoint")
    human = cli.run("log", "witness", "--url", world.a.url, "--url", world.b.url).stdout
    assert "2 of 2 cosigned (quorum 2)" in human
    cli.run("export", "C-9", "--to", str(tmp_path / "bundle"))
    trust = ["--trust", log_key(cli)]
    for name in ("clerk-a", "clerk-b"):
        trust += ["--trust", cli.run("key", "show", name).stdout.strip()]
    r = cli.run("verify-bundle", str(tmp_path / "bundle"), *trust, "--seen", str(tmp_path / "seen"))
    assert "cosigned by clerk-a (witness) at" in r.stdout, r.stdout
    assert "cosigned by clerk-b (witness) at" in r.stdout, r.stdout
    # Each witness logged one line per request and stops cleanly on SIGTERM.
    logged = stop(world.a)
    assert logged.count("POST /add-checkpoint 200") == 4, logged


def test_a_witness_that_is_ahead_answers_409_and_is_caught_up(
    cli: type[CliRunnerNS], world: World, tmp_path: Path
) -> None:
    first = grow(cli, "lab-1")
    witness(cli, world.a.url)
    # The witness cosigns a newer checkpoint by another route (a file, `witness cosign`),
    # in its own home, while its server runs: the log's record is now behind.
    second = grow(cli, "lab-2")
    cp = tmp_path / "cp"
    cp.write_bytes(cli.run("log", "checkpoint").stdout_bytes)
    proof = tmp_path / "proof.json"
    proof.write_bytes(cli.run("log", "consistency", str(first), str(second), "--json").stdout_bytes)
    cli.run(
        *("witness", "cosign", str(cp), "--key", "clerk-a", "--proof", str(proof)),
        *("--home", str(world.a.home)),
    )
    third = grow(cli, "lab-3")
    report = witness(cli, world.a.url)
    [o] = outcomes(report)
    assert o["ok"] is True and o["retried"] is True and o["old_size"] == second, o
    assert report["size"] == third
    logged = stop(world.a)
    assert f"POST /add-checkpoint 409 {ORIGIN} old {first}, cosigned {second}" in logged, logged


def test_unknown_logs_and_unreachable_witnesses(
    cli: type[CliRunnerNS], world: World, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    cli.run("init", "--origin", "other.example/log", "--home", str(other))
    cli.run("log", "checkpoint", "--home", str(other))
    r = cli.fail(1, "log", "witness", "--url", world.a.url, "--home", str(other))
    assert f"{world.a.url}: HTTP 404: this witness does not witness the log" in r.stderr
    # A quorum of one of two: the one that answers suffices; nobody listening is exit 3.
    size = grow(cli, "lab-1")
    nobody = "http://127.0.0.1:1"
    r = cli.run("log", "witness", "--url", world.a.url, "--url", nobody, "--quorum", "1")
    assert "1 of 2 cosigned (quorum 1)" in r.stdout and f"{nobody}: unreachable" in r.stdout
    r = cli.fail(3, "log", "witness", "--url", world.a.url, "--url", nobody)  # all needed
    assert f"1 of 2 witness(es) cosigned size {size}, 2 needed: {nobody}: unreachable" in r.stderr


def test_a_rebuilt_log_is_refused_by_both_and_the_monitor_sees_it(
    cli: type[CliRunnerNS], world: World, tmp_path: Path
) -> None:
    size = 0
    for n in range(2):
        size = grow(cli, f"lab-{n}")
        witness(cli, world.a.url, world.b.url)
    published = tmp_path / "published"
    cli.run("log", "publish", "--to", str(published))
    state = tmp_path / "monitor"
    vkey = log_key(cli)
    cli.run("monitor", str(published), "--log-key", vkey, "--state", str(state))
    # The same log key, another history, larger than what the witnesses cosigned.
    rebuilt = world.rebuilt
    assert log_key(cli, rebuilt) == vkey
    for n in range(size + 1):
        grow(cli, f"forger-{n}", rebuilt)
    r = cli.fail(
        1, "log", "witness", "--url", world.a.url, "--url", world.b.url, "--home", str(rebuilt)
    )
    for w in (world.a, world.b):
        assert f"{w.url}: HTTP 422: refusing to cosign: this log showed two different " in (
            r.stderr
        ), r.stderr
    other = tmp_path / "published-rebuilt"
    cli.run("log", "publish", "--to", str(other), "--home", str(rebuilt))
    r = cli.fail(1, "monitor", str(other), "--log-key", vkey, "--state", str(state))
    assert f"log {ORIGIN} rewrote its history" in r.stderr, r


# -- the protocol, status by status, on a server in this process ---------------------------

LOG_SIGNER = Signer.from_seed("proto.example/log", bytes(range(32)))
OTHER_LOG = Signer.from_seed("proto.example/other", bytes(range(2, 34)))
CLERK = Signer.from_seed("clerk", bytes(range(5, 37)))


def _tree(n: int, salt: bytes = b"") -> MemoryTree:
    t = MemoryTree()
    for i in range(n):
        t.append(salt + b"leaf %d" % i)
    return t


def _note(signer: Signer, size: int, root: bytes) -> bytes:
    return sign_checkpoint(Checkpoint(signer.name, size, root), signer)


@dataclass
class Proto:
    server: WitnessServer
    store: WitnessStore

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        host, port = self.server.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            sent = {"Content-Length": str(len(body))} if headers is None else headers
            conn.request("POST", "/add-checkpoint", body=body, headers=sent)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type", ""), r.read()
        finally:
            conn.close()

    def add(self, old: int, proof: list[bytes], note: bytes) -> tuple[int, str, bytes]:
        return self.post(AddCheckpoint(old, tuple(proof), note).encode())


@pytest.fixture
def proto(tmp_path: Path) -> Iterator[Proto]:
    store = WitnessStore(tmp_path / "witness-home")
    logs = {s.name: s.verifier_key for s in (LOG_SIGNER, OTHER_LOG)}
    server = WitnessServer(
        store, CLERK, logs, host="127.0.0.1", port=0, clock=lambda: 1_767_225_600
    )
    server.start()
    try:
        yield Proto(server, store)
    finally:
        server.stop()


def test_each_status_the_spec_gives(proto: Proto) -> None:
    t = _tree(9)
    n3, n6, n9 = (_note(LOG_SIGNER, n, t.root(n)) for n in (3, 6, 9))
    assert proto.post(b"old x\n\n" + n3)[0] == 400  # malformed
    stranger = Signer.from_seed("stranger.example/log", bytes(32))
    assert proto.add(0, [], _note(stranger, 3, t.root(3)))[0] == 404  # unknown log
    impostor = Signer.from_seed(LOG_SIGNER.name, bytes(range(9, 41)))
    assert proto.add(0, [], _note(impostor, 3, t.root(3)))[0] == 403  # not the log's key
    sig = bytearray(n3)
    sig[-10] ^= 1  # inside the log's signature
    assert proto.add(0, [], bytes(sig))[0] == 403
    # First contact: cosigned; the line verifies with the clerk's cosignature/v1 key.
    status, ctype, body = proto.add(0, [], n3)
    assert status == 200 and ctype.startswith("text/plain"), body
    [line] = parse_cosignatures(body)
    opened = open_checkpoint(
        append_signatures(n3, [line]), LOG_SIGNER.verifier_key, [cosignature_verifier_key(CLERK)]
    )
    assert opened.cosignatures[0][1] == 1_767_225_600
    # The old size is not what the witness cosigned: 409 with its size.
    assert proto.add(0, [], n6) == (409, "text/x.tlog.size", b"3\n")
    assert proto.add(7, [], n6)[0] == 400  # old larger than the checkpoint
    assert proto.add(3, [], n3)[0] == 200  # the same tree again
    forked = _note(LOG_SIGNER, 3, _tree(3, b"other ").root())
    status, _, body = proto.add(3, [], forked)
    assert status == 422 and b"two different histories" in body
    assert proto.add(3, t.consistency_proof(3, 6), n6)[0] == 200
    other = _tree(9, b"other ")
    status, _, body = proto.add(6, other.consistency_proof(6, 9), n9)
    assert status == 422 and b"not consistent with size 6" in body
    assert proto.add(6, [], n9)[0] == 422  # a proof is needed
    # Size 0 must be the empty tree; no proof from size 0.
    assert proto.add(0, [], _note(OTHER_LOG, 0, bytes(32)))[0] == 422
    assert proto.add(0, t.consistency_proof(3, 6), _note(OTHER_LOG, 6, t.root(6)))[0] == 422
    assert proto.add(0, [], _note(OTHER_LOG, 0, EMPTY_ROOT))[0] == 200
    # HTTP itself: no length, too long, another path.
    host, port = proto.server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/add-checkpoint")  # no Content-Length at all
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    assert proto.post(b"", headers={"Content-Length": str(MAX_REQUEST + 1)})[0] == 413
    # The monitoring retrieval: the last cosigned checkpoint, the witness's line included.
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    origin_hash = hashlib.sha256(LOG_SIGNER.name.encode()).hexdigest()
    conn.request("GET", f"/{origin_hash}/checkpoint")
    r = conn.getresponse()
    assert r.status == 200
    got = open_checkpoint(r.read(), LOG_SIGNER.verifier_key, [cosignature_verifier_key(CLERK)])
    assert got.checkpoint.size == 6 and got.cosignatures
    conn.request("POST", "/elsewhere", body=b"", headers={"Content-Length": "0"})
    assert conn.getresponse().status == 404
    conn.close()


def test_concurrent_requests_for_one_log_take_turns(proto: Proto) -> None:
    t = _tree(8)
    assert proto.add(0, [], _note(LOG_SIGNER, 2, t.root(2)))[0] == 200
    notes = {n: _note(LOG_SIGNER, n, t.root(n)) for n in range(3, 9)}
    results: list[int] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        status = proto.add(2, t.consistency_proof(2, n), notes[n])[0]
        with lock:
            results.append(status)

    threads = [threading.Thread(target=send, args=(n,)) for n in notes]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Each saw the state from 2 or the one a faster request left: one cosigned, the others
    # were told the size had moved on.  Never two cosignatures from the same old size.
    assert sorted(results) == [200] + [409] * (len(notes) - 1), results
    state = proto.store.load(LOG_SIGNER.name)
    assert state is not None and state.size in notes
