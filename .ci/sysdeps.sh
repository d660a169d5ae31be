#!/usr/bin/env bash
# Install the system tools custody and its tests need, where they are missing.
# ffmpeg/ffprobe: media probing and packet hashing (required).
# b3sum: the benchmark's reference.  Go + golang.org/x/mod (Debian's
# golang-golang-x-mod-dev): the independent RFC 6962 / signed-note verifier the
# interop tests run.  PostgreSQL server binaries: tests/test_postgres.py starts a
# throwaway cluster on a local port.  poppler-utils: pdftotext, to read the PDF
# report back in tests.  chromium + chromium-driver: tests/browser/ drive the browser
# verifier (custody/assets/verify.html) headless through selenium.
# libav*-dev + pkg-config + a C compiler: PyAV is built from source against the
# system's FFmpeg libraries, so in-process packet hashing reads every file with the
# very libavformat the ffmpeg/ffprobe binaries use (docs/spec/media.md §5).
# hashdeep: the benchmark's per-file reference (make bench).
set -euo pipefail
need=()
command -v ffmpeg  >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v b3sum   >/dev/null 2>&1 || need+=(b3sum)
command -v hashdeep >/dev/null 2>&1 || need+=(hashdeep)
for lib in libavformat libavcodec libavdevice libavfilter libswscale libswresample libavutil; do
  [ -f "/usr/include/x86_64-linux-gnu/$lib/version.h" ] || [ -f "/usr/include/$lib/version.h" ] \
    || need+=("$lib-dev")
done
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v go      >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/golang.org/x/mod/sumdb ] || need+=(golang-golang-x-mod-dev)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "custody: installing system packages: ${need[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "custody: please install ${need[*]} with your system's package manager" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || true
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
