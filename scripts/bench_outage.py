#!/usr/bin/env python3
"""Drives one provider-outage benchmark against a running `connecthub demo` (see
bench-outage.sh): the N connections on the sandbox's Klaviyo are either made here, each
end user connecting through a connect session (mode `connect`), or were seeded before
(mode `seed`: `connecthub seed --connected N`, then one connection is made here only to
wake the refresher, which otherwise notices tokens another process stored only after its
5-minute sleep; it is left out of every count). The sandbox's Klaviyo token endpoint then
answers 503 for the outage (from `start_at`, a Unix time, in mode `seed`), and the refresh
calls it receives are counted (per connection per minute); then it comes back and the time
until every connection is fresh again and the connection.recovered events are measured.
Prints `key=value` lines for the shell script.
Usage: bench_outage.py base api_key database_url count outage_secs sample_secs [connect|seed [start_at]]"""
import http.cookiejar, json, re, sqlite3, subprocess, sys, time, urllib.parse, urllib.request
from concurrent.futures import ThreadPoolExecutor

base, key, database = sys.argv[1], sys.argv[2], sys.argv[3]
count, outage_secs, sample_secs = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
mode = sys.argv[7] if len(sys.argv) > 7 else "connect"
start_at = float(sys.argv[8]) if len(sys.argv) > 8 else 0.0
assert mode in ("connect", "seed"), mode

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

def call(opener, method, url, data=None, headers=None):
    headers = dict(headers or {})
    body = None
    if isinstance(data, list):
        body = urllib.parse.urlencode(data).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    elif data is not None:
        body = json.dumps(data).encode()
        headers["content-type"] = "application/json"
    full = url if url.startswith("http") else base + url
    req = urllib.request.Request(full, body, headers, method=method)
    try:
        resp = opener.open(req, timeout=60)
    except urllib.error.HTTPError as e:
        resp = e
    return resp.status, resp.headers, resp.read()

plain = urllib.request.build_opener(NoRedirect)

def api(method, path, data=None):
    status, _, body = call(plain, method, path, data, {"authorization": f"Bearer {key}"})
    return status, json.loads(body or b"null")

def unescape(text):
    return text.replace("&amp;", "&").replace("&quot;", '"').replace("&#x27;", "'").replace("&lt;", "<").replace("&gt;", ">")

def connect(n):
    """End user n connects Klaviyo AcmeK1 through a connect session (what a browser does)."""
    status, session = api("POST", "/api/v1/connect-sessions",
                          {"end_user": {"id": f"bench-{n}"}, "allowed_providers": ["klaviyo"]})
    assert status == 201, (status, session)
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)
    path = urllib.parse.urlsplit(session["connect_url"]).path
    status, _, _ = call(browser, "GET", path)
    assert status == 200, status
    status, h, _ = call(browser, "GET", f"{path}/start/klaviyo")
    assert status == 302, status
    authorize = urllib.parse.urlsplit(h["Location"])
    form = urllib.parse.parse_qsl(authorize.query) + [("decision", "allow"), ("account", "AcmeK1")]
    status, h, _ = call(browser, "POST", f"{authorize.scheme}://{authorize.netloc}{authorize.path}", form)
    assert status in (302, 303), status
    status, _, page = call(browser, "GET", h["Location"])
    assert status == 200, status
    page = page.decode()
    action = unescape(re.search(r'<form method="post" action="([^"]*)"', page).group(1))
    fields = [(name, unescape(value)) for name, value in
              re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page)]
    status, _, _ = call(browser, "POST", action, fields)
    assert status in (200, 303), status

def control(body):
    status, _, text = call(plain, "POST", "/sandbox/_control/faults", body)  # JSON
    assert status == 200, text

def refresh_calls():
    _, _, body = call(plain, "GET", "/sandbox/_control/stats?provider=klaviyo")
    return json.loads(body)["token_calls"]["refresh_token"]

def metrics():
    _, _, body = call(plain, "GET", "/metrics")
    return body.decode()

def metric(name, text=None):
    m = re.search(name + r'\{provider="klaviyo"\} (\d+)', text if text is not None else metrics())
    return int(m.group(1)) if m else 0

def breaker_state():
    m = re.search(r'connecthub_provider_breaker_state\{provider="klaviyo"\} (\d+)', metrics())
    return int(m.group(1)) if m else -1

# The measured connections: all of them, or in mode `seed` the seeded ones (no end user),
# not the one made to wake the refresher.
SCOPE = "clients.end_user_id IS NULL" if mode == "seed" else "clients.end_user_id IS NOT NULL"
MEASURED = ("FROM credentials JOIN clients ON clients.id = credentials.client_id "
            f"WHERE clients.provider = 'klaviyo' AND {SCOPE}")
# Fresh: active again with a token still valid. Every measured token has expired by the end
# of the outage (see bench-outage.sh), so only a refresh after recovery makes one fresh.
IS_FRESH = "clients.status = 'active' AND credentials.expires_at > {now}"
FRESH = f"SELECT COUNT(*) {MEASURED} AND {IS_FRESH}"
EXPIRED = f"SELECT COUNT(*) {MEASURED} AND credentials.expires_at <= {{now}}"
IN_ERROR = f"SELECT COUNT(*) {MEASURED} AND clients.status = 'error'"
EXPIRED_ACTIVE = f"{EXPIRED} AND clients.status = 'active' AND credentials.refresh_failures = 0"
NOT_FRESH = f"SELECT clients.status, COUNT(*) {MEASURED} AND NOT ({IS_FRESH}) GROUP BY clients.status ORDER BY 1"
RECOVERED = "SELECT COUNT(*) FROM webhook_events WHERE event_type = 'connection.recovered'"

def rows(sql):
    """Rows from the server's database (SQLite file or PostgreSQL URL), as strings."""
    if database.startswith("postgres"):
        out = subprocess.run(["psql", database, "-tAc", sql.format(now="(now() at time zone 'utc')")],
                             check=True, capture_output=True, text=True).stdout
        return [line.split("|") for line in out.splitlines() if line]
    with sqlite3.connect(database, timeout=30) as db:
        found = db.execute(sql.format(now="strftime('%Y-%m-%d %H:%M:%f', 'now')")).fetchall()
    return [[str(v) for v in row] for row in found]

def query(sql):
    """One number from the server's database."""
    return int(rows(sql)[0][0])

started = time.monotonic()
if mode == "connect":
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(connect, range(count)))
    print(f"connect_seconds={time.monotonic() - started:.1f}")
else:
    connect("wake")  # stores a token: the refresher wakes and sees when the seeded ones fall due
    late = time.time() - start_at
    if late < 0:
        time.sleep(-late)
    print(f"outage_started_late={max(late, 0.0):.1f}")
print(f"measured_connections={query(f'SELECT COUNT(*) {MEASURED}')}")

calls_before = refresh_calls()
control({"provider": "klaviyo", "token_fault": {"kind": "status", "status": 503}, "token_failures": 100000000})
before, down = refresh_calls(), time.monotonic()
held_before = metric("connecthub_token_refreshes_held_back_total")
opened_at, states = None, set()
while time.monotonic() - down < outage_secs:
    time.sleep(min(sample_secs, max(0.0, outage_secs - (time.monotonic() - down))))
    state = breaker_state()
    states.add(state)
    if state == 2 and opened_at is None:
        opened_at = time.monotonic() - down
during, outage = refresh_calls() - before, time.monotonic() - down
held = metric("connecthub_token_refreshes_held_back_total") - held_before
expired, in_error, expired_active = query(EXPIRED), query(IN_ERROR), query(EXPIRED_ACTIVE)
control({"provider": "klaviyo", "token_failures": 0})
back, at_back = time.monotonic(), refresh_calls()
fresh = 0
while fresh < count and time.monotonic() - back < 1800:
    time.sleep(1)
    fresh = query(FRESH)
recovery = time.monotonic() - back
recovery_calls = refresh_calls() - at_back
not_fresh = rows(NOT_FRESH)
print(f"calls_before={calls_before}")
print(f"outage_seconds={outage:.1f}")
print(f"calls_during={during}")
print(f"held_back={held}")
print(f"breaker_opened_after={opened_at if opened_at is not None else -1:.1f}")
print(f"breaker_openings={metric('connecthub_provider_breaker_opened_total')}")
print(f"expired_at_outage_end={expired}")
print(f"in_error_at_outage_end={in_error}")
print(f"expired_still_active={expired_active}")
print(f"fresh_after_recovery={fresh}")
print(f"not_fresh={sum(int(n) for _, n in not_fresh)}")
print(f"not_fresh_by_status='{' '.join(f'{s}:{n}' for s, n in not_fresh) or '-'}'")
print(f"recovery_seconds={recovery:.1f}")
print(f"recovery_calls={recovery_calls}")
print(f"recovered_events={query(RECOVERED)}")
