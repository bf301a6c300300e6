"""DNS block and allow lists, end to end (docs/dnsbl.md).

dnsmasq (started here on a free loopback port, logging its queries to a
file; wizmail's dns_servers point at it) serves three test zones:
  bl.test    (weight 2, filter 127.0.0.[2..11]) lists 127.0.0.2, .3, .5, .9
             (and 127.0.0.4 with 127.0.0.12, outside the filter);
  small.test (weight 1) lists 127.0.0.4 and .5;
  wl.test    (weight -2, filter 127.0.[0..255].[1..3], an allow list) lists .3.
dnsbl_threshold=2, dnsbl_exempt=127.0.0.9. Clients are real smtplib
sessions on port 25 from 127.0.0.x (source_address), to alice@localhost:
  - 127.0.0.2: score 2 → RCPT refused with the exact 554 5.7.1 text;
  - 127.0.0.5: score 3 (bl.test and small.test) → refused, naming bl.test
    (the listing zone of the highest weight);
  - 127.0.0.3: listed by bl.test and allow-listed by wl.test (score 0) → accepted;
  - 127.0.0.4: small.test only (1 < 2), bl.test's answer outside its filter → accepted;
  - 127.0.0.6: listed nowhere → accepted;
  - 127.0.0.9: listed, but in dnsbl_exempt → accepted, never asked;
  - 127.0.0.2 after AUTH → accepted (authenticated clients are not checked);
  - 127.0.0.2 on the submission port (AUTH) → accepted;
  - a second session from 127.0.0.2 asks dnsmasq nothing (the cache: query
    count in dnsmasq's log unchanged);
  - dnsmasq killed: a new client (127.0.0.7) is accepted (failed look-ups
    count as not listed, error.log says so); 127.0.0.2 is still refused
    from the cache; 127.0.0.10 right after is accepted without the dead
    zones being asked (their back-off, error.log says so);
  - the metric wizmail_smtp_dnsbl_rejected_total counts the refused RCPTs;
  - the look-ups start at connect: a client (127.0.0.8) that connects and
    says nothing is asked about while it waits (dnsmasq's log);
  - dnsbl_action=drop (a second server): 127.0.0.2 gets the exact 521 5.7.1
    greeting and the connection ends; 127.0.0.6 is accepted;
  - dnsbl_action=ignore (a third server): 127.0.0.2 is accepted and
    error.log says it would have been blocked;
  - behind a load balancer (a fourth server, proxy_trusted_networks=127.0.0.1):
    the client a PROXY header names is the one looked up — 127.0.0.2
    named by the balancer at 127.0.0.1 is refused, naming 127.0.0.2.
Every process is killed at exit."""
import os, pwd, smtplib, socket, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402
from harness import Home, Server, check  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"
if not os.path.exists(DNSMASQ):
    print("FAILED: dnsmasq is not installed (scripts/packages.txt)")
    sys.exit(1)

USER = pwd.getpwuid(os.getuid()).pw_name
tmp = tempfile.mkdtemp(prefix="wizmail-dnsbl-")
qlog = os.path.join(tmp, "dnsmasq.log")


def rev(ip):
    return ".".join(reversed(ip.split(".")))


records = [
    ("bl.test", "127.0.0.2", "127.0.0.2"),
    ("bl.test", "127.0.0.3", "127.0.0.2"),
    ("bl.test", "127.0.0.4", "127.0.0.12"),  # outside bl.test's filter
    ("bl.test", "127.0.0.5", "127.0.0.10"),
    ("bl.test", "127.0.0.9", "127.0.0.2"),
    ("small.test", "127.0.0.4", "127.0.0.2"),
    ("small.test", "127.0.0.5", "127.0.0.2"),
    ("wl.test", "127.0.0.3", "127.0.10.2"),
]
dns_port = harness.free_port()
dnsmasq = harness.start_process(
    [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", f"--port={dns_port}",
     "--listen-address=127.0.0.1", "--bind-interfaces", f"--pid-file={tmp}/dnsmasq.pid", f"--user={USER}",
     "--log-queries", f"--log-facility={qlog}", "--local=/test/",
     *[f"--host-record={rev(ip)}.{zone},{answer},600" for zone, ip, answer in records]])
harness.wait_until(lambda: os.path.exists(qlog) and "started" in open(qlog).read(), "dnsmasq started")

metrics_port = harness.free_port()
home = Home(smtp_extra=(f"dns_servers=127.0.0.1:{dns_port}\n"
                        "dnsbl_sites=bl.test=127.0.0.[2..11]*2 small.test, wl.test=127.0.[0..255].[1..3]*-2\n"
                        "dnsbl_threshold=2\ndnsbl_exempt=127.0.0.9\n"),
            server_extra=f"metrics_port={metrics_port}\n")
server = Server(home)


def queries(ip, zone):
    """How often dnsmasq was asked for ip's name under zone."""
    with open(qlog, errors="replace") as f:
        return sum(1 for line in f if f"query[A] {rev(ip)}.{zone} " in line)


def send(ip, port=None, login=False, subject="dnsbl", h=None):
    """(RCPT code, text) of one message to alice@localhost from `ip` (to
    the server of Home `h`, the first by default)."""
    h = h or home
    s = smtplib.SMTP("127.0.0.1", port or h.port, local_hostname="client.test", timeout=30,
                     source_address=(ip, 0))
    s.ehlo("client.test")
    if login:
        s.login("alice", "secret")
    code, text = s.mail("sender@client.test")
    check(code == 250, f"MAIL from {ip} accepted ({code} {text!r})")
    code, text = s.rcpt("alice@localhost")
    text = text.decode()
    if code == 250:
        dcode, dtext = s.data(f"From: <sender@client.test>\r\nSubject: {subject}\r\n\r\nHello from {ip}.\r\n".encode())
        check(dcode == 250, f"DATA from {ip} accepted ({dcode} {dtext!r})")
    s.quit()
    return code, text


def error_log(h=None):
    try:
        with open(os.path.join((h or home).path, "var", "log", "error.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def metric(name):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    return None


# 1. Listed (score 2 >= 2): refused at RCPT with the exact text.
code, text = send("127.0.0.2")
check(code == 554 and text == "5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test",
      f"listed client refused: {code} {text}")
check(queries("127.0.0.2", "bl.test") == 1 and queries("127.0.0.2", "small.test") == 1
      and queries("127.0.0.2", "wl.test") == 1, "every zone asked once")
harness.wait_until(lambda: "client [127.0.0.2] blocked using bl.test (score 2: bl.test*2)" in error_log(),
                   "error.log names the client, the zone and the score")

# 2. Two listings: the zone of the highest weight is named.
code, text = send("127.0.0.5")
check(code == 554 and text == "5.7.1 Service unavailable; client [127.0.0.5] blocked using bl.test",
      f"client listed twice refused, naming bl.test: {code} {text}")

# 3. Allow-listed despite a listing (2 - 2 = 0).
code, text = send("127.0.0.3", subject="allow-listed")
check(code == 250, f"allow-listed client accepted despite bl.test: {code} {text}")

# 4. Under the threshold; an answer outside bl.test's filter does not count.
code, text = send("127.0.0.4", subject="below-threshold")
check(code == 250, f"client with score 1 accepted: {code} {text}")
harness.wait_until(lambda: "client [127.0.0.4] listed but not blocked (score 1" in error_log(),
                   "error.log notes the listing below the threshold")

# 5. Unlisted.
code, text = send("127.0.0.6", subject="unlisted")
check(code == 250, f"unlisted client accepted: {code} {text}")

# 5b. The look-ups start when the client connects, not at its first RCPT:
#     a client that only waits after the greeting is looked up meanwhile.
idle = smtplib.SMTP("127.0.0.1", home.port, local_hostname="client.test", timeout=30,
                    source_address=("127.0.0.8", 0))
harness.wait_until(lambda: all(queries("127.0.0.8", z) == 1 for z in ("bl.test", "small.test", "wl.test")),
                   "a silent client is looked up in every zone as it connects")
idle.quit()

# 6. Exempt: never asked.
code, text = send("127.0.0.9", subject="exempt")
check(code == 250, f"exempt client accepted: {code} {text}")
check(queries("127.0.0.9", "bl.test") == 0, "the exempt client was never looked up")

# 7. Authenticated (port 25 and submission): not checked.
code, text = send("127.0.0.2", login=True, subject="authenticated")
check(code == 250, f"listed client accepted after AUTH: {code} {text}")
code, text = send("127.0.0.2", port=home.submission_port, login=True, subject="submission")
check(code == 250, f"listed client accepted on the submission port: {code} {text}")

# 8. The cache: a second session from 127.0.0.2 asks no DNS.
before = queries("127.0.0.2", "bl.test")
code, text = send("127.0.0.2")
check(code == 554 and "blocked using bl.test" in text, f"listed client refused again: {code} {text}")
time.sleep(0.5)  # dnsmasq would log a query at once
check(queries("127.0.0.2", "bl.test") == before == 1, "the second session was answered from the cache")

# 8b. dnsbl_action=drop: the greeting waits for the lists and refuses a
#     blocked client with 521; others are greeted as usual.
home_drop = Home(smtp_extra=(f"dns_servers=127.0.0.1:{dns_port}\n"
                             "dnsbl_sites=bl.test=127.0.0.[2..11]*2 small.test, wl.test=127.0.[0..255].[1..3]*-2\n"
                             "dnsbl_threshold=2\ndnsbl_exempt=127.0.0.9\ndnsbl_action=drop\n"))
server_drop = Server(home_drop)
try:
    smtplib.SMTP("127.0.0.1", home_drop.port, local_hostname="client.test", timeout=30,
                 source_address=("127.0.0.2", 0))
    check(False, "drop: the listed client was greeted")
except smtplib.SMTPConnectError as e:
    check(e.smtp_code == 521
          and e.smtp_error.decode() == "5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test",
          f"drop: the listed client gets the 521 greeting ({e.smtp_code} {e.smtp_error!r})")
harness.wait_until(lambda: "blocked using bl.test (score 2: bl.test*2): dropped at connect" in error_log(home_drop),
                   "drop: error.log records the dropped client")
code, text = send("127.0.0.6", subject="unlisted-drop", h=home_drop)
check(code == 250, f"drop: an unlisted client is greeted and accepted: {code} {text}")
harness.wait_until(lambda: any(b"Subject: unlisted-drop\r\n" in m for m in home_drop.messages()),
                   "drop: the unlisted client's message delivered")
server_drop.stop()

# 8c. dnsbl_action=ignore: logged, never refused.
home_ignore = Home(smtp_extra=(f"dns_servers=127.0.0.1:{dns_port}\n"
                               "dnsbl_sites=bl.test=127.0.0.[2..11]*2\ndnsbl_exempt=127.0.0.9\ndnsbl_action=ignore\n"))
server_ignore = Server(home_ignore)
code, text = send("127.0.0.2", subject="ignored", h=home_ignore)
check(code == 250, f"ignore: the listed client is accepted: {code} {text}")
harness.wait_until(lambda: "client [127.0.0.2] would be blocked using bl.test (score 2: bl.test*2; dnsbl_action=ignore)"
                   in error_log(home_ignore), "ignore: error.log says the client would have been blocked")
server_ignore.stop()

# 8d. Behind a load balancer: the PROXY header's client is looked up.
home_proxy = Home(smtp_extra=(f"dns_servers=127.0.0.1:{dns_port}\n"
                              "dnsbl_sites=bl.test=127.0.0.[2..11]*2\ndnsbl_exempt=127.0.0.9\n"),
                  server_extra="proxy_trusted_networks=127.0.0.1\n")
server_proxy = Server(home_proxy)
balancer_before = queries("127.0.0.1", "bl.test")  # the earlier servers' readiness probes came from 127.0.0.1
with socket.create_connection(("127.0.0.1", home_proxy.port), timeout=30) as raw:
    raw.sendall(b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 25\r\n")
    f = raw.makefile("rb")

    def answer():
        lines = []
        while True:
            line = f.readline().decode()
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return lines[-1]

    check(answer().startswith("220"), "behind a balancer: greeted")
    for cmd in (b"EHLO client.test\r\n", b"MAIL FROM:<sender@client.test>\r\n"):
        raw.sendall(cmd)
        check(answer().startswith("250"), f"behind a balancer: {cmd.decode().strip()} accepted")
    raw.sendall(b"RCPT TO:<alice@localhost>\r\n")
    last = answer()
    check(last == "554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test",
          f"behind a balancer: the client the header names is looked up and refused ({last})")
    raw.sendall(b"QUIT\r\n")
time.sleep(0.5)  # dnsmasq would log a query at once
check(queries("127.0.0.1", "bl.test") == balancer_before, "the balancer's own address was not looked up")
server_proxy.stop()

# 9. DNS dead: a new client is accepted, the failure logged; the cached
#    listing still refuses.
dnsmasq.terminate()
dnsmasq.wait(10)
code, text = send("127.0.0.7", subject="dns-dead")
check(code == 250, f"client accepted while the DNS is dead: {code} {text}")
harness.wait_until(lambda: "DNS block list look-up failed (counted as not listed): bl.test" in error_log(),
                   "error.log records the failed look-up")
code, text = send("127.0.0.2")
check(code == 554, f"the cached listing still refuses without DNS: {code} {text}")
# Within the back-off (10 s) after the failure, the dead zones are not
# asked again: the next new client is accepted without waiting for them.
code, text = send("127.0.0.10", subject="dns-backoff")
check(code == 250, f"another client accepted while the DNS is dead: {code} {text}")
harness.wait_until(lambda: "bl.test: not asked: it failed" in error_log(),
                   "error.log says the failed zone was not asked again (back-off)")

# 10. The metric: one per refused RCPT (127.0.0.2 three times, 127.0.0.5 once).
check(metric("wizmail_smtp_dnsbl_rejected_total") == 4,
      f"wizmail_smtp_dnsbl_rejected_total = 4 ({metric('wizmail_smtp_dnsbl_rejected_total')})")
for subject in ("allow-listed", "below-threshold", "unlisted", "exempt", "authenticated", "submission", "dns-dead",
                "dns-backoff"):
    harness.wait_until(lambda: any(f"Subject: {subject}\r\n".encode() in m for m in home.messages()),
                       f"message '{subject}' delivered")
server.stop()
print("all dnsbl e2e checks passed")
