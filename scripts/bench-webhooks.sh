#!/usr/bin/env bash
# Outgoing webhooks: delivery throughput to a local receiver and the latency from the change
# (the event's timestamp, written in the change's transaction) to the receiver's 200, at a
# fixed production rate, on SQLite and PostgreSQL. The baseline, measured in the same run,
# is the same load generator POSTing straight to the receiver; the ratios compare with it.
# Target (issue 14): p99 under 1 s while 100 events/s are produced.
# Usage: scripts/bench-webhooks.sh [events] [rate] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-2000}
rate=${2:-100}
seconds=${3:-20}
cargo build --release -q --bin connecthub --example webhook_bench
bin=$PWD/target/release/connecthub
source scripts/bench-lib.sh

bench_backend() { # name database_url
  local name=$1 url=$2 p base key
  export DATABASE_URL=$url ENCRYPTION_KEY=$("$bin" key gen) LOG_LEVEL=warn
  "$bin" migrate >/dev/null
  echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
  key=$("$bin" api-key create --name bench --scope webhooks:write --owner bench@example.com)
  p=$(port); base=http://127.0.0.1:$p
  start_server "$work/$name.log" env PUBLIC_URL="$base" BIND="127.0.0.1:$p" WEBHOOK_ALLOW_PRIVATE=true "$bin" serve
  wait_until_up "$base/healthz"
  echo "== $name"
  ./target/release/examples/webhook_bench "$base" "$key" "$events" "$rate" "$seconds" | tee "$work/$name.out"
  # "baseline   throughput N events/s   at R/s: p50 X ms  p99 Y ms", then "connecthub …".
  local direct hub
  direct=$(awk '/^baseline/ {print $3, $(NF-1)}' "$work/$name.out")
  hub=$(awk '/^connecthub/ {for (i = 1; i <= NF; i++) if ($i == "p99") print $3, $(i+1)}' "$work/$name.out")
  if [[ -n $direct && -n $hub ]]; then
    bench_row "webhooks: throughput" "$(db_label "$name")" "${hub% *} events/s" "direct ${direct% *} events/s" "$(ratio "${hub% *}" "${direct% *}")"
    bench_row "webhooks: p99 latency at $rate/s" "$(db_label "$name")" "${hub#* } ms" "direct ${direct#* } ms" "$(ratio "${hub#* }" "${direct#* }")"
  fi
}

on_both_databases bench_backend webhooks
