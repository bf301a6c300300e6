#!/usr/bin/env python3
"""wizmail behind a real HAProxy (Debian's haproxy 2.6) in TCP mode (issue
17, item 1): the test writes a haproxy.cfg with one frontend per wizmail
port on free loopback ports — send-proxy-v2 to port 25, smtps and POP3,
send-proxy (v1) to submission and pop3s, health checks with
check-send-proxy — starts `haproxy -db` in the foreground and kills it at
the end. Real clients (smtplib, poplib, with STARTTLS/STLS and implicit
TLS) connect to HAProxy from 127.0.0.5; HAProxy connects to wizmail from
127.0.0.1 (proxy_trusted_networks), so wizmail must see 127.0.0.5, not
127.0.0.1, in Received:, the logs and the POP-before-SMTP record."""
import os, poplib, shutil, smtplib, socket, ssl, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
import harness
from harness import Home, Server, check, free_port, poll, port_open

HAPROXY = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy", "/sbin/haproxy") if os.path.exists(p)), None)
if HAPROXY is None:
    raise SystemExit("FAILED: haproxy is not installed (Debian package `haproxy`; scripts/install-deps installs "
                     "it from scripts/packages.txt)")

CLIENT = "127.0.0.5"
home = Home(tls=True, smtp_extra=("send_permits_only_smtp_auth=0\npop_before_smtp=1\ngreet_wait=0\n"
                                  "multiprocessing_exempt=192.0.2.250\n"),
            server_extra="proxy_trusted_networks=127.0.0.1\n")
home.pop3s_port = free_port()
with open(os.path.join(home.path, "def", "popenv.dat"), "a") as f:
    f.write(f"pop3s_port={home.pop3s_port}\n")
srv = Server(home)

front = {name: free_port() for name in ("smtp", "submission", "smtps", "pop3", "pop3s")}
backends = {"smtp": (home.port, "send-proxy-v2"), "submission": (home.submission_port, "send-proxy"),
            "smtps": (home.smtps_port, "send-proxy-v2"), "pop3": (home.pop_port, "send-proxy-v2"),
            "pop3s": (home.pop3s_port, "send-proxy")}
cfg = ["global", "    maxconn 200", "defaults", "    mode tcp", "    timeout connect 5s",
       "    timeout client 30s", "    timeout server 30s"]
for name, port in front.items():
    backend_port, send = backends[name]
    cfg += [f"frontend f_{name}", f"    bind 127.0.0.1:{port}", f"    default_backend b_{name}",
            f"backend b_{name}",
            # Health checks carry the header too (check-send-proxy): a
            # trusted peer without one would be refused.
            f"    server s1 127.0.0.1:{backend_port} {send} check check-send-proxy inter 1s"]
    if name == "smtp":
        # A check that speaks SMTP (waits for the 220, says EHLO): the
        # LOCAL header always arrives. A bare TCP check connects and closes
        # at once, so whether its header is read before the close races.
        cfg.insert(len(cfg) - 1, "    option smtpchk EHLO haproxy.test")
cfg_path = os.path.join(home.path, "haproxy.cfg")
with open(cfg_path, "w") as f:
    f.write("\n".join(cfg) + "\n")
check(subprocess.run([HAPROXY, "-c", "-f", cfg_path], capture_output=True).returncode == 0, "haproxy.cfg is valid")
haproxy_log = os.path.join(home.path, "haproxy.log")
hap = subprocess.Popen([HAPROXY, "-db", "-f", cfg_path], stdout=open(haproxy_log, "wb"), stderr=subprocess.STDOUT)
harness._procs.append(hap)  # killed at exit whatever happens
if not poll(lambda: all(port_open(p) for p in front.values()), 15):
    raise SystemExit("FAILED: haproxy did not open its frontends: " + open(haproxy_log, errors="replace").read())

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
msg = "From: alice@localhost\r\nSubject: {s}\r\n\r\nbody\r\n"


def log(name):
    try:
        return open(os.path.join(home.path, "var", "log", name), errors="replace").read()
    except FileNotFoundError:
        return ""


class POP3From(poplib.POP3):
    """poplib from a chosen source address."""

    def __init__(self, port, ssl_context=None):
        self.ssl_context = ssl_context
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout):
        s = socket.create_connection((self.host, self.port), timeout, source_address=(CLIENT, 0))
        return self.ssl_context.wrap_socket(s, server_hostname="localhost") if self.ssl_context else s


def received_of(subject):
    for m in home.messages():
        if f"Subject: {subject}".encode() in m:
            return m.decode(errors="replace").split("\r\n\r\n")[0]
    return ""


def smtp_send(subject, port, tls, login):
    cls = smtplib.SMTP_SSL if tls == "implicit" else smtplib.SMTP
    kw = {"context": ctx} if tls == "implicit" else {}
    with cls("127.0.0.1", port, timeout=10, source_address=(CLIENT, 0), **kw) as s:
        s.ehlo("client.example")
        if tls == "starttls":
            s.starttls(context=ctx)
            s.ehlo("client.example")
        if login:  # the submission ports ask for AUTH
            s.login("alice", "secret")
        return s.sendmail("alice@localhost", ["alice@localhost"], msg.format(s=subject))


# SMTP: v2 to port 25 (plain, then STARTTLS), v1 to submission (STARTTLS), v2 to smtps.
for subject, name, tls in (("v2 plain", "smtp", None), ("v2 starttls", "smtp", "starttls"),
                           ("v1 starttls", "submission", "starttls"), ("v2 smtps", "smtps", "implicit")):
    check(smtp_send(subject, front[name], tls, name != "smtp") == {}, f"smtplib through HAProxy ({name}, {subject}): accepted")
    rec = received_of(subject)
    check(f"Received: from client.example ([{CLIENT}])" in rec, f"{subject}: Received: names {CLIENT}")
    check("[127.0.0.1]" not in rec, f"{subject}: Received: does not name HAProxy's 127.0.0.1")
    if tls:
        check("(using TLSv1." in rec, f"{subject}: TLS through HAProxy (Received: says so)")

check(poll(lambda: f" {CLIENT}:" in log("smtp.log"), 10), f"smtp.log names {CLIENT}")
check(poll(lambda: "PROXY v2 PROXY TCP4 via 127.0.0.1:" in log("smtp.log")
           and "PROXY v1 TCP4 via 127.0.0.1:" in log("smtp.log"), 10),
      "smtp.log: HAProxy's v2 and v1 headers, via 127.0.0.1")

# POP3: v2 to 110 (plain, then STLS), v1 to pop3s; POP-before-SMTP records 127.0.0.5.
p = POP3From(front["pop3"])
p.user("alice")
p.pass_("secret")
check(p.stat()[0] >= 4, "poplib through HAProxy (v2): logged in, the messages are there")
p.quit()
p = POP3From(front["pop3"])
p.stls(context=ctx)
p.user("alice")
p.pass_("secret")
p.quit()
check(True, "poplib STLS through HAProxy (v2)")
p = POP3From(front["pop3s"], ssl_context=ctx)
p.user("alice")
p.pass_("secret")
p.quit()
check(True, "poplib over implicit TLS through HAProxy (v1 to pop3s)")
check(poll(lambda: f" {CLIENT}:" in log("pop.log"), 10), f"pop.log names {CLIENT}")
ip = open(os.path.join(home.path, "mailbox", "alice", "ip")).read()
check(ip.endswith(",127.000.000.005\n"), f"POP-before-SMTP records {CLIENT}, not HAProxy ({ip.strip()})")

# POP-before-SMTP through HAProxy: 127.0.0.5 logged in, so it relays.
with smtplib.SMTP("127.0.0.1", front["smtp"], timeout=10, source_address=(CLIENT, 0)) as s:
    check(s.sendmail("alice@localhost", ["someone@remote.example"], msg.format(s="relayed")) == {},
          f"{CLIENT} relays after its POP3 login through HAProxy")
# A client that did not log in (127.0.0.6) may not, through the same HAProxy.
with smtplib.SMTP("127.0.0.1", front["smtp"], timeout=10, source_address=("127.0.0.6", 0)) as s:
    try:
        s.sendmail("alice@localhost", ["someone@remote.example"], msg.format(s="not relayed"))
        refused = {}
    except smtplib.SMTPRecipientsRefused as e:
        refused = e.recipients
check(refused.get("someone@remote.example", (0,))[0] >= 500, "127.0.0.6 through the same HAProxy may not relay")

# HAProxy's health checks (check-send-proxy) are its own connections.
# HAProxy 2.6 sends a v2 health check as LOCAL (a v1 one names its own
# addresses): wizmail takes it as the proxy's own connection.
local_seen = poll(lambda: "PROXY v2 LOCAL from 127.0.0.1:" in log("smtp.log") + log("pop.log"), 10)
if not local_seen:  # seen once under ASan (not reproduced): say what HAProxy and wizmail logged
    print("haproxy.log:\n" + open(haproxy_log, errors="replace").read()[-3000:])
    print("PROXY lines:\n" + "\n".join(l for l in (log("smtp.log") + log("pop.log") + log("error.log")).splitlines()
                                        if "PROXY" in l or "refused" in l)[-3000:])
check(local_seen, "HAProxy's v2 health checks (LOCAL) are accepted")
err = log("error.log")
check("bad PROXY protocol header" not in err and "no PROXY protocol header" not in err,
      f"no connection of HAProxy's was refused ({err[-800:]!r})")

hap.terminate()
hap.wait(10)
check(not port_open(front["smtp"]), "haproxy stopped")
srv.stop()
