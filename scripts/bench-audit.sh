#!/usr/bin/env bash
# Server time of the audit page over N seeded audit entries (default 10,000,000), on SQLite
# and PostgreSQL: the seed itself (chained entries, multi-row INSERTs), then the first
# page, each filter, a deep keyset page (a Next link's `before=`), a page by number and
# the CSV export's first bytes. Median and maximum of R requests each, curl's time to first
# byte on loopback (the page is rendered before it is sent); baseline: GET /healthz.
# Usage: scripts/bench-audit.sh [entries] [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
entries=${1:-10000000}
requests=${2:-20}
cargo build --release -q --bin connecthub
bin=$PWD/target/release/connecthub
source scripts/bench-lib.sh

# Seconds on stdin → "median max" in ms.
median_max() { sort -n | awk '{a[NR]=$1} END {printf "%.1f %.1f", a[int((NR+1)/2)] * 1000, a[NR] * 1000}'; }

bench_backend() { # name database_url
  local name=$1 url=$2 p base jar started db
  db=$(db_label "$name")
  export DATABASE_URL=$url ENCRYPTION_KEY=$("$bin" key gen) LOG_LEVEL=warn
  "$bin" seed --clients 1000 >/dev/null
  started=$SECONDS
  "$bin" seed --clients 0 --audit-rows "$entries" >/dev/null
  printf '%-9s seed --audit-rows %s: %d s\n' "$name" "$entries" $((SECONDS - started))
  bench_row "audit: seed --audit-rows $entries" "$db" "$((SECONDS - started)) s" "-" "-"
  echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
  p=$(port); base=http://127.0.0.1:$p; jar=$work/$name.jar
  start_server "$work/$name.log" env PUBLIC_URL="$base" BIND="127.0.0.1:$p" SYNC_SCHEDULE=false "$bin" serve
  wait_until_up "$base/healthz"
  sign_in "$base" "$jar" bench@example.com a-long-enough-password
  # A client the seed wrote about, and a day in the middle of the seeded span.
  local client day
  client=$(curl -s -b "$jar" "$base/admin/audit" | grep -o 'client=[0-9a-f-]\{36\}' | head -1 | cut -d= -f2)
  day=$(date -u -d '15 days ago' +%F)
  local health
  health=$(for _ in $(seq "$requests"); do curl -s -o /dev/null -w '%{time_starttransfer}\n' "$base/healthz"; done | median_max)
  printf '%-9s %-36s median %6s ms  max %6s ms\n' "$name" "baseline GET /healthz" ${health% *} ${health#* }
  for view in "first page|/admin/audit" \
              "filter action|/admin/audit?action=login" \
              "filter outcome failure|/admin/audit?outcome=failure" \
              "filter client|/admin/audit?client=$client" \
              "filter actor (email part)|/admin/audit?actor=seed-owner-3%40" \
              "filter one day|/admin/audit?from=$day&to=$day" \
              "action + outcome|/admin/audit?action=token_refreshed&outcome=failure" \
              "deep page (keyset, middle)|/admin/audit?before=$((entries / 2))&page=2" \
              "page 100 by number (offset)|/admin/audit?page=100" \
              "htmx list only|/admin/audit?action=login" ; do
    local label=${view%%|*} path=${view#*|} extra=(-b "$jar")
    [[ $label == htmx* ]] && extra+=(-H "HX-Request: true")
    curl -s -o /dev/null "${extra[@]}" "$base$path"   # warm up
    local figures
    figures=$(for _ in $(seq "$requests"); do curl -s -o /dev/null "${extra[@]}" -w '%{time_starttransfer}\n' "$base$path"; done | median_max)
    printf '%-9s %-36s median %6s ms  max %6s ms\n' "$name" "$label" ${figures% *} ${figures#* }
    bench_row "audit page, $entries entries: $label" "$db" "median ${figures% *} ms, max ${figures#* } ms" \
      "healthz ${health% *} ms" "$(ratio "${figures% *}" "${health% *}")"
  done
}

on_both_databases bench_backend audit
