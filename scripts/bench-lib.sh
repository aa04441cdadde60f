# Shared by the bench scripts (sourced, not run): a scratch directory and servers that go
# away on exit, free ports, medians, signing in with curl, and running one benchmark on
# SQLite and then on a fresh PostgreSQL database.
pg_server=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Seconds on stdin, one per line → their median in ms.
median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] * 1000}'; }

sign_in() { # base jar email password
  local token
  token=$(curl -s -c "$2" -b "$2" "$1/login" | grep -o 'csrf-token" content="[^"]*' | cut -d'"' -f3)
  curl -s -o /dev/null -c "$2" -b "$2" -d "email=$3&password=$4&csrf_token=$token" "$1/login"
}

on_both_databases() { # function name_prefix: calls "function sqlite <path>" then "function postgres <url>"
  "$1" sqlite "$work/$2.db"
  if psql "$pg_server/postgres" -qc 'select 1' >/dev/null 2>&1; then
    local db=connecthub_$2_$$
    psql "$pg_server/postgres" -qc "CREATE DATABASE $db"
    "$1" postgres "$pg_server/$db"
    kill "${pids[-1]}" 2>/dev/null || true; sleep 0.5
    psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  else
    echo "PostgreSQL not reachable at $pg_server: skipped"
  fi
}
