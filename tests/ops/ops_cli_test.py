"""ops end to end: `wizmail parse` on a corpus of real-world MIME shapes
(hostile names included), `wizmail maintenance` with aged files, `wizmail
monitor --once` and the live view in a pty, and the metrics endpoint scraped
with urllib from a running wizmail-server and parsed strictly."""
import json, os, pty, re, select, shutil, smtplib, poplib, subprocess, sys, tempfile, time, unittest
import urllib.request, urllib.error
from email.message import EmailMessage
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.mime.message import MIMEMessage
from email import encoders
from email.header import Header

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402

BUILD = harness.BUILD
WIZMAIL = os.path.join(BUILD, "apps", "wizmail", "wizmail")
LINKS = os.path.join(BUILD, "apps", "wizmail")


def run(args, prog=WIZMAIL, ok=True, **kw):
    p = subprocess.run([prog] + args, capture_output=True, text=True, timeout=60, **kw)
    if ok and p.returncode != 0:
        raise AssertionError(f"{args}: rc={p.returncode}\nstdout={p.stdout}\nstderr={p.stderr}")
    return p


def tree(root):
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def att(data, name=None, ctype=("application", "octet-stream"), raw_disposition=None):
    part = MIMEBase(*ctype)
    part.set_payload(data)
    encoders.encode_base64(part)
    if raw_disposition is not None:
        part["Content-Disposition"] = raw_disposition
    elif name is not None:
        part.add_header("Content-Disposition", "attachment", filename=name)
    return part


def corpus(d):
    """Write the corpus into d; return {file: expectations}."""
    msgs = {}
    # 1. Plain Japanese mail: ISO-2022-JP body, RFC 2047 subject.
    m = MIMEText("こんにちは、世界。\n二行目です。\n", "plain", "iso-2022-jp")
    m["Subject"] = Header("会議のお知らせ", "iso-2022-jp")
    m["From"] = "a@example.jp"
    msgs["01-japanese"] = m
    # 2. multipart/mixed: alternative (plain QP utf-8 + html) and a PDF.
    alt = MIMEMultipart("alternative")
    alt.attach(MIMEText("Grüße aus Köln – café\n", "plain", "utf-8"))
    alt.attach(MIMEText("<p>Gr&uuml;&szlig;e</p>\n", "html", "utf-8"))
    mixed = MIMEMultipart("mixed")
    mixed["Subject"] = "report"
    mixed.attach(alt)
    mixed.attach(att(b"%PDF-1.4 \x00\x01\x02 binary", "report.pdf", ("application", "pdf")))
    msgs["02-mixed"] = mixed
    # 3. An attached message (message/rfc822) with its own attachment.
    inner = MIMEMultipart("mixed")
    inner["Subject"] = "inner"
    inner.attach(MIMEText("inner body\n", "plain", "utf-8"))
    inner.attach(att(b"inner attachment", "inner.bin"))
    outer = MIMEMultipart("mixed")
    outer["Subject"] = "Fwd: inner"
    outer.attach(MIMEText("see attached\n", "plain", "us-ascii"))
    outer.attach(MIMEMessage(inner))
    msgs["03-forward"] = outer
    # 4. Hostile names.
    h = MIMEMultipart("mixed")
    h["Subject"] = "hostile"
    h.attach(MIMEText("hostile names\n", "plain", "us-ascii"))
    h.attach(att(b"traversal", "../../x"))
    h.attach(att(b"empty", raw_disposition='attachment; filename=""'))
    h.attach(att(b"long", "L" * 300 + ".txt"))
    h.attach(att(b"nul", raw_disposition="attachment; filename*=utf-8''a%00b.txt"))
    h.attach(att(b"2231", raw_disposition="attachment; filename*=utf-8''..%2F..%2Fevil.sh"))
    h.attach(att(b"2047", raw_disposition='attachment; filename="=?utf-8?b?Li4vLi4vZXZpbDIuc2g=?="'))
    h.attach(att(b"dup1", "a.txt"))
    h.attach(att(b"dup2", "a.txt"))
    h.attach(att(b"hidden", ".htaccess"))
    h.attach(att(b"ctl", raw_disposition='attachment; filename="x\x1b[2Jy.txt"'))
    h.attach(att(b"jp", raw_disposition="attachment; filename*=UTF-8''%E8%B3%87%E6%96%99.xlsx"))
    h.attach(att(b"noname"))
    msgs["04-hostile"] = h
    # 5. Shift_JIS and Latin-1 bodies, RFC 2231 continuation name.
    s = MIMEMultipart("mixed")
    s["Subject"] = "charsets"
    s.attach(MIMEText("シフトJISの本文\n", "plain", "shift_jis"))
    s.attach(MIMEText("d\xe9j\xe0 vu\n", "plain", "iso-8859-1"))
    s.attach(att(b"cont", raw_disposition="attachment; filename*0=\"long\"; filename*1=\"-name.txt\""))
    msgs["05-charsets"] = s
    # 6. Not MIME at all, and a binary blob.
    for name, m in msgs.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(m.as_bytes())
    with open(os.path.join(d, "06-plain"), "wb") as f:
        f.write(b"From: x@y\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\nplain old mail\r\n")
    return msgs


def read(p, mode="r"):
    with open(p, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        return f.read()


class Parse(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wizmail-parse-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.inp = os.path.join(self.tmp, "in")
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.inp)
        corpus(self.inp)

    def test_corpus(self):
        p = run(["parse", "-i", self.inp, "-o", self.out])
        self.assertIn("parsed 7 messages", p.stdout)
        o = self.out
        # Nothing outside OUT: the temp folder holds only in/ and out/.
        self.assertEqual(sorted(os.listdir(self.tmp)), ["in", "out"])
        for rel in tree(o):
            real = os.path.realpath(os.path.join(o, rel))
            self.assertTrue(real.startswith(os.path.realpath(o) + os.sep), rel)
            base = os.path.basename(rel)
            self.assertFalse(base.startswith("."), rel)
            self.assertTrue(0 < len(base.encode()) <= 200, rel)
            self.assertFalse(re.search(r"[\x00-\x1f\x7f]", base), rel)
        # 1: Japanese decoded to UTF-8.
        self.assertEqual(read(f"{o}/01-japanese/body.txt"), "こんにちは、世界。\n二行目です。\n")
        self.assertIn("Subject: 会議のお知らせ\n", read(f"{o}/01-japanese/headers.txt"))
        # 2: alternative + binary attachment byte for byte.
        self.assertEqual(read(f"{o}/02-mixed/body.txt"), "Grüße aus Köln – café\n")
        self.assertEqual(read(f"{o}/02-mixed/body.html"), "<p>Gr&uuml;&szlig;e</p>\n")
        self.assertEqual(read(f"{o}/02-mixed/attachments/report.pdf", "rb"), b"%PDF-1.4 \x00\x01\x02 binary")
        # 3: the attached message in its own folder, with its attachment.
        self.assertEqual(read(f"{o}/03-forward/body.txt"), "see attached\n")
        self.assertIn("Subject: inner\n", read(f"{o}/03-forward/message-1/headers.txt"))
        self.assertEqual(read(f"{o}/03-forward/message-1/body.txt"), "inner body\n")
        self.assertEqual(read(f"{o}/03-forward/message-1/attachments/inner.bin", "rb"), b"inner attachment")
        # 4: hostile names.
        a = f"{o}/04-hostile/attachments"
        names = sorted(os.listdir(a))
        by_content = {read(os.path.join(a, n), "rb"): n for n in names}
        self.assertEqual(len(names), 12, names)
        self.assertEqual(by_content[b"traversal"], "x")
        self.assertEqual(by_content[b"empty"], "part-2")
        self.assertTrue(by_content[b"long"].endswith(".txt"))
        self.assertEqual(len(by_content[b"long"]), 200)
        self.assertEqual(by_content[b"nul"], "a")  # the name ends at the NUL
        self.assertEqual(by_content[b"2231"], "evil.sh")
        self.assertEqual(by_content[b"2047"], "evil2.sh")
        self.assertEqual(by_content[b"dup1"], "a.txt")
        self.assertEqual(by_content[b"dup2"], "a-1.txt")
        self.assertEqual(by_content[b"hidden"], "_htaccess")
        self.assertEqual(by_content[b"ctl"], "x_[2Jy.txt")
        self.assertEqual(by_content[b"jp"], "資料.xlsx")
        self.assertTrue(by_content[b"noname"].startswith("part-"))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x")))
        # 5: charsets to UTF-8, RFC 2231 continuations.
        self.assertEqual(read(f"{o}/05-charsets/body.txt"), "シフトJISの本文\n")
        self.assertEqual(read(f"{o}/05-charsets/body-1.txt"), "déjà vu\n")
        self.assertEqual(read(f"{o}/05-charsets/attachments/long-name.txt", "rb"), b"cont")
        # 6: a plain RFC 5322 message.
        self.assertIn("Subject: café\n", read(f"{o}/06-plain/headers.txt"))
        self.assertEqual(read(f"{o}/06-plain/body.txt"), "plain old mail\n")

    def test_manual_name_single_file_and_no_overwrite(self):
        f = os.path.join(self.inp, "02-mixed")
        run(["-i", f, "-o", self.out], prog=os.path.join(LINKS, "mailparser"))
        run(["-i", f, "-o", self.out], prog=os.path.join(LINKS, "mailparser"))
        self.assertEqual(sorted(os.listdir(self.out)), ["02-mixed", "02-mixed-1"])

    def test_bad_input(self):
        p = run(["parse", "-i", os.path.join(self.tmp, "missing"), "-o", self.out], ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("missing", p.stderr)
        p = run(["parse", "-o", self.out], ok=False)
        self.assertNotEqual(p.returncode, 0)
        # A link inside the input folder is not followed.
        os.symlink("/etc", os.path.join(self.inp, "etc-link"))
        p = run(["parse", "-i", self.inp, "-o", self.out], ok=False)
        self.assertIn("symbolic link", p.stderr)
        self.assertFalse(any("passwd" in x for x in tree(self.out)))


class Maintenance(unittest.TestCase):
    def test_dry_run_then_real(self):
        home = harness.Home()
        h = home.path
        now = time.time()
        old = now - 100 * 86400
        log = os.path.join(h, "var", "log")
        os.makedirs(log)
        for n in ("smtp.log", "smtp.log.1", "pop.log.11"):
            with open(os.path.join(log, n), "w") as f:
                f.write("x\n")
        os.utime(os.path.join(log, "smtp.log"), (old, old))
        os.utime(os.path.join(log, "smtp.log.1"), (old, old))
        dust = os.path.join(h, "dustbox", "alice")
        os.makedirs(dust)
        with open(os.path.join(dust, "msg"), "w") as f:
            f.write("deleted just now, delivered long ago\n")
        os.utime(os.path.join(dust, "msg"), (old, old))
        dead = os.path.join(h, "deadmail")
        os.makedirs(dead)
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside, True)
        with open(os.path.join(outside, "victim"), "w") as f:
            f.write("x")
        os.symlink(os.path.join(outside, "victim"), os.path.join(dead, "link"))
        before = tree(h)
        p = run(["--home", h, "maintenance", "--dry-run"])
        self.assertEqual(tree(h), before)
        self.assertIn("would remove log " + os.path.join(log, "smtp.log.1"), p.stdout)
        self.assertIn("would remove log " + os.path.join(log, "pop.log.11"), p.stdout)
        self.assertIn("dry run: dustbox 0, dead mail 0, queue 0, logs 2;", p.stdout)
        self.assertIn("symbolic link", p.stderr)
        p = run(["--home", h, "--json"], prog=os.path.join(LINKS, "wmsmnt"))
        j = json.loads(p.stdout)
        self.assertEqual(j["counts"], {"dustbox": 0, "dead": 0, "queue": 0, "log": 2})
        self.assertFalse(j["dry_run"])
        self.assertEqual(sorted(os.listdir(log)), ["smtp.log"])
        self.assertTrue(os.path.exists(os.path.join(dust, "msg")))
        self.assertTrue(os.path.exists(os.path.join(outside, "victim")))
        p = run(["--home", h, "maintenance", "--log-generations", "0"], ok=False)
        self.assertNotEqual(p.returncode, 0)


def free_port():
    return harness.free_port()


EXPO_HELP = re.compile(r"# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*")
EXPO_TYPE = re.compile(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)")
EXPO_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                         r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.eE+]+|NaN|[+-]Inf)')


def parse_exposition(text):
    """Strict 0.0.4 text: every line HELP, TYPE or a sample of a typed family."""
    assert text.endswith("\n")
    typed, samples = set(), {}
    for line in text[:-1].split("\n"):
        m = EXPO_TYPE.fullmatch(line)
        if m:
            assert m.group(1) not in typed, line
            typed.add(m.group(1))
            continue
        if EXPO_HELP.fullmatch(line):
            continue
        m = EXPO_SAMPLE.fullmatch(line)
        assert m, f"bad exposition line: {line!r}"
        assert m.group(1) in typed, line
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


class LiveServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.home = harness.Home()
        cls.metrics_port = free_port()
        with open(os.path.join(cls.home.path, "def", "wiz98msenv.dat"), "a") as f:
            f.write(f"metrics_port={cls.metrics_port}\n")
        cls.server = harness.Server(cls.home)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def scrape(self, path="/metrics"):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=10) as r:
            self.assertEqual(r.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
            return r.read().decode()

    def test_metrics_and_monitor(self):
        h = self.home
        with smtplib.SMTP("127.0.0.1", h.port, timeout=10) as s:
            s.ehlo("me")
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.auth("PLAIN", lambda challenge=None: "\0alice\0wrong", initial_response_ok=True)
        with smtplib.SMTP("127.0.0.1", h.port, timeout=10) as s:
            s.sendmail("bob@example.org", ["alice@localhost"], b"Subject: hi\r\n\r\nhello\r\n")
        p = poplib.POP3("127.0.0.1", h.pop_port, timeout=10)
        p.user("alice")
        with self.assertRaises(poplib.error_proto):
            p.pass_("wrong")
        p.quit()
        # A live session while scraping.
        live = smtplib.SMTP("127.0.0.1", h.port, timeout=10)
        live.ehlo("me")
        try:
            deadline = time.time() + 10
            while True:
                m = parse_exposition(self.scrape())
                if m.get("wizmail_messages_delivered_total", 0) >= 1 or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(m['wizmail_sessions{protocol="smtp"}'], 1)
            self.assertEqual(m["wizmail_messages_received_total"], 1)
            self.assertEqual(m["wizmail_messages_delivered_total"], 1)
            self.assertEqual(m['wizmail_auth_failures_total{protocol="smtp"}'], 1)
            self.assertEqual(m['wizmail_auth_failures_total{protocol="pop3"}'], 1)
            self.assertEqual(m["wizmail_queue_messages"], 0)
            for k in ("wizmail_messages_relayed_total", "wizmail_messages_bounced_total",
                      "wizmail_hook_runs_total", "wizmail_hook_failures_total",
                      "wizmail_queue_oldest_age_seconds", 'wizmail_sessions{protocol="pop3"}'):
                self.assertIn(k, m)
        finally:
            live.quit()
        with self.assertRaises(urllib.error.HTTPError) as e:
            self.scrape("/")
        self.assertEqual(e.exception.code, 404)
        req = urllib.request.Request(f"http://127.0.0.1:{self.metrics_port}/metrics", method="POST", data=b"x")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(e.exception.code, 405)

        # The monitor sees the delivery (counters and Maildir totals).
        out = run(["--home", h.path, "monitor", "--once", "--json", "--sort", "messages", "--desc"]).stdout
        j = json.loads(out)
        alice = [a for a in j["accounts"] if a["account"] == "alice"][0]
        self.assertEqual(alice["messages"], 1)
        self.assertEqual(alice["received"], 1)
        self.assertGreater(alice["bytes"], 10)
        self.assertEqual(j["accounts"][0]["account"], "alice")
        self.assertEqual(j["totals"]["messages"], 1)
        table = run(["--home", h.path, "--once"], prog=os.path.join(LINKS, "wmsmonitor")).stdout
        self.assertRegex(table, r"alice +1 +\d+ +0 +1 +0")
        p = run(["--home", h.path, "monitor", "--once", "--sort", "nonsense"], ok=False)
        self.assertEqual(p.returncode, 2)
        p = run(["--home", h.path, "monitor"], ok=False, stdin=subprocess.DEVNULL)
        self.assertIn("needs a terminal", p.stderr)

    def test_live_monitor_in_a_pty(self):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(WIZMAIL, [WIZMAIL, "--home", self.home.path, "monitor", "--interval", "1"])
        out = b""

        def until(pattern, timeout=10):
            nonlocal out
            end = time.time() + timeout
            while time.time() < end:
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try:
                        out += os.read(fd, 65536)
                    except OSError:
                        break
                if re.search(pattern, out):
                    return True
            return False

        try:
            self.assertTrue(until(rb"wizmail monitor"), out)
            os.write(fd, b"/post")
            self.assertTrue(until(rb"search: post"), out)
            os.write(fd, b"\r")
            self.assertTrue(until(rb"found postmaster"), out)
            self.assertTrue(until(rb"\x1b\[7mpostmaster"), out)  # the cursor is on it
            os.write(fd, b"3")
            self.assertTrue(until(rb"sorted by bytes, descending"), out)
            os.write(fd, b"q")
            _, status = os.waitpid(pid, 0)
            pid = 0
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
            self.assertTrue(until(rb"\x1b\[\?1049l", 2), out)  # the screen was restored
        finally:
            if pid:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            os.close(fd)


if __name__ == "__main__":
    unittest.main(verbosity=2)
