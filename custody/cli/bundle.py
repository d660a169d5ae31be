"""CLI: `custody export`, `custody verify-bundle`, `custody witness cosign`
(docs/verify-bundle.md, docs/spec/bundle.md).

Thin: parse, call `custody.app.export` / `custody.bundle.reader` / `custody.app.witness`,
print.  `verify-bundle` opens no database and reads no custody home: it is what defence
counsel runs, so it imports only `custody.bundle` (and what that imports), never the
store; tests/cli/test_startup.py checks it in a subprocess.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from custody.cli.common import (
    MAX_INDEX,
    MAX_JOBS,
    DbOpt,
    HomeOpt,
    JsonOpt,
    PassFileOpt,
    Progress,
    feedback_on_terminal,
    now,
    open_home,
    passphrases,
    read_small,
)
from custody.cli.jsonout import emit_json
from custody.errors import CustodyError, InputError, StorageError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from custody.app.home import Home
    from custody.app.witness import WitnessStore
    from custody.bundle.verify import BundleReport, PolicyCheck
    from custody.tlog.note import VerifierKey

witness_app = typer.Typer(
    help="Witness a log: cosign its checkpoints after checking it only grew (C2SP tlog-witness).",
    no_args_is_help=True,
)

_LOUD_WARNING = (
    "WARNING: --trust-bundle-keys: trusting the log key found INSIDE the bundle. This shows "
    "only that the bundle is intact and consistent with itself, NOT that it comes from the "
    "log it names: anyone can make a bundle that passes this way. Obtain the log's verifier "
    "key from the agency out of band and pass it with --trust."
)


# -- export ------------------------------------------------------------------------------------


def export_cmd(
    case: Annotated[str, typer.Argument(metavar="CASE", help="Case id to export.")],
    to: Annotated[
        Path,
        typer.Option(
            "--to", help="New folder, or a .zip file, to write the bundle to.", show_default=False
        ),
    ],
    with_media: Annotated[
        bool, typer.Option("--with-media", help="Also copy the evidence files themselves.")
    ] = False,
    items: Annotated[
        list[str] | None,
        typer.Option(
            "--items",
            help="Only these items (exhibit number or BLAKE3 prefix; repeat or comma-separate), "
            "with every item entangled in their history.",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        int | None,
        typer.Option(
            "--checkpoint",
            min=0,
            max=MAX_INDEX,
            help="Prove against this stored checkpoint size (e.g. a cosigned one); default: "
            "the latest, or a new one if it does not cover the case.",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Write a self-contained, offline-verifiable bundle of a case for defence counsel.

    The bundle statement is signed with the log's key, so its passphrase is needed.
    """
    from custody.app.export import export_case
    from custody.infra.vault import display_path
    from custody.report.court import write_report

    refs = [r.strip() for value in items or [] for r in value.split(",") if r.strip()]
    with open_home(home, db) as c:
        signer = c.log_signer(
            passphrases(passphrase_file),
            what="export (export signs the bundle with the log's key: run it in the log "
            "operator's home)",
        )
        with Progress(f"export {case}") as progress:
            summary = export_case(
                c,
                case,
                to,
                log_signer=signer,
                now=now(),
                items=refs,
                with_media=with_media,
                checkpoint_size=checkpoint,
                progress=progress.advance,
                report=write_report,
                phases=progress.phase,
            )
        log_key = c.log_key.encode()
    if json_:
        emit_json({**summary.to_json(), "log_key": log_key})
        return
    typer.echo(
        f"exported case {case} to {display_path(to)}: {summary.entries} entries, "
        f"{summary.items} item(s)"
        + (f" ({summary.media} file(s) included)" if summary.media else "")
        + f", checkpoint of size {summary.checkpoint_size}"
        + (f" cosigned by {', '.join(summary.cosignatures)}" if summary.cosignatures else "")
        + f", {summary.consistency} consistency proof(s)"
        + (f", {len(summary.timestamps)} timestamp token(s)" if summary.timestamps else "")
        + (", report" if summary.report else "")
    )
    typer.echo("Give counsel the log's verifier key separately (not inside the bundle):")
    typer.echo(f"  {log_key}")


# -- verify-bundle --------------------------------------------------------------------------------


def verify_bundle_cmd(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="The bundle: a folder or a .zip file.")
    ],
    trust: Annotated[
        list[str] | None,
        typer.Option(
            "--trust",
            help="A verifier key you trust (the log's; optionally parties' and witnesses'), "
            "or a file of them. Repeatable.",
            show_default=False,
        ),
    ] = None,
    trust_bundle_keys: Annotated[
        bool,
        typer.Option(
            "--trust-bundle-keys",
            help="Use the keys inside the bundle (proves only that it is intact, not who made it).",
        ),
    ] = False,
    seen: Annotated[
        Path | None,
        typer.Option(
            "--seen",
            help="Folder of checkpoints seen before (default: $CUSTODY_SEEN, else "
            "~/.config/custody/seen).",
            show_default=False,
        ),
    ] = None,
    no_probe: Annotated[
        bool, typer.Option("--no-probe", help="Do not re-probe media with ffprobe.")
    ] = False,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            metavar="VKEY",
            help="A witness's verifier key (from its 'key export'), or a file of them: "
            "require its cosignature on the bundle's checkpoint. Repeatable.",
            show_default=False,
        ),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option(
            "--quorum",
            metavar="N",
            min=1,
            help="How many of the --witness keys must have cosigned (default: all).",
            show_default=False,
        ),
    ] = None,
    tsa_cert: Annotated[
        list[Path] | None,
        typer.Option(
            "--tsa-cert",
            metavar="FILE",
            help="The root certificate of an RFC 3161 TSA's chain, or the TSA's own (pinned; "
            "with its root unless self-signed), PEM or DER: verify the bundle's timestamp "
            "tokens and bound when each entry was appended. Repeatable.",
            show_default=False,
        ),
    ] = None,
    time_tolerance: Annotated[
        int,
        typer.Option(
            "--time-tolerance",
            metavar="SECONDS",
            min=0,
            max=366 * 86400,
            help="How far an entry's claimed time may lie outside its timestamped interval.",
        ),
    ] = 600,
    published: Annotated[
        str | None,
        typer.Option(
            "--published",
            metavar="SOURCE",
            help="The log's published tiles (a folder or an http(s) URL): check that the "
            "bundle's checkpoint is the tree the log publishes.",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option("--jobs", help="Media files hashed and probed at once.", min=1, max=MAX_JOBS),
    ] = max(1, os.cpu_count() or 1),
    json_: JsonOpt = False,
) -> None:
    """Verify a bundle offline: signatures, proofs, custody rules, media. No database needed.

    Exit 0: VERIFIED.  Exit 1: NOT VERIFIED, naming what, where and why.
    """
    from custody.bundle.reader import default_seen_dir, parse_trust, verify_path
    from custody.bundle.verify import BundleVerificationError, Policy, Trust

    if trust and trust_bundle_keys:
        raise UsageError("give --trust or --trust-bundle-keys, not both")
    if not trust and not trust_bundle_keys:
        raise UsageError(
            "verify-bundle needs the log's verifier key: pass --trust VKEY, obtained from the "
            "agency out of band",
            hint="only to inspect a bundle, --trust-bundle-keys uses its own keys (which proves "
            "nothing about where it came from)",
        )
    if trust_bundle_keys:
        sys.stderr.write(_LOUD_WARNING + "\n")
    keys = parse_trust(trust or [])
    witnesses = parse_trust(witness or [], option="--witness")
    if quorum is not None and not witnesses:
        raise UsageError("--quorum needs the witnesses' keys: give --witness VKEY for each")
    if quorum is not None and quorum > len(witnesses):
        raise UsageError(
            f"--quorum {quorum} is more than the {len(witnesses)} witness key"
            f"{'' if len(witnesses) == 1 else 's'} given with --witness"
        )
    tsa_certs = tuple(read_small(f, "TSA certificate") for f in tsa_cert or [])
    policy = Policy(
        witnesses=witnesses,
        quorum=quorum,
        published=_published_policy(published, keys, trust_bundle_keys) if published else None,
        tsa_certs=tsa_certs,
        time_tolerance=time_tolerance,
    )
    seen_dir = seen if seen is not None else default_seen_dir()
    progress = Progress("verify-bundle", enabled=feedback_on_terminal() and not json_)
    if progress.enabled:
        files, size = _media_totals(path)
        media = f"hashing media ({files} file{'s' if files != 1 else ''})"
        progress.phase(
            f"checking signatures and proofs, {media if files else 'hashing media'}", size or None
        )
    try:
        report = verify_path(
            path,
            Trust(keys, trust_bundle_keys),
            seen_dir=seen_dir,
            probe=not no_probe,
            progress=progress.advance,
            policy=policy,
            jobs=jobs,
        )
    except BundleVerificationError as exc:
        progress.stop()
        _print_report(exc.report, json_)
        raise
    finally:
        progress.stop()
    _print_report(report, json_)


def _media_totals(path: Path) -> tuple[int, int]:
    """How many media files a bundle's `media/` folder (in a folder or a ZIP) holds (its
    checksum lists aside), and the bytes of all its files, which verify-bundle hashes:
    what its progress counts to.  (0, 0) when they cannot be listed (verify_path then
    says why)."""
    import zipfile

    from custody.bundle.verify import SUMS_FILES

    try:
        if path.is_dir():
            media = path / "media"
            if media.is_symlink() or not media.is_dir():
                return 0, 0
            sizes = {f"media/{f.name}": f.lstat().st_size for f in media.iterdir() if f.is_file()}
        else:
            with zipfile.ZipFile(path) as z:
                sizes = {
                    i.filename: i.file_size
                    for i in z.infolist()
                    if i.filename.startswith("media/") and not i.is_dir()
                }
    except (OSError, zipfile.BadZipFile, ValueError):
        return 0, 0
    return len(sizes.keys() - set(SUMS_FILES)), sum(sizes.values())


def _published_policy(
    source: str, keys: Sequence[VerifierKey], bundle_keys: bool
) -> Callable[[bytes], PolicyCheck]:
    """verify-bundle --published: `custody.app.monitor.published_check` with the trusted
    log key of the bundle's origin (loaded only when asked: it reads tiles, not a store)."""
    from custody.app.monitor import published_check
    from custody.errors import VerificationError
    from custody.tlog.checkpoint import Checkpoint
    from custody.tlog.note import ALG_ED25519, Note

    if bundle_keys:
        raise UsageError(
            "--published needs the log's key from --trust: a bundle's own keys prove nothing "
            "about the published log"
        )

    def check(note: bytes) -> PolicyCheck:
        origin = Checkpoint.parse(Note.parse(note).text).origin
        key = next((k for k in keys if k.alg == ALG_ED25519 and k.name == origin), None)
        if key is None:  # pragma: no cover - the checkpoint verified with a trusted log key
            raise VerificationError(f"no --trust key of the log {origin} for --published")
        return published_check(source, key)(note)

    return check


def _print_report(report: BundleReport, json_: bool) -> None:
    if json_:
        doc = report.to_json()
        # The shared verdict vocabulary (docs/json/README.md) beside the words of old.
        doc["verified"] = doc.get("verdict") == "VERIFIED"
        emit_json(doc)
        return
    for line in render_report(report):
        typer.echo(line)


def _checks_failed(report: BundleReport, *checks: str) -> list[str]:
    return [f.where for f in report.failures if f.check in checks]


def render_report(report: BundleReport) -> list[str]:
    """The human verdict: the log and its checkpoint, per item, then overall."""
    out = [f"custody bundle {report.source}"]
    if report.case:
        out.append(f"  case         {report.case}, exported {report.exported}")
    if report.origin:
        out.append(f"  log          {report.origin}")
    if report.log_key:
        how = (
            "TAKEN FROM THE BUNDLE ITSELF: not independent"
            if report.trusted_bundle_keys
            else "given with --trust"
        )
        out.append(f"  log key      {report.log_key} ({how})")
    if report.checkpoint_size is not None and report.checkpoint_root is not None:
        import base64

        root = base64.b64encode(report.checkpoint_root).decode()
        out.append(f"  checkpoint   size {report.checkpoint_size}, root {root}, signed by the log")
        for c in report.cosignatures:
            j = c.to_json()
            who = f"{c.name} ({c.role})" if c.role else c.name
            trusted = ", key given with --trust" if c.trusted else ""
            out.append(f"               cosigned by {who} at {j['time']}{trusted}")
        bad = _checks_failed(report, "entry", "proof", "signature", "keys", "rule", "trust")
        state = (
            "PROBLEMS (below)"
            if bad
            else "each in the log (inclusion proofs verified), signatures verified, "
            "custody rules hold"
        )
        out.append(f"  entries      {report.entries} ({report.signatures} signatures): {state}")
        if report.consistency:
            sizes = ", ".join(map(str, report.consistency[:6]))
            if len(report.consistency) > 6:
                sizes += f", … ({len(report.consistency)} in all)"
            out.append(f"  history      consistent with the log's earlier checkpoints: {sizes}")
        for line in report.seen[-3:]:
            out.append(f"  seen before  {line}")
        if len(report.seen) > 3:
            out.append(
                f"               (and {len(report.seen) - 3} smaller checkpoints seen before)"
            )
    for e in report.case_events:
        out.append(
            f"  case event   entry {e.index} {e.time}  {e.what}  [signed: {', '.join(e.signers)}]"
        )
    for item in report.items:
        out.append("")
        out.append(
            f"exhibit {item.exhibit}  {item.name}  ({item.kind}, {item.size:,} bytes, "
            f"log entry {item.entry})"
        )
        out.append(f"  {item.verdict}")
        if item.holders:
            chain = " -> ".join(f"{p} ({how}, entry {i})" for p, how, i in item.holders)
            out.append(f"  holders: {chain}")
        for e in item.events:
            out.append(
                f"    entry {e.index:<6} {e.time}  {e.type:<8} {e.what}  "
                f"[signed: {', '.join(e.signers)}]"
            )
    if report.policies:
        out.append("")
        out.append("policies (what was checked beyond the bundle itself):")
        out += [f"  - {p.line()}" for p in report.policies]
    if report.times:
        out.append("")
        out.append("appended when (RFC 3161 timestamps over checkpoints; claimed time, interval):")
        out += [f"  - {t.sentence()}" for t in report.times]
    if report.caveats:
        out.append("")
        out.append("caveats (not failures: keys their parties did not hold alone):")
        out += [f"  - {c.line()}" for c in report.caveats]
    if report.emergencies:
        out.append("")
        out.append(
            f"emergency disclosures and their reviews (as of the export, {report.exported}):"
        )
        out += [f"  - {e.sentence()}" for e in report.emergencies]
    # An overdue, late or rejected review is a note too (JSON `notes`); shown once here.
    shown = {e.sentence() for e in report.emergencies}
    notes = [n for n in report.notes if n not in shown]
    if notes:
        out.append("")
        out.append("notes:")
        out += [f"  - {n}" for n in notes]
    if report.failures:
        out.append("")
        out.append(f"problems ({len(report.failures)}):")
        out += [f"  - {f.line()}" for f in report.failures]
    out.append("")
    out.append(report.verdict)
    return out


# -- witness ---------------------------------------------------------------------------------------


@witness_app.command("cosign")
def witness_cosign(
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="The log's signed checkpoint (a file).")
    ],
    key: Annotated[
        str,
        typer.Option(
            "--key", help="Your witness key (role court, defence or witness) in this home."
        ),
    ],
    proof: Annotated[
        Path | None,
        typer.Option(
            "--proof",
            help="Consistency proof from the size you last cosigned ('custody log consistency "
            "OLD NEW --json').",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the cosigned checkpoint here (default: stdout)."),
    ] = None,
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            help="The log's verifier key (pinned on first use; default: the pinned one).",
            show_default=False,
        ),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    passphrase_file: PassFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Cosign a checkpoint if the log only grew since the last one you cosigned.

    Refuses a rollback or a fork (exit 1); asks for a consistency proof when needed.
    """
    from custody.app.home import Home
    from custody.app.witness import WITNESS_ROLES, WitnessStore, cosign_checkpoint
    from custody.bundle.verify import ConsistencyFile
    from custody.infra.vault import display_path
    from custody.tlog.note import VerifierKey

    note = read_small(checkpoint, "checkpoint")
    consistency = (
        ConsistencyFile.parse(read_small(proof, "proof"), display_path(proof))
        if proof is not None
        else None
    )
    located = Home.locate(home, db)
    keyfile = located.keystore.load(key)
    if keyfile.role not in WITNESS_ROLES:
        raise UsageError(
            f"key '{key}' has role {keyfile.role}; a witness key has role "
            f"{', '.join(WITNESS_ROLES)}",
            hint="create one with 'custody key new NAME --role court' (or defence, witness)",
        )
    given = VerifierKey.parse(log_key) if log_key is not None else None
    store = WitnessStore(located.root)
    if given is None:
        given = _home_log_key(located, note, store)
    signer = located.keystore.unlock(key, passphrases(passphrase_file))
    cosigned, state = cosign_checkpoint(
        store,
        note,
        signer,
        log_key=given,
        proof=consistency,
        timestamp=int(now().timestamp()),
    )
    if out is not None:
        try:
            out.write_bytes(cosigned)
        except OSError as exc:
            raise InputError(f"cannot write {display_path(out)}: {exc.strerror}") from exc
    if json_:
        emit_json(
            {
                "origin": state.origin,
                "size": state.size,
                "party": key,
                "role": keyfile.role,
                "note": cosigned.decode("utf-8"),
                "out": out,
                "state": store.path(state.origin),
            }
        )
    elif out is None:
        sys.stdout.write(cosigned.decode("utf-8"))
    typer.echo(
        f"cosigned {state.origin} at size {state.size} as {key} ({keyfile.role}); "
        f"witness state {display_path(store.path(state.origin))}",
        err=True,
    )


def _home_log_key(located: Home, note: bytes, store: WitnessStore) -> Any:
    """The home's own log key when the checkpoint is of its log and nothing is pinned yet."""
    from custody.app.home import Custody
    from custody.tlog.checkpoint import Checkpoint
    from custody.tlog.note import Note

    try:
        origin = Checkpoint.parse(Note.parse(note).text).origin
    except CustodyError:
        return None
    if store.load(origin) is not None:
        return None  # the pinned key is used
    try:
        with Custody(located) as c:
            return c.log_key if c.origin == origin else None
    except StorageError:
        return None
