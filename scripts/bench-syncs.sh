#!/usr/bin/env bash
# Syncs (issue 15): a full sync of N sandbox Klaviyo profiles through a real `connecthub
# demo` (records/s against the sandbox's own page-serving rate measured in the same run),
# the server's RSS during it (must stay flat whatever N), and an incremental run after
# 1 % changed (target: under 5 % of the full run's time); SQLite, then PostgreSQL.
# Usage: scripts/bench-syncs.sh [profiles]   (default 100000)
#        BENCH_PROFILE=debug scripts/bench-syncs.sh …   uses the debug build (quicker to get,
#        slower to run: only the ratios mean something then)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-100000}
profile=${BENCH_PROFILE:-release}
if [[ $profile == release ]]; then cargo build --release -q --bin connecthub; else cargo build -q --bin connecthub; fi
bin=$PWD/target/$profile/connecthub
source scripts/bench-lib.sh

bench_backend() { # name database_url
  local name=$1 url=$2 p base key password=a-long-enough-password
  export DATABASE_URL=$url ENCRYPTION_KEY=$("$bin" key gen) LOG_LEVEL=warn
  "$bin" migrate >/dev/null
  echo "$password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
  key=$("$bin" api-key create --name bench --scope records:read --scope syncs:write --scope clients:read --owner bench@example.com)
  p=$(port); base=http://127.0.0.1:$p
  # `env` execs the server, so the pid is the server's own (its RSS is what is read).
  start_server "$work/$name.log" env PUBLIC_URL="$base" BIND="127.0.0.1:$p" SYNC_SCHEDULE=false \
    PROVIDER_BUDGETS=${PROVIDER_BUDGETS:-off} "$bin" demo
  wait_until_up "$base/healthz"
  echo "== $name ($count profiles)"
  python3 scripts/bench_syncs.py "$base" "$key" "${pids[-1]}" "$count" bench@example.com "$password" | tee "$work/$name.out"
  # The script's "sandbox alone", "full sync", "RSS" and "incremental" lines.
  local sandbox full inc rss db
  db=$(db_label "$name")
  sandbox=$(awk '/sandbox alone:/ {print $3}' "$work/$name.out")
  full=$(awk '/full sync:/ {print $3}' "$work/$name.out")
  inc=$(awk '/incremental/ {print $7}' "$work/$name.out")
  rss=$(awk '/RSS:/ {print $2, $5}' "$work/$name.out")
  [[ -n $full ]] && bench_row "syncs: full sync, $count profiles" "$db" "$full records/s" "sandbox alone $sandbox records/s" "$(ratio "$full" "$sandbox")"
  [[ -n $inc ]] && bench_row "syncs: incremental run after 1 % changed" "$db" "$inc % of the full run's time" "full run" "-"
  [[ -n $rss ]] && bench_row "syncs: RSS during the full sync" "$db" "${rss#* } MB at most" "${rss% *} MB before" "$(ratio "${rss#* }" "${rss% *}")"
}

on_both_databases bench_backend syncs
