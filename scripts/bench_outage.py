#!/usr/bin/env python3
"""Drives one provider-outage benchmark against a running `connecthub demo` (see
bench-outage.sh): N end users each connect the sandbox's Klaviyo account through a connect
session, the sandbox's Klaviyo token endpoint then answers 503 for the outage, and the
refresh calls it receives are counted (per connection per minute); then it comes back and
the time until every connection is fresh again and the connection.recovered events are
measured. Prints `key=value` lines for the shell script."""
import http.cookiejar, json, re, sqlite3, subprocess, sys, time, urllib.parse, urllib.request
from concurrent.futures import ThreadPoolExecutor

base, key, database = sys.argv[1], sys.argv[2], sys.argv[3]
count, outage_secs, sample_secs = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])

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

def breaker_state():
    m = re.search(r'connecthub_provider_breaker_state\{provider="klaviyo"\} (\d+)', metrics())
    return int(m.group(1)) if m else -1

FRESH = ("SELECT COUNT(*) FROM credentials JOIN clients ON clients.id = credentials.client_id "
         "WHERE clients.status = 'active' AND credentials.expires_at > {now}")
RECOVERED = "SELECT COUNT(*) FROM webhook_events WHERE event_type = 'connection.recovered'"

def query(sql):
    """One number from the server's database (SQLite file or PostgreSQL URL)."""
    if database.startswith("postgres"):
        out = subprocess.run(["psql", database, "-tAc", sql.format(now="(now() at time zone 'utc')")],
                             check=True, capture_output=True, text=True).stdout
        return int(out.strip())
    with sqlite3.connect(database) as db:
        return db.execute(sql.format(now="strftime('%Y-%m-%d %H:%M:%f', 'now')")).fetchone()[0]

started = time.monotonic()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(connect, range(count)))
print(f"connect_seconds={time.monotonic() - started:.1f}")

control({"provider": "klaviyo", "token_fault": {"kind": "status", "status": 503}, "token_failures": 100000000})
before, down = refresh_calls(), time.monotonic()
opened_at, states = None, set()
while time.monotonic() - down < outage_secs:
    time.sleep(min(sample_secs, max(0.0, outage_secs - (time.monotonic() - down))))
    state = breaker_state()
    states.add(state)
    if state == 2 and opened_at is None:
        opened_at = time.monotonic() - down
during, outage = refresh_calls() - before, time.monotonic() - down
control({"provider": "klaviyo", "token_failures": 0})
back, at_back = time.monotonic(), refresh_calls()
fresh = 0
while fresh < count and time.monotonic() - back < 1800:
    time.sleep(1)
    fresh = query(FRESH)
recovery = time.monotonic() - back
recovery_calls = refresh_calls() - at_back
recovered = re.search(r'connecthub_provider_breaker_opened_total\{provider="klaviyo"\} (\d+)', metrics())
print(f"outage_seconds={outage:.1f}")
print(f"calls_during={during}")
print(f"breaker_opened_after={opened_at if opened_at is not None else -1:.1f}")
print(f"breaker_openings={recovered.group(1) if recovered else 0}")
print(f"fresh_after_recovery={fresh}")
print(f"recovery_seconds={recovery:.1f}")
print(f"recovery_calls={recovery_calls}")
print(f"recovered_events={query(RECOVERED)}")
