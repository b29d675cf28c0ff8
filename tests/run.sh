#!/usr/bin/env bash
# Set everything up on a fresh Debian machine and run the whole test suite:
# Debian's chromium (browser tests) and Mail::DKIM (DKIM tests), a virtualenv with Kanal,
# its server and postgres extras and the test tools, the snippet's pinned npm toolchain,
# then ruff, mypy, the docs' build (Sphinx, warnings as errors) and pytest, once on SQLite
# and once on PostgreSQL: a throwaway cluster
# (tests/pg.sh, which installs Debian's postgresql when missing) in a temporary
# directory, run as an unprivileged user on a free loopback port, stopped and deleted
# however the run ends.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k ingest`).
# KANAL_TEST_ENGINES="sqlite" (or "postgresql") runs one engine only.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: chromium (browser tests), curl (the docs' examples).
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
.venv/bin/python -m pip install -q -e '.[server,postgres,test]'

if [ -f js_snippet/package-lock.json ] && command -v npm >/dev/null 2>&1; then
  (cd js_snippet && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

.venv/bin/ruff check .
.venv/bin/mypy

# The docs (docs/, Sphinx with MyST): warnings are errors, so a broken link between pages
# or a missing anchor fails the run; nothing is fetched from the network.
docs_out=$(mktemp -d /tmp/kanal-docs.XXXXXX)
.venv/bin/sphinx-build -W --keep-going -n -q -b html docs "$docs_out"
rm -rf "$docs_out"

status=0
ran=0
run_pytest() {  # pytest's 5 (nothing collected, e.g. a -k for the other engine) is no failure
  local rc=0
  .venv/bin/python -m pytest -n 2 -p no:cacheprovider "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then return 0; fi
  ran=1
  [ "$rc" -eq 0 ] || status=$rc
}

engines=${KANAL_TEST_ENGINES:-sqlite postgresql}
if [[ " $engines " == *" sqlite "* ]]; then
  echo "== the suite on SQLite"
  KANAL_TEST_ENGINE=sqlite run_pytest "$@"
fi
if [[ " $engines " == *" postgresql "* ]]; then
  pgdir=$(mktemp -d /tmp/kanal-pg.XXXXXX)
  trap 'bash tests/pg.sh stop "$pgdir"' EXIT
  url=$(bash tests/pg.sh start "$pgdir" | tail -1)
  echo "== the suite on PostgreSQL ($url)"
  KANAL_TEST_ENGINE=postgresql KANAL_TEST_POSTGRES="$url" run_pytest "$@"
fi
if [ "$ran" -eq 0 ] && [ "$status" -eq 0 ]; then
  exit 5
fi
exit "$status"
