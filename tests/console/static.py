"""The console's static files over HTTP (docs/console.md, "Static files"),
against a real wizmail-server, without a browser: the page and the assets
without a session, their types, ETag and 304, the security headers on them,
Chart.js from Debian's libjs-chart.js, 404 for what is not there (a path
outside the table, a traversal, a method other than GET), and no data
reachable without a session."""
import http.client, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from harness import Home, Server, check, free_port, port_open, run_tests, wait_until

CSP = "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'"
CHART_CANDIDATES = ["/usr/share/javascript/chart.js/chart.umd.js", "/usr/share/javascript/chart.js/chart.min.js"]

home = Home(accounts=(("alice", "secret"), ("postmaster", "pm")))
port = free_port()
with open(os.path.join(home.path, "def", "wiz98msenv.dat"), "a") as f:
    f.write(f"admin_port={port}\nadmin_accounts=postmaster\n")
srv = Server(home)
wait_until(lambda: port_open(port), "the console listens on admin_port")


def get(path, method="GET", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    r.body = r.read()
    c.close()
    return r


def test_a_page_and_assets_without_session():
    for path, ctype in (("/", "text/html"), ("/index.html", "text/html"), ("/assets/app.js", "text/javascript"),
                        ("/assets/admin.js", "text/javascript"), ("/assets/style.css", "text/css"),
                        ("/assets/i18n/en.json", "application/json"), ("/assets/i18n/ja.json", "application/json"),
                        ("/assets/favicon.svg", "image/svg+xml")):
        r = get(path)
        check(r.status == 200 and r.getheader("Content-Type", "").startswith(ctype) and r.body,
              f"GET {path} without a session: 200 {ctype}")
        check(r.getheader("Content-Security-Policy") == CSP and r.getheader("X-Content-Type-Options") == "nosniff"
              and r.getheader("X-Frame-Options") == "DENY", f"{path} carries the CSP and the other headers")
    page = get("/").body.decode()
    check("<script src=\"/assets/app.js\"" in page and "alice" not in page, "the page loads its script and holds no data")
    check("ログアウト" in get("/assets/i18n/ja.json").body.decode(), "ja.json is served as UTF-8 Japanese")


def test_b_etag_and_304():
    r = get("/assets/app.js")
    tag = r.getheader("ETag")
    check(tag and tag.startswith('"') and r.getheader("Cache-Control") == "no-cache", f"an ETag and no-cache ({tag})")
    r2 = get("/assets/app.js", headers={"If-None-Match": tag})
    check(r2.status == 304 and r2.body == b"", "the same ETag: 304 without a body")
    check(get("/assets/app.js", headers={"If-None-Match": '"other"'}).status == 200, "another ETag: 200")
    check(get("/assets/style.css").getheader("ETag") != tag, "each file has its own ETag")


def test_c_chart_js_from_debian():
    path = next((p for p in CHART_CANDIDATES if os.path.isfile(p)), None)
    r = get("/assets/chart.js")
    if path is None:
        check(r.status == 404, "without libjs-chart.js: /assets/chart.js is 404")
        return
    check(r.status == 200 and r.getheader("Content-Type", "").startswith("text/javascript"),
          f"/assets/chart.js: 200 JavaScript ({r.status})")
    check(r.body == open(path, "rb").read(), f"the bytes of {path}")
    tag = r.getheader("ETag")
    check(get("/assets/chart.js", headers={"If-None-Match": tag}).status == 304, "chart.js revalidates: 304")


def test_d_not_found_and_no_data():
    for path in ("/assets/nope.js", "/assets/", "/assets/../def/smtpenv.dat", "/assets/%2e%2e/def/smtpenv.dat",
                 "/assets/i18n/fr.json", "/def/smtpenv.dat", "/login.html"):
        r = get(path)
        check(r.status == 404 and b"port=" not in r.body, f"GET {path}: 404, nothing of the home")
    r = get("/assets/app.js", method="POST")
    check(r.status in (404, 405), f"POST to an asset is not served ({r.status})")
    for path in ("/api/me", "/api/accounts", "/api/dashboard", "/api/queue", "/api/config", "/api/me/vacation"):
        r = get(path)
        check(r.status == 401, f"GET {path} without a session: 401 ({r.status})")


run_tests(globals())
srv.stop()
