"""Many writer processes racing on one log (SQLite or PostgreSQL), and the checks that
the log came out whole: tests/unit/infra/test_append_race.py, tests/interop/test_postgres.py.

Every writer is its own process (`python -c WRITER ...`) on the home (and database,
through CUSTODY_DB) of the test; each signs with its own party key.  `check_log`
reads the log back: indexes 0..n-1 exactly once, the RFC 6962 root recomputed from
the entry bytes equals the one a newly signed checkpoint carries, and `log verify`
(the full replay with the one rule engine) passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

#: One writer: `python -c WRITER MODE NAME COUNT PASSPHRASE`; prints one JSON line of
#: what it appended and what the log refused.
WRITER = r"""
import json, sys
from datetime import UTC, datetime
from custody.app.home import Custody
from custody.errors import CustodyError
from custody.model.entry import Entry, sign_entry
mode, name, count, pw = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ok, refused = [], []
def item_of(n):
    return n.encode().hex().ljust(64, "0")[:64]
with Custody.open() as c:
    me = c.signer(name, lambda _p: pw)
    def put(kind, fields, signers):
        data = sign_entry(Entry.build(kind, now, fields), signers)
        try:
            ok.append(c.log.append(data))
        except CustodyError as exc:
            refused.append(exc.message)
    if mode == "own":
        # Its own exhibit in its own case, then `count` views of it.
        put("ingest", [("case", "T-" + name), ("exhibit", "T-" + name + "/0001"),
                       ("item", item_of(name)), ("name", "x"), ("size", 1),
                       ("kind", "attachment"), ("by", name), ("holder", name)], [me])
        for n in range(count):
            put("access", [("case", "T-" + name), ("item", item_of(name)), ("by", name),
                           ("n", n), ("purpose", "p"), ("action", "view")], [me])
    elif mode == "handoff":
        # Every racer tries to take the one shared exhibit from 'holder' and to view it
        # as 'holder': only one handoff can win, and no view after it is the holder's.
        holder = c.signer("holder", lambda _p: pw)
        for n in range(count):
            put("access", [("case", "R"), ("item", item_of("shared")), ("by", "holder"),
                           ("n", name + str(n)), ("purpose", "p"), ("action", "view")],
                [holder])
            if n == count // 2:
                put("handoff", [("case", "R"), ("item", item_of("shared")), ("from", "holder"),
                                ("to", name), ("purpose", "race"),
                                ("offer", item_of("offer-" + name))], [holder, me])
    elif mode == "revoke":
        # Views signed by 'holder' while one racer revokes holder's key: none may be
        # accepted after the revocation.  (The key file, unlocked directly: a racer
        # that starts after the revocation would be stopped by `Custody.signer`.)
        holder = c.keystore.unlock("holder", lambda _p: pw)
        for n in range(count):
            if name == "r00" and n == count // 2:
                put("key", [("action", "revoke"), ("party", "holder"), ("reason", "race")],
                    [holder])
            put("access", [("case", "R"), ("item", item_of("shared")), ("by", "holder"),
                           ("n", name + str(n)), ("purpose", "p"), ("action", "view")],
                [holder])
print(json.dumps({"ok": ok, "refused": refused}))
"""


def item_of(name: str) -> str:
    return name.encode().hex().ljust(64, "0")[:64]


def make_parties(names: list[str], *, shared: bool = False) -> None:
    """Register `names` (agency keys) on the log of the test's home; with `shared`, also
    a party 'holder' holding one exhibit `item_of("shared")` of case R."""
    from custody.app.home import Custody
    from custody.model.entry import Entry, sign_entry

    pw = os.environ["CUSTODY_PASSPHRASE"]
    with Custody.open() as c:
        for name in names:
            c.new_key(name, "agency", "Race", lambda _p: pw, NOW)
        if shared:
            c.new_key("holder", "agency", "Race", lambda _p: pw, NOW)
            holder = c.signer("holder", lambda _p: pw)
            fields: list[tuple[str, str | int | None]] = [
                ("case", "R"),
                ("exhibit", "R/0001"),
                ("item", item_of("shared")),
                ("name", "shared.bin"),
                ("size", 1),
                ("kind", "attachment"),
                ("by", "holder"),
                ("holder", "holder"),
            ]
            c.log.append(sign_entry(Entry.build("ingest", NOW, fields), [holder]))


def race(mode: str, names: list[str], count: int) -> list[dict[str, Any]]:
    """Start one writer process per name at once; wait for all; their reports."""
    pw = os.environ["CUSTODY_PASSPHRASE"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, mode, name, str(count), pw],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in names
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr.decode()
        out.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    return out


def check_log(cli: Any, expected_size: int) -> list[bytes]:
    """The log has entries 0..expected_size-1 exactly once, its root recomputed from the
    entry bytes is the signed checkpoint's, and `log verify` passes; its entries."""
    from custody.app.home import Custody
    from custody.tlog import merkle

    cli.run("log", "checkpoint")
    with Custody.open() as c:
        indexes_and_data = list(c.store.iter_entries())
        row = c.store.checkpoint()
        assert row is not None
        checkpoint_size, checkpoint_root = int(row.size), bytes(row.root)
    indexes = [i for i, _ in indexes_and_data]
    assert indexes == list(range(expected_size)), "a gap, a fork or a duplicate index"
    datas = [d for _, d in indexes_and_data]
    assert len(set(datas)) == len(datas), "an entry appended twice"
    frontier: list[bytes] = []
    for i, data in enumerate(datas):
        _, frontier = merkle.append_leaf(frontier, i, merkle.leaf_hash(data))
    assert checkpoint_size == expected_size
    assert merkle.root_from_frontier(frontier) == checkpoint_root
    report = json.loads(cli.run("log", "verify", "--json").stdout)
    assert report["size"] == expected_size
    return datas
