#!/usr/bin/env bash
# Starts a private PostgreSQL 15 cluster for the tests and prints the URL
# they use (`AUDITLOG_TEST_DATABASE_URL`); each test creates its own
# database in it. Idempotent: a cluster already running is reused.
#
#   eval "$(bash scripts/postgres.sh)"     # exports AUDITLOG_TEST_DATABASE_URL
#   bash scripts/postgres.sh stop
#
# Debian's package is installed if missing. `initdb` refuses root, so the
# cluster belongs to the `postgres` user, in a directory under /tmp that it
# can reach. Local connections are trusted (a throwaway cluster on
# 127.0.0.1); fsync and synchronous_commit stay on, as the store requires.
set -euo pipefail

PORT="${AUDITLOG_TEST_PG_PORT:-54329}"
ROOT="${AUDITLOG_TEST_PG_DIR:-/tmp/auditlog-test-pg}"
BIN=/usr/lib/postgresql/15/bin
DATA="$ROOT/data"
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

log() { printf '%s\n' "$*" >&2; }

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

if [ "${1:-start}" = stop ]; then
  if [ -f "$DATA/postmaster.pid" ]; then
    as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
  fi
  exit 0
fi

if [ ! -x "$BIN/pg_ctl" ]; then
  log "installing PostgreSQL 15 (Debian's package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql-15 >&2
fi

if ! id postgres >/dev/null 2>&1; then
  log "the postgres user is missing (it comes with Debian's postgresql-common)"
  exit 1
fi

mkdir -p "$ROOT"
chmod 755 "$ROOT"
chown postgres "$ROOT"
if [ ! -f "$DATA/PG_VERSION" ]; then
  log "creating a test cluster in $DATA"
  as_postgres "$BIN/initdb" -D "$DATA" --auth=trust --username=postgres \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi

if ! as_postgres "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  log "starting the test cluster on port $PORT"
  # A stale pid file from a killed machine would stop pg_ctl from starting.
  if [ -f "$DATA/postmaster.pid" ] && ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null; then
    rm -f "$DATA/postmaster.pid"
  fi
  as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$ROOT/server.log" -w -t 60 start \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$ROOT \
        -c max_connections=400 -c shared_buffers=128MB" >&2
fi

for _ in $(seq 1 60); do
  if as_postgres "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    echo "export AUDITLOG_TEST_DATABASE_URL=$URL"
    exit 0
  fi
  sleep 1
done
log "the test cluster did not become ready; see $ROOT/server.log"
exit 1
