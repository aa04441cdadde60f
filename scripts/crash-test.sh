#!/usr/bin/env bash
# Crash consistency: SIGKILLs a real `connecthub demo` 50 times (CRASH_KILLS) at random
# moments during connects, refreshes of 2-second sandbox tokens, token hand-outs, proxied
# calls and webhook deliveries, on SQLite and on PostgreSQL (TEST_POSTGRES_URL, default
# postgres://postgres@127.0.0.1:5432; skipped when it does not answer unless CI=true).
# After each kill: PRAGMA integrity_check / a consistency query, `connecthub audit verify`;
# at the end the refreshes the connections report as interrupted and the connections lost.
# The figures are printed as `crash figures (...)`. CRASH_SLOW_PROVIDER_MS=300 makes every
# Klaviyo call wait that long first (a slow provider: kills land inside refreshes far more
# often). Usage: scripts/crash-test.sh [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
export CRASH_KILLS="${CRASH_KILLS:-50}"
filter="crash::fifty_kills_"
case "${1:-}" in
  sqlite|postgres) filter="crash::fifty_kills_$1" ;;
  "") ;;
  *) echo "usage: $0 [sqlite|postgres]" >&2; exit 2 ;;
esac
exec cargo test --test api "$filter" -- --ignored --nocapture --test-threads=1
