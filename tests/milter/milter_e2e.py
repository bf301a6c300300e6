"""Milters end to end (docs/milter.md): the real wizmail-server with
smtpd_milters pointing at test milters started here on free loopback ports —
tests/milter/test_milter.c, written with Debian's libmilter (the reference
implementation of the milter side), told per test which action to take at
which stage — and, for what libmilter never sends, a raw milter in Python
that breaks the protocol on purpose. Python's smtplib is the client.

Every action Postfix knows is exercised: accept, continue, reject,
tempfail, discard, quarantine, custom reply codes; header add, change,
insert; sender change; recipient add and delete; body replacement;
progress; two milters in a chain (the second sees the first one's changes);
a milter not listening, timing out, killed mid-session, or answering
malformed packets (milter_default_action applies, nothing accepted is lost).
Every process started here is killed at exit."""
import glob, json, os, pwd, signal, smtplib, socket, ssl, struct, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402
from harness import Home, Server, check  # noqa: E402

MILTER = os.path.join(harness.BUILD, "tests", "milter", "test_milter")
if not os.path.exists(MILTER):
    print("FAILED: tests/milter/test_milter was not built (libmilter-dev: scripts/packages.txt)")
    sys.exit(1)

TMP = tempfile.mkdtemp(prefix="wizmail-milter-")
_homes = []


class Milter:
    """test_milter on a free port; `log()` is what it saw."""

    def __init__(self, *directives):
        self.port = harness.free_port()
        self.logpath = os.path.join(TMP, f"milter-{self.port}.log")
        argv = [MILTER, "-p", f"inet:{self.port}@127.0.0.1", "-l", self.logpath]
        for d in directives:
            argv += ["-a", d]
        self.proc = harness.start_process(argv)
        harness.wait_until(lambda: os.path.exists(self.logpath) and "ready" in open(self.logpath).read(),
                           f"test milter listens on {self.port}", 10)

    def spec(self):
        return f"inet:127.0.0.1:{self.port}"

    def log(self):
        return open(self.logpath, errors="replace").read()

    def kill(self):
        self.proc.kill()
        self.proc.wait()


class MilterServer(Server):
    """The server; stop() also ends the test milters it was given."""

    def __init__(self, home, milters):
        self.milters = [m for m in milters if isinstance(m, Milter)]
        super().__init__(home)

    def stop(self):
        super().stop()
        for m in self.milters:
            m.kill()


def server(milters, extra="", accounts=(("alice", "secret"), ("bob", "pw"), ("carol", "pw"), ("postmaster", "pm")),
           tls=False):
    specs = ",".join(m if isinstance(m, str) else m.spec() for m in milters)
    for attempt in range(3):
        home = Home(smtp_extra=f"smtpd_milters={specs}\nmilter_connect_timeout=2\nmilter_command_timeout=2\n"
                               f"milter_content_timeout=3\n{extra}", accounts=accounts, tls=tls)
        _homes.append(home)
        try:
            return home, MilterServer(home, milters)
        except SystemExit as e:  # a port taken meanwhile by another test on this machine
            if "Address already in use" not in str(e) or attempt == 2:
                raise


MESSAGE = b"From: ext@remote.test\r\nTo: alice@localhost\r\nSubject: hello\r\n\r\nthe body\r\n"


def client(home):
    c = smtplib.SMTP("127.0.0.1", home.port, timeout=20)
    return c


def send(home, rcpts=("alice@localhost",), sender="ext@remote.test", msg=MESSAGE):
    """(code, text) of the end of data, or of the first command refused."""
    c = client(home)
    try:
        code, text = c.ehlo("client.test")
        if code != 250:
            return code, text
        code, text = c.mail(sender)
        if code != 250:
            return code, text
        ok = 0
        for r in rcpts:
            code, text = c.rcpt(r)
            ok += code == 250
        if not ok:
            return code, text
        try:
            code, text = c.data(msg)
        except smtplib.SMTPDataError as e:  # DATA itself refused
            return e.smtp_code, e.smtp_error
        return code, text
    finally:
        try:
            c.quit()
        except (smtplib.SMTPException, OSError):
            pass


def delivered(home, account="alice"):
    return home.messages(account)


def settled(home):
    """Nothing staged is left behind (tmp/ of every mailbox, the queue's)."""
    left = glob.glob(os.path.join(home.path, "mailbox", "*", "tmp", "*"))
    left += glob.glob(os.path.join(home.path, "resendmail", "tmp", "*"))
    return not left


def stages(milter):
    return [line.split(" ")[0] for line in milter.log().splitlines()]


# --- the stages and the macros --------------------------------------------

def test_accept_all_stages_and_macros():
    m = Milter()
    home, srv = server([m])
    code, _ = send(home, rcpts=("alice@localhost", "bob@localhost"))
    check(code == 250, "a message through a milter that continues everywhere is accepted")
    check(len(delivered(home)) == 1 and len(delivered(home, "bob")) == 1, "and delivered to both")
    log = m.log()
    seen = stages(m)
    for s in ("connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"):
        check(s in seen, f"the milter saw {s}")
    check(seen.index("connect") < seen.index("helo") < seen.index("mail") < seen.index("rcpt") < seen.index("data")
          < seen.index("header") < seen.index("eoh") < seen.index("body") < seen.index("eom"), "in protocol order")
    conn = [l for l in log.splitlines() if l.startswith("connect ")][0]
    check("{client_addr}=127.0.0.1" in conn and "j=" in conn and "{daemon_name}=wizmail" in conn,
          f"connect macros j, {{daemon_name}}, {{client_addr}} ({conn})")
    mail = [l for l in log.splitlines() if l.startswith("mail ")][0]
    check(mail.startswith("mail <ext@remote.test>") and "{mail_addr}=ext@remote.test" in mail and " i=" in mail,
          f"MAIL with {{mail_addr}} and i ({mail})")
    rcpts = [l for l in log.splitlines() if l.startswith("rcpt ")]
    check(len(rcpts) == 2 and "{rcpt_addr}=bob@localhost" in rcpts[1], "each RCPT with {rcpt_addr}")
    check("header Received: from client.test" in log and "header Subject: hello" in log,
          "the headers, wizmail's Received: first")
    srv.stop()


def test_auth_macro_on_submission():
    m = Milter()
    home, srv = server([m])
    c = smtplib.SMTP("127.0.0.1", home.submission_port, timeout=20)
    c.ehlo("client.test")
    c.login("alice", "secret")
    c.sendmail("alice@localhost", ["bob@localhost"], MESSAGE)
    c.quit()
    mail = [l for l in m.log().splitlines() if l.startswith("mail ")][0]
    check("{auth_authen}=alice" in mail, f"{{auth_authen}} names the authenticated user ({mail})")
    srv.stop()


def test_tls_macros():
    """After STARTTLS the next HELO carries {tls_version}, {cipher} and
    {cipher_bits} (Postfix's default helo macros); before it, none."""
    m = Milter()
    home, srv = server([m], tls=True)
    c = smtplib.SMTP("127.0.0.1", home.port, timeout=20)
    c.ehlo("client.test")
    c.starttls(context=ssl._create_unverified_context())
    c.ehlo("client.test")
    c.sendmail("ext@remote.test", ["alice@localhost"], MESSAGE)
    version, cipher = c.sock.version(), c.sock.cipher()
    c.quit()
    helos = [l for l in m.log().splitlines() if l.startswith("helo ")]
    check(len(helos) == 2, f"the milter saw both EHLOs ({helos})")
    check("{tls_version}" not in helos[0] and "{cipher}" not in helos[0], f"no TLS macros before STARTTLS ({helos[0]})")
    check(f"{{tls_version}}={version}" in helos[1] and f"{{cipher}}={cipher[0]}" in helos[1]
          and f"{{cipher_bits}}={cipher[2]}" in helos[1],
          f"the TLS macros after STARTTLS name {version} {cipher[0]} {cipher[2]} ({helos[1]})")
    srv.stop()


def test_client_name_macros():
    """{client_name} is the forward-confirmed reverse DNS name (Postfix's),
    {client_ptr} the PTR name, both 'unknown' without one; dnsmasq on a
    free port answers: 127.0.0.5 <-> client5.test (PTR and A),
    127.0.0.6 -> liar.test (PTR only, no A back), 127.0.0.7 nothing."""
    dnsmasq_bin = "/usr/sbin/dnsmasq"
    check(os.path.exists(dnsmasq_bin), "dnsmasq is installed (scripts/packages.txt)")
    port = harness.free_port()
    tmp = tempfile.mkdtemp(prefix="wizmail-milter-dns-")
    dns = harness.start_process(
        [dnsmasq_bin, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", f"--port={port}",
         "--listen-address=127.0.0.1", "--bind-interfaces", f"--pid-file={tmp}/dnsmasq.pid",
         f"--user={pwd.getpwuid(os.getuid()).pw_name}", "--local=/test/", "--local=/127.in-addr.arpa/",
         "--host-record=client5.test,127.0.0.5", "--ptr-record=6.0.0.127.in-addr.arpa,liar.test"])
    try:
        m = Milter()
        home, srv = server([m], extra=f"dns_servers=127.0.0.1:{port}\n")
        for ip in ("127.0.0.5", "127.0.0.6", "127.0.0.7"):
            c = smtplib.SMTP("127.0.0.1", home.port, timeout=20, source_address=(ip, 0))
            c.ehlo("client.test")
            c.quit()
        conns = [l for l in m.log().splitlines() if l.startswith("connect ")]
        check(len(conns) == 3, f"three connect events ({conns})")
        by_ip = {ip: next((l for l in conns if f"{{client_addr}}={ip}" in l), "") for ip in
                 ("127.0.0.5", "127.0.0.6", "127.0.0.7")}
        check(by_ip["127.0.0.5"].startswith("connect client5.test ") and "{client_name}=client5.test" in by_ip["127.0.0.5"]
              and "{client_ptr}=client5.test" in by_ip["127.0.0.5"] and "_=client5.test [127.0.0.5]" in by_ip["127.0.0.5"],
              f"a confirmed name: client5.test ({by_ip['127.0.0.5']})")
        check("{client_name}=unknown" in by_ip["127.0.0.6"] and "{client_ptr}=liar.test" in by_ip["127.0.0.6"],
              f"a PTR that does not point back: unknown, the PTR name in {{client_ptr}} ({by_ip['127.0.0.6']})")
        check("{client_name}=unknown" in by_ip["127.0.0.7"] and "{client_ptr}=unknown" in by_ip["127.0.0.7"],
              f"no PTR: unknown ({by_ip['127.0.0.7']})")
        srv.stop()
    finally:
        dns.terminate()
        dns.wait(10)


# --- refusals at each stage -------------------------------------------------

def test_reject_at_each_stage():
    for stage, where in (("connect", "ehlo"), ("helo", "ehlo"), ("mail", "mail"), ("data", "data"),
                         ("header", "data"), ("eoh", "data"), ("body", "data"), ("eom", "data")):
        m = Milter(f"{stage}=reject")
        home, srv = server([m])
        code, text = send(home)
        check(code == 550, f"reject at {stage}: {code} {text!r} (at {where})")
        check(not delivered(home), f"nothing delivered after a reject at {stage}")
        check(settled(home), "no staged file left")
        srv.stop()


def test_reject_one_recipient():
    m = Milter("rcpt/bob=reject")
    home, srv = server([m])
    c = client(home)
    c.ehlo("client.test")
    c.mail("ext@remote.test")
    check(c.rcpt("bob@localhost")[0] == 550, "the milter refuses bob's RCPT 550")
    check(c.rcpt("alice@localhost")[0] == 250, "alice's RCPT passes")
    check(c.data(MESSAGE)[0] == 250, "the message is accepted for alice")
    c.quit()
    check(len(delivered(home)) == 1 and not delivered(home, "bob"), "delivered to alice only")
    srv.stop()


def test_tempfail_and_custom_replies():
    m = Milter("mail=tempfail")
    home, srv = server([m])
    check(send(home)[0] == 451, "tempfail at MAIL: 451")
    srv.stop()
    m = Milter("rcpt=reply:554:5.7.1:go away please")
    home, srv = server([m])
    code, text = send(home)
    check(code == 554 and text == b"5.7.1 go away please", f"a custom reply at RCPT ({code} {text!r})")
    srv.stop()
    m = Milter("eom=reply:452:4.3.1:come back later")
    home, srv = server([m])
    code, text = send(home)
    check(code == 452 and text == b"4.3.1 come back later", f"a custom 4xx at the end of data ({code} {text!r})")
    check(not delivered(home) and settled(home), "nothing delivered, nothing left staged")
    srv.stop()
    for stage, where in (("rcpt", "RCPT"), ("eom", "the end of data")):
        m = Milter(f"{stage}=mlreply:550:5.7.1:first line|second line|last line")
        home, srv = server([m])
        c = client(home)
        c.ehlo("client.test")
        c.mail("ext@remote.test")
        if stage == "rcpt":
            code, text = c.rcpt("alice@localhost")
        else:
            c.rcpt("alice@localhost")
            code, text = c.data(MESSAGE)
        check(code == 550 and text == b"5.7.1 first line\n5.7.1 second line\n5.7.1 last line",
              f"a multi-line reply at {where} is told whole ({code} {text!r})")
        c.quit()
        srv.stop()
    m = Milter("eom=reply:421:4.7.0:closing now")
    home, srv = server([m])
    c = client(home)
    c.ehlo("client.test")
    c.mail("ext@remote.test")
    c.rcpt("alice@localhost")
    code, text = c.data(MESSAGE)
    check(code == 421 and text == b"4.7.0 closing now", f"a 421 at the end of data ({code} {text!r})")
    try:
        code = c.noop()[0]
    except smtplib.SMTPServerDisconnected:
        code = None
    check(code is None, f"and the session is closed, as Postfix does (NOOP got {code})")
    check(not delivered(home) and settled(home), "nothing delivered, nothing left staged")
    srv.stop()
    m = Milter("eom=tempfail")
    home, srv = server([m])
    code, text = send(home)
    check(code == 451 and text.startswith(b"4.7.1"), f"tempfail at the end of data: 451 4.7.1 ({text!r})")
    srv.stop()


def test_unknown_command():
    # Postfix's SMFIC_UNKNOWN: the milter hears a command wizmail does not
    # know; its refusal replaces wizmail's 500, and either way it counts.
    m = Milter("unknown=reply:554:5.7.1:no such verb here")
    home, srv = server([m])
    c = client(home)
    c.ehlo("client.test")
    code, text = c.docmd("XYZZY plugh")
    check(code == 554 and text == b"5.7.1 no such verb here", f"the milter's reply to an unknown command ({code} {text!r})")
    check("unknown XYZZY plugh" in m.log(), "the milter saw the command line")
    check(c.mail("ext@remote.test")[0] == 250, "the session goes on")
    c.quit()
    srv.stop()
    m = Milter()
    home, srv = server([m])
    c = client(home)
    c.ehlo("client.test")
    code, text = c.docmd("XYZZY")
    check(code == 500 and text.startswith(b"5.5.2"), f"a milter that continues: wizmail's own 500 ({code} {text!r})")
    check("unknown XYZZY" in m.log(), "the milter saw it too")
    c.quit()
    srv.stop()


def test_discard():
    for stage in ("mail", "rcpt", "data", "header", "eom"):
        m = Milter(f"{stage}=discard")
        home, srv = server([m])
        code, text = send(home)
        check(code == 250, f"discard at {stage}: the client is told 250 ({text!r})")
        check(not delivered(home) and settled(home), f"and nothing is delivered (discard at {stage})")
        srv.stop()


def test_accept_skips_the_rest():
    m = Milter("mail=accept", "eom=addheader:X-Never:1")
    home, srv = server([m])
    check(send(home)[0] == 250, "accept at MAIL: the message is accepted")
    msgs = delivered(home)
    check(len(msgs) == 1 and b"X-Never" not in msgs[0], "delivered, and the milter saw no more of it")
    check("rcpt" not in stages(m) and "eom" not in stages(m), "no RCPT or end of message sent after accept")
    srv.stop()
    m = Milter("connect=accept")
    home, srv = server([m])
    check(send(home)[0] == 250 and stages(m).count("helo") == 0, "accept at connect: nothing more of the session")
    srv.stop()


def test_quarantine():
    m = Milter("eom=quarantine:suspicious attachment")
    home, srv = server([m])
    code, _ = send(home)
    check(code == 250, "a quarantined message is accepted (250)")
    check(not delivered(home), "but not delivered")
    files = glob.glob(os.path.join(home.path, "resendmail", "quarantine", "*"))
    check(len(files) == 1, "it is kept in resendmail/quarantine/")
    body = open(files[0], "rb").read()
    check(b"X-Wizmail-Quarantine: suspicious attachment" in body and b"X-Wizmail-Envelope-To: <alice@localhost>" in body
          and b"the body" in body, "with the reason and its envelope")
    check(oct(os.stat(files[0]).st_mode & 0o777) == "0o600", "mode 0600")

    # The hold queue, as an administrator works it: list, release, delete.
    code, _ = send(home, rcpts=("alice@localhost", "bob@localhost"))
    check(code == 250, "a second message quarantined")
    cli = lambda *a: subprocess.run([harness.CLI, "--home", home.path, "queue", *a], capture_output=True, text=True)
    ls = cli("quarantine", "--json")
    check(ls.returncode == 0, f"queue quarantine --json ({ls.stderr})")
    held = json.loads(ls.stdout)
    check(len(held) == 2 and all(q["reason"] == "suspicious attachment" and q["sender"] == "ext@remote.test"
                                 for q in held), f"both listed with reason and sender ({held})")
    two = [q for q in held if len(q["recipients"]) == 2]
    one = [q for q in held if len(q["recipients"]) == 1]
    check(len(two) == 1 and sorted(two[0]["recipients"]) == ["alice@localhost", "bob@localhost"],
          "with their recipients")
    text = cli("quarantine")
    check(text.returncode == 0 and "-- 2 message(s) quarantined" in text.stdout, f"and as text ({text.stdout})")
    bad = cli("release", "../../etc/passwd")
    check(bad.returncode != 0 and "bad quarantine id" in bad.stderr, f"a path as id is refused ({bad.stderr})")
    missing = cli("release", "nosuchid")
    check(missing.returncode != 0 and "no quarantined message" in missing.stderr, "an unknown id is refused")
    # The milter quarantines every message at the end of data on SMTP, but
    # the release goes through the submit socket (non_smtpd_milters: none).
    rel = cli("release", two[0]["id"])
    check(rel.returncode == 0 and "released" in rel.stdout, f"queue release ({rel.stdout}{rel.stderr})")
    harness.wait_until(lambda: len(delivered(home)) == 1 and len(delivered(home, "bob")) == 1,
                       "the released message is delivered to both recipients")
    copy = delivered(home)[0]
    check(b"the body" in copy and b"X-Wizmail-Quarantine" not in copy and b"X-Wizmail-Envelope" not in copy,
          "as it was received, without the quarantine's fields")
    check(len(glob.glob(os.path.join(home.path, "resendmail", "quarantine", "*.eml"))) == 1,
          "and it left the quarantine")
    srv.stop()
    stopped = cli("release", one[0]["id"])
    check(stopped.returncode != 0 and "the server is not running" in stopped.stderr,
          f"release without a running server fails and says why ({stopped.stderr})")
    check(len(json.loads(cli("quarantine", "--json").stdout)) == 1, "and the message stays quarantined")
    dl = cli("delete", one[0]["id"])
    check(dl.returncode == 0 and "(quarantined)" in dl.stdout, f"queue delete removes a quarantined one ({dl.stdout})")
    check(json.loads(cli("quarantine", "--json").stdout) == [], "the quarantine is empty")
    check(len(delivered(home)) == 1, "the deleted one was never delivered")


# --- changes ---------------------------------------------------------------

def test_header_changes():
    msg = (b"From: ext@remote.test\r\nTo: alice@localhost\r\nSubject: first\r\nX-Old: 1\r\nX-Old: 2\r\n"
           b"\r\nthe body\r\n")
    m = Milter("eom=addheader:X-Added:yes", "eom=chgheader:Subject:1:changed subject",
               "eom=chgheader:X-Old:2:", "eom=insheader:0:X-Top:inserted")
    home, srv = server([m])
    check(send(home, msg=msg)[0] == 250, "a message with header changes is accepted")
    got = delivered(home)[0]
    head = got.split(b"\r\n\r\n")[0]
    check(b"\r\nX-Added: yes" in head, "a header added")
    check(b"Subject: changed subject" in head and b"Subject: first" not in head, "a header changed")
    check(b"X-Old: 1" in head and b"X-Old: 2" not in head, "the second X-Old deleted (empty value), the first kept")
    check(head.index(b"X-Top: inserted") < head.index(b"Received: from client.test"),
          "a header inserted at index 0: before wizmail's Received:")
    check(got.endswith(b"the body\r\n"), "the body untouched")
    srv.stop()


def test_envelope_changes():
    m = Milter("eom=chgfrom:<new-sender@remote.test>", "eom=addrcpt:<bob@localhost>",
               "eom=addrcpt_par:<carol@localhost>:NOTIFY=NEVER", "eom=delrcpt:<alice@localhost>")
    home, srv = server([m])
    check(send(home)[0] == 250, "a message with envelope changes is accepted")
    check(not delivered(home), "alice deleted: nothing for her")
    bob, carol = delivered(home, "bob"), delivered(home, "carol")
    check(len(bob) == 1 and len(carol) == 1, "bob and carol added: one copy each")
    check(b"Return-Path: <new-sender@remote.test>" in bob[0], "the sender changed (Return-Path)")
    srv.stop()


def test_body_replaced_and_large_body_in_chunks():
    m = Milter("eom=replbody:a new body\r\nline two\r\n")
    home, srv = server([m])
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 200
    check(send(home, msg=big)[0] == 250, "a 200 kB message through a milter that replaces the body")
    got = delivered(home)[0]
    check(got.endswith(b"\r\n\r\na new body\r\nline two\r\n"), "the body is the milter's")
    sizes = [int(l.split()[1]) for l in m.log().splitlines() if l.startswith("body ")]
    check(len(sizes) >= 4 and max(sizes) <= 65535 and sum(sizes) == 200 * 1000,
          f"the body went in chunks of at most 65535 octets ({sizes})")
    srv.stop()


def test_progress_extends_the_content_timeout():
    m = Milter("eom=progress:14", "eom=addheader:X-Slow:done")  # 14 × 0.3 s > milter_content_timeout=3
    home, srv = server([m])
    code, _ = send(home)
    check(code == 250 and b"X-Slow: done" in delivered(home)[0], "a slow milter that reports progress is waited for")
    srv.stop()


def test_chain_of_two():
    first = Milter("eom=addheader:X-First:seen", "eom=chgheader:Subject:1:from the first")
    second = Milter("header/X-First=reply:550:5.7.1:second saw the first", "eom=addheader:X-Second:yes")
    home, srv = server([first, second])
    code, text = send(home)
    check(code == 550 and text == b"5.7.1 second saw the first",
          f"the second milter sees the header the first one added ({code} {text!r})")
    check("header Subject: from the first" in second.log(), "and the first one's change")
    check(not delivered(home), "its reject refuses the message")
    srv.stop()
    first = Milter("eom=addheader:X-First:seen")
    second = Milter("eom=addheader:X-Second:yes")
    home, srv = server([first, second])
    check(send(home)[0] == 250, "two milters that both add headers")
    got = delivered(home)[0]
    check(got.index(b"X-First: seen") < got.index(b"X-Second: yes"), "both headers, in chain order")
    check("header X-First: seen" in second.log(), "the second saw the first's header")
    srv.stop()
    first = Milter("mail=reject")
    second = Milter()
    home, srv = server([first, second])
    check(send(home)[0] == 550 and "mail" not in stages(second), "the first milter's reject ends the chain")
    srv.stop()


def test_non_smtpd_milters_for_local_submission():
    smtp_only = Milter("mail=reject")
    local = Milter("eom=addheader:X-Local-Milter:seen")
    home, srv = server([smtp_only], f"non_smtpd_milters={local.spec()}\n")
    srv.milters.append(local)
    check(send(home)[0] == 550, "smtpd_milters see SMTP mail (here: reject)")
    sendmail = os.path.join(harness.BUILD, "apps", "wizmail-sendmail", "wizmail-sendmail")
    r = subprocess.run([sendmail, "--home", home.path, "-f", "alice@localhost", "--", "bob@localhost"],
                       input=b"From: alice@localhost\nSubject: local\n\nhi\n", capture_output=True, timeout=30)
    check(r.returncode == 0, f"wizmail-sendmail hands the message in ({r.stderr!r})")
    harness.wait_until(lambda: delivered(home, "bob"), "the local message is delivered")
    check(b"X-Local-Milter: seen" in delivered(home, "bob")[0], "non_smtpd_milters saw and changed it")
    check("mail" not in stages(local) or "mail <alice@localhost>" in local.log(), "with its sender")
    check(stages(smtp_only).count("mail") == 1, "the SMTP milter never saw the local submission")
    srv.stop()


# --- failures: default action, nothing lost ----------------------------------

def test_not_listening():
    port = harness.free_port()
    for action, want in (("tempfail", 451), ("reject", 550), ("accept", 250)):
        home, srv = server([f"inet:127.0.0.1:{port}"], f"milter_default_action={action}\n")
        code, text = send(home)
        check(code == want, f"no milter listening, milter_default_action={action}: {code} {text!r}")
        check(len(delivered(home)) == (1 if action == "accept" else 0), "delivered only with accept")
        srv.stop()
    home, srv = server(["inet:127.0.0.1:0x"])
    check(send(home)[0] == 451, "a malformed milter address fails like an absent milter (tempfail)")
    srv.stop()


def test_timeout():
    m = Milter("mail=sleep:6")
    home, srv = server([m])
    t0 = time.time()
    code, _ = send(home)
    took = time.time() - t0
    check(code == 451 and took < 5.5, f"a milter silent past milter_command_timeout=2: 451 ({took:.1f}s)")
    srv.stop()
    m = Milter("eom=sleep:8")
    home, srv = server([m])
    t0 = time.time()
    code, _ = send(home)
    took = time.time() - t0
    check(code == 451 and took < 7.5, f"silent past milter_content_timeout=3 at the end: 451 ({took:.1f}s)")
    check(not delivered(home) and settled(home), "nothing delivered, nothing left staged")
    srv.stop()


def test_killed_mid_session():
    m = Milter("rcpt/bob=exit")
    home, srv = server([m])
    c = client(home)
    c.ehlo("client.test")
    c.sendmail("ext@remote.test", ["alice@localhost"], MESSAGE)
    check(len(delivered(home)) == 1, "the first message of the session is delivered")
    c.mail("ext@remote.test")
    code, _ = c.rcpt("bob@localhost")
    check(code == 451, f"the milter dies at RCPT: 451 ({code})")
    c.rset()
    check(c.mail("ext@remote.test")[0] == 451, "and it stays failed for the session: MAIL 451")
    c.quit()
    check(len(delivered(home)) == 1 and not delivered(home, "bob"), "what was accepted is kept, nothing else")
    srv.stop()
    # Killed from outside between two transactions.
    m = Milter()
    home, srv = server([m])
    c = client(home)
    c.ehlo("client.test")
    c.sendmail("ext@remote.test", ["alice@localhost"], MESSAGE)
    m.kill()
    check(c.mail("ext@remote.test")[0] == 451, "a milter killed between transactions: the next MAIL 451")
    c.quit()
    check(len(delivered(home)) == 1 and settled(home), "the accepted message is there, nothing left staged")
    srv.stop()


class RawMilter:
    """A milter that negotiates, continues, and answers the command whose
    code is in `bad` (e.g. b"M" for MAIL, b"E" for the end of message)
    with the raw bytes given there."""

    def __init__(self, bad):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", harness.free_port()))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.bad = bad
        threading.Thread(target=self.serve, daemon=True).start()

    def spec(self):
        return f"inet:127.0.0.1:{self.port}"

    @staticmethod
    def packet(code, data=b""):
        return struct.pack(">I", len(data) + 1) + code + data

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        buf = b""
        try:
            while True:
                while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                n = struct.unpack(">I", buf[:4])[0]
                code = buf[4:5]
                buf = buf[4 + n:]
                if code == b"O":
                    conn.sendall(self.packet(b"O", struct.pack(">III", 6, 0x1FF, 0)))
                elif code == b"Q":
                    return
                elif code in (b"D", b"A"):
                    continue
                elif code in self.bad:
                    conn.sendall(self.bad[code])
                else:
                    conn.sendall(self.packet(b"c"))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def test_malformed_replies():
    P = RawMilter.packet
    cases = [
        ("a reply code that is no 4xx/5xx", P(b"y", b"250 2.0.0 fine\0")),
        ("a reply code without its NUL", P(b"y", b"550 5.7.1 no")),
        ("an unknown reply", P(b"Z")),
        ("a packet of length 0", b"\0\0\0\0"),
        ("a packet far too long", struct.pack(">I", 1 << 30) + b"c"),
        ("a header change before the end of data", P(b"h", b"X-A\0v\0")),
        ("an accept with data", P(b"a", b"junk")),
    ]
    for what, bad in cases:
        raw = RawMilter({b"M": bad})
        home, srv = server([raw])
        c = client(home)
        code_ehlo = c.ehlo("client.test")[0]
        code, text = c.mail("ext@remote.test")
        c.quit()
        check(code_ehlo == 250 and code == 451, f"{what} at MAIL: default action tempfail ({code} {text!r})")
        srv.stop()
        raw.close()
    for what, bad in (("a header change with its index cut short", P(b"i", b"\0\0")),
                      ("a reply code of class 2", P(b"y", b"221 2.0.0 bye\0")),
                      ("a header change, then an unknown reply", P(b"h", b"X-A\0v\0") + P(b"Z"))):
        raw = RawMilter({b"E": bad})
        home, srv = server([raw])
        code, _ = send(home)
        check(code == 451 and not delivered(home) and settled(home),
              f"{what} at the end of data: 451, nothing delivered, nothing left ({code})")
        srv.stop()
        raw.close()


harness.run_tests(globals())
