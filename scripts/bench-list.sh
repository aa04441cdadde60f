#!/usr/bin/env bash
# Server time of the Clients list over N seeded clients (default 1,000,000), on SQLite and
# PostgreSQL: the seed itself, then the first page, every search kind, each filter, each
# sort, and deep pages (keyset links and a typed page number). Prints the median and the
# maximum of R requests each: curl's time to first byte on loopback, which is the server's
# time (the page is rendered before its first byte is sent). The service API's list
# (GET /api/v1/clients) is timed the same way. Baseline: GET /healthz in the same run.
# LIST_SEEDED_SQLITE=<file URL> / LIST_SEEDED_POSTGRES=<URL> (with that database's
# ENCRYPTION_KEY) reuse a database seeded before instead of seeding a new one.
# Usage: scripts/bench-list.sh [clients] [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-1000000}
requests=${2:-20}
if [[ -z ${BENCH_BIN:-} ]]; then cargo build --release -q --bin connecthub; fi
bin=${BENCH_BIN:-$PWD/target/release/connecthub}   # BENCH_BIN: another build, to compare
source scripts/bench-lib.sh

# Seconds on stdin → "median max" in ms.
median_max() { sort -n | awk '{a[NR]=$1} END {printf "%.1f %.1f", a[int((NR+1)/2)] * 1000, a[NR] * 1000}'; }

# The href of the page's rel=<rel> link (path and query), HTML entities undone.
link_of() { # html_file rel
  grep -o "href=\"/admin/clients?[^\"]*\" rel=\"$2\"" "$1" | head -1 | cut -d'"' -f2 | sed 's/&amp;/\&/g'
}

bench_backend() { # name database_url
  local name=$1 url=$2 p base jar started seeded=LIST_SEEDED_${1^^}
  started=$SECONDS
  if [[ -n ${!seeded:-} ]]; then
    # An already seeded database (its ENCRYPTION_KEY in the environment): no seed, no row.
    export DATABASE_URL=${!seeded} LOG_LEVEL=warn
    echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null 2>&1 || true
  else
    export DATABASE_URL=$url ENCRYPTION_KEY=$("$bin" key gen) LOG_LEVEL=warn
    "$bin" seed --clients "$clients" >/dev/null
    printf '%-9s seed --clients %s: %d s\n' "$name" "$clients" $((SECONDS - started))
    echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
    bench_row "clients: seed --clients $clients" "$(db_label "$name")" "$((SECONDS - started)) s" "-" "-"
  fi
  local key; key=$("$bin" api-key create --name bench --scope clients:read --owner bench@example.com)
  p=$(port); base=http://127.0.0.1:$p; jar=$work/$name.jar
  start_server "$work/$name.log" env PUBLIC_URL="$base" BIND="127.0.0.1:$p" SYNC_SCHEDULE=false "$bin" serve
  wait_until_up "$base/healthz"
  sign_in "$base" "$jar" bench@example.com a-long-enough-password
  # Deep keyset pages: the Next link of a page reached once by number (slow, not timed).
  local deep=$((clients / 100)) html=$work/$name.html
  curl -s -b "$jar" "$base/admin/clients?page=$deep" >"$html"
  local deep_updated; deep_updated=$(link_of "$html" next)
  curl -s -b "$jar" "$base/admin/clients?sort=name&page=$deep" >"$html"
  local deep_name; deep_name=$(link_of "$html" next)
  curl -s -b "$jar" "$base/admin/clients?sort=expires&page=$deep" >"$html"
  local deep_expires; deep_expires=$(link_of "$html" next)
  # The API's cursor a few pages in (each next_cursor followed once, not timed).
  local cursor="" i
  for i in 1 2 3; do
    cursor=$(curl -s -H "Authorization: Bearer $key" "$base/api/v1/clients?limit=100${cursor:+&cursor=$cursor}" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["next_cursor"] or "")')
  done
  local health
  health=$(for _ in $(seq "$requests"); do curl -s -o /dev/null -w '%{time_starttransfer}\n' "$base/healthz"; done | median_max)
  printf '%-9s %-36s median %6s ms  max %6s ms\n' "$name" "baseline GET /healthz" ${health% *} ${health#* }
  for view in "first page|/admin/clients" \
              "search name 'globex store'|/admin/clients?q=globex+store" \
              "search account id|/admin/clients?q=seed-klaviyo-012347" \
              "search email domain|/admin/clients?q=wonka43.example" \
              "search owner email|/admin/clients?q=seed-owner-3%40example.com" \
              "search end user (none)|/admin/clients?q=cust-4242" \
              "search 2 chars (prefix)|/admin/clients?q=gl" \
              "search no match|/admin/clients?q=zzzqqq" \
              "filter status|/admin/clients?status=error" \
              "filter provider|/admin/clients?provider=kustomer" \
              "filter tag|/admin/clients?tag=vip" \
              "filter status+provider+tag|/admin/clients?status=error&provider=kustomer&tag=vip" \
              "search + filter|/admin/clients?q=acme&status=active" \
              "sort name|/admin/clients?sort=name" \
              "sort expires|/admin/clients?sort=expires" \
              "deep page $((deep + 1)) (keyset)|$deep_updated" \
              "deep page $((deep + 1)) by name (keyset)|$deep_name" \
              "deep page $((deep + 1)) by expiry (keyset)|$deep_expires" \
              "page 100 by number (offset)|/admin/clients?page=100" \
              "htmx list only|/admin/clients?q=acme" \
              "API first page (100)|/api/v1/clients?limit=100" \
              "API search common word|/api/v1/clients?q=acme" \
              "API search owner|/api/v1/clients?q=seed-owner-3%40example.com" \
              "API filter tag + status|/api/v1/clients?tag=vip&status=error" \
              "API sort name|/api/v1/clients?sort=name" \
              "API page 4 (cursor)|/api/v1/clients?limit=100&cursor=$cursor" ; do
    local label=${view%%|*} path=${view#*|} extra=(-b "$jar")
    [[ $label == htmx* ]] && extra+=(-H "HX-Request: true")
    [[ $path == /api/* ]] && extra=(-H "Authorization: Bearer $key")
    curl -s -o /dev/null "${extra[@]}" "$base$path"   # warm up
    local figures
    figures=$(for _ in $(seq "$requests"); do curl -s -o /dev/null "${extra[@]}" -w '%{time_starttransfer}\n' "$base$path"; done | median_max)
    printf '%-9s %-36s median %6s ms  max %6s ms\n' "$name" "$label" ${figures% *} ${figures#* }
    bench_row "clients list, $clients clients: $label" "$(db_label "$name")" \
      "median ${figures% *} ms, max ${figures#* } ms" "healthz ${health% *} ms" "$(ratio "${figures% *}" "${health% *}")"
  done
}

on_both_databases bench_backend list
