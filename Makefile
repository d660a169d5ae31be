# custody — every target sets up what it needs: the venv, the Python packages and,
# where missing and installable, the system tools (ffmpeg, b3sum, Go for interop tests).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
SYSDEPS := .ci/sysdeps.sh

.PHONY: help venv sysdeps demo test lint fmt bench fuzz clean web webdeps

help:
	@echo "make demo   - run the whole custody story on a real clip (sets everything up)"
	@echo "make test   - lint (ruff), type-check (mypy --strict) and run the test suite"
	@echo "make lint   - ruff check, ruff format --check, mypy, import-linter layer contracts"
	@echo "make bench  - benchmarks (log appends, proofs, verify, hashing vs b3sum)"
	@echo "make fuzz   - a long fuzzing campaign on every parser of untrusted input"
	@echo "make web    - rebuild the browser verifier custody/assets/verify.html from web/ (npm ci)"

# The venv is refreshed whenever pyproject.toml changes.  PyAV is built from source
# (--no-binary av, about 100 s once; pip caches the wheel) against the system FFmpeg
# that sysdeps installs: its wheels bundle another FFmpeg, whose demuxers can split a
# file into other packets than the ffmpeg binary does (docs/spec/media.md §5).
$(STAMP): pyproject.toml | sysdeps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-binary av -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

sysdeps:
	@bash $(SYSDEPS)

lint: venv
	$(BIN)/ruff check custody tests
	$(BIN)/ruff format --check custody tests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo

fmt: venv
	$(BIN)/ruff format custody tests
	$(BIN)/ruff check --fix custody tests

# On every core (pytest-xdist): a test file runs on one worker, so its module fixtures
# are built once; session fixtures are built once per worker.
PYTEST_JOBS ?= auto
test: venv sysdeps lint webdeps
	$(BIN)/python -m pytest -q -n $(PYTEST_JOBS) --dist loadfile $(PYTEST_ARGS)

demo: venv sysdeps
	@bash tests/demo.sh

# Every figure of .bench/results.json, its reference and target: docs/bench.md.  sysdeps
# brings the references (b3sum, hashdeep), ffmpeg for the clips, PostgreSQL and chromium.
# custody's modules are byte-compiled first, as `pip install` does for an installed
# custody (an editable install compiles them on first import, or never where
# PYTHONDONTWRITEBYTECODE is set): start-up times are then a user's, not a checkout's.
bench: venv sysdeps
	$(BIN)/python -m compileall -q custody
	$(BIN)/python tests/bench/run.py $(BENCH_ARGS)

# `make test` runs every fuzzer for a bounded number of examples; this runs
# FUZZ_FACTOR times as many, with fresh random seeds (docs/faults.md).
FUZZ_FACTOR ?= 50
fuzz: venv sysdeps
	CUSTODY_FUZZ=long CUSTODY_FUZZ_FACTOR=$(FUZZ_FACTOR) $(BIN)/python -m pytest -q tests/fuzz $(PYTEST_ARGS)

# The browser verifier (docs/browser-verifier.md): the exact packages of
# web/package-lock.json (npm ci; offline from npm's cache after one install), then
# esbuild inlines everything into the one shipped file custody/assets/verify.html.
web: webdeps
	cd web && node build.mjs

# The exact packages of the lockfile, for `make web` and for the tests of the page
# (tests/unit/web rebuild it and compare with the shipped bytes); skipped without node.
webdeps:
	@if command -v npm >/dev/null; then cd web && npm ci --no-audit --no-fund --prefer-offline --loglevel=error; \
	else echo "npm not found: the browser verifier's tests will be skipped"; fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .demo .bench
