#!/usr/bin/env bash
# Does the usage page stay fast at a million usage rows? On SQLite and PostgreSQL: seed
# 200 clients and 1,000 calls, time each view (median of N requests, curl's total time on
# loopback); add calls up to 1,000,000 over 30 days and time them again. The figure is the
# ratio of the two medians, measured in the same run, so machine noise mostly cancels.
# Usage: scripts/bench-usage.sh [rows] [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
requests=${2:-30}
small=1000
cargo build --release -q --bin connecthub
bin=$PWD/target/release/connecthub
source scripts/bench-lib.sh

views=("page 30 days|/admin/usage?period=30d" "page 7 days|/admin/usage?period=7d"
       "page 24 hours|/admin/usage?period=24h" "page 30 days, kustomer|/admin/usage?provider=kustomer"
       "API days=30|/api/v1/usage?days=30")

time_views() { # base jar key -> one median per view, in order
  local base=$1 jar=$2 key=$3 view path auth
  for view in "${views[@]}"; do
    path=${view#*|}
    auth=(-b "$jar"); [[ $path == /api/* ]] && auth=(-H "Authorization: Bearer $key")
    curl -s -o /dev/null "${auth[@]}" "$base$path"   # warm up
    for _ in $(seq "$requests"); do curl -s -o /dev/null "${auth[@]}" -w '%{time_total}\n' "$base$path"; done | median
    echo
  done
}

bench_backend() { # name database_url
  local name=$1 url=$2 p base jar key
  export DATABASE_URL=$url ENCRYPTION_KEY=$("$bin" key gen) LOG_LEVEL=warn
  "$bin" seed --clients 200 --usage-rows "$small" >/dev/null
  echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
  key=$("$bin" api-key create --name bench --scope clients:read --owner bench@example.com)
  p=$(port); base=http://127.0.0.1:$p; jar=$work/$name.jar
  start_server "$work/$name.log" env PUBLIC_URL="$base" BIND="127.0.0.1:$p" SYNC_SCHEDULE=false "$bin" serve
  wait_until_up "$base/healthz"
  sign_in "$base" "$jar" bench@example.com a-long-enough-password
  mapfile -t before < <(time_views "$base" "$jar" "$key")
  local started=$SECONDS
  "$bin" seed --clients 0 --usage-rows $((rows - small)) >/dev/null
  echo "$name: seeded $((rows - small)) more calls in $((SECONDS - started)) s"
  mapfile -t after < <(time_views "$base" "$jar" "$key")
  for i in "${!views[@]}"; do
    printf '%-9s %-24s %7s rows %6s ms   %7s rows %6s ms   ratio %s\n' "$name" "${views[$i]%%|*}" \
      "$small" "${before[$i]}" "$rows" "${after[$i]}" \
      "$(awk -v a="${after[$i]}" -v b="${before[$i]}" 'BEGIN {printf "%.2f", a / b}')"
    bench_row "usage: ${views[$i]%%|*}, $rows rows" "$(db_label "$name")" "median ${after[$i]} ms" \
      "$small rows ${before[$i]} ms" "$(ratio "${after[$i]}" "${before[$i]}")"
  done
}

on_both_databases bench_backend usage
