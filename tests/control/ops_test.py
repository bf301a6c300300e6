"""Operations end to end with real processes: wizmail start/stop (normal,
forced, stale pid file, port in use, bad config), the control socket (bad
input, peer check), sessions against live SMTP and POP3 sessions, reload,
supervise restarting a killed server, wizmail-sendmail in every form, notify,
and the service unit. Every daemon a test starts is killed at exit."""
import base64, email, email.header, json, os, shutil, signal, socket, stat, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402

BUILD = harness.BUILD
WIZMAIL = os.path.join(BUILD, "apps", "wizmail", "wizmail")
SENDMAIL = os.path.join(BUILD, "apps", "wizmail-sendmail", "wizmail-sendmail")
ENV = dict(os.environ, WIZMAIL_SERVER=harness.SERVER)
ENV.pop("WIZ98MS_HOME", None)
_homes = []


def _kill_daemons():
    for h in _homes:
        pid = read_pid(h)
        if pid and is_server(pid):
            os.kill(pid, signal.SIGKILL)


import atexit  # noqa: E402

atexit.register(_kill_daemons)
# A test runner's timeout sends SIGTERM: exit normally so atexit still cleans up.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def read_pid(home):
    try:
        return int(open(os.path.join(home.path, "var", "run", "wizmail.pid")).read().strip())
    except (OSError, ValueError):
        return None


def is_server(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
        return open(f"/proc/{pid}/comm").read().strip() == "wizmail-server"
    except OSError:
        return False


def wizmail(home, *args, input=None, timeout=60):
    return subprocess.run([WIZMAIL, "--home", home.path, *args], env=ENV, capture_output=True, text=True,
                          input=input, timeout=timeout)


def sendmail(home, *args, input=None):
    return subprocess.run([SENDMAIL, "--home", home.path, *args], env=ENV, capture_output=True,
                          input=input, timeout=60)


def make_home(stop_timeout=60, accounts=(("alice", "secret"), ("bob", "pw"), ("postmaster", "pm"),
                                         ("notifi", "n"))):
    h = harness.Home(accounts=accounts)
    with open(os.path.join(h.path, "def", "wiz98msenv.dat"), "a") as f:
        f.write(f"time_out_of_stop={stop_timeout}\n")
    _homes.append(h)
    return h


def start(home):
    r = wizmail(home, "start")
    assert r.returncode == 0, (r.stdout, r.stderr)
    pid = read_pid(home)
    assert pid and is_server(pid), pid
    return pid


def wait_gone(pid, seconds=20):
    return harness.poll(lambda: not is_server(pid), seconds)


def smtp_open(home):
    s = socket.create_connection(("127.0.0.1", home.port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    return s, f


def smtp_cmd(s, f, line):
    s.sendall(line.encode() + b"\r\n")
    while True:
        r = f.readline()
        assert r, "connection closed"
        if r[3:4] != b"-":
            return r


def control(home, line, raw=False):
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(10)
    c.connect(os.path.join(home.path, "var", "run", "control.sock"))
    c.sendall(line if raw else line.encode() + b"\n")
    data = harness.recv_line(c, 65536)
    c.close()
    return json.loads(data)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_for(pred, what, seconds=20):
    """Poll until pred() holds (an observable state, never a fixed sleep)."""
    if not harness.poll(pred, seconds):
        raise AssertionError(what + " (timed out)")


server_log = harness.server_log


# ---------------------------------------------------------------------------

def test_start_stop_sessions_control():
    h = make_home()
    pid = start(h)
    # A second start refuses: one server per home.
    r = wizmail(h, "start")
    check(r.returncode == 1 and "already running" in r.stderr, r.stderr)
    run = os.path.join(h.path, "var", "run")
    for name in ("control.sock", "submit.sock"):
        st = os.stat(os.path.join(run, name))
        check(stat.S_ISSOCK(st.st_mode), name)
    check(stat.S_IMODE(os.stat(os.path.join(run, "control.sock")).st_mode) == 0o600, "control.sock mode")
    check(stat.S_IMODE(os.stat(os.path.join(run, "submit.sock")).st_mode) == 0o660, "submit.sock mode")

    # Bad requests get an error reply; the connection and the server live on.
    for line, code in [("hello", "bad_request"), ('{"v":2,"cmd":"stats"}', "bad_request"),
                       ('{"v":1,"cmd":"nope"}', "bad_request"), ('{"v":1,"cmd":"stats","x":1}', "bad_request"),
                       ('{"v":1,"cmd":"stop","force":"yes"}', "bad_request"),
                       ('{"v":1,"cmd":"stats"' + " " * 5000 + "}", "bad_request")]:
        rep = control(h, line)
        check(rep["ok"] is False and rep["error"] == code, (line[:40], rep))
    rep = control(h, b'\xff\xfe{"v":1}\n', raw=True)
    check(rep["ok"] is False, rep)
    rep = control(h, '{"v":1,"cmd":"stats"}')
    check(rep["ok"] is True and rep["pid"] == pid and "sessions_total" in rep["stats"], rep)
    rep = control(h, '{"v":1,"cmd":"flush"}')
    check(rep["ok"] is True or rep["error"] == "not_supported", rep)
    # Several requests on one connection.
    c = socket.socket(socket.AF_UNIX)
    c.connect(os.path.join(run, "control.sock"))
    c.sendall(b'{"v":1,"cmd":"stats"}\n{"v":1,"cmd":"sessions"}\n')
    f = c.makefile("rb")
    check(json.loads(f.readline())["ok"], "first of two")
    check("sessions" in json.loads(f.readline()), "second of two")
    c.close()

    # Peer check: another uid is refused (needs root to become someone else).
    if os.geteuid() == 0:
        child = os.fork()
        if child == 0:
            try:
                os.setgid(65534)
                os.setuid(65534)
                c = socket.socket(socket.AF_UNIX)
                c.connect(os.path.join(run, "control.sock"))
                c.sendall(b'{"v":1,"cmd":"stop","force":true}\n')
                rep = json.loads(c.makefile("rb").readline())
                os._exit(0 if rep.get("error") == "permission_denied" else 1)
            except Exception:
                os._exit(2)
        _, status = os.waitpid(child, 0)
        # The socket file is 0600 root-owned: connect() itself may fail (2),
        # or the server refuses the peer (0). Either way the server runs on.
        check(os.WEXITSTATUS(status) in (0, 2), status)
        check(is_server(pid), "server survived a foreign peer")

    # Live sessions: SMTP in a transaction, POP3 logged in.
    s1, f1 = smtp_open(h)
    check(smtp_cmd(s1, f1, "EHLO client.example").startswith(b"250"), "ehlo")
    check(smtp_cmd(s1, f1, "MAIL FROM:<x@example.org>").startswith(b"250"), "mail")
    p = socket.create_connection(("127.0.0.1", h.pop_port), timeout=10)
    pf = p.makefile("rb")
    check(pf.readline().startswith(b"+OK"), "pop greeting")
    p.sendall(b"USER alice\r\n")
    check(pf.readline().startswith(b"+OK"), "user")
    p.sendall(b"PASS secret\r\n")
    check(pf.readline().startswith(b"+OK"), "pass")

    # The list is taken from the sessions' threads: wait until it shows both
    # sessions in their states.
    def listed():
        r = wizmail(h, "sessions", "--json")
        check(r.returncode == 0, r.stderr)
        rep = json.loads(r.stdout)
        return rep, {s["protocol"]: s for s in rep["sessions"]}

    def both_in_state():
        by_proto = listed()[1]
        return by_proto.get("smtp", {}).get("state") == "mail" and \
            by_proto.get("pop3", {}).get("state") == "transaction"
    wait_for(both_in_state, "the SMTP and POP3 sessions are listed in their states")
    rep, by_proto = listed()
    check(set(by_proto) >= {"smtp", "pop3"}, rep)
    check(by_proto["smtp"]["state"] == "mail", by_proto["smtp"])
    check(by_proto["smtp"]["command"].startswith("MAIL FROM:<x@example.org>"), by_proto["smtp"])
    check(by_proto["smtp"]["peer"].startswith("127.0.0.1:"), by_proto["smtp"])
    check(by_proto["pop3"]["state"] == "transaction" and by_proto["pop3"]["account"] == "alice", by_proto["pop3"])
    check(isinstance(rep["workers"], list), rep)
    names = {w["name"]: w for w in rep["workers"]}
    check("queue-runner" in names and "delivery-agent" in names, rep["workers"])
    check(names["delivery-agent"]["state"] == "idle", rep["workers"])
    t0 = time.time()
    r = wizmail(h, "sessions", "-n", "2")
    check(r.returncode == 0 and r.stdout.count("2 sessions") == 2, r.stdout)
    check(time.time() - t0 >= 0.9, "refresh interval")
    check("transaction" in r.stdout and "alice" in r.stdout and "MAIL FROM" in r.stdout, r.stdout)
    links = os.path.join(BUILD, "apps", "wizmail", "wmsmng")
    if os.path.exists(links):
        r = subprocess.run([links, "--home", h.path, "-t", "1"], env=ENV, capture_output=True, text=True)
        check(r.returncode == 0 and "2 sessions" in r.stdout, (r.stdout, r.stderr))

    r = wizmail(h, "reload")
    check(r.returncode == 0 and "reloaded" in r.stdout, r.stderr)

    # A normal stop: the idle POP3 session is closed, the SMTP transaction
    # is given time; closing it lets the server go.
    stopper = subprocess.Popen([WIZMAIL, "--home", h.path, "stop"], env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    # The server is stopping once the idle POP3 session is closed; it cannot
    # finish while the SMTP transaction is open, so the stop command waits.
    p.settimeout(20)
    rest = pf.read()
    check(rest == b"" or rest.startswith(b"-ERR"), rest)
    wait_for(lambda: "stopping: 2 sessions" in server_log(h), "the stop is logged")
    check(is_server(pid), "the server waits for the transaction")
    check(stopper.poll() is None, "normal stop waits for the transaction")
    check(smtp_cmd(s1, f1, "QUIT").startswith((b"221", b"421")), "quit")
    s1.close()
    p.close()
    out, err = stopper.communicate(timeout=30)
    check(stopper.returncode == 0 and "stopped" in out, (out, err))
    check(not is_server(pid), "process gone")
    check(not os.path.exists(os.path.join(run, "wizmail.pid")), "pid file removed")
    check(not os.path.exists(os.path.join(run, "control.sock")), "control.sock removed")
    r = wizmail(h, "stop")
    check(r.returncode == 1 and "not running" in r.stderr, r.stderr)
    r = wizmail(h, "sessions")
    check(r.returncode == 1 and "not running" in r.stderr, r.stderr)


def test_forced_stop_keeps_accepted_mail():
    h = make_home(stop_timeout=60)
    pid = start(h)
    # One message accepted (250), then a session left in the middle of DATA.
    s, f = smtp_open(h)
    smtp_cmd(s, f, "EHLO x")
    smtp_cmd(s, f, "MAIL FROM:<x@example.org>")
    smtp_cmd(s, f, "RCPT TO:<alice@localhost>")
    smtp_cmd(s, f, "DATA")
    s.sendall(b"Subject: kept\r\n\r\nbody\r\n.\r\n")
    check(f.readline().startswith(b"250"), "accepted")
    smtp_cmd(s, f, "MAIL FROM:<x@example.org>")
    smtp_cmd(s, f, "RCPT TO:<alice@localhost>")
    smtp_cmd(s, f, "DATA")
    s.sendall(b"Subject: half\r\n\r\npartial")
    # With the transaction still open (a normal stop would wait for it up to
    # time_out_of_stop = 60 s), the forced stop returns 0 once the server is
    # gone; it gives up (exit 1) if that takes longer than 30 s.
    r = wizmail(h, "stop", "-f")
    check(r.returncode == 0, r.stderr)
    check(not is_server(pid), "gone")
    check("control: stop (forced)" in server_log(h), "a forced stop, by the log")
    msgs = h.messages("alice")
    check(len(msgs) == 1 and b"Subject: kept" in msgs[0], msgs)
    s.close()


def test_stale_pid_and_start_failures():
    h = make_home()
    run = os.path.join(h.path, "var", "run")
    os.makedirs(run, exist_ok=True)
    pidfile = os.path.join(run, "wizmail.pid")
    # A live process that is not a wizmail server.
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")
    r = wizmail(h, "stop")
    check(r.returncode == 1 and "stale pid file" in r.stderr, r.stderr)
    check(not os.path.exists(pidfile), "stale pid file removed")
    # A dead pid: start goes ahead.
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(pidfile, "w") as f:
        f.write(f"{dead.pid}\n")
    r = wizmail(h, "start")
    check(r.returncode == 0 and "stale" in r.stderr, (r.stdout, r.stderr))
    pid = read_pid(h)
    check(pid != dead.pid and is_server(pid), pid)
    # SIGTERM fallback when the control socket is gone.
    os.unlink(os.path.join(run, "control.sock"))
    r = wizmail(h, "stop")
    check(r.returncode == 0, r.stderr)
    check(not is_server(pid), "stopped by SIGTERM")

    # Port in use: start fails with the reason, nothing left behind.
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", h.port))
    blocker.listen(1)
    r = wizmail(h, "start")
    blocker.close()
    check(r.returncode == 1 and "cannot start" in r.stderr, r.stderr)
    check("in use" in r.stderr or "busy" in r.stderr or "bind" in r.stderr, r.stderr)
    check(not os.path.exists(pidfile), "no pid file after a failed start")
    check(not os.path.exists(os.path.join(run, "control.sock")), "no socket after a failed start")

    # Bad configuration.
    with open(os.path.join(h.path, "def", "smtpenv.dat"), "a") as f:
        f.write("port=notanumber\n")
    r = wizmail(h, "start")
    check(r.returncode == 1 and "port" in r.stderr, r.stderr)


def test_supervise_restarts_a_killed_server():
    h = make_home()
    sup = subprocess.Popen([WIZMAIL, "--home", h.path, "supervise", "1"], env=ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    try:
        log_path = os.path.join(h.path, "var", "log", "supervise.log")

        def wait_pid(not_pid, seconds=30):
            # A server supervise has reported as started (killing one still
            # starting would only test the crash-loop path).
            end = time.time() + seconds
            while time.time() < end:
                p = read_pid(h)
                if p and p != not_pid and is_server(p) and os.path.exists(log_path) and \
                        f"started (pid {p})" in open(log_path).read():
                    return p
                time.sleep(0.1)
            return None
        first = wait_pid(None)
        check(first, "supervise started the server")
        os.kill(first, signal.SIGKILL)
        second = wait_pid(first)
        check(second and second != first, "restarted after SIGKILL")
        log = open(log_path).read()
        check(f"started (pid {first})" in log and f"started (pid {second})" in log,
              log + open(os.path.join(h.path, "var", "log", "server.log")).read())
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=10)
    check(sup.returncode == 0, sup.returncode)
    r = wizmail(h, "stop", "-f")
    check(r.returncode == 0, r.stderr)


def test_supervise_backs_off_on_a_crash_loop():
    h = make_home()
    with open(os.path.join(h.path, "def", "smtpenv.dat"), "a") as f:
        f.write("port=notanumber\n")
    sup = subprocess.Popen([WIZMAIL, "--home", h.path, "supervise", "1"], env=ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    log_path = os.path.join(h.path, "var", "log", "supervise.log")
    try:
        end = time.time() + 15
        while time.time() < end:
            if os.path.exists(log_path) and "next check in 4 s" in open(log_path).read():
                break
            time.sleep(0.1)
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=10)
    log = open(log_path).read()
    check(log.count("start failed") >= 3 and "port" in log, log)
    check("next check in 2 s" in log and "next check in 4 s" in log, log)
    check(log.rstrip().endswith("supervise: ended"), log)


def stored(home, account):
    return [email.message_from_bytes(m) for m in home.messages(account)]


def payload(msg):
    return msg.get_payload().replace("\r\n", "\n")


def decode_subject(msg):
    return str(email.header.make_header(email.header.decode_header(msg["Subject"])))


def test_sendmail_forms_and_notify():
    h = make_home()
    d = tempfile.mkdtemp(prefix="wizmail-sendmail-")
    # The server is not running yet: a clear error, EX_TEMPFAIL.
    r = sendmail(h, "-i", "alice@localhost", input=b"Subject: x\n\nbody\n")
    check(r.returncode == 75 and b"not running" in r.stderr, r.stderr)
    start(h)
    try:
        # -mf FILE -del
        mf = os.path.join(d, "mail.eml")
        with open(mf, "wb") as f:
            f.write(b"From: bob@localhost\r\nTo: alice@localhost\r\nSubject: stored file\r\n\r\n.leading dot\r\n")
        r = sendmail(h, "bob@localhost", "alice@localhost,bob@localhost", "-mf", mf, "-del")
        check(r.returncode == 0, r.stderr)
        check(not os.path.exists(mf), "-del removed the file")
        a = stored(h, "alice")
        check(len(a) == 1 and a[0]["Subject"] == "stored file", a)
        check(a[0].get_payload().startswith(".leading dot"), a[0].get_payload())
        check(len(stored(h, "bob")) == 1, "second recipient")

        # -sb FILE -onlyonce CSV, Japanese subject and body
        sb = os.path.join(d, "reply.sab")
        with open(sb, "w", encoding="utf-8") as f:
            f.write("ただいま旅行中です\nメールありがとうございました。\n4月下旬に戻ります。\n")
        once = os.path.join(d, "onlyonce.csv")
        for _ in range(2):
            r = sendmail(h, "bob@localhost", "alice@localhost", "-sb", sb, "-onlyonce", once)
            check(r.returncode == 0, r.stderr)
        a = stored(h, "alice")
        check(len(a) == 2, "-onlyonce sent once")
        m = [x for x in a if x["Subject"] != "stored file"][0]
        check(decode_subject(m) == "ただいま旅行中です", m["Subject"])
        check(m["Subject"].startswith("=?UTF-8?B?"), m["Subject"])
        check(m["MIME-Version"] == "1.0" and m["Message-ID"] and m["Date"], dict(m))
        check(m.get_content_charset() == "utf-8", m["Content-Type"])
        check("メールありがとうございました。" in m.get_payload(decode=True).decode("utf-8"), "body")
        check(open(once).read() == "bob@localhost,alice@localhost\n", open(once).read())

        # Classic: -t from stdin, Bcc removed, a lone dot ends input without -i.
        msg = (b"From: Alice <alice@localhost>\nTo: bob@localhost\nBcc: alice@localhost\n"
               b"Subject: classic\n\nline\n.\nnot sent\n")
        r = sendmail(h, "-t", "-f", "alice@localhost", input=msg)
        check(r.returncode == 0, r.stderr)
        b = [x for x in stored(h, "bob") if x["Subject"] == "classic"]
        check(len(b) == 1 and "Bcc" not in b[0] and b[0]["Message-ID"] and b[0]["Date"], b)
        check(payload(b[0]) == "line\n", repr(b[0].get_payload()))
        check(len([x for x in stored(h, "alice") if x["Subject"] == "classic"]) == 1, "Bcc recipient")
        # Recipients as arguments, -oi keeps the dot line.
        r = sendmail(h, "-oi", "-f", "bob@localhost", "alice@localhost", input=b"Subject: args\n\na\n.\nb\n")
        check(r.returncode == 0, r.stderr)
        m = [x for x in stored(h, "alice") if x["Subject"] == "args"][0]
        check(payload(m) == "a\n.\nb\n", repr(m.get_payload()))
        check(m["From"] == "bob@localhost", m["From"])
        # Refusals keep their meaning: unknown local user is EX_NOUSER.
        r = sendmail(h, "-i", "nobody@localhost", input=b"Subject: x\n\nx\n")
        check(r.returncode == 67 and b"550 5.1.1" in r.stderr, r.stderr)
        # Usage errors.
        for args in (["-f"], ["a@x", "b@y", "-mf"], ["a@x", "b@y", "-sb", sb, "-mf", sb],
                     ["a b@x", "b@y", "-sb", sb], ["-q"], ["a@x", "b@y", "-onlyonce", once, "-mf", sb]):
            r = sendmail(h, *args, input=b"")
            check(r.returncode == 64, (args, r.stderr))
        r = sendmail(h, "a@localhost", "alice@localhost", "-mf", os.path.join(d, "missing"))
        check(r.returncode == 66, r.stderr)
        # Relaying is allowed for the trusted local socket (TCP without AUTH
        # is not: the harness sets send_permits_only_smtp_auth). Last, since
        # what the outbound runner does next is not this test's business.
        s, f = smtp_open(h)
        smtp_cmd(s, f, "EHLO x")
        smtp_cmd(s, f, "MAIL FROM:<alice@localhost>")
        check(smtp_cmd(s, f, "RCPT TO:<someone@example.invalid>").startswith(b"554"), "TCP relay denied")
        s.close()
        r = sendmail(h, "-i", "-f", "alice@localhost", "someone@example.invalid", input=b"Subject: out\n\nx\n")
        check(r.returncode == 0, r.stderr)
    finally:
        wizmail(h, "stop", "-f")

    # notify: directly into every ordinary account, no server needed.
    r = wizmail(h, "ml", "create", "list1", "pw")
    check(r.returncode == 0, r.stderr)
    before = {a: len(h.messages(a)) for a in ("alice", "bob", "postmaster", "notifi", "list1")}
    notice = os.path.join(d, "notice.sab")
    with open(notice, "w", encoding="utf-8") as f:
        f.write("メンテナンスのお知らせ\n明日10時から停止します。\n")
    r = wizmail(h, "notify", notice)
    check(r.returncode == 0 and "stored in 2 mailboxes" in r.stdout, (r.stdout, r.stderr))
    for acct, n in (("alice", 1), ("bob", 1), ("postmaster", 0), ("notifi", 0), ("list1", 0)):
        check(len(h.messages(acct)) == before[acct] + n, acct)
    m = [x for x in stored(h, "alice") if x["From"] == "notifi@localhost"]
    check(len(m) == 1 and decode_subject(m[0]) == "メンテナンスのお知らせ", m)
    check(m[0]["To"] == "alice@localhost", m[0]["To"])
    check(m[0]["Return-Path"] == "<notifi@localhost>" and m[0]["Delivered-To"] == "alice@localhost", dict(m[0]))
    check("明日10時から停止します。" in m[0].get_payload(decode=True).decode("utf-8"), "notice body")
    wmsntu = os.path.join(BUILD, "apps", "wizmail", "wmsntu")
    if os.path.exists(wmsntu):
        r = subprocess.run([wmsntu, "--home", h.path, notice, "-nowait"], env=ENV, capture_output=True, text=True)
        check(r.returncode == 0 and len(h.messages("bob")) == before["bob"] + 2, r.stderr)
    bad = os.path.join(d, "bad.sab")
    with open(bad, "wb") as f:
        f.write(b"\x82\xa0\x82\xa2\n")
    r = wizmail(h, "notify", bad)
    check(r.returncode == 1 and "UTF-8" in r.stderr, r.stderr)
    r = wizmail(h, "notify", os.path.join(d, "missing"))
    check(r.returncode == 1, r.stderr)


def test_a_home_deeper_than_a_socket_name():
    """A home whose socket paths are longer than sun_path holds (107 bytes;
    a home on a deep network file system mount): the server binds its
    control and submission sockets through their folder, and wizmail and
    wizmail-sendmail reach them the same way."""
    base = tempfile.mkdtemp(prefix="wizmail-deep-")
    atexit.register(shutil.rmtree, base, True)
    deep = os.path.join(base, *(["nested-folder-of-a-deep-mount"] * 4))  # 120 bytes more
    os.makedirs(deep)
    h = harness.Home(root=deep, accounts=(("alice", "secret"), ("postmaster", "pm")))
    _homes.append(h)
    sock = os.path.join(h.path, "var", "run", "control.sock")
    check(len(sock.encode()) > 107, f"the control socket's path is longer than sun_path ({len(sock)})")
    pid = start(h)
    r = wizmail(h, "sessions")
    check(r.returncode == 0, f"wizmail sessions over the deep control socket: {r.stderr}")
    r = sendmail(h, "-i", "alice@localhost", input=b"Subject: deep home\n\nbody\n")
    check(r.returncode == 0, f"wizmail-sendmail over the deep submission socket: {r.stderr}")
    check([m["Subject"] for m in stored(h, "alice")] == ["deep home"], "the submitted message is stored")
    r = wizmail(h, "stop")
    check(r.returncode == 0, r.stderr)
    wait_for(lambda: not is_server(pid), "the server stopped")


def test_service_unit():
    h = make_home()
    r = wizmail(h, "service", "install", "--print")
    check(r.returncode == 0, r.stderr)
    for line in ("ExecStart=", f"--home {os.path.realpath(h.path)}", "Restart=on-failure",
                 "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=", "PrivateTmp=yes", "[Install]"):
        check(line in r.stdout or line.replace(os.path.realpath(h.path), h.path) in r.stdout, (line, r.stdout))
    units = tempfile.mkdtemp(prefix="wizmail-units-")
    r = wizmail(h, "service", "install", "--unit-dir", units)
    check(r.returncode == 0 and os.path.exists(os.path.join(units, "wizmail.service")), r.stderr)
    r = wizmail(h, "service", "uninstall", "--unit-dir", units)
    check(r.returncode == 0 and not os.path.exists(os.path.join(units, "wizmail.service")), r.stderr)
    r = wizmail(h, "service", "uninstall", "--unit-dir", units)
    check(r.returncode == 1, r.stderr)
    os.rmdir(units)


def test_service_unit_writable_paths():
    """ProtectSystem=strict leaves everything read-only but ReadWritePaths=:
    the unit lists mailbox_path and dustbox_path outside the home (and where
    a symlinked mailbox/ leads), systemd-analyze accepts it, and `config
    check` says when the installed unit no longer matches the configuration."""
    h = make_home()
    home = os.path.realpath(h.path)
    outside = os.path.realpath(tempfile.mkdtemp(prefix="wizmail-srv-"))
    units = tempfile.mkdtemp(prefix="wizmail-units-")
    mailbox = os.path.join(outside, "mailbox")
    shutil.copytree(os.path.join(h.path, "mailbox"), mailbox)
    dust = os.path.join(outside, "dustbox")  # not made yet
    env = os.path.join(h.path, "def", "wiz98msenv.dat")
    with open(env, "a") as f:
        f.write(f"mailbox_path={mailbox}\ndustbox_path={dust}\n")
    unit_file = os.path.join(units, "wizmail.service")

    def rw_line():
        return [l for l in open(unit_file).read().splitlines() if l.startswith("ReadWritePaths=")]

    r = wizmail(h, "service", "install", "--unit-dir", units, "--server", harness.SERVER)
    check(r.returncode == 0, r.stderr)
    check(rw_line() == [f"ReadWritePaths={home} -{mailbox} -{dust}"], rw_line())
    check(dust in r.stderr and "does not exist" in r.stderr, "install warns that the dustbox is missing: " + r.stderr)
    analyze = shutil.which("systemd-analyze")
    check(analyze is not None, "systemd-analyze is installed (package systemd, scripts/packages.txt)")
    v = subprocess.run([analyze, "verify", unit_file], capture_output=True, text=True, timeout=60)
    check(v.returncode == 0, "systemd-analyze verify: " + v.stdout + v.stderr)
    r = wizmail(h, "config", "check", "--unit-dir", units)
    check(r.returncode == 0 and "out of date" not in r.stderr, r.stderr)

    # mailbox_path moves: the installed unit is stale until installed again.
    moved = os.path.join(outside, "mail2")
    shutil.move(mailbox, moved)
    text = open(env).read().replace(f"mailbox_path={mailbox}", f"mailbox_path={moved}")
    with open(env, "w") as f:
        f.write(text)
    r = wizmail(h, "config", "check", "--unit-dir", units)
    check(r.returncode == 0 and unit_file + " is out of date" in r.stderr and moved in r.stderr,
          "config check: the installed unit is stale: " + r.stderr)
    r = wizmail(h, "service", "install", "--unit-dir", units, "--server", harness.SERVER)
    check(r.returncode == 0 and rw_line() == [f"ReadWritePaths={home} -{moved} -{dust}"], rw_line())
    r = wizmail(h, "config", "check", "--unit-dir", units)
    check(r.returncode == 0 and "out of date" not in r.stderr, r.stderr)
    # A unit for another home is not this one's business.
    other = make_home()
    r = wizmail(other, "config", "check", "--unit-dir", units)
    check(r.returncode == 0 and "out of date" not in r.stderr, r.stderr)

    # The default folders are symbolic links to elsewhere: there too.
    s = make_home()
    real = os.path.join(outside, "real-mailbox")
    shutil.move(os.path.join(s.path, "mailbox"), real)
    os.symlink(real, os.path.join(s.path, "mailbox"))
    r = wizmail(s, "service", "install", "--print", "--server", harness.SERVER)
    check(r.returncode == 0 and f"ReadWritePaths={os.path.realpath(s.path)} -{real}\n" in r.stdout, r.stdout)
    shutil.rmtree(units)
    shutil.rmtree(outside)


if __name__ == "__main__":
    harness.run_tests(globals())
