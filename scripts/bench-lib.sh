# Shared by the bench scripts (sourced, not run): a scratch directory and servers that go
# away on exit (also on Ctrl-C or SIGTERM), free ports, medians, signing in with curl,
# and running one benchmark on SQLite and then on a fresh PostgreSQL database.
pg_server=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d)
pids=()       # servers still running
databases=()  # PostgreSQL databases still to drop

# Runs a server in the background and remembers it. The command must be the server itself
# (use `env -C dir VAR=value … binary`, which execs it), not a subshell: $! is what gets
# stopped, and a subshell's children would outlive it.
start_server() { # log_file command…
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  pids+=($!)
}

# Waits until the last server started answers <url> (it exits on its own: show its log).
wait_until_up() { # url
  local p=${pids[-1]}
  until curl -sf -o /dev/null "$1"; do
    running "$p" || { echo "the server stopped:"; cat "$work"/*.log; exit 1; }
    sleep 0.1
  done
}

running() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }

# SIGTERM, then up to 15 s for a graceful exit (the server finishes its requests and
# flushes its buffers), then SIGKILL; reaps each and forgets it.
stop_servers() { # pid…
  local p deadline=$((SECONDS + 15)) left=()
  for p; do kill -TERM "$p" 2>/dev/null || true; done
  for p; do
    while running "$p" && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do [[ " $* " == *" $p "* ]] || left+=("$p"); done
  pids=("${left[@]}")
}

drop_database() { # name
  psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" || true
  local left=() d
  for d in "${databases[@]}"; do [[ $d == "$1" ]] || left+=("$d"); done
  databases=("${left[@]}")
}

cleanup() {
  set +e
  trap '' INT TERM  # a second Ctrl-C must not cut the clean-up short
  ((${#pids[@]})) && stop_servers "${pids[@]}"
  local d
  for d in "${databases[@]}"; do drop_database "$d"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Seconds on stdin, one per line → their median in ms.
median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] * 1000}'; }

sign_in() { # base jar email password
  local token
  token=$(curl -s -c "$2" -b "$2" "$1/login" | grep -o 'csrf-token" content="[^"]*' | cut -d'"' -f3)
  curl -s -o /dev/null -c "$2" -b "$2" -d "email=$3&password=$4&csrf_token=$token" "$1/login"
}

# Calls "function sqlite <path>" then "function postgres <url>"; stops the servers each
# one started before the next begins, and drops the PostgreSQL database afterwards.
# BENCH_ONLY=sqlite or BENCH_ONLY=postgres runs the one database only.
on_both_databases() { # function name_prefix
  # Bash scopes are dynamic: the benchmark function can overwrite these locals, hence
  # names it will not use.
  local first_of_backend=${#pids[@]}
  if [[ ${BENCH_ONLY:-sqlite} == sqlite ]]; then
    "$1" sqlite "$work/$2.db"
    stop_servers "${pids[@]:first_of_backend}"
  fi
  if [[ ${BENCH_ONLY:-postgres} != postgres ]]; then
    return
  elif psql "$pg_server/postgres" -qc 'select 1' >/dev/null 2>&1; then
    local bench_database=connecthub_$2_$$
    databases+=("$bench_database")
    psql "$pg_server/postgres" -qc "CREATE DATABASE $bench_database"
    "$1" postgres "$pg_server/$bench_database"
    stop_servers "${pids[@]:first_of_backend}"
    drop_database "$bench_database"
  else
    echo "PostgreSQL not reachable at $pg_server: skipped"
  fi
}

# wrk at $connections connections with the given options and URL (pass -d for the
# duration) → "requests_per_second p99_ms requests non_2xx".
measure() {
  local out rps p99 total bad
  out=$(wrk -t2 -c"$connections" --latency "$@")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  echo "$rps $p99 $total ${bad:-0}"
}

# Appends one row to the Markdown table file $BENCH_TABLE names (scripts/bench-all.sh sets
# it); nothing without it. Columns: benchmark, database, figure, baseline, ratio.
bench_row() { # benchmark database figure baseline ratio
  [[ -n ${BENCH_TABLE:-} ]] || return 0
  printf '| %s | %s | %s | %s | %s |\n' "$@" >>"$BENCH_TABLE"
}

# sqlite → SQLite, postgres → PostgreSQL (the database column of a row).
db_label() { case $1 in sqlite) echo SQLite ;; postgres) echo PostgreSQL ;; *) echo "$1" ;; esac; }

# a / b with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'; }
