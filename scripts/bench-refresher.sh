#!/usr/bin/env bash
# The background refresher at scale (issue 18), on SQLite and on PostgreSQL: N connections
# (default 100,000) whose tokens are real at the sandbox and expire spread over SPREAD
# seconds (default 600). The schedule is compressed — 100,000 expiries over 10 minutes
# instead of an hour, with a 60 s refresh margin and 90 s of lead — so a run takes
# minutes: the refresher has to go six times as fast as it would at 100,000 hourly tokens.
# Before the staggered ones fall due, BURST connections (default 10,000) are all due at
# once, about a minute after the server starts: how fast the refresher drains a backlog.
# (A token living less than twice the margin is refreshed at half its life, hence the
# burst's 2 × 60 + 1 s tokens.)
#
# A third process, `connecthub demo` on its own SQLite file, plays the provider (as in
# two-instances.sh), so the sandbox's work is not counted against the refresher's process.
# Measured per database:
#   - refreshes/s: over the whole run, and the busiest 10 s (the backlog being drained)
#   - lateness of each staggered refresh after its due time (p50/p99/max), from the
#     refresh history (refresh_attempts.at) against the due times snapshotted before start
#   - database statements per refresh: connecthub_db_statements_total from /metrics (every
#     statement the process sent, transaction control included) over the refreshes made
#   - tokens that expired unrefreshed (must be 0)
#   - the sandbox token endpoint's own capacity, hammered with wrk at the same concurrency
#     with fresh refresh tokens (one per request) → ratio busiest-10-s rate / capacity.
# INSTANCES=2 (PostgreSQL only; the SQLite run is skipped): two instances share the work
# on one database; at KILL_AFTER seconds (default: half way through the spread) the second
# is killed with SIGKILL. Then also measured: each instance's share before the kill (its
# connecthub_token_refreshes_total), the sandbox's own count of refreshes per grant (none
# may be refreshed twice, no rotated refresh token may come back), and the lateness of the
# refreshes due in the minute after the kill (the survivor takes the dead one's leases
# once they run out: 30 s).
# Usage: scripts/bench-refresher.sh   (env: N, BURST, SPREAD, REFRESH_CONCURRENCY, INSTANCES,
#        KILL_AFTER, BENCH_TABLE)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
BURST=${BURST:-10000}
SPREAD=${SPREAD:-600}
MARGIN=60
LEAD=150
concurrency=${REFRESH_CONCURRENCY:-8}
instances=${INSTANCES:-1}
kill_after=${KILL_AFTER:-$((MARGIN + LEAD + SPREAD / 2))}
if [[ -z ${BENCH_BIN:-} ]]; then cargo build --release -q --bin connecthub; fi
bin=${BENCH_BIN:-$PWD/target/release/connecthub}   # BENCH_BIN: another build, for a smoke run
source scripts/bench-lib.sh
key=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')

provider_port=$(port)
provider=http://127.0.0.1:$provider_port
# Refreshed tokens live an hour: each connection is refreshed once in the run.
start_server "$work/provider.log" env -C "$work" DATABASE_URL="$work/provider.db" \
  BIND="127.0.0.1:$provider_port" PUBLIC_URL="$provider" ENCRYPTION_KEY="$key" LOG_LEVEL=warn \
  SYNC_SCHEDULE=false SANDBOX_ACCESS_TOKEN_TTL_SECS=3600 "$bin" demo
wait_until_up "$provider/healthz"
provider_pid=${pids[-1]}

# Sets instance_url (not printed: in a $(…) subshell the server would not be tracked,
# nor stopped at the end).
start_instance() { # backend url name
  local app_port app
  app_port=$(port)
  app=http://127.0.0.1:$app_port
  start_server "$work/$1-$3.log" env -C "$work" DATABASE_URL="$2" BIND="127.0.0.1:$app_port" \
    PUBLIC_URL="$app" ENCRYPTION_KEY="$key" LOG_LEVEL=warn SYNC_SCHEDULE=false \
    TOKEN_REFRESH_MARGIN_SECS=$MARGIN REFRESH_CONCURRENCY="$concurrency" \
    KLAVIYO_AUTHORIZE_URL="$provider/sandbox/klaviyo/oauth/authorize" \
    KLAVIYO_TOKEN_URL="$provider/sandbox/klaviyo/oauth/token" \
    KLAVIYO_REVOKE_URL="$provider/sandbox/klaviyo/oauth/revoke" \
    KLAVIYO_API_BASE_URL="$provider/sandbox/klaviyo" KLAVIYO_ISSUER="$provider/sandbox/klaviyo" \
    "$bin" demo
  wait_until_up "$app/healthz"
  instance_url=$app
}

sql() { # backend url query → rows, fields separated by |
  if [[ $1 == sqlite ]]; then sqlite3 "$2" "$3"; else psql "$2" -qAtc "$3"; fi
}

seed() { # url count after within
  env DATABASE_URL="$1" ENCRYPTION_KEY="$key" TOKEN_REFRESH_MARGIN_SECS=$MARGIN \
    "$bin" seed --clients 0 --connected "$2" --expiring-after "$3s" --expiring-within "$4s" \
    --sandbox-url "$provider"
}

statements() { curl -s "$1/metrics" | awk '/^connecthub_db_statements_total/ {print $2}'; }
refreshed_by() { curl -s "$1/metrics" | awk '/^connecthub_token_refreshes_total/ && /outcome="success"/ {n += $2} END {print n + 0}'; }

# p50 p99 max of seconds on stdin.
percentiles() {
  sort -g | awk 'function at(q) {i = int(NR * q); return a[i > 0 ? i : 1]}
    {a[NR] = $1} END {if (NR == 0) print "- - -"; else printf "%.2f %.2f %.2f\n", at(0.5), at(0.99), a[NR]}'
}

# The sandbox's refresh grant alone, at the refresher's concurrency: requests/s.
sandbox_capacity() {
  local tokens=$work/tokens.txt
  : >"$tokens"
  for _ in 1 2 3 4 5 6; do
    python3 - "$provider" >>"$tokens" <<'EOF'
import json, sys, urllib.request
body = json.dumps({"provider": "klaviyo", "account": "capacity", "expires_in": [3600] * 10000}).encode()
req = urllib.request.Request(sys.argv[1] + "/sandbox/_control/grants", body, {"content-type": "application/json"})
for g in json.load(urllib.request.urlopen(req))["grants"]:
    print(g["refresh_token"])
EOF
  done
  cat >"$work/refresh.lua" <<'EOF'
local threads, count = {}, 0
function setup(thread) count = count + 1; thread:set("id", count); table.insert(threads, thread) end
function init(args)
  tokens, i = {}, 0
  local n = 0
  for line in io.lines(args[1]) do
    n = n + 1
    if n % tonumber(args[2]) == id - 1 then tokens[#tokens + 1] = line end
  end
end
function request()
  i = i % #tokens + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. args_auth}, "grant_type=refresh_token&refresh_token=" .. tokens[i])
end
args_auth = "c2FuZGJveC1rbGF2aXlvLWNsaWVudDpzYW5kYm94LWtsYXZpeW8tc2VjcmV0"
EOF
  local threads=2
  ((concurrency < 2)) && threads=1
  wrk -t"$threads" -c"$concurrency" -d5s -s "$work/refresh.lua" "$provider/sandbox/klaviyo/oauth/token" \
    -- "$tokens" "$threads" >"$work/wrk.txt"
  # Only granted refreshes count: on a fast machine the run can use up the 60,000 fresh
  # refresh tokens, and a used one is refused (what this function prints is the figure,
  # so the note goes to stderr).
  grep -q "Non-2xx" "$work/wrk.txt" && { echo "sandbox capacity run: some refreshes refused (tokens used up?)" >&2; cat "$work/wrk.txt" >&2; }
  awk '/requests in/ {n = $1; t = $4; sub(/s,?$/, "", t)} /Non-2xx/ {bad = $NF}
    END {if (t > 0) printf "%d", (n - bad) / t; else print 0}' "$work/wrk.txt"
}

bench() { # backend url
  local backend=$1 url=$2 name
  [[ $1 == sqlite ]] && name=SQLite || name=PostgreSQL
  if ((instances > 1)) && [[ $backend == sqlite ]]; then
    echo "SQLite: skipped (INSTANCES=$instances shares one PostgreSQL database)"
    return
  fi
  env DATABASE_URL="$url" ENCRYPTION_KEY="$key" "$bin" migrate >/dev/null
  local t0=$SECONDS
  seed "$url" "$N" $((MARGIN + LEAD)) $((MARGIN + LEAD + SPREAD))
  echo "$name: seeded $N connections in $((SECONDS - t0)) s"
  sql "$backend" "$url" "CREATE TABLE bench_due AS SELECT client_id, refresh_at, expires_at, 0 AS burst FROM credentials"
  seed "$url" "$BURST" $((2 * MARGIN + 1)) $((2 * MARGIN + 2))
  sql "$backend" "$url" "INSERT INTO bench_due SELECT client_id, refresh_at, expires_at, 1 FROM credentials
    WHERE client_id NOT IN (SELECT client_id FROM bench_due)"
  local app started before
  start_instance "$backend" "$url" a
  app=$instance_url
  local second="" second_pid="" killed_at="" share=""
  if ((instances > 1)); then
    start_instance "$backend" "$url" b
    second=$instance_url
    second_pid=${pids[-1]}
  fi
  before=$(statements "$app")
  local total=$((N + BURST)) done=0 started=$SECONDS deadline=$((SECONDS + MARGIN + LEAD + SPREAD + 300))
  while ((done < total && SECONDS < deadline)); do
    sleep 5
    done=$(sql "$backend" "$url" "SELECT count(DISTINCT client_id) FROM refresh_attempts WHERE outcome = 'success'")
    echo "  $name: $done of $total refreshed"
    if [[ -n $second && -z $killed_at ]] && ((SECONDS - started >= kill_after)); then
      local by_a by_b
      by_a=$(refreshed_by "$app"); by_b=$(refreshed_by "$second")
      kill -KILL "$second_pid"
      killed_at=$(date +%s.%N)
      share="instance a $by_a, instance b $by_b refreshes before the kill"
      echo "  $name: killed instance b (SIGKILL); $share"
    fi
  done
  local after
  after=$(statements "$app")
  local epoch
  if [[ $backend == sqlite ]]; then
    epoch="(julianday(@) - 2440587.5) * 86400.0"
  else
    epoch="extract(epoch FROM @)"
  fi
  local first="SELECT client_id, min(at) AS at FROM refresh_attempts WHERE outcome = 'success' GROUP BY client_id"
  # Lateness of the staggered ones only: the burst is due before the server even starts.
  sql "$backend" "$url" "SELECT ${epoch//@/f.at}, ${epoch//@/d.refresh_at}, ${epoch//@/d.expires_at}, d.burst
    FROM bench_due d LEFT JOIN ($first) f ON f.client_id = d.client_id" >"$work/$backend.times"
  read -r p50 p99 max < <(awk -F'|' '$4 == 0 && $1 != "" {print $1 - $2}' "$work/$backend.times" | percentiles)
  local expired refreshed span peak
  expired=$(awk -F'|' '$1 == "" || $1 > $3 {n++} END {print n + 0}' "$work/$backend.times")
  refreshed=$(awk -F'|' '$1 != "" {n++} END {print n + 0}' "$work/$backend.times")
  span=$(awk -F'|' '$1 != "" {if (!s || $1 < s) s = $1; if ($1 > e) e = $1} END {printf "%.1f", e - s}' "$work/$backend.times")
  peak=$(awk -F'|' '$1 != "" {b[int($1 / 10)]++} END {for (k in b) if (b[k] > m) m = b[k]; printf "%.0f", m / 10}' "$work/$backend.times")
  local overall per
  overall=$(awk -v n="$refreshed" -v s="$span" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}')
  per=$(awk -v a="$after" -v b="$before" -v n="$refreshed" 'BEGIN {printf "%.1f", (n > 0 ? (a - b) / n : 0)}')
  [[ -z $second ]] || per="-"   # the killed instance's statements are not known
  if [[ -n $second ]]; then
    local counts after_kill
    counts=$(curl -s "$provider/sandbox/_control/grants?provider=klaviyo")
    after_kill=$(awk -F'|' -v k="$killed_at" '$4 == 0 && $1 != "" && $2 >= k && $2 < k + 60 {print $1 - $2}' "$work/$backend.times" | percentiles)
    echo "$name: two instances: $share; instance a $(refreshed_by "$app") in all"
    echo "$name: sandbox: $counts"
    echo "$name: lateness of the refreshes due in the minute after the kill (p50/p99/max): $after_kill s"
    bench_row "refresher, two instances, $N + $BURST, one killed at ${kill_after} s" "$name" \
      "$share; sandbox $counts; due in the minute after the kill: p50/p99/max $after_kill s late" "-" "-"
  fi
  local capacity ratio
  capacity=$(sandbox_capacity)
  ratio=$(awk -v p="$peak" -v c="$capacity" 'BEGIN {printf "%.2f", (c > 0 ? p / c : 0)}')
  echo "$name: $refreshed of $total refreshed over ${span} s: ${overall}/s overall, busiest 10 s ${peak}/s"
  echo "$name: lateness after due (staggered): p50 ${p50} s, p99 ${p99} s, max ${max} s; expired unrefreshed: $expired"
  echo "$name: ${per} database statements per refresh; sandbox token endpoint alone: ${capacity} req/s at $concurrency connections; ratio $ratio"
  bench_row "refresher drain, $BURST due at once, concurrency $concurrency" "$name" "$peak refreshes/s" "sandbox refresh grant $capacity req/s" "$ratio"
  bench_row "refresher, $N expiring over ${SPREAD} s: lateness p50/p99/max" "$name" "$p50 / $p99 / $max s, $expired expired" "-" "-"
  bench_row "refresher, statements per refresh" "$name" "$per" "-" "-"
}

on_both_databases bench refresher
