#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (tests/run.sh uses it).
#
#   bash tests/pg.sh start DIR   initdb a cluster in DIR, start it on a free loopback
#                                port and print the server's URL on the last line
#   bash tests/pg.sh stop DIR    stop it and delete DIR
#
# Debian's `postgresql` package is installed when no server binaries are found
# (/usr/lib/postgresql/*/bin). PostgreSQL refuses to run as root: as root the cluster
# belongs to and runs as `nobody`. Durability is switched off (fsync, full page writes):
# the cluster lives for one test run (KANAL_PG_DURABLE=1 keeps it on, for benchmarks).
set -euo pipefail

cmd=${1:?start or stop}
dir=${2:?a directory}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u nobody -- "$@"
  else
    "$@"
  fi
}

bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

case "$cmd" in
  start)
    if [ -z "$(bindir)" ]; then
      SUDO=""
      [ "$(id -u)" -eq 0 ] || SUDO="sudo"
      echo "Installing Debian's postgresql for the tests…" >&2
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    fi
    bin=$(bindir)
    mkdir -p "$dir"
    [ "$(id -u)" -ne 0 ] || chown nobody "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U kanal --auth=trust -E UTF8 --no-locale \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fast="-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    [ -z "${KANAL_PG_DURABLE:-}" ] || fast=""  # benchmarks keep durability on
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
      "-p $port -c listen_addresses=127.0.0.1 -k $dir $fast -c max_connections=300 \
       -c shared_buffers=128MB" \
      >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql://kanal@127.0.0.1:$port/postgres"
    ;;
  stop)
    bin=$(bindir)
    if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
