#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use (127.0.0.1:5432, user postgres) is up: start the
# machine's local cluster when it is not, then wait until it accepts connections.
set -euo pipefail
host=127.0.0.1 port=5432
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
ready && exit 0
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $version (cluster main)..."
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 60); do ready && exit 0; sleep 0.5; done
echo "PostgreSQL is not reachable at $host:$port; install it or set ESCALATOR_TEST_PG_URL" >&2
exit 1
