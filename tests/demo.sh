#!/usr/bin/env bash
# `make demo`: the custody story end to end on real camera footage that no one here made:
# the phone recording VID_20191220_170832.mp4 from Debian's forensics-samples-files.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
CUSTODY=$ROOT/.venv/bin/custody
SAMPLE_DEB=forensics-samples-files
SAMPLE=usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*"; }
run() { printf '\n$ custody %s\n' "$*"; "$CUSTODY" "$@"; }
# Run a command that is expected to fail, show its exit code, and carry on.
run_expect_fail() {
  printf '\n$ custody %s\n' "$*"
  set +e; "$CUSTODY" "$@"; rc=$?; set -e
  say "(exit code $rc: $( [ $rc -eq 1 ] && echo 'verification failed, as it should' || echo 'unexpected' ))"
  [ $rc -eq 1 ] || exit 1
}

rm -rf "$DEMO/home" "$DEMO/copies"
mkdir -p "$DEMO/pkg" "$DEMO/copies"

bold "0. The footage: a real phone recording (Debian package $SAMPLE_DEB)"
if [ ! -f "$DEMO/pkg/x/$SAMPLE" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # apt-get download needs the package lists: fetch them once if it fails without.
  (cd "$DEMO/pkg" && { apt-get download "$SAMPLE_DEB" >/dev/null 2>&1 \
      || { $SUDO apt-get update -qq >/dev/null 2>&1 && apt-get download "$SAMPLE_DEB" >/dev/null; }; } \
    && dpkg -x ./"$SAMPLE_DEB"_*.deb x) || {
    say "could not download $SAMPLE_DEB (no package mirror?); see README for the sample's origin"; exit 1; }
fi
CLIP=$DEMO/copies/VID_20191220_170832.mp4
cp "$DEMO/pkg/x/$SAMPLE" "$CLIP"
say "clip: $(basename "$CLIP"), $(stat -c %s "$CLIP") bytes"

export CUSTODY_HOME=$DEMO/home
export CUSTODY_PASSPHRASE="demo passphrase (use a real one, or --passphrase-file)"
export CUSTODY_KDF_PROFILE=fast   # demo only: real key files use the 64 MiB Argon2id default

bold "1. The agency sets up its custody log"
run init --origin metro-police.example/custody
run key new det-jones --role agency --org "Metro Police, Burglary Unit"
say ""
say "The camera owner keeps their own key, in a home of their own on their own machine;"
say "the agency gets only the verifier key (docs/handoff.md, 'Consent from the owner's own home'):"
OWNER=$DEMO/owner-home
rm -rf "$OWNER"
run init --origin garcia.example/consents --home "$OWNER"
run key new owner-garcia --role owner --org "12 Elm St (camera owner)" --home "$OWNER"
run key export owner-garcia --home "$OWNER" --out "$DEMO/copies/owner-garcia.keyentry"
run key import "$DEMO/copies/owner-garcia.keyentry"
run key list

bold "2. A case is opened; the agency asks the owner for footage of a time and a place"
run case new 2026-0142 --title "Burglary at 12 Elm St, 20 Dec 2019"
run request new --case 2026-0142 --by det-jones --owner owner-garcia \
  --purpose "burglary investigation" --from 2019-12-20T19:30:00Z --to 2019-12-20T20:30:00Z \
  --area "-15.8355,-48.0153,300" --answer-by 2027-01-15 --ref "REQ-2026-0142-01" \
  --out "$DEMO/copies/request.entry"
say ""
say "The owner answers in their own home: consent, limited to what was asked, court only onward:"
run request answer "$DEMO/copies/request.entry" --by owner-garcia --consent --until 2027-06-30 \
  --onward court --out "$DEMO/copies/answer.entry" --home "$OWNER"
printf '\n$ custody %s\n' "log import $DEMO/copies/answer.entry"
IMPORT_OUT=$("$CUSTODY" log import "$DEMO/copies/answer.entry")
say "$IMPORT_OUT"
CONSENT_IDX=$(printf '%s' "$IMPORT_OUT" | sed -n 's/.*: entry \([0-9]*\)$/\1/p')
run request list --case 2026-0142
say ""
say "The clip comes in under that consent; ingest checks its recorded time and place:"
INGEST_ARGS=(ingest "$CLIP" --case 2026-0142 --by det-jones --source "Android phone, shared by owner"
  --legal-basis consent --consent "$CONSENT_IDX" --ref "REQ-2026-0142-01" --sha256)
printf '\n$ custody %s\n' "${INGEST_ARGS[*]}"
INGEST_OUT=$("$CUSTODY" "${INGEST_ARGS[@]}")
say "$INGEST_OUT"
INGEST_IDX=$(printf '%s' "$INGEST_OUT" | sed -n 's/^ingested .* entry \([0-9]*\) .*/\1/p')
say ""
say "Running the same command again appends nothing:"
run ingest "$CLIP" --case 2026-0142 --by det-jones --source "Android phone, shared by owner" \
  --legal-basis consent --consent "$CONSENT_IDX" --ref "REQ-2026-0142-01" --sha256

bold "3. What the log now says about the exhibit"
run show 2026-0142/0001
run log checkpoint --out "$DEMO/copies/checkpoint.txt"
run log prove "$INGEST_IDX" --out "$DEMO/copies/exhibit-0001.tlog-proof"
say "(the proof file lets anyone check entry $INGEST_IDX, the ingest, is in the signed log, offline)"

bold "4. Copies of the clip come back months later"
ffmpeg -nostdin -v error -y -i "$CLIP" -map 0 -c copy "$DEMO/copies/remuxed.mkv"
say "remuxed.mkv: the same footage re-wrapped in another container"
ffmpeg -nostdin -v error -y -i "$CLIP" -map 0 -c copy -map_metadata 0 \
  -metadata creation_time=2019-12-19T09:00:00.000000Z "$DEMO/copies/edited-date.mp4"
say "edited-date.mp4: same footage, creation_time moved back a day"
"$ROOT/.venv/bin/python" - "$CLIP" "$DEMO/copies/bit-flipped.mp4" <<'PY'
import json, subprocess, sys
src, dst = sys.argv[1], sys.argv[2]
out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_packets",
                      "-show_entries", "packet=pos,size,pts_time", "-of", "json", src],
                     capture_output=True, check=True, text=True).stdout
packets = json.loads(out)["packets"]
p = packets[len(packets) // 2]
data = bytearray(open(src, "rb").read())
data[int(p["pos"]) + int(p["size"]) // 2] ^= 0x01
open(dst, "wb").write(bytes(data))
print(f"bit-flipped.mp4: one bit flipped inside the video packet at {float(p['pts_time']):.3f} s")
PY
cp "$CLIP" "$DEMO/copies/untouched-copy.mp4"
say "untouched-copy.mp4: a plain copy"

bold "5. custody verify: what is each copy?"
run verify "$DEMO/copies/untouched-copy.mp4"
run_expect_fail verify "$DEMO/copies/remuxed.mkv"
run_expect_fail verify "$DEMO/copies/edited-date.mp4"
run_expect_fail verify "$DEMO/copies/bit-flipped.mp4"

bold "6. The owner's consent, and what it allows"
run key new lab-ng --role lab --org "State Forensic Lab"
say "A clip whose recorded time lies outside the request's window is refused under that consent:"
printf '\n$ custody %s\n' "ingest $DEMO/copies/edited-date.mp4 --case 2026-0142 --legal-basis consent --consent $CONSENT_IDX"
set +e; "$CUSTODY" ingest "$DEMO/copies/edited-date.mp4" --case 2026-0142 --by det-jones \
  --legal-basis consent --consent "$CONSENT_IDX"; rc=$?; set -e
say "(exit code $rc: refused by the custody rules, and nothing was appended)"
[ $rc -eq 4 ] || exit 1
say ""
say "The lab asks for the clip; the consent allows onward sharing only to a court:"
set +e; "$CUSTODY" handoff offer 2026-0142/0001 --from det-jones --to lab-ng \
  --purpose "enhancement" --out "$DEMO/copies/offer-lab"; rc=$?; set -e
say "(exit code $rc: refused, and nothing was written)"

bold "7. Copies for the jury: a trim and a redaction, each provably derived"
run derive trim 2026-0142/0001 --start 0.4 --end 1.2 --by det-jones \
  --reason "the moment the door opens"
run derive redact 2026-0142/0001 --box 40,40,200,200 --start 0.5 --end 1.0 --by det-jones \
  --reason "a bystander's face"
run open 2026-0142/0003 --by det-jones --purpose "jury copy" --out "$DEMO/copies/jury-redacted.mp4"
run verify "$DEMO/copies/jury-redacted.mp4"

bold "8. A two-party handoff to the court, on the court's own machine"
COURT=$DEMO/court-home
rm -rf "$COURT"
run init --origin county-court.example/exhibits --home "$COURT"
run key new clerk-okafor --role court --org "County Court" --home "$COURT"
run key export clerk-okafor --home "$COURT" --out "$DEMO/copies/clerk.keyentry"
run key import "$DEMO/copies/clerk.keyentry"
run handoff offer 2026-0142/0001 --from det-jones --to clerk-okafor --purpose "trial exhibit" \
  --authority "Order 2026-CR-118" --out "$DEMO/copies/offer-court"
mkdir -p "$DEMO/copies/to-court"
run open 2026-0142/0001 --by det-jones --purpose "copy for the court" \
  --out "$DEMO/copies/to-court/VID_20191220_170832.mp4"
say ""
say "At the court, a swapped file is refused:"
cp "$DEMO/copies/edited-date.mp4" "$DEMO/copies/swapped.mp4"
mkdir -p "$DEMO/copies/swapped-media" && cp "$DEMO/copies/edited-date.mp4" "$DEMO/copies/swapped-media/VID_20191220_170832.mp4"
set +e; "$CUSTODY" handoff accept "$DEMO/copies/offer-court" --by clerk-okafor \
  --media "$DEMO/copies/swapped-media" --home "$COURT"; set -e
say "The right file is accepted; both parties' signatures are on one entry:"
run handoff accept "$DEMO/copies/offer-court" --by clerk-okafor --media "$DEMO/copies/to-court" \
  --home "$COURT"
run handoff receipt "$DEMO/copies/offer-court.receipt"
run history 2026-0142/0001

bold "9. The log itself checks out, and tampering with its database is caught"
run log verify
cp "$CUSTODY_HOME/custody.db" "$DEMO/copies/custody-tampered.db"
sqlite_edit() {
  "$ROOT/.venv/bin/python" - "$1" "$INGEST_IDX" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
idx = int(sys.argv[2])
con.execute("DROP TRIGGER entries_no_update")  # an insider going around the triggers
data = con.execute("SELECT data FROM entries WHERE idx = ?", (idx,)).fetchone()[0]
con.execute("UPDATE entries SET data = ? WHERE idx = ?",
            (data.replace(b"legal-basis consent", b"legal-basis warrant"), idx))
con.commit()
print(f"edited log entry {idx} in a copy of the database: 'legal-basis consent' -> 'warrant'")
PY
}
sqlite_edit "$DEMO/copies/custody-tampered.db"
run_expect_fail log verify --db "sqlite:///$DEMO/copies/custody-tampered.db"

bold "10. Defence counsel gets a bundle and checks it on their own machine"
run export 2026-0142 --to "$DEMO/copies/bundle-2026-0142.zip" --with-media
LOGKEY=$("$CUSTODY" log key)
say ""
say "On counsel's laptop: no custody home, no database, only the bundle and the log's key"
say "(received out of band): $LOGKEY"
COUNSEL=$DEMO/counsel
rm -rf "$COUNSEL" && mkdir -p "$COUNSEL"
( cd "$COUNSEL" && env -u CUSTODY_HOME CUSTODY_HOME=/nonexistent CUSTODY_SEEN="$COUNSEL/seen" \
    "$CUSTODY" verify-bundle "$DEMO/copies/bundle-2026-0142.zip" --trust "$LOGKEY" )
say ""
say "With nothing installed, counsel can also open the bundle's verify.html in a browser,"
say "pick the bundle (folder or zip) and paste the same key: the page checks it offline"
say "(docs/browser-verifier.md); and inside media/, 'b3sum -c B3SUMS' checks the footage:"
MEDIA_CHECK=$DEMO/copies/bundle-check
rm -rf "$MEDIA_CHECK" && mkdir -p "$MEDIA_CHECK"
(cd "$MEDIA_CHECK" && "$ROOT/.venv/bin/python" -m zipfile -e "$DEMO/copies/bundle-2026-0142.zip" .)
(cd "$(dirname "$(find "$MEDIA_CHECK" -name B3SUMS)")" && b3sum -c B3SUMS && sha256sum -c SHA256SUMS)
say ""
say "A bundle whose media was altered by one bit is caught:"
TAMPERED=$DEMO/copies/bundle-tampered
rm -rf "$TAMPERED" && mkdir -p "$TAMPERED"
(cd "$TAMPERED" && "$ROOT/.venv/bin/python" -m zipfile -e "$DEMO/copies/bundle-2026-0142.zip" .)
"$ROOT/.venv/bin/python" - "$TAMPERED" <<'PY'
import pathlib, sys
# The footage itself (media/ also holds the B3SUMS and SHA256SUMS lists).
media = sorted(p for p in pathlib.Path(sys.argv[1]).rglob("media/*.mp4") if p.is_file())[0]
data = bytearray(media.read_bytes())
data[len(data) // 2] ^= 0x01
media.write_bytes(bytes(data))
print(f"flipped one bit in {media.name}")
PY
set +e
( cd "$COUNSEL" && CUSTODY_HOME=/nonexistent CUSTODY_SEEN="$COUNSEL/seen" \
    "$CUSTODY" verify-bundle "$(dirname "$(find "$TAMPERED" -name MANIFEST.json)")" --trust "$LOGKEY" \
    | tail -4 )
rc=${PIPESTATUS[0]}
set -e

bold "Done"
say "Everything the demo made is under $DEMO (home: $CUSTODY_HOME)."
