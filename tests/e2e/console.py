"""The web console's server side (docs/console.md) against a real
wizmail-server on loopback, with Python's http.client only: login good and
bad, the auth penalty shared with SMTP AUTH, the session cookie's flags,
401 without a session, 403 without or with a wrong CSRF token, 403 for an
account on administrator endpoints and on another account's data, an
account created through the API listed by `wizmail account list`, an XSS
payload as an account name refused (and echoed only as JSON), the security
headers, /metrics on the console's port and on metrics_port, and HTTPS with
the test certificate (Secure cookie)."""
import base64, http.client, json, os, socket, ssl, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import CLI, Home, Server, check, free_port, run_tests, wait_until, port_open

PENALTY = ("auth_penalty_delay=200\nauth_penalty_max_delay=800\nauth_block_failures=4\n"
           "auth_block_time=600\n")
CSP = "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'"


class Console:
    """One HTTP(S) client from a chosen loopback source address, keeping the
    session cookie and the CSRF token the login returned."""

    def __init__(self, port, src="127.0.0.1", tls=False):
        self.port, self.src, self.tls = port, src, tls
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, csrf=True, cookie=True, headers=None):
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                            source_address=(self.src, 0), context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=(self.src, 0))
        h = dict(headers or {})
        if cookie and self.cookie:
            h["Cookie"] = self.cookie
        if csrf and self.csrf and method != "GET":
            h["X-CSRF-Token"] = self.csrf
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        r.body = raw
        r.json = json.loads(raw) if r.getheader("Content-Type", "").startswith("application/json") else None
        return r

    def login(self, account, password):
        r = self.request("POST", "/api/login", {"account": account, "password": password}, cookie=False)
        if r.status == 200:
            sc = r.getheader("Set-Cookie")
            self.cookie = sc.split(";")[0]
            self.csrf = r.json["csrf_token"]
        return r


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def smtp_auth(home, src, user, password):
    """One AUTH PLAIN on its own raw connection from `src`: the reply line."""
    s = socket.create_connection(("127.0.0.1", home.port), 30, source_address=(src, 0))
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO x\r\n")
    while True:
        line = f.readline()
        if not line or line[3:4] == b" ":
            break
    s.sendall(f"AUTH PLAIN {plain(user, password)}\r\n".encode())
    r = f.readline().decode()
    s.close()
    return r


home = Home(smtp_extra=PENALTY, accounts=(("alice", "secret"), ("bob", "bobpw"), ("postmaster", "pm")))
admin_port = free_port()
metrics_port = free_port()
with open(os.path.join(home.path, "def", "wiz98msenv.dat"), "a") as f:
    f.write(f"admin_port={admin_port}\nadmin_accounts=postmaster\nmetrics_port={metrics_port}\n")
srv = Server(home)
wait_until(lambda: port_open(admin_port), "the console listens on admin_port")


def test_a_login_good_bad_and_cookie_flags():
    c = Console(admin_port)
    r = c.login("alice", "wrong")
    check(r.status == 401 and r.json == {"error": "authentication failed"}, f"a wrong password: 401 JSON ({r.status})")
    check(r.getheader("Set-Cookie") is None, "and no cookie")
    r = c.login("nobody", "x")
    check(r.status == 401, "an unknown account: the same 401")
    r = c.login("alice", "secret")
    check(r.status == 200 and r.json["account"] == "alice" and r.json["admin"] is False,
          f"the right password: 200, alice, not admin ({r.status} {r.body[:100]!r})")
    sc = r.getheader("Set-Cookie")
    parts = [p.strip() for p in sc.split(";")]
    check(parts[0].startswith("wizmail_session=") and len(parts[0].split("=", 1)[1]) == 64,
          "the cookie holds a 256-bit session id")
    check("HttpOnly" in parts and "SameSite=Strict" in parts and "Path=/" in parts and "Secure" not in parts,
          f"cookie flags over plain HTTP: HttpOnly; SameSite=Strict; Path=/, no Secure ({sc})")
    check(len(c.csrf) == 64 and c.csrf not in sc, "a separate CSRF token comes in the body")
    r = c.request("GET", "/api/me")
    check(r.status == 200 and r.json["account"] == "alice", "GET /api/me with the cookie: alice")
    check(r.getheader("Cache-Control") == "no-store", "API answers are not cached (no-store)")
    for bad in (b"", b"{", b"[]", b'{"account":"alice"}', b'{"account":"alice","password":"secret","x":1}'):
        r = c.request("POST", "/api/login", bad, cookie=False)
        check(r.status == 400 and r.json and "error" in r.json, f"a malformed login body {bad!r}: 400 JSON")


def test_b_no_session_401_and_headers():
    c = Console(admin_port)
    for method, path in (("GET", "/api/me"), ("GET", "/api/accounts"), ("POST", "/api/logout"),
                         ("POST", "/api/password"), ("DELETE", "/api/accounts/alice")):
        r = c.request(method, path, {} if method == "POST" else None)
        check(r.status == 401 and r.getheader("Content-Type").startswith("application/json"),
              f"{method} {path} without a session: 401 JSON")
    c.cookie = "wizmail_session=" + "0" * 64
    check(c.request("GET", "/api/me").status == 401, "a made-up session id: 401")
    r = c.request("GET", "/nowhere")
    check(r.status == 404, "an unknown path: 404")
    for r in (c.request("GET", "/api/me"), r):
        check(r.getheader("Content-Security-Policy") == CSP, "CSP on every answer, no inline script")
        check(r.getheader("X-Content-Type-Options") == "nosniff", "X-Content-Type-Options: nosniff")
        check(r.getheader("Referrer-Policy") == "no-referrer", "Referrer-Policy: no-referrer")


def test_c_csrf_required_on_state_changes():
    c = Console(admin_port)
    check(c.login("postmaster", "pm").status == 200, "postmaster logs in")
    check(c.request("GET", "/api/me").json["admin"] is True, "postmaster is admin (admin_accounts)")
    r = c.request("POST", "/api/accounts", {"account": "carol", "password": "c1"}, csrf=False)
    check(r.status == 403, f"POST without X-CSRF-Token: 403 ({r.status})")
    r = c.request("POST", "/api/accounts", {"account": "carol", "password": "c1"}, csrf=False,
                  headers={"X-CSRF-Token": "0" * 64})
    check(r.status == 403, "POST with a wrong X-CSRF-Token: 403")
    other = Console(admin_port)
    other.login("alice", "secret")
    r = c.request("POST", "/api/accounts", {"account": "carol", "password": "c1"}, csrf=False,
                  headers={"X-CSRF-Token": other.csrf})
    check(r.status == 403, "POST with another session's token: 403")
    r = c.request("DELETE", "/api/accounts/bob", csrf=False)
    check(r.status == 403, "DELETE without X-CSRF-Token: 403")
    check(not os.path.exists(os.path.join(home.path, "mailbox", "carol")), "nothing was created")
    check(os.path.isdir(os.path.join(home.path, "mailbox", "bob")), "nothing was deleted")
    r = c.request("POST", "/api/logout", csrf=False)
    check(r.status == 403, "even logout needs the token")


def test_d_admin_creates_lists_deletes():
    c = Console(admin_port)
    c.login("postmaster", "pm")
    r = c.request("POST", "/api/accounts", {"account": "Carol", "password": "c1"})
    check(r.status == 201 and r.json == {"created": "carol"}, f"admin creates Carol as carol ({r.status} {r.body!r})")
    out = subprocess.run([CLI, "--home", home.path, "account", "list"], capture_output=True, text=True)
    check("carol" in out.stdout.split(), f"`wizmail account list` shows carol ({out.stdout!r})")
    r = c.request("POST", "/api/accounts", {"account": "carol", "password": "c1"})
    check(r.status == 409, "creating it again: 409")
    r = c.request("GET", "/api/accounts")
    names = [a["account"] for a in r.json["accounts"]]
    check(r.status == 200 and names == sorted(names) and "carol" in names and "alice" in names,
          "GET /api/accounts lists every account, sorted")
    row = next(a for a in r.json["accounts"] if a["account"] == "alice")
    check(all(k in row for k in ("messages", "bytes", "sent", "received", "deleted")),
          "with the monitor's counts")
    new = Console(admin_port)
    check(new.login("carol", "c1").status == 200, "carol logs in with the password the admin set")
    r = c.request("POST", "/api/password", {"account": "carol", "password": "c2"})
    check(r.status == 200, "the admin sets carol's password")
    check(Console(admin_port).login("carol", "c2").status == 200, "the new one works")
    r = c.request("DELETE", "/api/accounts/carol")
    check(r.status == 200 and not os.path.exists(os.path.join(home.path, "mailbox", "carol")),
          "the admin deletes carol")
    check(new.request("GET", "/api/me").status == 401, "carol's session ended with her account")
    check(c.request("DELETE", "/api/accounts/postmaster").status == 400, "postmaster cannot be deleted")
    check(c.request("DELETE", "/api/accounts/nobody").status == 404, "an unknown account: 404")


def test_e_user_sees_only_own():
    c = Console(admin_port)
    c.login("bob", "bobpw")
    check(c.request("GET", "/api/accounts").status == 403, "a user on GET /api/accounts: 403")
    r = c.request("POST", "/api/accounts", {"account": "eve", "password": "x"})
    check(r.status == 403 and not os.path.exists(os.path.join(home.path, "mailbox", "eve")),
          "a user creating an account: 403, nothing created")
    check(c.request("DELETE", "/api/accounts/alice").status == 403, "a user deleting an account: 403")
    r = c.request("POST", "/api/password", {"account": "alice", "password": "taken"})
    check(r.status == 403, "a user setting another account's password: 403")
    check(Console(admin_port).login("alice", "secret").status == 200, "alice's password is unchanged")
    r = c.request("POST", "/api/password", {"password": "bob2"})
    check(r.status == 200, "a user changes their own password")
    check(Console(admin_port).login("bob", "bob2").status == 200, "and logs in with it")
    r = c.request("POST", "/api/logout")
    check(r.status == 200 and "Max-Age=0" in r.getheader("Set-Cookie"), "logout: the cookie is taken back")
    check(c.request("GET", "/api/me").status == 401, "after logout the session is gone (401)")


def test_f_xss_account_name_refused():
    c = Console(admin_port)
    c.login("postmaster", "pm")
    payload = "<script>alert(1)</script>"
    r = c.request("POST", "/api/accounts", {"account": payload, "password": "x"})
    check(r.status == 400, f"an XSS payload as account name: 400 ({r.status})")
    check(r.getheader("Content-Type").startswith("application/json") and isinstance(r.json, dict),
          "the refusal is JSON (application/json), never HTML")
    check(not any(n.startswith("<") for n in os.listdir(os.path.join(home.path, "mailbox"))), "nothing created")
    r = c.request("DELETE", "/api/accounts/%3Cimg%20src%3Dx%3E")
    check(r.status in (400, 404) and r.getheader("Content-Type").startswith("application/json"),
          "an XSS payload in the path: refused as JSON")


def test_g_metrics_on_both_ports():
    r = Console(admin_port).request("GET", "/metrics")
    check(r.status == 200 and b"wizmail_sessions_accepted_total" in r.body, "/metrics on the console's port, no session")
    c = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=10)
    c.request("GET", "/metrics")
    r = c.getresponse()
    check(r.status == 200 and b"wizmail_start_time_seconds" in r.read(), "/metrics on metrics_port as before")


def test_h_penalty_shared_with_smtp():
    # Failures by SMTP AUTH from 127.0.0.2 make its HTTP login wait, then
    # block it, as SMTP would; another address is not affected.
    for i in range(2):
        check(smtp_auth(home, "127.0.0.2", "alice", f"guess{i}").startswith("535"), f"SMTP AUTH guess {i + 1}: 535")
    c = Console(admin_port, src="127.0.0.2")
    t0 = time.monotonic()
    r = c.login("alice", "secret")
    elapsed = time.monotonic() - t0
    check(r.status == 200, "the right password over HTTP still logs in")
    check(elapsed >= 0.35, f"but only after the penalty of 2 SMTP failures (0.4 s): {elapsed:.2f} s")
    # A success clears the network; now fail 4 times (2 SMTP, 2 HTTP): blocked.
    smtp_auth(home, "127.0.0.2", "alice", "g3")
    smtp_auth(home, "127.0.0.2", "alice", "g4")
    check(c.login("alice", "x").status == 401, "HTTP guess 3: 401")
    check(c.login("alice", "x").status == 401, "HTTP guess 4: 401")
    r = c.login("alice", "secret")
    check(r.status == 429 and r.json and "too many failed logins" in r.json["error"],
          f"past auth_block_failures the right password gets 429, unchecked ({r.status})")
    r = smtp_auth(home, "127.0.0.2", "alice", "secret")
    check(r.startswith("421 4.7.0 "), f"and SMTP AUTH is blocked by the HTTP failures too ({r.strip()})")
    t0 = time.monotonic()
    check(Console(admin_port, src="127.0.0.3").login("alice", "secret").status == 200 and
          time.monotonic() - t0 < 0.3, "another address logs in at once")


def test_z_https():
    h = Home(tls=True, accounts=(("alice", "secret"),))
    p = free_port()
    with open(os.path.join(h.path, "def", "wiz98msenv.dat"), "a") as f:
        f.write(f"admin_port={p}\n")
    s = Server(h)
    wait_until(lambda: port_open(p), "the HTTPS console listens")
    c = Console(p, tls=True)
    r = c.login("alice", "secret")
    check(r.status == 200, "login over HTTPS with the server's certificate")
    check("Secure" in [x.strip() for x in r.getheader("Set-Cookie").split(";")], "the cookie carries Secure")
    check(c.request("GET", "/api/me").json["account"] == "alice", "the session works over HTTPS")
    plain_c = Console(p)
    try:
        plain_c.request("GET", "/api/me")
        check(False, "plain HTTP on the HTTPS port is not served")
    except (http.client.HTTPException, OSError):
        check(True, "plain HTTP on the HTTPS port is not served")
    s.stop()


run_tests(globals())
srv.stop()
