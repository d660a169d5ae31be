"""Issue #10: many writer processes appending to one SQLite log at once.

The log's single-append path checks entries before it takes the write lock and
only confirms (or re-evaluates) them under it (custody.infra.log.Log.append_one).
These tests race real processes (tests/appendrace.py) and check that the log never
forks, gaps or duplicates, and never accepts what `log verify` refuses.  The same
races on PostgreSQL are in tests/interop/test_postgres.py.
"""

from __future__ import annotations

import os

import pytest
from appendrace import check_log, make_parties, race


def _pw(_prompt: str) -> str:
    return os.environ["CUSTODY_PASSPHRASE"]


@pytest.fixture
def inited(cli):  # type: ignore[no-untyped-def]
    cli.run("init", "--origin", "race.example/custody")
    return cli


def test_sixteen_writers_never_fork_or_gap_the_sqlite_log(inited) -> None:  # type: ignore[no-untyped-def]
    names = [f"w{n:02d}" for n in range(16)]
    make_parties(names)
    reports = race("own", names, 12)
    assert all(not r["refused"] for r in reports), reports
    indexes = sorted(i for r in reports for i in r["ok"])
    assert indexes == list(range(16, 16 + 16 * 13))
    check_log(inited, 16 + 16 * 13)


def test_racing_handoffs_of_one_item_let_exactly_one_win(inited) -> None:  # type: ignore[no-untyped-def]
    """16 processes each try to take the same exhibit from its holder, and view it as
    the holder meanwhile: exactly one handoff wins, no view by the old holder is
    accepted after it, and the log replays clean."""
    names = [f"r{n:02d}" for n in range(16)]
    make_parties(names, shared=True)
    reports = race("handoff", names, 6)
    datas = check_log(inited, 16 + 2 + sum(len(r["ok"]) for r in reports))
    handoffs = [i for i, d in enumerate(datas) if d.startswith(b"custody/entry/v1\ntype handoff\n")]
    assert len(handoffs) == 1, reports
    refused = [m for r in reports for m in r["refused"]]
    assert len(refused) >= 15 and all(m.startswith("refused: ") for m in refused), refused
    views = [i for i, d in enumerate(datas) if d.startswith(b"custody/entry/v1\ntype access\n")]
    assert views and max(views) < handoffs[0]


def test_a_key_revoked_during_a_race_signs_nothing_after(inited) -> None:  # type: ignore[no-untyped-def]
    names = [f"r{n:02d}" for n in range(16)]
    make_parties(names, shared=True)
    reports = race("revoke", names, 6)
    datas = check_log(inited, 16 + 2 + sum(len(r["ok"]) for r in reports))
    revoked = [
        i for i, d in enumerate(datas) if d.startswith(b"custody/entry/v1\ntype key\n") and i >= 18
    ]
    assert len(revoked) == 1
    views = [i for i, d in enumerate(datas) if d.startswith(b"custody/entry/v1\ntype access\n")]
    assert max(views) < revoked[0]
    assert sum(len(r["refused"]) for r in reports) == 16 * 6 - len(views)


# -- the pre-check going stale, step by step (in one process) ------------------------------


def _access(signer, item: str, by: str, n: int) -> bytes:  # type: ignore[no-untyped-def]
    from appendrace import NOW

    from custody.model.entry import Entry, sign_entry

    fields = [("case", "R"), ("item", item), ("by", by), ("n", n), ("purpose", "p")]
    return sign_entry(Entry.build("access", NOW, [*fields, ("action", "view")]), [signer])


def test_a_stale_pre_check_is_evaluated_again_under_the_lock(inited) -> None:  # type: ignore[no-untyped-def]
    """An entry pre-checked at size n and appended at n+1 passes the rules again there;
    one the state no longer allows (the holder handed the item off, the key was
    revoked) is refused under the lock, whatever the pre-check said."""
    from appendrace import NOW, item_of

    from custody.app.home import Custody
    from custody.errors import CustodyError, PolicyError
    from custody.model.entry import Entry, sign_entry

    make_parties(["other"], shared=True)
    with Custody.open() as c:
        holder, other = c.signer("holder", _pw), c.signer("other", _pw)
        item = item_of("shared")
        first, second = _access(holder, item, "holder", 1), _access(holder, item, "holder", 2)
        pre = c.log.precheck(second)
        assert pre is not None and pre.index == c.log.size()
        c.log.append(first)  # the log grew, by an access entry only
        with c.log.transaction(pre) as w:  # (the state is unchanged: the pre-check stands)
            assert w.append_checked(second, pre)[0] == pre.index + 1
        again = _access(holder, item, "holder", 5)
        pre = c.log.precheck(again)
        assert pre is not None
        c.log.append(_access(holder, item, "holder", 6))
        with c.log.transaction() as w:  # not told: the rules are evaluated again
            assert w.append_checked(again, pre)[0] == pre.index + 1
        # The holder hands the item off between the pre-check and the lock.
        third = _access(holder, item, "holder", 3)
        pre = c.log.precheck(third)
        assert pre is not None
        handoff = Entry.build(
            "handoff",
            NOW,
            [
                ("case", "R"),
                ("item", item),
                ("from", "holder"),
                ("to", "other"),
                ("purpose", "p"),
                ("offer", item_of("offer")),
            ],
        )
        c.log.append(sign_entry(handoff, [holder, other]))
        with pytest.raises(PolicyError, match="refused: "), c.log.transaction(pre) as w:
            w.append_checked(third, pre)
        # The new holder's key is revoked between its pre-check and the lock.
        view = _access(other, item, "other", 4)
        pre = c.log.precheck(view)
        assert pre is not None
        revoke = Entry.build(
            "key", NOW, [("action", "revoke"), ("party", "other"), ("reason", "x")]
        )
        c.log.append(sign_entry(revoke, [other]))
        with pytest.raises(CustodyError, match="revoked"), c.log.transaction(pre) as w:
            w.append_checked(view, pre)
        size = c.log.size()
    check_log(inited, size)


def test_a_pre_check_that_fails_leaves_the_decision_to_the_lock(inited) -> None:  # type: ignore[no-untyped-def]
    from appendrace import item_of

    from custody.app.home import Custody
    from custody.errors import PolicyError

    make_parties(["other"], shared=True)
    with Custody.open() as c:
        other = c.signer("other", _pw)
        data = _access(other, item_of("shared"), "other", 1)  # 'other' does not hold it
        assert c.log.precheck(data) is None
        with pytest.raises(PolicyError, match="refused: "):
            c.log.append(data)
        size = c.log.size()
    check_log(inited, size)
