#!/usr/bin/env python3
"""Drives one sync benchmark against a running `connecthub demo` (see bench-syncs.sh):
connects the sandbox's Klaviyo account AcmeK1 with OAuth, gives it N profiles, measures
the sandbox's own page-serving rate (paging straight through its API), then a full sync
through connecthub, then an incremental one after 1 % changed; peak RSS of the server
before and after. Prints one line per figure."""
import base64, http.cookiejar, json, re, sys, time, urllib.parse, urllib.request

base, key, pid, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
email, password = sys.argv[5], sys.argv[6]

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

jar = http.cookiejar.CookieJar()
browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

def call(method, url, data=None, headers=None, opener=None):
    body = None
    headers = dict(headers or {})
    if isinstance(data, dict):
        body = urllib.parse.urlencode(data).encode()
        headers.setdefault("content-type", "application/x-www-form-urlencoded")
    elif data is not None:
        body = json.dumps(data).encode()
        headers["content-type"] = "application/json"
    req = urllib.request.Request(url if url.startswith("http") else base + url, body, headers, method=method)
    try:
        resp = (opener or browser).open(req)
    except urllib.error.HTTPError as e:
        resp = e
    return resp.status, resp.headers, resp.read()

def post_json(path, obj):
    req = urllib.request.Request(base + path, json.dumps(obj).encode(),
                                 {"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req) as resp:
        return resp.status

def csrf(path):
    _, _, html = call("GET", path)
    return re.search(rb'csrf-token" content="([^"]*)', html).group(1).decode()

def api(method, path):
    status, _, body = call(method, path, headers={"authorization": f"Bearer {key}"})
    return status, json.loads(body or b"null")

def peak_rss_mb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0

def rss_mb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0

# Sign in, connect Klaviyo AcmeK1 through the sandbox's consent page.
call("POST", "/login", {"email": email, "password": password, "csrf_token": csrf("/login")})
_, h, _ = call("GET", "/api/integrations/klaviyo/oauth/start?redirect_path=/admin/clients")
authorize = h.get("Location")
parts = urllib.parse.urlsplit(authorize)
form = dict(urllib.parse.parse_qsl(parts.query))
form.update({"decision": "allow", "account": "AcmeK1"})
_, h, _ = call("POST", f"{parts.scheme}://{parts.netloc}{parts.path}", form)
status, _, _ = call("GET", h.get("Location"))
assert status == 303, status
_, clients = api("GET", "/api/v1/clients?provider=klaviyo")
client = clients["clients"][0]["id"]

status = post_json("/sandbox/_control/volume",
                   {"provider": "klaviyo", "account": "AcmeK1", "model": "profiles", "count": count})
assert status == 200

# The sandbox's own rate: every page straight from its API, one connection after another.
basic = base64.b64encode(b"sandbox-klaviyo-client:sandbox-klaviyo-secret").decode()
_, _, body = call("POST", "/sandbox/klaviyo/oauth/token",
                  {"grant_type": "client_credentials", "scope": "profiles:read"},
                  {"authorization": f"Basic {basic}"})
token = json.loads(body)["access_token"]
url = base + "/sandbox/klaviyo/api/profiles/?page%5Bsize%5D=100"
seen, started = 0, time.monotonic()
while url:
    _, _, body = call("GET", url, headers={"authorization": f"Bearer {token}", "revision": "2024-10-15"})
    page = json.loads(body)
    seen += len(page["data"])
    url = page["links"]["next"]
sandbox_seconds = time.monotonic() - started
assert seen == count, seen
sandbox_rate = count / sandbox_seconds

def run(full):
    _, before = api("GET", f"/api/v1/clients/{client}/syncs")
    finished = [s for s in before["syncs"] if s["model"] == "profiles"][0]["last_finished_at"]
    started = time.monotonic()
    status, _ = api("POST", f"/api/v1/clients/{client}/syncs/profiles/run" + ("?full=true" if full else ""))
    assert status == 202, status
    top = rss_mb()
    while True:
        time.sleep(0.05)
        top = max(top, rss_mb())
        _, now = api("GET", f"/api/v1/clients/{client}/syncs")
        state = [s for s in now["syncs"] if s["model"] == "profiles"][0]
        if state["last_finished_at"] != finished and state["status"] != "running":
            return time.monotonic() - started, state, top

rss_before = rss_mb()
full_seconds, full, full_top = run(True)
assert full["added"] == count, full
change = count // 100
post_json("/sandbox/_control/volume", {"provider": "klaviyo", "account": "AcmeK1", "model": "profiles", "change": change})
inc_seconds, inc, inc_top = run(False)
assert inc["updated"] == change, inc
print(f"  sandbox alone:     {sandbox_rate:9.0f} records/s ({sandbox_seconds:.1f} s for {count})")
print(f"  full sync:         {count / full_seconds:9.0f} records/s ({full_seconds:.1f} s; ratio to the sandbox {count / full_seconds / sandbox_rate:.2f})")
print(f"  RSS:               {rss_before:.0f} MB before, {full_top:.0f} MB at most during the full sync (+{full_top - rss_before:.0f} MB; peak since start {peak_rss_mb():.0f} MB)")
print(f"  incremental (1 %): {inc_seconds:.2f} s = {100 * inc_seconds / full_seconds:.1f} % of the full run ({inc['updated']} updated)")
