#!/usr/bin/env bash
# Token hand-out throughput: GET /api/v1/clients/{id}/token for a connected client with a
# valid cached token, against a minimal actix-web hello-world on the same machine, in one
# run; prints requests/s, p99 and the ratio for SQLite and PostgreSQL. Then the metered
# proxy against calling the (built-in) provider directly with the same token, and whether
# usage counted every proxied call. The server runs with PROVIDER_BUDGETS=off: Klaviyo's
# accounts tier allows one call a second per account, so with pacing on nearly every
# proxied call would be connecthub's own 429 and the figure would measure refusals.
# With BENCH_TABLE set, appends one Markdown row per figure (see scripts/bench-all.sh).
# scripts/bench-handout.sh measures the hand-out over 10,000 distinct clients.
# Needs wrk (apt-get install wrk) and, for PostgreSQL, a server at $BENCH_POSTGRES_URL.
# Usage: scripts/bench.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-64}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
cargo build --release -q --bin connecthub --example hello
bin=./target/release/connecthub
source scripts/bench-lib.sh

hello_port=$(port)
start_server "$work/hello.log" env BIND="127.0.0.1:$hello_port" ./target/release/examples/hello
wait_until_up "http://127.0.0.1:$hello_port/"
read -r hello_rps hello_p99 _ _ < <(measure -d"${seconds}s" "http://127.0.0.1:$hello_port/")
echo "hello-world        ${hello_rps} req/s  p99 ${hello_p99} ms"

bench_backend() { # name database_url
  local name=$1 url=$2 p base jar password client key
  p=$(port); base=http://localhost:$p; jar=$work/$name.jar  # the demo's PUBLIC_URL host, so the session cookie matches
  start_server "$work/$name.log" env -C "$work" DATABASE_URL="$url" BIND="127.0.0.1:$p" LOG_LEVEL=warn PROVIDER_BUDGETS=off "$PWD/$bin" demo
  wait_until_up "$base/healthz"
  until grep -q Password "$work/$name.log"; do sleep 0.1; done
  password=$(awk '/Password/ {print $2}' "$work/$name.log")
  sign_in "$base" "$jar" admin@connecthub.local "$password"
  local authorize callback
  authorize=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" "$base/api/integrations/klaviyo/oauth/start?redirect_path=/admin/clients")
  callback=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" -d "${authorize#*\?}&decision=allow&account=AcmeK1" "$base/sandbox/klaviyo/oauth/authorize")
  curl -s -o /dev/null -c "$jar" -b "$jar" "$callback"
  key=$(DATABASE_URL=$url "$bin" api-key create --name bench --scope tokens:read --scope clients:read --scope proxy --owner admin@connecthub.local)
  client=$(curl -s -H "Authorization: Bearer $key" "$base/api/v1/clients" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clients"][0]["id"])')
  curl -sf -o /dev/null -H "Authorization: Bearer $key" "$base/api/v1/clients/$client/token"
  read -r rps p99 _ _ < <(measure -d"${seconds}s" -H "Authorization: Bearer $key" "$base/api/v1/clients/$client/token")
  awk -v n="$name" -v r="$rps" -v p="$p99" -v h="$hello_rps" \
    'BEGIN { printf "token (%-8s)   %s req/s  p99 %s ms  ratio to hello-world %.2f\n", n, r, p, r / h }'
  bench_row "token hand-out, 1 client, warm" "$name" "$(printf '%.0f req/s, p99 %s ms' "$rps" "$p99")" \
    "$(printf 'hello-world %.0f req/s' "$hello_rps")" "$(awk -v r="$rps" -v h="$hello_rps" 'BEGIN {printf "%.2f", r / h}')"

  local token used_before used_after
  token=$(curl -s -H "Authorization: Bearer $key" "$base/api/v1/clients/$client/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  read -r direct_rps direct_p99 _ _ < <(measure -d"${seconds}s" -H "Authorization: Bearer $token" -H "revision: 2024-07-15" "$base/sandbox/klaviyo/api/accounts")
  used_before=$(usage_total "$base" "$key")
  read -r proxy_rps proxy_p99 proxied bad < <(measure -d"${seconds}s" -H "Authorization: Bearer $key" "$base/api/v1/proxy/$client/api/accounts")
  sleep 3   # usage is written once a second
  used_after=$(usage_total "$base" "$key")
  awk -v n="$name" -v r="$proxy_rps" -v p="$proxy_p99" -v d="$direct_rps" -v dp="$direct_p99" \
    'BEGIN { printf "proxy (%-8s)   %s req/s  p99 %s ms  ratio to direct (%s req/s, p99 %s ms) %.2f\n", n, r, p, d, dp, r / d }'
  echo "proxy ($name)   $proxied requests ($bad not 2xx), usage counted $((used_after - used_before))"
  bench_row "proxy GET api/accounts" "$name" "$(printf '%.0f req/s, p99 %s ms' "$proxy_rps" "$proxy_p99")" \
    "$(printf 'direct %.0f req/s, p99 %s ms' "$direct_rps" "$direct_p99")" \
    "$(awk -v r="$proxy_rps" -v d="$direct_rps" 'BEGIN {printf "%.2f", r / d}')"
}

usage_total() { # base key → totalCalls today
  curl -s -H "Authorization: Bearer $2" "$1/api/v1/usage?days=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["totalCalls"])'
}

on_both_databases bench_backend bench
