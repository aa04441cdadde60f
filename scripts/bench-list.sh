#!/usr/bin/env bash
# Server time of the Clients list over 10,000 seeded clients, on SQLite and PostgreSQL:
# the first page, a search, filters, a deep page. Prints the median of N requests each
# (curl's total time on loopback, so network time is negligible).
# Usage: scripts/bench-list.sh [clients] [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-10000}
requests=${2:-50}
cargo build --release -q --bin connecthub
bin=$PWD/target/release/connecthub
source scripts/bench-lib.sh

bench_backend() { # name database_url
  local name=$1 url=$2 p base jar
  export DATABASE_URL=$url ENCRYPTION_KEY=$("$bin" key gen) LOG_LEVEL=warn
  "$bin" seed --clients "$clients" >/dev/null
  echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
  p=$(port); base=http://127.0.0.1:$p; jar=$work/$name.jar
  start_server "$work/$name.log" env PUBLIC_URL="$base" BIND="127.0.0.1:$p" "$bin" serve
  wait_until_up "$base/healthz"
  sign_in "$base" "$jar" bench@example.com a-long-enough-password
  for view in "first page|/admin/clients" "search 'globex store'|/admin/clients?q=globex+store" \
              "search by email domain|/admin/clients?q=wonka42.example" \
              "filters status+provider+tag|/admin/clients?status=error&provider=kustomer&tag=vip" \
              "sorted by name, page 100|/admin/clients?sort=name&page=100" \
              "htmx list only|/admin/clients?q=acme" ; do
    local label=${view%%|*} path=${view#*|} extra=()
    [[ $label == htmx* ]] && extra=(-H "HX-Request: true")
    curl -s -o /dev/null -b "$jar" "${extra[@]}" "$base$path"   # warm up
    local ms
    ms=$(for _ in $(seq "$requests"); do curl -s -o /dev/null -b "$jar" "${extra[@]}" -w '%{time_total}\n' "$base$path"; done | median)
    printf '%-9s %-30s median %6s ms\n' "$name" "$label" "$ms"
  done
}

on_both_databases bench_backend list
