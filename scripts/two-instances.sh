#!/usr/bin/env bash
# Two connecthub instances behind nginx on one PostgreSQL database, as the README's
# deployment guide describes: sign-in, connecting Klaviyo through the sandbox, a token
# hand-out and a proxied call pass through nginx; then one instance is killed (SIGKILL)
# in the middle of a stream of requests, and the same flows pass again on the survivor.
# A third process, `connecthub demo` on its own SQLite file, plays the provider (the
# sandbox keeps its codes and tokens in memory, so both instances must share one).
# Needs PostgreSQL at $BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432) and
# nginx (installed with apt-get when missing). Stops everything it started on exit, also
# on Ctrl-C or SIGTERM. Usage: scripts/two-instances.sh [requests-during-the-kill]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-300}
if ! command -v nginx >/dev/null; then
  echo "installing nginx (Debian package nginx-light)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
cargo build -q --bin connecthub   # a debug build: this checks behaviour, not speed
bin=$PWD/target/debug/connecthub
source scripts/bench-lib.sh
psql "$pg_server/postgres" -qc 'select 1' >/dev/null || { echo "PostgreSQL not reachable at $pg_server"; exit 1; }

failures=0
check() { # description expected actual
  if [[ $2 == "$3" ]]; then echo "ok    $1"; else echo "FAIL  $1: expected $2, got $3"; failures=$((failures + 1)); fi
}

database=connecthub_two_$$
databases+=("$database")
psql "$pg_server/postgres" -qc "CREATE DATABASE $database"
db_url=$pg_server/$database
key=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')

# The provider: a demo instance of its own, reached directly (not through nginx).
provider_port=$(port)
provider=http://127.0.0.1:$provider_port
start_server "$work/provider.log" env -C "$work" DATABASE_URL="$work/provider.db" \
  BIND="127.0.0.1:$provider_port" PUBLIC_URL="$provider" ENCRYPTION_KEY="$key" LOG_LEVEL=warn "$bin" demo
wait_until_up "$provider/healthz"

nginx_port=$(port)
public=http://localhost:$nginx_port
a_port=$(port)
b_port=$(port)
start_instance() { # name port
  start_server "$work/$1.log" env -C "$work" DATABASE_URL="$db_url" BIND="127.0.0.1:$2" \
    PUBLIC_URL="$public" ENCRYPTION_KEY="$key" LOG_LEVEL=warn TRUSTED_PROXIES=127.0.0.1 \
    SERVICE_CACHE_SECS=10 \
    KLAVIYO_AUTHORIZE_URL="$provider/sandbox/klaviyo/oauth/authorize" \
    KLAVIYO_TOKEN_URL="$provider/sandbox/klaviyo/oauth/token" \
    KLAVIYO_REVOKE_URL="$provider/sandbox/klaviyo/oauth/revoke" \
    KLAVIYO_API_BASE_URL="$provider/sandbox/klaviyo" KLAVIYO_ISSUER="$provider/sandbox/klaviyo" \
    "$bin" demo
  wait_until_up "http://127.0.0.1:$2/healthz"
}
start_instance a "$a_port"   # first: it runs the migrations and creates the demo admin
a_pid=${pids[-1]}
start_instance b "$b_port"
until grep -q Password "$work/a.log"; do sleep 0.1; done
password=$(awk '/Password/ {print $2}' "$work/a.log")

mkdir -m 0777 "$work/nginx-temp"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 512; }
http {
  log_format upstreams '\$status \$upstream_addr';
  access_log $work/nginx-access.log upstreams;
  client_body_temp_path $work/nginx-temp/body;
  proxy_temp_path $work/nginx-temp/proxy;
  fastcgi_temp_path $work/nginx-temp/fastcgi;
  uwsgi_temp_path $work/nginx-temp/uwsgi;
  scgi_temp_path $work/nginx-temp/scgi;
  upstream connecthub {
    # A refused connection marks an instance down for 10 s; the request goes to the other.
    server 127.0.0.1:$a_port max_fails=1 fail_timeout=10s;
    server 127.0.0.1:$b_port max_fails=1 fail_timeout=10s;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://connecthub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
    }
  }
}
EOF
start_server "$work/nginx.log" nginx -c "$work/nginx.conf" -g 'daemon off;'
wait_until_up "$public/healthz"

# Sign-in, connect through the sandbox, a token and a proxied call; "$1" names the round.
flows() { # round account
  local jar=$work/$1.jar authorize callback done client token proxied
  sign_in "$public" "$jar" admin@connecthub.local "$password"
  check "$1: signed in (clients page)" 200 "$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" "$public/admin/clients")"
  authorize=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" "$public/api/integrations/klaviyo/oauth/start?redirect_path=/admin/clients")
  callback=$(curl -s -o /dev/null -w '%{redirect_url}' -d "${authorize#*\?}&decision=allow&account=$2" "${authorize%%\?*}")
  done=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -c "$jar" -b "$jar" "$callback")
  check "$1: connected $2 through the sandbox" "303 $public/admin/clients" "$done"
  client=$(curl -s -H "Authorization: Bearer $service_key" "$public/api/v1/clients" |
    python3 -c "import json,sys; print(max(json.load(sys.stdin)['clients'], key=lambda c: c['connected_at'])['id'])")
  token=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $service_key" "$public/api/v1/clients/$client/token")
  check "$1: token hand-out" 200 "$token"
  proxied=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $service_key" "$public/api/v1/proxy/$client/api/accounts")
  check "$1: proxied call" 200 "$proxied"
  last_client=$client
}

service_key=$(DATABASE_URL=$db_url ENCRYPTION_KEY=$key "$bin" api-key create --name two-instances \
  --scope tokens:read --scope clients:read --scope proxy --owner admin@connecthub.local)
flows "both up" AcmeK1

# A stream of hand-outs and proxied calls; instance a is killed after a third of them.
statuses=$work/statuses
for ((i = 0; i < requests; i++)); do
  if ((i == requests / 3)); then
    kill -KILL "$a_pid"; wait "$a_pid" 2>/dev/null || true
    echo "      killed instance a (SIGKILL) after $i requests"
  fi
  if ((i % 2)); then path=/api/v1/clients/$last_client/token; else path=/api/v1/proxy/$last_client/api/accounts; fi
  curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $service_key" "$public$path" >>"$statuses"
done
check "$requests requests while a was killed: all 200" "$requests" "$(grep -c '^200$' "$statuses" || true)"
echo "      statuses: $(sort "$statuses" | uniq -c | awk '{printf "%s x%s ", $2, $1}')"
flows "a killed" GlobexK2
check "healthz through nginx" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$public/healthz")"
echo "      nginx: requests by instance (a=$a_port, b=$b_port; two addresses: a refused, retried on b):"
awk '{$1=""; print}' "$work/nginx-access.log" | sort | uniq -c | sed 's/^/      /'

if ((failures)); then echo "$failures check(s) failed"; for f in a b provider nginx-error; do echo "--- $f"; tail -20 "$work/$f.log"; done; exit 1; fi
echo "all checks passed"
