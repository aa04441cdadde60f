#!/usr/bin/env bash
# A provider outage (issue 18): N connections on the sandbox's Klaviyo, whose token endpoint
# then answers 503 for OUTAGE_MINUTES (10). Measures the refresh calls the failing endpoint
# receives per connection per minute, against the baseline of a naive client that retries
# each connection every 30 s (2 calls per connection per minute); then, once the provider is
# back, the time until every connection is fresh again and the connection.recovered events.
# Tokens live 120 s (30 s for outages under 4 minutes), so every connection falls due and
# expires during the outage; in healthy times each is refreshed at half its life. Default
# settings otherwise (breaker: 5 failures, 30 s cool-down doubling to 1 min, the waiting
# connections released within 30 s when it closes; backoff 30 s to 5 min). SQLite, then
# PostgreSQL.
# Usage: scripts/bench-outage.sh [OUTAGE_MINUTES] [connections]   (defaults 10, 1000)
#        BENCH_PROFILE=debug scripts/bench-outage.sh …   uses the debug build
#        BENCH_TABLE=file appends the figures as Markdown rows (see scripts/bench-all.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
count=${2:-1000}
profile=${BENCH_PROFILE:-release}
if [[ $profile == release ]]; then cargo build --release -q --bin connecthub; else cargo build -q --bin connecthub; fi
bin=$PWD/target/$profile/connecthub
source scripts/bench-lib.sh
# A naive client retrying every connection every 30 s: calls per connection per minute.
naive=2
ttl=$((minutes >= 4 ? 120 : 30))

bench_backend() { # name database_url
  local name=$1 url=$2 p base key result label
  export DATABASE_URL=$url ENCRYPTION_KEY=$("$bin" key gen) LOG_LEVEL=warn
  "$bin" migrate >/dev/null
  echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
  key=$("$bin" api-key create --name bench --scope connect:write --scope clients:read --owner bench@example.com)
  p=$(port); base=http://127.0.0.1:$p
  start_server "$work/$name.log" env PUBLIC_URL="$base" BIND="127.0.0.1:$p" SYNC_SCHEDULE=false \
    SANDBOX_ACCESS_TOKEN_TTL_SECS=$ttl DATABASE_MAX_CONNECTIONS=20 \
    ANONYMOUS_REQUESTS_PER_MINUTE=1000000 "$bin" demo
  wait_until_up "$base/healthz"
  echo "== $name: $count connections, the token endpoint down for $minutes min"
  result=$(python3 scripts/bench_outage.py "$base" "$key" "$url" "$count" "$((minutes * 60))" 5)
  eval "$result"
  local per_minute ratio
  per_minute=$(python3 -c "print(f'{$calls_during / $count / ($outage_seconds / 60):.4f}')")
  ratio=$(python3 -c "print(f'{$calls_during / $count / ($outage_seconds / 60) / $naive:.4f}')")
  echo "  connected in ${connect_seconds} s"
  echo "  during the outage: $calls_during calls to the failing token endpoint in ${outage_seconds} s = $per_minute per connection per minute (naive 30-s retry: $naive; ratio $ratio); breaker open after ${breaker_opened_after} s, opened $breaker_openings times"
  echo "  after recovery: $fresh_after_recovery of $count fresh in ${recovery_seconds} s ($recovery_calls refresh calls), $recovered_events connection.recovered events"
  label=$([[ $name == sqlite ]] && echo SQLite || echo PostgreSQL)
  bench_row "provider outage ${minutes} min, $count connections: calls to the failing provider" "$label" "$per_minute calls/connection/min" "naive 30-s retry $naive calls/connection/min" "$ratio"
  bench_row "provider outage: every connection fresh after recovery" "$label" "${recovery_seconds} s ($fresh_after_recovery/$count fresh, $recovered_events connection.recovered)" "-" "-"
}

on_both_databases bench_backend outage
