#!/usr/bin/env bash
# Compares the server time of a wrong password with that of an unknown email (they must
# be about equal, so timing does not reveal which accounts exist). Prints medians and the
# ratio, measured in the same run. Usage: scripts/login-timing.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-40}
cargo build --release -q
source scripts/bench-lib.sh
base=http://127.0.0.1:$(port)
export DATABASE_URL=$work/timing.db PUBLIC_URL=$base BIND=${base#http://}
export ENCRYPTION_KEY=$(./target/release/connecthub key gen) LOG_LEVEL=warn
export LOGIN_MAX_ATTEMPTS_PER_IP=100000 LOGIN_MAX_ATTEMPTS_PER_ACCOUNT=100000
echo "a-long-enough-password" | ./target/release/connecthub user add --email known@example.com --password-stdin >/dev/null
start_server "$work/server.log" ./target/release/connecthub serve
wait_until_up "$base/healthz"

attempt() { # email -> the seconds one failed sign-in took
  local jar=$work/jar token
  token=$(curl -s -c "$jar" -b "$jar" "$base/login" | grep -o 'csrf-token" content="[^"]*' | cut -d'"' -f3)
  curl -s -o /dev/null -c "$jar" -b "$jar" -w '%{time_total}\n' \
    -d "email=$1&password=wrong-password-guess&csrf_token=$token" "$base/login"
}
seconds_median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Interleaved, so machine noise hits both the same way.
for _ in $(seq "$rounds"); do
  attempt known@example.com >>"$work/wrong"
  attempt nobody@example.com >>"$work/unknown"
done
wrong=$(seconds_median <"$work/wrong")
unknown=$(seconds_median <"$work/unknown")
echo "median wrong password: ${wrong}s   median unknown email: ${unknown}s"
awk -v a="$wrong" -v b="$unknown" 'BEGIN { printf "ratio unknown/wrong: %.2f (1.00 = indistinguishable)\n", b / a }'
