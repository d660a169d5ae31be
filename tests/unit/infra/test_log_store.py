"""The log on its store: transactions, concurrent writers, O(log n) proofs, rules."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import PASSPHRASE

from custody.app.home import Custody
from custody.errors import PolicyError, VerificationError
from custody.model.entry import Entry, sign_entry
from custody.model.parties import EntryError
from custody.tlog import merkle
from custody.tlog.note import Signer


def _now() -> datetime:
    """The time the entries built here claim: now, as the home's own entries (made by the
    CLI) do; a log refuses an entry claiming a time well before the one before it
    (docs/spec/entry.md rule 5)."""
    return datetime.now(UTC).replace(microsecond=0)


def _pw(_prompt: str) -> str:
    return PASSPHRASE


CASE, ITEM = "T-1", "ab" * 32


def _ingest(signer: Signer, item: str = ITEM) -> bytes:
    """An ingest entry for a (notional) attachment, so that access entries are in order."""
    fields = [
        ("case", CASE),
        ("exhibit", f"{CASE}/0001"),
        ("item", item),
        ("name", "x.json"),
        ("size", 10),
        ("kind", "attachment"),
        ("by", signer.name),
        ("holder", signer.name),
    ]
    return sign_entry(Entry.build("ingest", _now(), fields), [signer])


def _access(signer: Signer, n: int) -> bytes:
    fields = [
        ("case", CASE),
        ("item", ITEM),
        ("by", signer.name),
        ("purpose", f"test {n}"),
        ("action", "view"),
    ]
    return sign_entry(Entry.build("access", _now(), fields), [signer])


def _with_item(c: Custody, signer: Signer) -> None:
    c.log.append(_ingest(signer))


def test_an_append_that_fails_midway_leaves_nothing(home: Path) -> None:
    with Custody.open() as c:
        bob = c.signer("bob", _pw)
        _with_item(c, bob)
        before = c.log.size()
        with pytest.raises(RuntimeError), c.log.transaction() as w:
            w.append(_access(bob, 1))
            w.append(_access(bob, 2))
            raise RuntimeError("power cut")
        assert c.log.size() == before
        c.log.verify(c.log_key)


def test_entries_by_unknown_or_forged_signers_are_refused(home: Path) -> None:
    with Custody.open() as c:
        stranger = Signer.generate("mallory")
        with pytest.raises(EntryError, match="not a registered party"):
            c.log.append(_access(stranger, 1))
        impostor = Signer.generate("bob")  # right name, wrong key
        with pytest.raises(EntryError, match="key id"):
            c.log.append(_access(impostor, 1))
        assert c.log.size() == 2
        bob = c.signer("bob", _pw)
        _with_item(c, bob)
        alice = c.signer("alice", _pw)
        with pytest.raises(PolicyError, match=r"refused: .*current holder is 'bob'"):
            c.log.append(_access(alice, 1))


def test_proofs_read_only_log_n_nodes(home: Path) -> None:
    """Proofs come from stored nodes: count the node reads for a 300-entry log."""
    from custody.infra.store import Store

    with Custody.open() as c:
        bob = c.signer("bob", _pw)
        _with_item(c, bob)
        with c.log.transaction() as w:
            for n in range(300):
                w.append(_access(bob, n))
        size = c.log.size()
        tree = merkle.MemoryTree()
        for _idx, data in c.store.iter_entries():
            tree.append(data)
        reads: list[int] = []
        real = Store.get_nodes

        def counting(s, ids):  # type: ignore[no-untyped-def]
            reads.append(len(ids))
            return real(s, ids)

        Store.get_nodes = staticmethod(counting)  # type: ignore[method-assign]
        try:
            for index in (0, 1, 150, 299, 301):
                assert c.log.inclusion_proof(index, size) == tree.inclusion_proof(index, size)
            assert c.log.consistency_proof(7, size) == tree.consistency_proof(7, size)
        finally:
            Store.get_nodes = staticmethod(real)  # type: ignore[method-assign]
        assert max(reads) <= 2 * size.bit_length() + 2
        assert c.log.root()[1] == tree.root()


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from custody.model.entry import Entry, sign_entry
    from custody.app.home import Custody
    name, count = sys.argv[1], int(sys.argv[2])
    item = name.encode().hex().ljust(64, "0")
    now = datetime.now(UTC)
    def entry(kind, fields):
        return sign_entry(Entry.build(kind, now, [("case", "T-" + name), *fields]), [signer])
    with Custody.open() as c:
        signer = c.signer(name, lambda _p: sys.argv[3])
        c.log.append(entry("ingest", [("exhibit", "T-" + name + "/0001"), ("item", item),
                                      ("name", "x"), ("size", 1), ("kind", "attachment"),
                                      ("by", name), ("holder", name)]))
        for n in range(count):  # one transaction per entry
            c.log.append(entry("access", [("item", item), ("by", name), ("n", n),
                                          ("purpose", "p"), ("action", "view")]))
    """
)


def test_concurrent_writers_never_fork_or_leave_a_gap(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    writers = ["w1", "w2", "w3"]
    for name in writers:
        cli.run("key", "new", name, "--role", "agency")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    count = 60
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), name, str(count), PASSPHRASE],
            env=dict(os.environ),
            stderr=subprocess.PIPE,
        )
        for name in writers
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with Custody.open() as c:
        total = 2 + len(writers) + (1 + count) * len(writers)
        assert c.log.size() == total
        indexes = [idx for idx, _ in c.store.iter_entries()]
        assert indexes == list(range(total))
        seen: dict[str, list[int]] = {w: [] for w in writers}
        from custody.model.entry import SignedEntry

        for _idx, data in c.store.iter_entries(2 + len(writers)):
            e = SignedEntry.parse(data).entry
            if e.type == "access":
                seen[e.require("by")].append(int(e.require("n")))
        assert all(v == list(range(count)) for v in seen.values())
        report = c.log.verify(c.log_key)
        assert report.size == total


def test_parallel_verify_names_the_first_bad_entry(home: Path) -> None:
    """The multi-process verify path (used for big logs) reports the same first error."""
    import sqlite3

    with Custody.open() as c:
        bob = c.signer("bob", _pw)
        _with_item(c, bob)
        with c.log.transaction() as w:
            for n in range(500):
                w.append(_access(bob, n))
        report = c.log.verify(c.log_key, jobs=2, chunk=50)
        assert report.size == 503
    con = sqlite3.connect(home / "custody.db")
    con.execute("DROP TRIGGER entries_no_update")
    for idx in (333, 421):  # both access entries by bob
        data = con.execute("SELECT data FROM entries WHERE idx = ?", (idx,)).fetchone()[0]
        con.execute(
            "UPDATE entries SET data = ? WHERE idx = ?", (data.replace(b"test", b"tost"), idx)
        )
    con.commit()
    con.close()
    with Custody.open() as c, pytest.raises(VerificationError, match="log entry 333"):
        c.log.verify(c.log_key, jobs=2, chunk=50)


def test_a_relabelled_key_entry_is_caught(home: Path) -> None:
    """The verifier finds key entries through a look-up column; hiding one is caught."""
    import sqlite3

    con = sqlite3.connect(home / "custody.db")
    con.execute("DROP TRIGGER entries_no_update")
    con.execute("UPDATE entries SET etype = 'access' WHERE idx = 1")
    con.commit()
    con.close()
    with Custody.open() as c, pytest.raises(VerificationError, match="log entry 1"):
        c.log.verify(c.log_key)


@pytest.mark.parametrize("jobs", [1, 2])
def test_verify_replays_the_custody_rules(
    home: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """An entry that breaks a custody rule (slipped in by a writer that skipped the
    checks) fails `log verify` on both the inline and the multi-process paths."""
    from custody.model import rules

    with Custody.open() as c:
        bob, alice = c.signer("bob", _pw), c.signer("alice", _pw)
        _with_item(c, bob)
        with c.log.transaction() as w:
            for n in range(200):
                w.append(_access(bob, n))
        with monkeypatch.context() as m:
            m.setattr(rules, "evaluate", lambda *a, **k: [])
            bad = c.log.append(_access(alice, 999))  # alice does not hold the item
        with c.log.transaction() as w:
            for n in range(200):
                w.append(_access(bob, n))
        with pytest.raises(VerificationError, match=f"log entry {bad}: 'alice' may not access"):
            c.log.verify(c.log_key, jobs=jobs, chunk=50)
