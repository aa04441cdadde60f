#!/usr/bin/env bash
# Token hand-out over many distinct clients: GET /api/v1/clients/{id}/token for a client
# picked at random per request among N seeded connected clients (default 10,000; tokens
# valid for hours, `connecthub seed --connected N --made-up-tokens`), with wrk at 64 connections, against a
# minimal actix-web hello-world measured in the same run. On SQLite and PostgreSQL:
#   cold  a fresh server, each client asked for once (shuffled): every answer is a cache
#         miss (two indexed reads and two openings of sealed values);
#   warm  then, after SETTLE_SECS (60) of unmeasured traffic, random clients for the
#         given seconds: the tokens come from memory.
# Prints requests/s, p99 and the ratio to hello-world, and the server's RSS after the warm
# run; with BENCH_TABLE set, appends one Markdown row per figure (see scripts/bench-all.sh).
# Needs wrk (apt-get install wrk) and, for PostgreSQL, a server at $BENCH_POSTGRES_URL.
# Usage: scripts/bench-handout.sh [clients] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-10000}
seconds=${2:-10}
connections=${3:-64}
settle=${SETTLE_SECS:-60}  # unmeasured traffic between the cold pass and the warm run
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
cargo build --release -q --bin connecthub --example hello
bin=$PWD/target/release/connecthub
lua=$PWD/scripts/bench-handout.lua
source scripts/bench-lib.sh

rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

hello_port=$(port)
start_server "$work/hello.log" env BIND="127.0.0.1:$hello_port" ./target/release/examples/hello
wait_until_up "http://127.0.0.1:$hello_port/"
read -r plain_rps plain_p99 _ _ < <(measure -d"${seconds}s" "http://127.0.0.1:$hello_port/")
printf 'hello-world, one path          %s req/s  p99 %s ms\n' "$plain_rps" "$plain_p99"
# The baseline of the ratios: hello-world asked through the same wrk script, with the
# same random ids and header, so that the script's own cost (wrk runs on the same two
# cores) is in both figures and the ratio is the server's.
python3 -c 'import uuid; [print(uuid.uuid4()) for _ in range('"$clients"')]' >"$work/hello.ids"
read -r hello_rps hello_p99 _ _ < <(CLIENT_IDS=$work/hello.ids BENCH_KEY=unused \
  measure -d"${seconds}s" -s "$lua" "http://127.0.0.1:$hello_port")
printf 'hello-world, same wrk script   %s req/s  p99 %s ms\n' "$hello_rps" "$hello_p99"
stop_servers "${pids[@]}"
hello_figure=$(printf 'hello-world %.0f req/s (one path: %.0f)' "$hello_rps" "$plain_rps")

# The seeded clients' ids, one a line.
client_ids() { # name database_url → file
  local query="select client_id from credentials"
  if [[ $1 == sqlite ]]; then sqlite3 "$2" "$query"; else psql -qAt "$2" -c "$query"; fi
}

start_hub() { # name log → pid in $hub_pid, base URL in $base
  local p; p=$(port); base=http://127.0.0.1:$p
  start_server "$work/$1-$2.log" env -C "$work" PUBLIC_URL="$base" BIND="127.0.0.1:$p" "$bin" serve
  hub_pid=${pids[-1]}
  wait_until_up "$base/healthz"
}

report() { # name pass rps p99 bad
  local ratio
  ratio=$(awk -v r="$3" -v h="$hello_rps" 'BEGIN {printf "%.2f", r / h}')
  printf 'token, %s clients, %-4s (%-8s) %s req/s  p99 %s ms  ratio to hello-world %s  (%s not 2xx)\n' \
    "$clients" "$2" "$1" "$3" "$4" "$ratio" "$5"
  bench_row "token hand-out, $clients clients, $2" "$1" \
    "$(printf '%.0f req/s, p99 %s ms' "$3" "$4")" "$hello_figure" "$ratio"
}

bench_backend() { # name database_url
  local name=$1 url=$2 ids key started
  export DATABASE_URL=$url ENCRYPTION_KEY=$("$bin" key gen) LOG_LEVEL=warn
  echo "a-long-enough-password" | "$bin" user add --email bench@example.com --role admin --password-stdin >/dev/null
  started=$SECONDS
  "$bin" seed --clients 0 --connected "$clients" --made-up-tokens --expiring-within 6h >/dev/null
  printf '%-9s seed --connected %s: %d s\n' "$name" "$clients" $((SECONDS - started))
  key=$("$bin" api-key create --name bench --scope tokens:read --owner bench@example.com)
  ids=$work/$name.ids
  client_ids "$name" "$url" >"$ids"
  export CLIENT_IDS=$ids BENCH_KEY=$key
  start_hub "$name" cold
  local idle_rss; idle_rss=$(rss_mb "$hub_pid")
  local rps p99 bad
  local pass
  pass=$(ONE_PASS=1 wrk -t2 -c"$connections" -d"$((clients / 500 + 5))s" -s "$lua" "$base")
  read -r rps p99 < <(awk '/^one pass:/ {print $3, $4}' <<<"$pass")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$pass"); bad=${bad:-0}
  report "$name" cold "$rps" "$p99" "$bad"
  # The cold pass leaves a one-time burst of writes behind: the first hand-out of each
  # client is audited at once and its use noted (10,000 rows each). Traffic runs while
  # they are written, unmeasured, so the warm run sees the steady state: the tokens from
  # memory and the background writes at their steady rate (gathered hand-outs, uses).
  measure -d"$settle"s -s "$lua" "$base" >/dev/null
  read -r rps p99 _ bad < <(measure -d"${seconds}s" -s "$lua" "$base")
  report "$name" warm "$rps" "$p99" "$bad"
  # Every client is in the token cache now: the growth over the idle server bounds what
  # an entry costs (it also holds allocator slack and the buffers of the runs).
  local warm_rss; warm_rss=$(rss_mb "$hub_pid")
  printf 'server RSS (%s): idle %s MB, after the runs %s MB: %s KB per cached client at most\n' \
    "$name" "$idle_rss" "$warm_rss" "$(( (warm_rss - idle_rss) * 1024 / clients ))"
  bench_row "server RSS, idle → $clients clients cached" "$name" "$idle_rss → $warm_rss MB" - -
  unset DATABASE_URL ENCRYPTION_KEY CLIENT_IDS BENCH_KEY
}

on_both_databases bench_backend handout
