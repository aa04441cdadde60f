#!/usr/bin/env bash
# Compares the server time of a wrong password with that of an unknown email (they must
# be about equal, so timing does not reveal which accounts exist). Prints medians and the
# ratio, measured in the same run. Usage: scripts/login-timing.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-40}
cargo build --release -q
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
export DATABASE_URL=$dir/timing.db PUBLIC_URL=http://127.0.0.1:$port BIND=127.0.0.1:$port
export ENCRYPTION_KEY=$(./target/release/connecthub key gen) LOG_LEVEL=warn
export LOGIN_MAX_ATTEMPTS_PER_IP=100000 LOGIN_MAX_ATTEMPTS_PER_ACCOUNT=100000
echo "a-long-enough-password" | ./target/release/connecthub user add --email known@example.com --password-stdin >/dev/null
./target/release/connecthub serve & server=$!
trap 'kill $server; rm -rf "$dir"' EXIT
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done

attempt() { # email -> the seconds one failed sign-in took
  local jar=$dir/jar token
  token=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:$port/login" | grep -o 'csrf-token" content="[^"]*' | cut -d'"' -f3)
  curl -s -o /dev/null -c "$jar" -b "$jar" -w '%{time_total}\n' \
    -d "email=$1&password=wrong-password-guess&csrf_token=$token" "http://127.0.0.1:$port/login"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Interleaved, so machine noise hits both the same way.
for _ in $(seq "$rounds"); do
  attempt known@example.com >>"$dir/wrong"
  attempt nobody@example.com >>"$dir/unknown"
done
wrong=$(median <"$dir/wrong")
unknown=$(median <"$dir/unknown")
echo "median wrong password: ${wrong}s   median unknown email: ${unknown}s"
awk -v a="$wrong" -v b="$unknown" 'BEGIN { printf "ratio unknown/wrong: %.2f (1.00 = indistinguishable)\n", b / a }'
