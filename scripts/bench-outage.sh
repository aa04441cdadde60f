#!/usr/bin/env bash
# A provider outage (issue 18): N connections on the sandbox's Klaviyo, whose token endpoint
# then answers 503 for OUTAGE_MINUTES (10). Measures the refresh calls the failing endpoint
# receives per connection per minute, against the baseline of a naive client that retries
# each connection every 30 s (2 calls per connection per minute); then, once the provider is
# back, the time until every connection is fresh again, the refresh calls that took, the
# connection.recovered events, and how many connections were still not fresh at the end
# (must be 0). Default settings otherwise (breaker: 5 failures, 30 s cool-down doubling to
# 1 min, the waiting connections released within 30 s when it closes; backoff 30 s to
# 5 min). SQLite, then PostgreSQL. The server is `connecthub demo`, whose built-in sandbox
# is the provider (its Klaviyo endpoints are PUBLIC_URL/sandbox/klaviyo/…).
#
# Two ways to make the connections:
#   - connect (up to 5,000 connections): each end user connects through a connect session
#     over HTTP, as a browser would. Tokens live 120 s (30 s for outages under 4 minutes),
#     so every connection falls due and expires during the outage; in healthy times each is
#     refreshed at half its life (some already before the outage starts).
#   - seed (above 5,000, e.g. 100,000: the refresher's scale): `connecthub seed --clients 0
#     --connected N` into the running server's database, its sandbox minting the grants
#     (`/sandbox/_control/grants`; the same ENCRYPTION_KEY, DATABASE_URL and
#     TOKEN_REFRESH_MARGIN_SECS as the server). The schedule is compressed as in
#     bench-refresher.sh: a refresh margin M of 60 s (a third of the outage if that is
#     shorter), tokens falling due spread over the outage's first SPREAD seconds (a third
#     of it, at most 240 s) and expiring M s later, so every one falls due and expires
#     during the outage; the outage starts 5 s before the first falls due (LEAD seconds
#     after seeding starts: 30 s plus 1 s per 2,000 connections, at least M + 10, so no
#     token is refreshed before it). Refreshed tokens live an hour
#     (SANDBOX_ACCESS_TOKEN_TTL_SECS=3600): after recovery each connection needs one
#     refresh. One more connection is made through the connect flow after seeding, only to
#     wake the refresher (tokens stored by another process are otherwise noticed after its
#     5-minute sleep); it is left out of the counts. On PostgreSQL the seeded tables are
#     analyzed before the outage (autovacuum would; it is off on some CI servers).
#   BENCH_SEED=1 seeds at any count, BENCH_SEED=0 connects at any count.
# Usage: scripts/bench-outage.sh [OUTAGE_MINUTES] [connections]   (defaults 10, 1000)
#        BENCH_BIN=path/to/connecthub …   uses that build, no cargo build
#        BENCH_PROFILE=debug …            uses the debug build
#        BENCH_TABLE=file                 appends the figures as Markdown rows (scripts/bench-all.sh)
#        BENCH_LOGS=dir                   keeps the servers' logs there (the last lines are printed anyway)
#        BENCH_ONLY=sqlite|postgres       one database only (scripts/bench-lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
count=${2:-1000}
profile=${BENCH_PROFILE:-release}
if [[ -z ${BENCH_BIN:-} ]]; then
  if [[ $profile == release ]]; then cargo build --release -q --bin connecthub; else cargo build -q --bin connecthub; fi
fi
bin=${BENCH_BIN:-$PWD/target/$profile/connecthub}
source scripts/bench-lib.sh
# A naive client retrying every connection every 30 s: calls per connection per minute.
naive=2
outage=$((minutes * 60))
case ${BENCH_SEED:-} in
  1) mode=seed ;;
  0) mode=connect ;;
  *) mode=$( ((count > 5000)) && echo seed || echo connect) ;;
esac
if [[ $mode == seed ]]; then
  margin=$((outage / 3 < 60 ? outage / 3 : 60))
  spread=$((outage / 3 < 240 ? outage / 3 : 240))
  lead=$((30 + count / 2000))
  lead=$((lead < margin + 10 ? margin + 10 : lead))
  ttl=3600
else
  ttl=$((minutes >= 4 ? 120 : 30))
fi

# The server's log: its size and the last lines (LOG_LEVEL=warn: warnings and errors only).
log_summary() { # log_file
  local lines warns errors
  lines=$(wc -l <"$1")
  warns=$(grep -c 'WARN' "$1" || true)
  errors=$(grep -c 'ERROR' "$1" || true)
  echo "  server log: $lines lines ($warns WARN, $errors ERROR)"
  # Without the terminal colours.
  ((lines == 0)) || tail -n 8 "$1" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-300 | sed 's/^/    | /'
  if [[ -n ${BENCH_LOGS:-} ]]; then mkdir -p "$BENCH_LOGS" && cp "$1" "$BENCH_LOGS/"; fi
}

bench_backend() { # name database_url
  local name=$1 url=$2 p base key encryption_key result label seed_seconds="-" start_at=0 server_env=()
  # What bench_outage.py prints (key=value lines, eval'd below).
  local connect_seconds="-" outage_started_late=0 measured_connections=0 calls_before=0 \
    outage_seconds=0 calls_during=0 held_back=0 breaker_opened_after=0 breaker_openings=0 \
    expired_at_outage_end=0 in_error_at_outage_end=0 expired_still_active=0 \
    fresh_after_recovery=0 not_fresh=0 not_fresh_by_status="-" recovery_seconds=0 \
    recovery_calls=0 recovered_events=0
  encryption_key=$("$bin" key gen)
  export DATABASE_URL=$url ENCRYPTION_KEY=$encryption_key LOG_LEVEL=warn
  "$bin" migrate >/dev/null
  echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
  key=$("$bin" api-key create --name bench --scope connect:write --scope clients:read --owner bench@example.com)
  p=$(port); base=http://127.0.0.1:$p
  [[ $mode == seed ]] && server_env=(TOKEN_REFRESH_MARGIN_SECS="$margin")
  start_server "$work/$name.log" env PUBLIC_URL="$base" BIND="127.0.0.1:$p" SYNC_SCHEDULE=false \
    SANDBOX_ACCESS_TOKEN_TTL_SECS=$ttl DATABASE_MAX_CONNECTIONS=20 \
    ANONYMOUS_REQUESTS_PER_MINUTE=1000000 "${server_env[@]}" "$bin" demo
  wait_until_up "$base/healthz"
  echo "== $name: $count connections ($mode), the token endpoint down for $minutes min"
  if [[ $mode == seed ]]; then
    local t0
    t0=$(date +%s.%N)
    # Each token's lifetime counts from its minting: the first fall due LEAD s from now.
    env TOKEN_REFRESH_MARGIN_SECS="$margin" "$bin" seed --clients 0 --connected "$count" \
      --expiring-after "$((lead + margin))s" --expiring-within "$((lead + margin + spread))s" \
      --sandbox-url "$base" | sed 's/^/  seed: /'
    seed_seconds=$(awk -v t="$t0" -v n="$(date +%s.%N)" 'BEGIN {printf "%.1f", n - t}')
    start_at=$(awk -v t="$t0" -v l="$lead" 'BEGIN {printf "%.3f", t + l - 5}')
    if [[ $name == postgres ]]; then
      # The planner's statistics for the seeded rows, as autovacuum would gather them soon
      # after a bulk load; without them (autovacuum is off on some CI servers) the
      # refresher's claim scans every client and sorts the due backlog, hundreds of ms a
      # batch during the outage. Dead rows still pile up there when it is off.
      psql "$url" -qc "ANALYZE clients; ANALYZE credentials"
      echo "  analyzed clients and credentials; the server's autovacuum is $(psql "$url" -Atc 'SHOW autovacuum')"
    fi
    echo "  seeded in ${seed_seconds} s; refresh margin ${margin} s; due from 5 s into the outage over ${spread} s, expiring ${margin} s after"
  fi
  result=$(python3 scripts/bench_outage.py "$base" "$key" "$url" "$count" "$outage" 5 "$mode" "$start_at")
  eval "$result"
  local per_minute ratio held_per_minute
  # Six decimals: at 100,000 connections a whole outage's calls are a few per 10,000.
  per_minute=$(python3 -c "print(f'{$calls_during / $count / ($outage_seconds / 60):.6f}')")
  ratio=$(python3 -c "print(f'{$calls_during / $count / ($outage_seconds / 60) / $naive:.6f}')")
  held_per_minute=$(python3 -c "print(f'{$held_back / $count / ($outage_seconds / 60):.3f}')")
  if [[ $mode == connect ]]; then
    echo "  connected in ${connect_seconds} s; $calls_before refresh calls before the outage"
  else
    echo "  outage started ${outage_started_late} s late; $calls_before refresh calls before it (must be 0)"
  fi
  ((measured_connections == count)) || echo "  WARNING: $measured_connections connections measured, not $count"
  echo "  during the outage: $calls_during calls to the failing token endpoint in ${outage_seconds} s = $per_minute per connection per minute (naive 30-s retry: $naive; ratio $ratio); breaker open after ${breaker_opened_after} s, opened $breaker_openings times; $held_back refreshes held back by the breaker ($held_per_minute per connection per minute, no call made)"
  echo "  at the end of the outage: $expired_at_outage_end of $count tokens expired, $in_error_at_outage_end connections in Error, $expired_still_active expired but still active with no failed call (not taken up by the refresher since expiring: unless that happens before recovery, they send no connection.recovered)"
  echo "  after recovery: $fresh_after_recovery of $count fresh in ${recovery_seconds} s ($recovery_calls refresh calls), $recovered_events connection.recovered events; not fresh at the end: $not_fresh (must be 0; by status: $not_fresh_by_status)"
  log_summary "$work/$name.log"
  label=$(db_label "$name")
  local made
  made=$([[ $mode == seed ]] && echo "seeded in ${seed_seconds} s" || echo "connected in ${connect_seconds} s")
  bench_row "provider outage ${minutes} min, $count connections: calls to the failing provider" "$label" "$per_minute calls/connection/min ($calls_during calls, breaker opened $breaker_openings times; $made)" "naive 30-s retry $naive calls/connection/min" "$ratio"
  bench_row "provider outage: every connection fresh after recovery" "$label" "${recovery_seconds} s ($fresh_after_recovery/$count fresh, $not_fresh not fresh, $recovery_calls refresh calls, $recovered_events connection.recovered, $expired_at_outage_end expired in the outage)" "-" "-"
}

on_both_databases bench_backend outage
