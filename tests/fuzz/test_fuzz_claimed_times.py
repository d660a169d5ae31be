"""Fuzzing the countersignature path: entry bytes with cosignature/v1 lines, parsed
(`SignedEntry.parse`), their claimed time read (`custody.model.times.claimed_time`),
signatures checked (`custody.model.parties.check_entry`) and order compared
(`find_disorder`): it returns a value or raises CustodyError (fuzzkit.check).

Seeds: handoffs countersigned at ordinary, zero and extreme times, old-style (two
Ed25519 lines) handoffs and an access entry; besides fuzzkit's mutations, the
receiver's line is re-encoded with any 8-byte timestamp.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from fuzzkit import check, fuzz_settings, inputs
from hypothesis import given
from hypothesis import strategies as st

from custody.model.entry import Entry, SignedEntry, countersign_entry, sign_entry
from custody.model.parties import Parties, check_entry
from custody.model.state import PartyKey
from custody.model.times import claimed_time, find_disorder
from custody.tlog.note import Signer, add_signatures

BOB = Signer.from_seed("bob", bytes(range(32)))
CORY = Signer.from_seed("cory", bytes(range(1, 33)))
WHEN = datetime(2026, 11, 23, 13, 45, tzinfo=UTC)
PARTIES = Parties(
    {
        "bob": [PartyKey("bob", "agency", "", BOB.verifier_key, 0)],
        "cory": [PartyKey("cory", "court", "", CORY.verifier_key, 0)],
    }
)


def _handoff() -> bytes:
    fields: list[tuple[str, str | int | None]] = [
        ("case", "C1"),
        ("item", "ab" * 32),
        ("from", "bob"),
        ("to", "cory"),
        ("purpose", "trial"),
        ("offer", "0f" * 16),
    ]
    return sign_entry(Entry.build("handoff", WHEN, fields), [BOB])


def _seeds() -> list[bytes]:
    offer = _handoff()
    access = Entry.build(
        "access",
        WHEN,
        [("case", "C1"), ("item", "ab" * 32), ("by", "bob"), ("purpose", "p"), ("action", "view")],
    )
    return [
        countersign_entry(offer, CORY, WHEN),
        countersign_entry(offer, CORY, datetime(1970, 1, 1, tzinfo=UTC)),
        countersign_entry(offer, CORY, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        add_signatures(offer, [CORY]),
        sign_entry(access, [BOB]),
    ]


SEEDS = _seeds()


@st.composite
def _retimed(draw: st.DrawFn) -> bytes:
    """A countersigned handoff whose receiver line carries an arbitrary timestamp."""
    data = SEEDS[0]
    head, _, line = data.rstrip(b"\n").rpartition(b"\n")
    prefix, _, b64 = line.rpartition(b" ")
    raw = base64.b64decode(b64)
    stamp = draw(
        st.one_of(
            st.integers(0, 2**64 - 1),
            st.sampled_from([0, 253402300799, 253402300800, 2**63 - 1, 2**63, 2**64 - 1]),
        )
    )
    raw = raw[:4] + stamp.to_bytes(8, "big") + raw[12:]
    return head + b"\n" + prefix + b" " + base64.b64encode(raw) + b"\n"


def _all_the_way(data: bytes) -> None:
    signed = SignedEntry.parse(data)
    claimed_time(signed)
    list(find_disorder([(0, SignedEntry.parse(SEEDS[4])), (1, signed)]))
    check_entry(1, data, PARTIES)


@fuzz_settings()
@given(st.one_of(inputs(SEEDS), _retimed()))
def test_countersigned_entries(data: bytes) -> None:
    check(lambda: _all_the_way(data))
