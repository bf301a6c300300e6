"""rspamd (Debian's rspamd 3.4) as a milter of wizmail (docs/milter.md):
its proxy worker in milter mode, self-scanning, started here on free
loopback ports with a configuration of the test's own (LOCAL_CONFDIR in a
temporary folder; Debian's /etc/rspamd is only read). GTUBE is refused with
rspamd's reply (554 5.7.1 Gtube pattern) and nothing is delivered; a clean
message is delivered with rspamd's headers (X-Spamd-Result, X-Spam-Status).
Every rspamd process is stopped at exit."""
import atexit, os, signal, smtplib, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402
from harness import Home, Server, check  # noqa: E402

RSPAMD = "/usr/bin/rspamd"
if not os.access(RSPAMD, os.X_OK) or not os.path.exists("/etc/rspamd/rspamd.conf"):
    print("FAILED: rspamd is not installed (scripts/packages.txt)")
    sys.exit(1)

tmp = tempfile.mkdtemp(prefix="wizmail-rspamd-")
conf = os.path.join(tmp, "etc")
for d in ("local.d", "override.d", "db", "run"):
    os.makedirs(os.path.join(conf if d.endswith(".d") else tmp, d))
proxy, normal, controller = harness.free_port(), harness.free_port(), harness.free_port()
files = {
    "local.d/worker-proxy.inc": f'bind_socket = "127.0.0.1:{proxy}";\nmilter = yes;\ntimeout = 120s;\n'
                                'upstream "local" {\n  default = yes;\n  self_scan = yes;\n}\n',
    "override.d/worker-normal.inc": f'bind_socket = "127.0.0.1:{normal}";\n',
    "override.d/worker-controller.inc": f'bind_socket = "127.0.0.1:{controller}";\n',
    "override.d/logging.inc": f'type = "file";\nfilename = "{tmp}/rspamd.log";\nlevel = "warning";\n',
    # No network look-ups (nothing answers on port 9: they fail at once).
    "local.d/options.inc": 'enable_test_patterns = true;\ndns {\n  nameserver = ["127.0.0.1:9"];\n'
                           '  timeout = 0.5s;\n  retransmits = 1;\n}\n',
    # Headers on every message, also from loopback.
    "local.d/milter_headers.conf": 'use = ["x-spamd-result", "x-spam-status"];\nskip_local = false;\n'
                                   'skip_authenticated = false;\n',
}
for name, text in files.items():
    with open(os.path.join(conf, name), "w") as f:
        f.write(text)
proc = harness.start_process([RSPAMD, "-f", "-i", "-u", "root", "-g", "root", "-c", "/etc/rspamd/rspamd.conf",
                              "--var", f"LOCAL_CONFDIR={conf}", "--var", f"DBDIR={tmp}/db",
                              "--var", f"RUNDIR={tmp}/run", "--var", f"LOGDIR={tmp}"], start_new_session=True)


def stop_rspamd():
    # The main process stops its workers; the group is killed if it does not.
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


atexit.register(stop_rspamd)
# rspamd compiles its TLD list and regexps at start: slow on a busy machine.
harness.wait_until(lambda: proc.poll() is None and harness.port_open(proxy), f"rspamd's proxy listens on {proxy}", 240)

home = Home(smtp_extra=f"smtpd_milters=inet:127.0.0.1:{proxy}\nmilter_content_timeout=120\n",
            accounts=(("alice", "secret"), ("postmaster", "pm")))
srv = Server(home)
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def transaction(body):
    c = smtplib.SMTP("127.0.0.1", home.port, timeout=150)
    c.ehlo("client.test")
    c.mail("ext@remote.test")
    c.rcpt("alice@localhost")
    r = c.data(body)
    c.quit()
    return r


def test_gtube_rejected():
    code, text = transaction(b"From: ext@remote.test\r\nTo: alice@localhost\r\nSubject: spam\r\n\r\n" + GTUBE + b"\r\n")
    check(code == 554 and b"Gtube" in text, f"GTUBE is refused with rspamd's reply ({code} {text!r})")
    check(not [m for m in home.messages() if b"Subject: spam" in m], "and not delivered")


def test_clean_mail_gets_headers():
    code, _ = transaction(b"From: ext@remote.test\r\nTo: alice@localhost\r\nSubject: clean\r\n"
                          b"Date: Sun, 06 Dec 2026 12:00:00 +0000\r\nMessage-ID: <clean@remote.test>\r\n\r\nhello\r\n")
    check(code == 250, "a clean message is accepted")
    msgs = [m for m in home.messages() if b"Subject: clean" in m]
    check(len(msgs) == 1, "and delivered")
    head = msgs[0].split(b"\r\n\r\n")[0]
    check(b"\r\nX-Spamd-Result: default: False" in head and b"\r\nX-Spam-Status: No, score=" in head,
          "with rspamd's headers added through the milter client")


harness.run_tests(globals())
srv.stop()
