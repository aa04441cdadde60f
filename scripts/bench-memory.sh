#!/usr/bin/env bash
# Memory and start-up at scale, on SQLite and PostgreSQL, through a real `connecthub demo`
# (its sandbox gives one connected Klaviyo client for token hand-outs): RSS idle on an
# empty database; start-up time (exec to the first /healthz answer) and idle RSS with N
# seeded clients (default 1,000,000); RSS after a minute of load (token hand-outs by wrk
# while the client list is searched and paged through the service API); then a soak of
# SOAK_MINUTES (default 10) of the same load, RSS sampled each minute: the last sample
# against the first is the growth ratio (target: about 1, no growth).
# Needs wrk. Usage: scripts/bench-memory.sh [clients]   (SOAK_MINUTES=1 for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-1000000}
soak_minutes=${SOAK_MINUTES:-10}
[[ -n ${QUICK:-} ]] && soak_minutes=${SOAK_MINUTES:-1}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
cargo build --release -q --bin connecthub
bin=$PWD/target/release/connecthub
source scripts/bench-lib.sh

rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# Starts the demo over the database; sets `startup_secs` to the seconds until it answered
# /healthz. (Not printed: in a $(…) subshell the server would not be in `pids`, and
# nothing would stop it.)
start_demo() { # name url port
  local t0 t1
  t0=$(date +%s.%N)
  start_server "$work/$1.log" env -C "$work" DATABASE_URL="$2" BIND="127.0.0.1:$3" LOG_LEVEL=warn \
    SYNC_SCHEDULE=false "$bin" demo
  wait_until_up "http://localhost:$3/healthz"
  t1=$(date +%s.%N)
  startup_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
}

# List and search traffic through the service API for `seconds`, one request at a time.
list_traffic() { # base key seconds
  local end=$((SECONDS + $3)) q
  while ((SECONDS < end)); do
    for q in "limit=100" "q=acme" "q=seed-owner-3%40example.com" "tag=vip&status=error" "sort=name" "sort=expires" "q=zzzqqq"; do
      curl -s -o /dev/null -H "Authorization: Bearer $2" "$1/api/v1/clients?$q"
    done
  done
}

# Hand-outs by wrk and list traffic beside it, for `seconds`.
load() { # base key client seconds
  list_traffic "$1" "$2" "$4" &
  local lister=$!
  wrk -t1 -c16 -d"${4}s" -H "Authorization: Bearer $2" "$1/api/v1/clients/$3/token" >/dev/null
  wait "$lister"
}

bench_backend() { # name database_url
  local name=$1 url=$2 p base jar password key client db idle started seeded_idle loaded first last rss
  db=$(db_label "$name")
  p=$(port); base=http://localhost:$p; jar=$work/$name.jar
  # 1. Empty database: idle RSS, then one client connected through the sandbox.
  start_demo "$name" "$url" "$p"
  until grep -q Password "$work/$name.log"; do sleep 0.1; done
  sleep 5; idle=$(rss_mb "${pids[-1]}")
  password=$(awk '/Password/ {print $2}' "$work/$name.log")
  sign_in "$base" "$jar" admin@connecthub.local "$password"
  local authorize callback
  authorize=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" "$base/api/integrations/klaviyo/oauth/start?redirect_path=/admin/clients")
  callback=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" -d "${authorize#*\?}&decision=allow&account=AcmeK1" "$base/sandbox/klaviyo/oauth/authorize")
  curl -s -o /dev/null -c "$jar" -b "$jar" "$callback"
  key=$(DATABASE_URL=$url "$bin" api-key create --name bench --scope tokens:read --scope clients:read --owner admin@connecthub.local)
  client=$(curl -s -H "Authorization: Bearer $key" "$base/api/v1/clients" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clients"][0]["id"])')
  stop_servers "${pids[-1]}"
  # 2. N clients: start-up time and idle RSS.
  started=$SECONDS
  DATABASE_URL=$url "$bin" seed --clients "$clients" >/dev/null
  echo "$name: seeded $clients clients in $((SECONDS - started)) s"
  start_demo "$name" "$url" "$p"; local startup=$startup_secs
  sleep 5; seeded_idle=$(rss_mb "${pids[-1]}")
  # 3. A minute of load.
  load "$base" "$key" "$client" 60
  loaded=$(rss_mb "${pids[-1]}")
  # 4. The soak: RSS after each minute.
  local samples=()
  for _ in $(seq "$soak_minutes"); do
    load "$base" "$key" "$client" 60
    samples+=("$(rss_mb "${pids[-1]}")")
  done
  first=${samples[0]}; last=${samples[-1]}
  printf '%-9s idle RSS %s MB; %s clients: start-up %s s, idle %s MB, after 1 min of load %s MB\n' \
    "$name" "$idle" "$clients" "$startup" "$seeded_idle" "$loaded"
  printf '%-9s soak %s min, RSS each minute (MB): %s\n' "$name" "$soak_minutes" "${samples[*]}"
  bench_row "memory: idle RSS, empty database" "$db" "$idle MB" "-" "-"
  bench_row "memory: start-up with $clients clients" "$db" "$startup s" "-" "-"
  bench_row "memory: idle RSS with $clients clients" "$db" "$seeded_idle MB" "empty database $idle MB" "$(ratio "$seeded_idle" "$idle")"
  bench_row "memory: RSS after 1 min of hand-outs + list traffic" "$db" "$loaded MB" "idle $seeded_idle MB" "$(ratio "$loaded" "$seeded_idle")"
  bench_row "memory: RSS after a $soak_minutes min soak" "$db" "$last MB" "after its first minute $first MB" "$(ratio "$last" "$first")"
}

on_both_databases bench_backend memory
