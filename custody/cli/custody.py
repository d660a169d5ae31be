"""CLI: custody between parties: `custody consent grant|revoke`, `custody handoff
offer|accept|reject|receipt|check-receipt`, and access (`custody open`).

Thin: parse, call `custody.app.events`, print.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from custody.cli.common import (
    CaseOpt,
    DbOpt,
    HomeOpt,
    JsonOpt,
    PassFileOpt,
    VaultOpt,
    now,
    open_home,
    party_or_default,
    passphrases,
    read_input,
)
from custody.cli.jsonout import emit_json
from custody.errors import EXIT_PENDING, InputError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from custody.app.events import MediaCopy, Offer, Receipt
    from custody.app.home import Custody

# The most `handoff accept --wait` may ask for: a day.
MAX_WAIT = 86400

consent_app = typer.Typer(
    help="The camera owner's consent: grant and revoke.", no_args_is_help=True
)
handoff_app = typer.Typer(
    help="Two-party handoffs: offer, accept, reject, receipts.", no_args_is_help=True
)


def _write_new(path: Path, data: bytes) -> None:
    from custody.infra.files import write_new

    write_new(path, data, mode=0o644)


def _replace(path: Path, data: bytes) -> None:
    from custody.infra.files import replace_durably

    replace_durably(path, data, mode=0o644)


# -- consent ----------------------------------------------------------------------------------


@consent_app.command("grant")
def consent_grant(
    owner: Annotated[str, typer.Option("--owner", help="The owner's key name; signs.")],
    case: Annotated[str, typer.Option("--case", help="The case the consent is for.")],
    purpose: Annotated[str, typer.Option("--purpose", help="What the footage may be used for.")],
    item: Annotated[
        list[str] | None,
        typer.Option("--item", help="Limit to these items (exhibit or digest); default all."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Last valid day, YYYY-MM-DD.")
    ] = None,
    onward: Annotated[
        str, typer.Option("--onward", help="Onward sharing: none, court or any.")
    ] = "none",
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Record the owner's consent (signed by the owner)."""
    from custody.app import events

    if onward not in ("none", "court", "any"):
        raise UsageError(f"--onward {onward!r} is not one of none, court, any")
    with open_home(home, db) as c:
        index = events.grant_consent(
            c,
            owner=owner,
            case=case,
            items=item or [],
            purpose=purpose,
            until=until,
            onward=onward,
            passphrase=passphrases(passphrase_file),
            now=now(),
        )
    if json_:
        emit_json(
            {
                "index": index,
                "case": case,
                "party": owner,
                "items": item or [],
                "purpose": purpose,
                "until": until,
                "onward": onward,
            }
        )
        return
    typer.echo(f"consent recorded as log entry {index} (onward sharing: {onward})")


@consent_app.command("revoke")
def consent_revoke(
    entry: Annotated[
        str, typer.Argument(metavar="ENTRY", help="Log index or entry hash of the grant.")
    ],
    owner: Annotated[
        str, typer.Option("--owner", help="The owner who granted it (their key name); signs.")
    ],
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Revoke a consent: later handoffs and access that relied on it are refused."""
    from custody.app import events

    with open_home(home, db) as c:
        index = events.revoke_consent(c, entry, owner, passphrases(passphrase_file), now())
    if json_:
        emit_json({"index": index, "revoked": entry, "party": owner})
        return
    typer.echo(f"consent revoked (log entry {index})")


# -- handoffs ---------------------------------------------------------------------------------


@handoff_app.command("offer")
def handoff_offer(
    items: Annotated[list[str], typer.Argument(metavar="ITEM...", help="Exhibits or digests.")],
    receiver: Annotated[str, typer.Option("--to", help="Receiving party's name.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why (recorded in the signed entry).")],
    out: Annotated[Path, typer.Option("--out", help="Offer file to write.")],
    sender: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Releasing party (current holder); signs. Default: CUSTODY_PARTY or custody.toml.",
            show_default=False,
        ),
    ] = None,
    authority: Annotated[
        str | None, typer.Option("--authority", help="Warrant, order, subpoena…")
    ] = None,
    case: CaseOpt = None,
    with_media: Annotated[
        Path | None,
        typer.Option(
            "--with-media",
            metavar="DIR",
            help="Also copy the offered items' files into DIR (made if missing), to send "
            "with the offer; each copy is logged as an access, as by 'custody open'.",
            show_default=False,
        ),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    vault: VaultOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Write an offer file signed by the releasing party; nothing is appended yet
    (but the access, if --with-media copies the files).

    The receiving party must be known on this log: import their key first
    ('custody key import').  Send the offer and the files to the receiver, who runs
    'custody handoff accept OFFER --media DIR' and sends back the receipt.
    """
    import functools
    import os

    from custody.app import events

    # The offer and each --with-media copy are signed by the same key: asked for once.
    pp = functools.cache(passphrases(passphrase_file))
    copies: list[MediaCopy] = []
    with open_home(home, db, vault) as c:
        offer = events.make_offer(
            c,
            items,
            sender=party_or_default(sender, c, "--from"),
            receiver=receiver,
            purpose=purpose,
            authority=authority,
            case=case,
            passphrase=pp,
            now=now(),
        )
        if with_media is not None:
            if os.path.lexists(out):  # before any access is logged for the copies
                raise UsageError(f"{out} already exists; refusing to overwrite it")
            copies = events.write_offer_media(c, offer, with_media, passphrase=pp, now=now())
    _write_new(out, offer.encode())
    if json_:
        emit_json(
            {
                "out": out,
                "items": list(offer.entry.get_all("item")),
                "from": offer.entry.require("from"),
                "to": receiver,
                "purpose": purpose,
                # --with-media: each file written, with the log index of its access entry.
                **(
                    {
                        "media": [
                            {"path": str(m.path), "item": m.row.blake3, "index": m.index}
                            for m in copies
                        ]
                    }
                    if with_media is not None
                    else {}
                ),
            }
        )
        return
    typer.echo(_offer_instructions(offer, out, with_media, copies))


def _offer_instructions(
    offer: Offer, out: Path, media: Path | None, copies: Sequence[MediaCopy]
) -> str:
    """What `handoff offer` tells its user to do next, exactly."""
    sender, receiver = offer.entry.require("from"), offer.entry.require("to")
    n = len(offer.entry.get_all("item"))
    lines = [f"offer written to {out}: {n} item(s) from {sender} to {receiver}"]
    if media is not None:
        entries = ", ".join(str(c.index) for c in copies)
        lines += [
            f"media: {len(copies)} file(s) copied to {media} (access logged as log "
            f"entr{'y' if len(copies) == 1 else 'ies'} {entries})",
            f"next: send {receiver} both the offer file {out} and the folder {media} "
            "(on one drive or share); they run:",
            f"  custody handoff accept {out.name} --by {receiver} --media {media.name}",
        ]
    else:
        lines += [
            f"next: send {receiver} the offer file {out} and the offered files; to copy "
            "them out of the store (logged), make the offer with --with-media DIR",
            f"  {receiver} runs: custody handoff accept {out.name} --by {receiver} --media DIR",
        ]
    lines.append(
        f"then record {receiver}'s receipt here: custody handoff receipt {out.name}.receipt"
    )
    return "\n".join(lines)


@handoff_app.command("accept")
def handoff_accept(
    offer_path: Annotated[Path, typer.Argument(metavar="OFFER")],
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Receiving party; countersigns. Default: CUSTODY_PARTY or custody.toml.",
            show_default=False,
        ),
    ] = None,
    media: Annotated[
        Path | None,
        typer.Option("--media", help="Folder with the files received (default: this store)."),
    ] = None,
    receipt: Annotated[
        Path | None,
        typer.Option("--receipt", help="Where to write the receipt (default OFFER.receipt)."),
    ] = None,
    wait: Annotated[
        int,
        typer.Option(
            "--wait",
            help="Seconds to wait for the log operator's next checkpoint when none covers "
            "the handoff yet (homes without the log key); 0: do not wait.",
            min=0,
            max=MAX_WAIT,
        ),
    ] = 30,
    home: HomeOpt = None,
    db: DbOpt = None,
    vault: VaultOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Re-hash the received files, countersign, append the handoff and write a receipt.

    The receipt proves the handoff against a checkpoint signed by the log's key.  In
    a home without that key the command waits up to --wait seconds for the log
    operator to sign one; if none comes, the handoff stays accepted and the command
    exits 75: re-run it later to write the receipt.
    """
    from custody.app import events
    from custody.infra.crash import crash_point

    offer = events.Offer.parse(read_input(offer_path, "offer"), str(offer_path))
    pp = passphrases(passphrase_file)
    with open_home(home, db, vault) as c:
        who = party_or_default(by, c)
        done = events.accept_offer(c, offer, by=who, media=media, passphrase=pp)
        rec = done.receipt
        if rec is None and wait > 0:
            rec = _wait_for_receipt(c, done.index, who, pp, wait)
    out = receipt or offer_path.with_name(offer_path.name + ".receipt")
    accepted = {
        "index": done.index,
        "already": done.already,
        "signed_by": [offer.entry.require("from"), who],
        "not_copied": [skipped.describe() for skipped in done.not_copied],
    }
    if not done.already and not json_:
        for skipped in done.not_copied:
            sys.stderr.write(f"note: {skipped.describe()}\n")
        typer.echo(
            f"accepted: handoff recorded as log entry {done.index}, signed by "
            f"{offer.entry.require('from')} and {who}"
        )
    if rec is None:
        sys.stderr.write(
            f"custody: pending: the handoff is on the log (entry {done.index}), but no "
            "checkpoint signed by the log operator covers it yet, so the receipt is not "
            f"written\n  hint: re-run 'custody handoff accept {offer_path} --by {who}' once "
            "the operator has signed one ('custody log checkpoint'); it writes the receipt\n"
        )
        if json_:
            emit_json({**accepted, "receipt": None, "pending": True})
        raise typer.Exit(EXIT_PENDING)
    # What an interrupted earlier write of this receipt left (a crash) goes first.
    events.clear_stale_temps(out, "tmp")
    if done.already:
        # A re-run: the handoff is on the log, so finishing the job is (re)writing the
        # receipt, whatever an earlier run left at that path.
        _replace(out, rec.encode())
    else:
        _write_new(out, rec.encode())
    crash_point("accept.receipt-written")
    if json_:
        # The receipt's proof rests on a checkpoint; its second line is the tree size.
        size = int(rec.proof.checkpoint.split(b"\n")[1])
        emit_json({**accepted, "receipt": out, "checkpoint_size": size, "pending": False})
        return
    if done.already:
        typer.echo(f"already accepted at entry {done.index}; receipt written to {out}")
        return
    typer.echo(f"receipt for the sender: {out}")


def _wait_for_receipt(
    c: Custody, index: int, by: str, passphrase: Callable[[str], str], wait: int
) -> Receipt | None:
    """Poll the log for a checkpoint covering entry `index` for up to `wait` seconds."""
    import time

    from custody.app import events

    data = c.store.entry(index)
    assert data is not None  # committed by accept_offer
    sys.stderr.write(f"custody: waiting up to {wait} s for the log operator's next checkpoint\n")
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        rec = events.receipt_for(c, index, data, by, passphrase)
        if rec is not None:
            return rec
    return None


@handoff_app.command("reject")
def handoff_reject(
    offer_path: Annotated[Path, typer.Argument(metavar="OFFER")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why it is refused (recorded in the entry).")
    ],
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="The refusing party; signs. Default: CUSTODY_PARTY or custody.toml.",
            show_default=False,
        ),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Refuse an offer; the refusal is a signed entry and the offer can no longer be used."""
    from custody.app import events

    offer = events.Offer.parse(read_input(offer_path, "offer"), str(offer_path))
    with open_home(home, db) as c:
        index = events.reject_offer(
            c,
            offer,
            by=party_or_default(by, c),
            reason=reason,
            passphrase=passphrases(passphrase_file),
            now=now(),
        )
    if json_:
        emit_json({"index": index, "offer": offer_path, "reason": reason})
        return
    typer.echo(f"offer refused (log entry {index})")


@handoff_app.command("receipt")
def handoff_receipt(
    path: Annotated[Path, typer.Argument(metavar="RECEIPT")],
    log_key: Annotated[
        str | None,
        typer.Option("--log-key", help="The receiving log's verifier key, if known out of band."),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Check a receipt from the receiving side and record the handoff on this log too."""
    from custody.app import events
    from custody.tlog.note import VerifierKey

    rec = events.Receipt.parse(read_input(path, "receipt"), str(path))
    trusted = VerifierKey.parse(log_key) if log_key else None
    with open_home(home, db) as c:
        done = events.take_receipt(c, rec, trusted=trusted)
    if json_:
        emit_json(
            {
                "verdict": "verified",
                "verified": True,
                "index": done.index,
                "already": done.already,
                "receiving_log": rec.log_key.name,
            }
        )
        return
    if done.already:
        typer.echo(
            f"receipt verified against {rec.log_key.name}; handoff already recorded here as "
            f"log entry {done.index}"
        )
        return
    typer.echo(
        f"receipt verified against {rec.log_key.name}; handoff recorded here as log entry "
        f"{done.index}"
    )


@handoff_app.command("check-receipt")
def handoff_check_receipt(
    path: Annotated[Path, typer.Argument(metavar="RECEIPT")],
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="A newer checkpoint of the receiving log.")
    ],
    consistency: Annotated[
        Path,
        typer.Option(
            "--consistency", help="`custody log consistency OLD NEW --json` from that log."
        ),
    ],
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            help="The receiving log's verifier key, if known out of band (default: the one "
            "in the receipt).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Check, offline, that a receipt's checkpoint is part of a newer one of that log."""
    from custody.app import events
    from custody.tlog.note import VerifierKey

    rec = events.Receipt.parse(read_input(path, "receipt"), str(path))
    try:
        doc = json.loads(read_input(consistency, "consistency proof"))
        proof = [base64.b64decode(h, validate=True) for h in doc["proof"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{consistency} is not a consistency proof from 'custody log consistency --json'"
        ) from exc
    trusted = VerifierKey.parse(log_key) if log_key else None
    old, new = events.check_receipt_later(rec, read_input(checkpoint, "checkpoint"), proof, trusted)
    if json_:
        emit_json(
            {
                "verdict": "consistent",
                "verified": True,
                "receipt_size": old,
                "checkpoint_size": new,
            }
        )
    else:
        typer.echo(
            f"OK: the receipt's checkpoint (size {old}) is a prefix of the newer one "
            f"(size {new}): the handoff is still on that log"
        )


# -- access -------------------------------------------------------------------------------------


def open_cmd(
    item: Annotated[str, typer.Argument(help="Exhibit or digest.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why (recorded in the signed entry).")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Where to write the copy (a new file); '-' writes it to standard output.",
        ),
    ],
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Who is taking the copy; signs. Default: CUSTODY_PARTY or custody.toml.",
            show_default=False,
        ),
    ] = None,
    case: CaseOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Copy footage out of the evidence store; the access is logged (the only way out)."""
    from custody.app import events

    to_stdout = str(out) == "-"
    if to_stdout and json_:
        raise UsageError("--out - writes the footage to standard output: --json cannot go there")
    if to_stdout and sys.stdout.isatty():
        raise UsageError(
            "--out - would write the footage to the terminal",
            hint="redirect or pipe it: custody open ITEM --purpose … --out - > FILE",
        )
    with open_home(home, db) as c:
        by = party_or_default(by, c)  # named in the message below, whoever signs
        if to_stdout:
            # Nothing else goes to standard output: the footage is all of it.
            done = events.open_item_to(
                c,
                item,
                sys.stdout.buffer,
                by=party_or_default(by, c),
                purpose=purpose,
                case=case,
                passphrase=passphrases(passphrase_file),
                now=now(),
            )
        else:
            done = events.open_item(
                c,
                item,
                by=party_or_default(by, c),
                purpose=purpose,
                out=out,
                case=case,
                passphrase=passphrases(passphrase_file),
                now=now(),
            )
    if done.leftovers:
        sys.stderr.write(
            f"note: removed {done.leftovers} unfinished copy(ies) that an interrupted open to "
            f"{out} left; an interrupted open whose access was logged stays on the log\n"
        )
    sys.stderr.write(
        f"logged as entry {done.index}: {by} exported {done.row.exhibit} ({purpose})\n"
    )
    if to_stdout:
        return
    if json_:
        emit_json(
            {
                "index": done.index,
                "exhibit": done.row.exhibit,
                "item": done.row.blake3,
                "party": by,
                "purpose": purpose,
                "out": out,
            }
        )
        return
    typer.echo(str(out))
