#!/usr/bin/env bash
# End-to-end tests of the dashboard in headless Chromium.
#
# Installs what is missing (Debian's chromium, the npm packages playwright-core
# and @axe-core/playwright),
# builds the auditlog binary, and runs every tests/browser/*.test.mjs (or the
# files named) with Node's test runner, one file at a time. With
# AUDITLOG_BROWSER_DATABASE_URL (a PostgreSQL server) each test's server runs
# on a database of its own there instead of the embedded store. Never downloads a browser build:
# playwright-core drives /usr/bin/chromium.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "run.sh: installing chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null
  fi
fi

if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/@axe-core/playwright" ]; then
  echo "run.sh: installing playwright-core and @axe-core/playwright" >&2
  (cd "$here" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
fi

if [ -z "${AUDITLOG_BIN:-}" ]; then
  (cd "$root" && cargo build -p auditlog)
  export AUDITLOG_BIN="$root/target/debug/auditlog"
fi

mkdir -p "$root/target/screenshots"
cd "$here"
# The skip flag makes sure nothing tries to
# fetch a browser build.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# Node 20 applies the timeout to each file as a whole; the axe file audits
# every state at three widths (about two and a half minutes on two cores).
# Test files named on the command line run alone; other arguments go to node.
files=()
opts=()
for a in "$@"; do
  case "$a" in
    *.test.mjs) files+=("$a") ;;
    *) opts+=("$a") ;;
  esac
done
[ ${#files[@]} -gt 0 ] || files=(./*.test.mjs)
exec node --test --test-concurrency=1 --test-timeout=600000 "${opts[@]}" "${files[@]}"
