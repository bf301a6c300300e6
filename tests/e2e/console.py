"""The web console's server side (docs/console.md) against a real
wizmail-server on loopback, with Python's http.client only: login good and
bad, the auth penalty shared with SMTP AUTH, the session cookie's flags,
401 without a session, 403 without or with a wrong CSRF token, 403 for an
account on administrator endpoints and on another account's data, an
account created through the API listed by `wizmail account list`, an XSS
payload as an account name refused (and echoed only as JSON), the security
headers, /metrics on metrics_port only (not on the console's port), and HTTPS with
the test certificate (Secure cookie)."""
import base64, email, email.header, http.client, json, os, re, smtplib, socket, ssl, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, CLI, Home, Server, check, free_port, run_tests, wait_until, port_open

# forward.def and reply.def written by the console run wizmail-sendmail from
# the server's PATH, as the manual's recipes do.
os.environ["PATH"] = os.path.join(BUILD, "apps", "wizmail-sendmail") + os.pathsep + os.environ.get("PATH", "")

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
    check(r.status == 400, "one's own password without current_password: 400")
    r = c.request("POST", "/api/password", {"password": "bob2", "current_password": "bobpw"})
    check(r.status == 200, "a user changes their own password (with the current one)")
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


def test_g_metrics_only_on_metrics_port():
    # Nothing but the login page and static files answers without a session:
    # the figures are metrics_port's (loopback only), not the console's.
    r = Console(admin_port).request("GET", "/metrics")
    check(r.status == 404 and b"wizmail_" not in r.body, "no /metrics on the console's port")
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


ADMIN_GETS = ["/api/dashboard", "/api/accounts", "/api/accounts/alice/settings", "/api/lists", "/api/lists/team",
              "/api/queue", "/api/queue/x", "/api/logs", "/api/logs/session/S1", "/api/config",
              "/api/config/check", "/api/dkim"]
ADMIN_CHANGES = [("PUT", "/api/accounts/alice/settings", {"key": "use_dustbox", "value": "1"}),
                 ("PUT", "/api/lists/team/members", {"members": ["x@example.test"]}),
                 ("PUT", "/api/lists/team/settings", {"key": "name", "value": "x"}),
                 ("POST", "/api/queue/flush", {}), ("DELETE", "/api/queue/x", None),
                 ("PUT", "/api/config", {"key": "admin_accounts", "value": "alice"})]
SELF_CHANGES = [("PUT", "/api/me/forward", {"addresses": ["bob@localhost"], "keep_copy": True}),
                ("PUT", "/api/me/vacation", {"enabled": True, "subject": "s", "text": "t", "from": "", "until": ""}),
                ("POST", "/api/password", {"password": "z", "current_password": "secret"})]


def admin():
    c = Console(admin_port)
    check(c.login("postmaster", "pm").status == 200, "postmaster logs in")
    return c


def user(name="alice", password="secret"):
    c = Console(admin_port)
    r = c.login(name, password)
    if r.status != 200:
        raise SystemExit(f"FAILED: {name} cannot log in ({r.status} {r.body!r})")
    return c


def send(rcpt, subject, sender="bob@localhost", port=None, login=None):
    with smtplib.SMTP("127.0.0.1", port or home.port, timeout=30) as s:
        if login:
            s.login(*login)
        s.sendmail(sender, [rcpt], f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbody\r\n")


def mails(account):
    d = os.path.join(home.path, "mailbox", account)
    out = []
    for sub in ("new", "cur"):
        for n in sorted(os.listdir(os.path.join(d, sub))):
            out.append(email.message_from_bytes(open(os.path.join(d, sub, n), "rb").read()))
    return out


def read(*parts):
    with open(os.path.join(home.path, *parts), encoding="utf-8") as f:
        return f.read()


def test_i_admin_only_and_csrf_on_every_new_change():
    subprocess.run([CLI, "--home", home.path, "ml", "create", "team", "tpw"], check=True, capture_output=True)
    u = user("bob", "bob2")
    for path in ADMIN_GETS:
        r = u.request("GET", path)
        check(r.status == 403 and r.json == {"error": "administrators only"}, f"a user on GET {path}: 403")
        check(Console(admin_port).request("GET", path).status == 401, f"GET {path} without a session: 401")
    for method, path, body in ADMIN_CHANGES:
        check(u.request(method, path, body).status == 403, f"a user on {method} {path}: 403")
    a = admin()
    for method, path, body in ADMIN_CHANGES:
        r = a.request(method, path, body, csrf=False)
        check(r.status == 403 and "CSRF" in r.json["error"], f"{method} {path} without X-CSRF-Token: 403")
        r = a.request(method, path, body, csrf=False, headers={"X-CSRF-Token": u.csrf})
        check(r.status == 403, f"{method} {path} with another session's token: 403")
    for method, path, body in SELF_CHANGES:
        r = u.request(method, path, body, csrf=False)
        check(r.status == 403, f"{method} {path} without X-CSRF-Token: 403")
        check(Console(admin_port).request(method, path, body).status == 401, f"{method} {path} without a session: 401")
    check(not os.path.exists(os.path.join(home.path, "mailbox", "bob", "forward.def")) and
          not os.path.exists(os.path.join(home.path, "mailbox", "bob", "reply.def")), "nothing was written")
    check("admin_accounts=alice" not in read("def", "wiz98msenv.dat"), "the configuration is unchanged")
    check("use_dustbox" not in (read("mailbox", "alice", "config.def")
                                if os.path.exists(os.path.join(home.path, "mailbox", "alice", "config.def")) else ""),
          "alice's config.def is unchanged")


def test_j_own_password_needs_the_current_one():
    c = Console(admin_port, src="127.0.0.5")
    check(c.login("bob", "bob2").status == 200, "bob logs in from 127.0.0.5")
    r = c.request("POST", "/api/password", {"password": "bob3"})
    check(r.status == 400 and "current_password" in r.json["error"], f"without current_password: 400 ({r.status} {r.body!r})")
    r = c.request("POST", "/api/password", {"password": "bob3", "current_password": "wrong"})
    check(r.status == 401, f"a wrong current password: 401 ({r.status})")
    check(Console(admin_port).login("bob", "bob2").status == 200, "the password is unchanged")
    # Counted in the shared penalty: the next attempt from 127.0.0.5 waits (200 ms).
    t0 = time.monotonic()
    r = c.request("POST", "/api/password", {"password": "bob3", "current_password": "bob2"})
    check(r.status == 200 and time.monotonic() - t0 >= 0.18,
          f"the right one after a wrong one: 200, after the penalty delay ({time.monotonic() - t0:.2f} s)")
    check(Console(admin_port).login("bob", "bob3").status == 200, "the new password works")
    r = c.request("POST", "/api/password", {"password": "bob4", "current_password": "bob3", "extra": "x"})
    check(r.status == 400, "an unknown member: 400")
    a = admin()
    r = a.request("POST", "/api/password", {"account": "bob", "password": "bob2"})
    check(r.status == 200, "an administrator sets another account's password without its current one")
    wait_until(lambda: '127.0.0.5 - console password change failed for user "bob"' in read("var", "log", "error.log"),
               "the wrong current password is in error.log")


def test_k_console_logins_logged():
    Console(admin_port, src="127.0.0.6").login("alice", "not-it")
    user("alice")
    c = admin()

    def lines():
        return c.request("GET", "/api/logs?file=error&q=console%20login").json["lines"]
    # The logger writes every 20 ms: poll.
    wait_until(lambda: any("127.0.0.6" in l and 'console login failed for user "alice"' in l for l in lines()),
               "a failed console login is in error.log with the client address")
    wait_until(lambda: any(" postmaster console login (administrator)" in l for l in lines()),
               "an administrator's login says so")
    check(any(" alice console login" in l and "127.0.0.1" in l for l in lines()), "a successful one too")


def test_l_dashboard_counts_a_message():
    c = admin()
    r = c.request("GET", "/api/dashboard")
    d = r.json
    check(r.status == 200 and set(d["sessions"]) >= {"smtp", "submission", "smtps", "pop3", "pop3s"},
          "GET /api/dashboard: sessions by protocol")
    check(d["disk"]["total_bytes"] > 0 and 0 <= d["disk"]["free_bytes"] <= d["disk"]["total_bytes"],
          "disk use of the home (statvfs)")
    s = d["series"]
    check(all(len(s[k]) == 60 for k in ("minute_start", "received", "delivered", "relayed", "bounced")),
          "60 per-minute buckets of each series")
    check(s["minute_start"][-1] <= d["now"] < s["minute_start"][-1] + 60 and
          s["minute_start"][-1] - s["minute_start"][0] == 59 * 60, "oldest first, the current minute last")
    before = sum(s["received"]), sum(s["delivered"])
    send("alice@localhost", "counted")

    def counted():
        s2 = c.request("GET", "/api/dashboard").json["series"]
        return sum(s2["received"]) >= before[0] + 1 and sum(s2["delivered"]) >= before[1] + 1
    wait_until(counted, "a message received and delivered shows in the minute series")
    sock = socket.create_connection(("127.0.0.1", home.pop_port), 10)
    sock.recv(100)
    wait_until(lambda: c.request("GET", "/api/dashboard").json["sessions"]["pop3"] >= 1,
               "an open POP3 session counts under pop3")
    sock.close()
    check(isinstance(d["queue"]["length"], int) and "oldest_age_s" in d["queue"], "the queue's length and oldest")


def test_m_accounts_search_and_sort():
    c = admin()
    r = c.request("GET", "/api/accounts?q=LIC")
    check(r.status == 200 and [a["account"] for a in r.json["accounts"]] == ["alice"], "q=LIC finds alice only")
    r = c.request("GET", "/api/accounts?sort=messages&order=desc")
    counts = [a["messages"] for a in r.json["accounts"]]
    check(counts == sorted(counts, reverse=True), f"sort=messages&order=desc ({counts})")
    r = c.request("GET", "/api/accounts?sort=account&order=desc")
    names = [a["account"] for a in r.json["accounts"]]
    check(names == sorted(names, reverse=True), "sort=account&order=desc")
    for bad in ("sort=password", "order=up", "q=" + "x" * 300):
        check(c.request("GET", "/api/accounts?" + bad).status == 400, f"{bad[:20]}: 400")


def test_n_account_settings_and_mailbox_quota():
    c = admin()
    r = c.request("GET", "/api/accounts/alice/settings")
    keys = {s["key"]: s for s in r.json["settings"]}
    check(r.status == 200 and r.json["account"] == "alice" and "mailbox_capacity_mail_count" in keys and
          keys["mailbox_capacity_mail_count"]["value"] == "" and keys["mailbox_capacity_mail_count"]["set"] is False and keys["mailbox_capacity_mail_count"]["doc"],
          "GET settings: config.def's keys with value (unset), default and doc")
    r = c.request("PUT", "/api/accounts/alice/settings", {"key": "mailbox_capacity_mail_count", "value": "500"})
    check(r.status == 200, f"PUT mailbox_capacity_mail_count=500 ({r.status} {r.body!r})")
    check("mailbox_capacity_mail_count=500" in read("mailbox", "alice", "config.def"), "written to alice's config.def")
    r = c.request("PUT", "/api/accounts/alice/settings", {"key": "mailbox_capacity_mail_count", "value": "lots"})
    check(r.status == 400 and re.search(r"config\.def:\d+: ", r.json["error"]),
          f"a bad value: 400 with file:line ({r.json})")
    check("mailbox_capacity_mail_count=500" in read("mailbox", "alice", "config.def"), "and the file is unchanged")
    r = c.request("PUT", "/api/accounts/alice/settings", {"key": "port", "value": "26"})
    check(r.status == 400, "a key config.def may not set: 400")
    r = c.request("PUT", "/api/accounts/alice/settings", {"key": "use_dustbox", "value": "1\nrelay=1"})
    check(r.status == 400 and "relay" not in read("mailbox", "alice", "config.def"), "a line break in a value: 400")
    for path, code in (("/api/accounts/nobody/settings", 404), ("/api/accounts/..x/settings", 400),
                       ("/api/accounts/%2e%2e/settings", 400)):
        check(c.request("GET", path).status == code, f"GET {path}: {code}")
    m = user().request("GET", "/api/me/mailbox").json
    check(m["account"] == "alice" and m["quota"]["messages"] == 500 and m["messages"] == len(mails("alice")),
          f"alice's mailbox use against her own quota ({m})")
    b = user("bob", "bob2").request("GET", "/api/me/mailbox").json
    check(b["account"] == "bob" and b["quota"]["messages"] != 500, "bob sees his own")
    r = c.request("PUT", "/api/accounts/alice/settings", {"key": "mailbox_capacity_mail_count", "value": ""})
    check(r.status == 200 and "mailbox_capacity_mail_count" not in read("mailbox", "alice", "config.def"),
          "an empty value removes the key")


def test_o_mailing_lists():
    c = admin()
    r = c.request("GET", "/api/lists")
    check(r.status == 200 and {"name": "team", "members": 0} in r.json["lists"] and
          all(l["name"] != "alice" for l in r.json["lists"]), "GET /api/lists: the list, no ordinary account")
    r = c.request("PUT", "/api/lists/team/members", {"members": ["a@example.test", "b@example.test"]})
    check(r.status == 200, f"PUT members ({r.body!r})")
    out = subprocess.run([CLI, "--home", home.path, "ml", "list", "team"], capture_output=True, text=True).stdout
    check("a@example.test" in out and "b@example.test" in out, "`wizmail ml list` shows them")
    r = c.request("PUT", "/api/lists/team/members", {"members": ["b@example.test", "c@example.test"]})
    check(r.json["members"] == ["b@example.test", "c@example.test"], "the whole list replaced")
    for bad in (["not an address"], ["x@y.test", "X@y.test"], "a@b", [1]):
        r = c.request("PUT", "/api/lists/team/members", {"members": bad})
        check(r.status == 400, f"members {bad!r}: 400")
    check(c.request("GET", "/api/lists/team").json["members"] == ["b@example.test", "c@example.test"],
          "a refused change changed nothing")
    r = c.request("PUT", "/api/lists/team/settings", {"key": "name", "value": "Team News"})
    check(r.status == 200 and "name=Team News" in read("mailbox", "team", "ml.def"), "ml.def name set")
    r = c.request("PUT", "/api/lists/team/settings", {"key": "mailing_list_subject_header", "value": "2"})
    check(r.status == 200 and "mailing_list_subject_header=2" in read("mailbox", "team", "config.def"),
          "a list's config.def key set")
    d = c.request("GET", "/api/lists/team").json
    vals = {s["key"]: s["value"] for s in d["settings"]}
    check(vals.get("name") == "Team News" and vals.get("mailing_list_subject_header") == "2",
          "GET /api/lists/team shows both")
    for body in ({"key": "count", "value": "-1"}, {"key": "admin_mail_address", "value": "nope"},
                 {"key": "mailing_list_subject_header", "value": "x"}, {"key": "port", "value": "1"}):
        check(c.request("PUT", "/api/lists/team/settings", body).status == 400, f"list setting {body}: 400")
    check(c.request("GET", "/api/lists/alice").status == 404, "an ordinary account is not a list: 404")
    check(c.request("PUT", "/api/lists/alice/members", {"members": []}).status == 404, "nor can it get members")


def test_p_queue_deferred_entry():
    c = admin()
    # Remote mail waits, deferred: the DNS server (127.0.0.1:9) does not answer.
    send("someone@remote.example", "queued one", sender="alice@localhost", login=("alice", "secret"))
    wait_until(lambda: any(e["from"] == "alice@localhost" for e in c.request("GET", "/api/queue").json["entries"]),
               "the remote message is in GET /api/queue")
    e = next(e for e in c.request("GET", "/api/queue").json["entries"] if e["from"] == "alice@localhost")
    check(e["recipients"][0]["address"] == "someone@remote.example" and e["size"] > 0 and e["created"] > 0,
          "with envelope, size and time")
    wait_until(lambda: c.request("GET", "/api/queue/" + e["id"]).json["next_attempt"] is not None,
               "the entry is deferred after an attempt", timeout=60)
    d = c.request("GET", "/api/queue/" + e["id"]).json
    check("Subject: queued one" in d["headers"] and d["last_error"] and d["recipients"][0]["status"],
          f"GET /api/queue/ID: headers, status, last error ({d['last_error']})")
    check(c.request("GET", "/api/dashboard").json["queue"]["length"] >= 1, "the dashboard counts it")
    for bad, code in (("..%2F..%2Fetc", 400), ("x", 400), ("0" * 20, 400)):
        r = c.request("GET", "/api/queue/" + bad)
        check(r.status in (code, 404), f"GET /api/queue/{bad}: {r.status}")
    r = c.request("POST", "/api/queue/flush", {})
    check(r.status == 200 and r.json == {"flushed": True}, "POST /api/queue/flush")
    wait_until(lambda: "queue flush requested" in read("var", "log", "server.log"), "the server got the flush")

    def deleted():
        r = c.request("DELETE", "/api/queue/" + e["id"])
        return r.status == 200 and r.json == {"deleted": e["id"]}   # 409 while a runner holds it
    wait_until(deleted, "DELETE /api/queue/ID")
    out = subprocess.run([CLI, "--home", home.path, "queue", "list"], capture_output=True, text=True).stdout
    check(e["id"] not in out, "`wizmail queue list` no longer shows it")
    check(c.request("DELETE", "/api/queue/" + e["id"]).status == 404, "deleting it again: 404")


def test_q_logs_tail_search_session():
    c = admin()
    send("alice@localhost", "for the log")
    wait_until(lambda: c.request("GET", "/api/logs?file=smtp&lines=1000&q=alice%40localhost").json["lines"],
               "the session is in smtp.log")
    r = c.request("GET", "/api/logs?file=smtp&lines=3")
    check(r.status == 200 and r.json["file"] == "smtp" and 1 <= len(r.json["lines"]) <= 3, "tail of smtp.log, 3 lines")
    r = c.request("GET", "/api/logs?file=smtp&lines=1000&q=alice%40localhost")
    check(r.json["lines"] and all("alice@localhost" in l for l in r.json["lines"]), "search: only matching lines")
    sid = r.json["lines"][-1].split(" ")[2]
    r = c.request("GET", "/api/logs/session/" + sid)
    lines = r.json["lines"]
    check(r.status == 200 and lines and all(l["line"].split(" ")[2] == sid for l in lines) and
          {l["file"] for l in lines} <= {"smtp", "pop", "error"}, f"session {sid}: only its lines, with their file")
    times = [l["line"][:23] for l in lines]
    check(times == sorted(times), "in time order")
    # A session that failed AUTH: its lines in smtp.log and error.log together.
    smtp_auth(home, "127.0.0.7", "bob", "bad")
    wait_until(lambda: c.request("GET", "/api/logs?file=error&q=127.0.0.7").json["lines"],
               "the AUTH failure is in error.log")
    sid = c.request("GET", "/api/logs?file=error&q=127.0.0.7").json["lines"][-1].split(" ")[2]
    wait_until(lambda: {l["file"] for l in c.request("GET", "/api/logs/session/" + sid).json["lines"]} >= {"smtp"},
               "its smtp.log lines are written")
    files = {l["file"] for l in c.request("GET", "/api/logs/session/" + sid).json["lines"]}
    check(files == {"smtp", "error"}, f"followed across smtp.log and error.log ({files})")
    for q in ("file=server", "file=../x", "lines=0", "lines=1001", "lines=x", "q=" + "y" * 300):
        check(c.request("GET", "/api/logs?" + q).status == 400, f"/api/logs?{q[:20]}: 400")
    for bad in ("..", "a-b", "x" * 40):
        check(c.request("GET", "/api/logs/session/" + bad).status == 400, f"session id {bad[:10]}: 400")


def test_r_config_edit_reload_and_check():
    c = admin()
    r = c.request("GET", "/api/config")
    keys = {k["key"]: k for k in r.json["keys"]}
    check(r.status == 200 and keys["admin_accounts"]["value"] == "postmaster" and
          keys["admin_accounts"]["file"] == "wiz98msenv.dat" and keys["port"]["doc"] and "default" in keys["port"],
          "GET /api/config: effective values, file, default and doc")
    with open(os.path.join(home.path, "def", "wiz98msenv.dat"), "a") as f:
        f.write("# a comment kept by the console\n")
    b = user("bob", "bob2")
    check(b.request("GET", "/api/dashboard").status == 403, "bob is no administrator yet")
    r = c.request("PUT", "/api/config", {"key": "admin_accounts", "value": "postmaster,bob"})
    check(r.status == 200 and r.json["reloaded"] is True, f"PUT admin_accounts=postmaster,bob ({r.body!r})")
    text = read("def", "wiz98msenv.dat")
    check("admin_accounts=postmaster,bob" in text and "# a comment kept by the console" in text and
          "domain=localhost" in text, "written in wiz98msenv.dat, its other lines kept")
    wait_until(lambda: "configuration reloaded" in read("var", "log", "server.log"), "the server reloaded")
    b = user("bob", "bob2")
    check(b.request("GET", "/api/dashboard").status == 200, "the new value is in effect: bob administers")
    before = read("def", "smtpenv.dat")
    r = c.request("PUT", "/api/config", {"key": "port", "value": "seventy"})
    check(r.status == 400 and re.match(r".*smtpenv\.dat:\d+: port: ", r.json["error"]),
          f"a bad value: 400 with the loader's file:line message ({r.json['error']})")
    check(read("def", "smtpenv.dat") == before, "and nothing written")
    for body in ({"key": "no_such_key", "value": "1"}, {"key": "relay", "value": "1\nrelay=1"},
                 {"key": "admin_accounts"}, {"key": "port", "value": 25}):
        check(c.request("PUT", "/api/config", body).status == 400, f"PUT /api/config {body}: 400")
    check(read("def", "smtpenv.dat") == before, "none of them wrote anything")
    r = c.request("PUT", "/api/config", {"key": "admin_accounts", "value": "postmaster"})
    check(r.status == 200 and user("bob", "bob2").request("GET", "/api/dashboard").status == 403,
          "set back: bob logs in as a user again")
    r = c.request("GET", "/api/config/check")
    out = subprocess.run([CLI, "--home", home.path, "config", "check"], capture_output=True, text=True)
    cli = [l.split("warning: ", 1)[1] for l in out.stderr.splitlines() if "warning: " in l]
    check(r.status == 200 and r.json["warnings"] == cli and r.json["errors"] == [],
          f"GET /api/config/check: the warnings `wizmail config check` prints ({len(cli)})")


def test_s_dkim_records():
    c = admin()
    r = c.request("GET", "/api/dkim")
    check(r.status == 200 and r.json == {"records": []}, "no DKIM key: no records")
    subprocess.run([CLI, "--home", home.path, "dkim", "keygen", "example.test"], check=True, capture_output=True)
    recs = c.request("GET", "/api/dkim").json["records"]
    check(len(recs) == 1 and recs[0]["name"] == "wizmail._domainkey.example.test" and recs[0]["type"] == "TXT" and
          recs[0]["value"].startswith("v=DKIM1") and recs[0]["domain"] == "example.test" and
          recs[0]["selector"] == "wizmail", "the record to publish after `wizmail dkim keygen`")
    shown = subprocess.run([CLI, "--home", home.path, "dkim", "show", "example.test", "--json"], capture_output=True,
                           text=True).stdout
    check(json.loads(shown)["record"] == recs[0]["value"], "the same record `wizmail dkim show` prints")


def test_t_forwarding():
    a = user()
    check(a.request("GET", "/api/me/forward").json == {"addresses": [], "keep_copy": True, "custom": False},
          "no forwarding at first")
    r = a.request("PUT", "/api/me/forward", {"addresses": ["bob@localhost"], "keep_copy": True})
    check(r.status == 200, f"PUT /api/me/forward ({r.body!r})")
    check("param2=bob@localhost" in read("mailbox", "alice", "forward.def"), "forward.def written")
    check(a.request("GET", "/api/me/forward").json["addresses"] == ["bob@localhost"], "and read back")
    check(user("bob", "bob2").request("GET", "/api/me/forward").json["addresses"] == [], "bob's own is untouched")
    n = len(mails("bob"))
    send("alice@localhost", "please forward", sender="postmaster@localhost")
    wait_until(lambda: any(m["Subject"] == "please forward" for m in mails("bob")), "the mail is forwarded to bob")
    check(any(m["Subject"] == "please forward" for m in mails("alice")), "alice keeps a copy")
    check(len(mails("bob")) == n + 1, "one copy")
    for body in ({"addresses": ["x@y.test"], "keep_copy": False}, {"addresses": ["not an address"], "keep_copy": True},
                 {"addresses": ["a@b.test\nparam9=x"], "keep_copy": True}, {"addresses": "bob@localhost", "keep_copy": True},
                 {"addresses": ["bob@localhost"]}):
        check(a.request("PUT", "/api/me/forward", body).status == 400, f"forward {body}: 400")
    check("param2=bob@localhost\n" in read("mailbox", "alice", "forward.def"), "a refused change changed nothing")
    r = a.request("PUT", "/api/me/forward", {"addresses": [], "keep_copy": True})
    check(r.status == 200 and not os.path.exists(os.path.join(home.path, "mailbox", "alice", "forward.def")),
          "no addresses: forward.def removed")


def test_u_vacation_auto_reply():
    a = user()
    check(a.request("GET", "/api/me/vacation").json["enabled"] is False, "no vacation at first")
    v = {"enabled": True, "subject": "Away: 休暇中", "text": "Back on Monday.\n", "from": "", "until": ""}
    r = a.request("PUT", "/api/me/vacation", v)
    check(r.status == 200, f"PUT /api/me/vacation ({r.body!r})")
    got = a.request("GET", "/api/me/vacation").json
    check(got["enabled"] and got["subject"] == v["subject"] and got["text"] == v["text"] and not got["custom"],
          "read back")
    check(user("bob", "bob2").request("GET", "/api/me/vacation").json["enabled"] is False, "bob's is untouched")
    send("alice@localhost", "are you there", sender="bob@localhost")

    def replied():
        return [m for m in mails("bob") if m["Auto-Submitted"] == "auto-replied"]
    wait_until(lambda: replied(), "the vacation reply reaches the sender")
    m = replied()[0]
    subject = str(email.header.make_header(email.header.decode_header(m["Subject"])))
    check(subject == "Away: 休暇中" and "Back on Monday." in m.get_payload(decode=True).decode(),
          f"with the subject and text set in the console ({subject!r})")
    # Dates: a vacation that starts in the future does not answer yet.
    r = a.request("PUT", "/api/me/vacation", dict(v, **{"from": "2099-01-01", "until": "2099-01-31"}))
    check(r.status == 200 and "active_from=2099-01-01" in read("mailbox", "alice", "reply.def"), "dates written")
    send("alice@localhost", "and now", sender="postmaster@localhost")
    wait_until(lambda: "reply.def not run: outside active_from/active_until" in read("var", "log", "server.log"),
               "outside its dates the reply does not run")
    check(not [m for m in mails("postmaster") if m["Auto-Submitted"] == "auto-replied"], "postmaster got no reply")
    r = a.request("PUT", "/api/me/vacation", dict(v, enabled=False))
    mbox = os.path.join(home.path, "mailbox", "alice")
    check(r.status == 200 and not os.path.exists(os.path.join(mbox, "reply.def")) and
          os.path.exists(os.path.join(mbox, "reply.def.off")), "off: reply.def gone (kept as reply.def.off)")
    got = a.request("GET", "/api/me/vacation").json
    check(got["enabled"] is False and got["subject"] == v["subject"], "off, the text kept for next time")
    for bad in (dict(v, subject="a\r\nBcc: x@y"), dict(v, **{"from": "2026-02-30"}), dict(v, enabled="yes"),
                dict(v, **{"from": "2026-12-24", "until": "2026-12-01"}), dict(v, extra=1), dict(v, text="x" * 9000)):
        check(a.request("PUT", "/api/me/vacation", bad).status == 400, f"vacation {str(bad)[:60]}: 400")
    check(not os.path.exists(os.path.join(mbox, "reply.def")), "a refused change turned nothing on")


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
