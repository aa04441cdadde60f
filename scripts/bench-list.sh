#!/usr/bin/env bash
# Server time of the Clients list over 10,000 seeded clients, on SQLite and PostgreSQL:
# the first page, a search, filters, a deep page. Prints the median of N requests each
# (curl's total time on loopback, so network time is negligible).
# Usage: scripts/bench-list.sh [clients] [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-10000}
requests=${2:-50}
pg_server=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
cargo build --release -q --bin connecthub
bin=$PWD/target/release/connecthub
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] * 1000}'; }

bench_backend() { # name database_url
  local name=$1 url=$2 p base jar token
  export DATABASE_URL=$url ENCRYPTION_KEY=$("$bin" key gen) LOG_LEVEL=warn
  "$bin" seed --clients "$clients" >/dev/null
  echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
  p=$(port); base=http://127.0.0.1:$p; jar=$work/$name.jar
  PUBLIC_URL=$base BIND=127.0.0.1:$p "$bin" serve & pids+=($!)
  until curl -sf "$base/healthz" >/dev/null; do sleep 0.1; done
  token=$(curl -s -c "$jar" -b "$jar" "$base/login" | grep -o 'csrf-token" content="[^"]*' | cut -d'"' -f3)
  curl -s -o /dev/null -c "$jar" -b "$jar" -d "email=bench@example.com&password=a-long-enough-password&csrf_token=$token" "$base/login"
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

bench_backend sqlite "$work/list.db"
if psql "$pg_server/postgres" -qc 'select 1' >/dev/null 2>&1; then
  db=connecthub_list_$$
  psql "$pg_server/postgres" -qc "CREATE DATABASE $db"
  bench_backend postgres "$pg_server/$db"
  kill "${pids[-1]}" 2>/dev/null || true; sleep 0.5
  psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
else
  echo "PostgreSQL not reachable at $pg_server: skipped"
fi
