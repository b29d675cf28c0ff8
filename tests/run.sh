#!/usr/bin/env bash
# Set everything up on a fresh Debian machine and run the whole test suite:
# Debian's chromium (browser tests) and Mail::DKIM (DKIM tests), a virtualenv with Kanal, its server extra and the
# test tools, the snippet's pinned npm toolchain, then ruff, mypy and pytest.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k ingest`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: chromium (browser tests), curl (the README's examples).
MISSING=""
command -v chromium >/dev/null 2>&1 || MISSING="$MISSING chromium"
command -v curl >/dev/null 2>&1 || MISSING="$MISSING curl"
if [ -n "$MISSING" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "Installing Debian's$MISSING for the tests…"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
fi

# Mail::DKIM verifies the email channel's DKIM signatures in the tests (a second,
# independent implementation).
if ! perl -MMail::DKIM::Verifier -e 1 >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "Installing Debian's libmail-dkim-perl for the DKIM tests…"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libmail-dkim-perl >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[server,test]'

if [ -f js_snippet/package-lock.json ] && command -v npm >/dev/null 2>&1; then
  (cd js_snippet && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -n 2 -p no:cacheprovider "$@"
