"""The browser verifier's custody rules (web/src/entry.js, web/src/rules.js; issue 14, W2)
against custody's own, entry for entry.

Each case writes a sequence of signed entries (made with custody's Python API, or by the
custody CLI in a temporary home) to a folder, replays it with `node web/test/rules.mjs`
and with the same pipeline verify-bundle runs (custody/bundle/verify.py steps 7-8: the key
timeline, every entry's signatures, claimed-time notes, then the custody rules), and
requires the same problems (check, entry, message) and the same notes.  Rule-breaking
entries are signed directly, as tests/unit/model/test_rules_oversight.py does, so that the
replay meets what a tampered or badly written log would hold.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CliRunnerNS, invoke

from custody.errors import CustodyError
from custody.model.entry import Entry, SignedEntry, countersign_entry, sign_entry
from custody.model.parties import EntryError, Parties, check_entry
from custody.model.rules import Chain, entry_hash
from custody.model.state import MemoryState
from custody.model.times import find_disorder
from custody.model.types import parse_typed
from custody.tlog.note import Signer, VerifierKey

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "web" / "test" / "rules.mjs"
NODE = shutil.which("node")
HAS_DEPS = (REPO / "web" / "node_modules" / "hash-wasm").is_dir()

pytestmark = pytest.mark.skipif(
    NODE is None or not HAS_DEPS, reason="node and web/node_modules (make web) are needed"
)

WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CASE = "C-1"
ORIGIN = "metro.example/custody"
CLIP, WARRANTED, OTHER = "a1" * 32, "b2" * 32, "e5" * 32
Fields = list[tuple[str, str | int | None]]


def _signer(name: str, seed: int) -> Signer:
    return Signer.from_seed(name, bytes([seed]) * 32)


ANN, OLGA, CORY, MALLORY = (_signer(n, i) for i, n in enumerate(["ann", "olga", "cory", "mal"], 1))
ANN2 = _signer("ann", 9)
LOG = _signer(ORIGIN, 40)
ROLE = {"ann": "agency", "olga": "owner", "cory": "court", "mal": "agency", "Mal": "agency"}


def sign(type_: str, fields: Fields, *signers: Signer, when: datetime = WHEN) -> bytes:
    return sign_entry(Entry.build(type_, when, fields), list(signers))


def register(s: Signer, when: datetime = WHEN) -> bytes:
    fields: Fields = [
        ("action", "register"),
        ("party", s.name),
        ("role", ROLE[s.name]),
        ("vkey", s.verifier_key.encode()),
        ("kept", "own"),
    ]
    return sign("key", fields, s, when=when)


def grant(until: str | None = None, onward: str = "court") -> bytes:
    fields: Fields = [
        ("action", "grant"),
        ("owner", "olga"),
        ("case", CASE),
        ("purpose", "investigation"),
        ("until", until),
        ("onward", onward),
    ]
    return sign("consent", fields, OLGA)


GRANT = grant()


def ingest(item: str, number: int, basis: str, by: Signer = ANN, **extra: str) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("exhibit", f"{CASE}/{number:04d}"),
        ("item", item),
        ("name", f"clip{number}.mp4"),
        ("size", 1),
        ("kind", "media"),
        ("legal-basis", basis),
        *((k.replace("_", "-"), v) for k, v in extra.items()),
        ("by", by.name),
    ]
    return sign("ingest", fields, by)


def access(item: str = CLIP, by: Signer = ANN, when: datetime = WHEN) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("by", by.name),
        ("purpose", "review"),
        ("action", "view"),
    ]
    return sign("access", fields, by, when=when)


def handoff(
    item: str = WARRANTED,
    sender: Signer = ANN,
    receiver: Signer = CORY,
    offer: str = "0f" * 8,
    accepted: datetime = WHEN + timedelta(minutes=5),
) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("from", sender.name),
        ("to", receiver.name),
        ("purpose", "trial"),
        ("offer", offer),
    ]
    offered = sign("handoff", fields, sender)
    return countersign_entry(offered, receiver, accepted)


def retimed(data: bytes) -> bytes:
    """The entry with its cosignature/v1 line claiming one second later (signature kept)."""
    head, _, line = data.rstrip(b"\n").rpartition(b" ")
    raw = bytearray(base64.b64decode(line))
    raw[4 + 7] += 1  # the low byte of the u64 timestamp after the key id
    return head + b" " + base64.b64encode(bytes(raw)) + b"\n"


def policy(signer: Signer = LOG, **fields: str) -> bytes:
    return sign("policy", [(k.replace("_", "-"), v) for k, v in fields.items()], signer)


def analysis(kind: str, item: str = WARRANTED) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("by", "ann"),
        ("kind", kind),
        ("tool", "facefinder"),
        ("tool-version", "1.0"),
        ("purpose", "identify"),
    ]
    return sign("analysis", fields, ANN)


def hold(item: str = WARRANTED) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", item),
        ("action", "place"),
        ("reason", "appeal"),
        ("by", "ann"),
    ]
    return sign("hold", fields, ANN)


def disposal(item: str = WARRANTED) -> bytes:
    fields: Fields = [("case", CASE), ("item", item), ("by", "ann"), ("reason", "closed")]
    return sign("disposal", fields, ANN)


def revoke_key(s: Signer) -> bytes:
    fields: Fields = [("action", "revoke"), ("party", s.name), ("reason", "lost laptop")]
    return sign("key", fields, s)


EMERGENCY = ingest(OTHER, 3, "emergency", justification="a child is missing")


def review(by: Signer, outcome: str = "rejected") -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", OTHER),
        ("ingest", entry_hash(EMERGENCY)),
        ("by", by.name),
        ("outcome", outcome),
        ("note", "not urgent"),
    ]
    return sign("review", fields, by)


def request(by: Signer = ANN) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("by", by.name),
        ("owner", "olga"),
        ("purpose", "burglary"),
        ("start", "2026-11-20T18:00:00Z"),
        ("end", "2026-11-20T20:00:00Z"),
        ("area", "51.5,-0.1,200"),
    ]
    return sign("request", fields, by)


REQUEST = request()
ANSWER = sign(
    "consent",
    [
        ("action", "grant"),
        ("owner", "olga"),
        ("case", CASE),
        ("purpose", "investigation"),
        ("onward", "court"),
        ("request", entry_hash(REQUEST)),
    ],
    OLGA,
)
ANSWER_HASH = entry_hash(ANSWER)


def refusal() -> bytes:
    fields: Fields = [("case", CASE), ("owner", "olga"), ("request", entry_hash(REQUEST))]
    return sign("refusal", fields, OLGA)


def retention(by: Signer) -> bytes:
    fields: Fields = [("case", CASE), ("until", "2030-01-01"), ("basis", "PACE"), ("by", by.name)]
    return sign("retention", fields, by)


def release(by: Signer) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("item", WARRANTED),
        ("action", "release"),
        ("hold", entry_hash(hold())),
        ("reason", "appeal over"),
        ("by", by.name),
    ]
    return sign("hold", fields, by)


def rotate(old: Signer, new: Signer) -> bytes:
    fields: Fields = [
        ("action", "rotate"),
        ("party", old.name),
        ("vkey", new.verifier_key.encode()),
    ]
    return sign("key", fields, old, new)


def wrong_key_id(s: Signer) -> str:
    name, _, key = s.verifier_key.encode().split("+", 2)
    return f"{name}+00000000+{key}"


def revoke_consent() -> bytes:
    fields: Fields = [("action", "revoke"), ("owner", "olga"), ("consent", entry_hash(GRANT))]
    return sign("consent", fields, OLGA)


def derive(parent: str) -> bytes:
    fields: Fields = [
        ("case", CASE),
        ("parent", parent),
        ("item", "f6" * 32),
        ("exhibit", f"{CASE}/0009"),
        ("name", "trim.mp4"),
        ("size", 1),
        ("kind", "media"),
        ("op", "trim"),
        ("param", "start 1.000"),
        ("tool", "ffmpeg 6.1"),
        ("reason", "the relevant minute"),
        ("by", "ann"),
    ]
    return sign("derive", fields, ANN)


def noncanonical(data: bytes) -> bytes:
    """The entry with its signature's base64 padding bits set (the same bytes decoded)."""
    head, _, line = data.rstrip(b"\n").rpartition(b" ")
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = line.rstrip(b"=")
    last = alphabet.index(body[-1:])
    changed = body[:-1] + alphabet[last | 1 : (last | 1) + 1] + line[len(body) :]
    assert changed != line
    return head + b" " + changed + b"\n"


BASE = [
    register(ANN),
    register(OLGA),
    register(CORY),
    GRANT,
    ingest(CLIP, 1, "consent"),
    ingest(WARRANTED, 2, "warrant", ref="W-1"),
]


# -- the two replays -------------------------------------------------------------------------


@dataclass
class Outcome:
    problems: list[tuple[str, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def python_replay(
    entries: Sequence[bytes], log_key: VerifierKey | None, case: str | None = None
) -> Outcome:
    """What verify-bundle reports of these entries (custody/bundle/verify.py `_signatures`,
    `_time_order`, `_rules`), with the same words."""
    out = Outcome()
    parties = Parties()
    for index, data in enumerate(entries):
        try:
            entry = SignedEntry.parse(data).entry
        except CustodyError:
            continue
        if entry.type == "key":
            try:
                parties.apply(index, entry)
            except EntryError as exc:
                out.problems.append(("signature", index, exc.message))
    signed: dict[int, SignedEntry] = {}
    for index, data in enumerate(entries):
        try:
            signed[index] = check_entry(index, data, parties, log_key)
        except EntryError as exc:
            out.problems.append(("signature", index, exc.message))
    out.notes.extend(d.sentence() for d in find_disorder(sorted(signed.items())))
    if out.problems:
        out.notes.append(
            "the custody rules were not replayed: some entries are missing, altered or "
            "badly signed (see above)"
        )
        return out
    chain = Chain(state=MemoryState(log_vkey=log_key))
    for index, s in sorted(signed.items()):
        if s.entry.type == "key":
            continue
        try:
            other = parse_typed(s.entry).case_id
        except CustodyError:  # verify-bundle's Event.typed is None then
            other = None
        if case is not None and other not in (None, case):
            out.notes.append(f"log entry {index} is about case {other}, not this case")
        try:
            chain.apply(index, s, parties)
        except EntryError as exc:
            out.problems.append(("rule", index, f"breaks the custody rules: {exc.message}"))
            break
    return out


def node_replay(
    tmp: Path, entries: Sequence[bytes], log_key: VerifierKey | None, case: str | None = None
) -> Outcome:
    folder = tmp / "entries"
    folder.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(entries):
        (folder / f"{index}.entry").write_bytes(data)
    if log_key is not None:
        (tmp / "log.vkey").write_text(log_key.encode() + "\n")
    if case is not None:
        (tmp / "case").write_text(case + "\n")
    assert NODE is not None
    run = subprocess.run(
        [NODE, str(SCRIPT), str(tmp)], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    problems = [(p["check"], p["index"], p["message"]) for p in got["problems"]]
    return Outcome(problems, got["notes"])


def both(
    tmp: Path,
    entries: Sequence[bytes],
    log_key: VerifierKey | None = None,
    case: str | None = None,
) -> Outcome:
    key = LOG.verifier_key if log_key is None else log_key
    expected = python_replay(entries, key, case)
    got = node_replay(tmp, entries, key, case)
    assert got == expected
    return got


# -- a genuine log ---------------------------------------------------------------------------


def test_a_genuine_log_replays_without_problems(tmp_path: Path) -> None:
    entries = [
        *BASE,
        access(),
        handoff(),
        policy(forbid="licence-plate", review_within="24"),
        analysis("face-recognition", item=CLIP),
    ]
    got = both(tmp_path, entries)
    assert got.problems == [] and got.notes == []


def test_the_entry_self_test_passes() -> None:
    assert NODE is not None
    run = subprocess.run([NODE, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "entry.js self-test: ok\n"


# -- each broken rule, as custody words it ------------------------------------------------------


CASES = {
    "access by one who does not hold it": (
        [*BASE, access(by=CORY)],
        "'cory' may not access C-1/0001: the current holder is 'ann'",
    ),
    "access after the consent expired": (
        [*BASE[:3], grant(until="2026-11-01"), *BASE[4:], access()],
        "consent",
    ),
    "onward sharing of consent footage": (
        [*BASE, handoff(item=CLIP, receiver=_signer("mal", 4))],
        "is not",
    ),
    "a handoff of an item already handed off": (
        [*BASE, handoff(), handoff(offer="1e" * 8)],
        "'ann' may not hand off C-1/0002: the current holder is 'cory'",
    ),
    "an unknown signer": (
        [*BASE, access(by=MALLORY)],
        "signed by 'mal', which is not a registered party",
    ),
    "a key used after its revocation": (
        [*BASE, revoke_key(ANN), access(item=WARRANTED)],
        "signed by 'ann' with a key revoked: lost laptop at entry 6",
    ),
    "a second registration": (
        [*BASE, register(ANN2)],
        "party 'ann' was already registered at entry 0",
    ),
    "a policy signed by a party": (
        [*BASE, policy(signer=ANN, forbid="other")],
        "is a policy entry signed by 'ann'",
    ),
    "an analysis the policy forbids": (
        [*BASE, policy(forbid="face-recognition"), analysis("face-recognition")],
        "the log's policy (entry 6) forbids face-recognition analysis",
    ),
    "a disposal under hold": (
        [*BASE, hold(), disposal()],
        "is under hold",
    ),
    "access after disposal": (
        [*BASE, disposal(), access(item=WARRANTED)],
        "C-1/0002 was disposed of at entry 6: it can no longer be accessed",
    ),
    "an item ingested twice": (
        [*BASE, ingest(WARRANTED, 3, "warrant", ref="W-2")],
        "was already ingested in case C-1 at entry 5",
    ),
    "an unknown entry type": (
        [*BASE, sign("teleport", [("case", CASE)], ANN)],
        "has unknown type 'teleport'",
    ),
    "consent given by an agency": (
        [
            *BASE,
            sign(
                "consent",
                [
                    ("action", "grant"),
                    ("owner", "ann"),
                    ("case", CASE),
                    ("purpose", "x"),
                    ("onward", "any"),
                ],
                ANN,
            ),
        ],
        "consent is given by 'ann', who is not an owner party",
    ),
    "access to an item never ingested": (
        [*BASE, access(item=OTHER)],
        "is not on this log in case C-1",
    ),
    "an emergency ingest without justification": (
        [*BASE, ingest(OTHER, 3, "emergency")],
        "is ingested with legal-basis emergency but the entry has no 'justification' field",
    ),
    "a review by the party that made the disclosure": (
        [*BASE, EMERGENCY, review(ANN)],
        "'ann' made emergency disclosure",
    ),
    "a second review": (
        [*BASE, EMERGENCY, review(CORY), review(CORY, "upheld")],
        "was reviewed already at entry 7 (rejected)",
    ),
    "access to a restricted item": (
        [*BASE, EMERGENCY, review(CORY), access(item=OTHER)],
        "C-1/0003 may not be accessed: its emergency disclosure was rejected on review at entry 7",
    ),
    "a request by an owner": (
        [*BASE, request(OLGA)],
        "request is made by 'olga', an owner party",
    ),
    "a refusal answering twice": (
        [*BASE, REQUEST, refusal(), refusal()],
        "'olga' answered request",
    ),
    "a consent outside the request window": (
        [
            *BASE,
            REQUEST,
            ANSWER,
            ingest(OTHER, 3, "consent", consent=ANSWER_HASH, recorded="2026-11-21T19:00:00Z"),
        ],
        "outside the window 2026-11-20T18:00:00Z to 2026-11-20T20:00:00Z",
    ),
    "a consent outside the request area": (
        [
            *BASE,
            REQUEST,
            ANSWER,
            ingest(OTHER, 3, "consent", consent=ANSWER_HASH, location="51.6,-0.1"),
        ],
        "m from the centre of the area 51.5,-0.1,200 (radius 200 m)",
    ),
    "a retention set by an owner": (
        [*BASE, retention(OLGA)],
        "'olga' has role owner: only an agency, a lab or a court sets retention and holds",
    ),
    "a hold released by another agency": (
        [*BASE, register(MALLORY), hold(), release(MALLORY)],
        "was placed by 'ann': only that party or a court may release it",
    ),
    "a rotated key signing after its rotation": (
        [*BASE, rotate(ANN, ANN2), access(item=WARRANTED)],
        "signed by 'ann' with a key rotated at entry 6",
    ),
    "a key entry naming another party's key": (
        [
            *BASE,
            sign(
                "key",
                [
                    ("action", "register"),
                    ("party", "mal"),
                    ("role", "agency"),
                    ("vkey", ANN2.verifier_key.encode()),
                ],
                ANN2,
            ),
        ],
        "key entry for 'mal' carries a key named 'ann'",
    ),
    "an unregistered party name": (
        [*BASE, register(_signer("Mal", 5))],
        "party name 'Mal' has the upper-case letter 'M'",
    ),
    "a key entry with a key id that does not match": (
        [
            *BASE,
            sign(
                "key",
                [
                    ("action", "register"),
                    ("party", "mal"),
                    ("role", "agency"),
                    ("vkey", wrong_key_id(MALLORY)),
                ],
                MALLORY,
            ),
        ],
        "verifier key mal: key id 00000000 does not match the key (computed",
    ),
    "an analysis without the warrant the policy requires": (
        [*BASE, policy(warrant_required="transcription"), analysis("transcription", item=CLIP)],
        "requires a warrant for transcription analysis",
    ),
    "a handoff signed by the sender alone": (
        [
            *BASE,
            sign(
                "handoff",
                [
                    ("case", CASE),
                    ("item", WARRANTED),
                    ("from", "ann"),
                    ("to", "cory"),
                    ("purpose", "trial"),
                    ("offer", "ab" * 8),
                ],
                ANN,
            ),
        ],
        "is not signed by the receiving party 'cory'",
    ),
    "a reject by someone other than the receiver": (
        [
            *BASE,
            sign(
                "reject",
                [
                    ("case", CASE),
                    ("item", WARRANTED),
                    ("from", "ann"),
                    ("to", "cory"),
                    ("offer", "ab" * 8),
                    ("by", "olga"),
                    ("reason", "no"),
                ],
                OLGA,
            ),
        ],
        "only the receiver 'cory' may refuse this offer",
    ),
    "a consent revoked twice": (
        [*BASE, revoke_consent(), revoke_consent()],
        "was already revoked at entry 6",
    ),
    "a derive by one who does not hold the parent": (
        [*BASE, handoff(), derive(WARRANTED)],
        "'ann' may not derive from C-1/0002: the current holder is 'cory'",
    ),
    "a policy with a bad review period": (
        [*BASE, policy(review_within="0")],
        "policy entry field 'review-within' must be at least 1 (hours)",
    ),
    "a malformed entry after a broken key entry": (
        [*BASE, access().replace(b"by ann", b"by\tann"), register(ANN2)],
        "log entry 6: malformed: ",
    ),
    "an entry that is not UTF-8": (
        [*BASE, access().replace(b"purpose review", b"purpose r\xc3view")],
        "log entry 6: malformed: note is not valid UTF-8 at byte",
    ),
    "a note without its blank line": (
        [*BASE, access().replace(b"\n\n", b"\n")],
        "log entry 6: malformed: note has no blank line before its signatures",
    ),
    "a signature that is not base64": (
        [*BASE, access()[:-3] + b"!=\n"],
        "note signature line 1: signature is not valid base64",
    ),
    "a signature with non-canonical padding bits": (
        [*BASE, noncanonical(access())],
        "note signature line 1: signature is not canonical base64",
    ),
    "an entry of another version": (
        [*BASE, access().replace(b"custody/entry/v1", b"custody/entry/v2")],
        "malformed: entry does not start with 'custody/entry/v1' (found 'custody/entry/v2')",
    ),
    "an entry over 64 KiB": (
        [
            *BASE,
            sign(
                "access",
                [
                    ("case", CASE),
                    ("item", CLIP),
                    ("by", "ann"),
                    ("purpose", "x" * 65000),
                    ("action", "view"),
                ],
                ANN,
            )[:10]
            + b"x" * 65600,
        ],
        "malformed: entry is 65610 bytes, over the 65536 limit",
    ),
    "a countersignature whose timestamp was changed": (
        [*BASE, retimed(handoff())],
        "log entry 6: signature by 'cory' does not verify",
    ),
    "a handoff accepted after the consent's last day": (
        [
            *BASE[:3],
            grant(until="2026-11-23", onward="any"),
            *BASE[4:],
            handoff(item=CLIP, accepted=datetime(2026, 11, 24, 0, 30, tzinfo=UTC)),
        ],
        "expired on 2026-11-23",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_broken_log_gets_the_same_problem(tmp_path: Path, name: str) -> None:
    entries, fragment = CASES[name]
    got = both(tmp_path, entries)
    assert got.problems, name
    assert any(fragment in message for _, _, message in got.problems), got.problems


def test_changed_bytes_fail_the_signature_and_stop_the_replay(tmp_path: Path) -> None:
    tampered = access().replace(b"purpose review", b"purpose revieW")
    got = both(tmp_path, [*BASE, tampered])
    assert got.problems == [
        (
            "signature",
            6,
            "log entry 6: signature by 'ann' does not verify: the entry bytes were changed "
            "after signing, or the signature was forged",
        )
    ]
    assert got.notes[-1].startswith("the custody rules were not replayed")


def test_a_non_canonical_entry_is_malformed(tmp_path: Path) -> None:
    good = access()
    broken = good.replace(b"by ann\n", b"by  ann\n", 1)
    got = both(tmp_path, [*BASE, broken])
    assert got.problems == [
        (
            "signature",
            6,
            "log entry 6: malformed: entry field 'by' must be non-empty without leading or "
            "trailing spaces",
        )
    ]


def test_a_countersignature_on_an_access_is_refused(tmp_path: Path) -> None:
    cosigned = countersign_entry(access(), ANN, WHEN)
    got = both(tmp_path, [*BASE, cosigned])
    assert got.problems and "carries a cosignature/v1 line by 'ann'" in got.problems[0][2]


def test_claimed_times_out_of_order_are_notes_not_failures(tmp_path: Path) -> None:
    early = access(item=WARRANTED, when=WHEN - timedelta(minutes=13))
    got = both(tmp_path, [*BASE, early])
    assert got.problems == []
    assert got.notes == [
        "log entry 6 (access) claims 2026-11-23T11:47:00Z, 13 min before log entry 5 "
        "(ingest) — more than the 10 min tolerance"
    ]


def test_an_entry_of_another_case_is_a_note(tmp_path: Path) -> None:
    got = both(tmp_path, BASE, case="C-2")
    assert got.problems == []
    assert got.notes[0] == "log entry 3 is about case C-1, not this case"
    assert both(tmp_path / "same", BASE, case=CASE).notes == []


def test_a_policy_needs_the_log_key_it_is_checked_with(tmp_path: Path) -> None:
    other = _signer("other.example/custody", 41).verifier_key
    got = both(tmp_path, [*BASE, policy(forbid="other")], log_key=other)
    assert (
        got.problems and "is a policy entry signed by 'metro.example/custody'" in got.problems[0][2]
    )


# -- a log written by the custody CLI ---------------------------------------------------------


def test_a_log_written_by_the_cli_replays_the_same(tmp_path: Path, home: Path) -> None:
    del home  # the fixture made the home: alice (owner) and bob (agency)
    CliRunnerNS.run("case", "new", CASE, "--title", "Browser rules")
    clip = tmp_path / "note.txt"
    clip.write_text("a statement\n")
    CliRunnerNS.run(
        "ingest",
        str(clip),
        "--case",
        CASE,
        "--by",
        "bob",
        "--legal-basis",
        "warrant",
        "--ref",
        "W-1",
    )
    key = VerifierKey.parse(CliRunnerNS.run("log", "key").stdout.strip())
    entries = []
    while (result := invoke("log", "entry", str(len(entries)))).code == 0:
        entries.append(result.stdout_bytes)
    assert len(entries) >= 3  # alice's key, bob's key, the ingest
    assert b"type ingest" in entries[-1]
    got = both(tmp_path / "out", entries, log_key=key)
    assert got.problems == []
    tampered = [*entries[:-1], entries[-1].replace(b"W-1", b"W-2")]
    got = both(tmp_path / "bad", tampered, log_key=key)
    assert [p[0] for p in got.problems] == ["signature"]
