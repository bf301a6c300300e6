"""SRS end to end (smtpenv srs=1; libwizmail/src/srs/srs.hpp), with real
peers on loopback: dnsmasq (MX records: example.test → 127.0.0.1,
origin.test → 127.0.0.2) + two Postfix smtp-sinks (the remote MTAs of the
two domains, on the same port) + the real wizmail-server, whose forward.def
hook runs the real wizmail-sendmail.

 1. A message from ext@origin.test to a local account whose forward.def
    sends it on to bob@example.test leaves with an SRS0 envelope sender at
    our domain — the hash recomputed here from def/srs.secret (Python's
    hmac, not wizmail's code) — and an alias target likewise.
 2. The null sender and a local sender are not rewritten.
 3. A bounce to that SRS0 address (MAIL FROM:<>) is accepted and relayed to
    ext@origin.test; the address in another case too.
 4. A forwarded message the remote MTA refuses: wizmail's own bounce to
    the SRS sender goes to ext@origin.test.
 5. A forged hash is refused 550 5.7.1, an expired time stamp and a
    malformed address 550 5.1.1; nothing of theirs is queued.
Every process is started here on free ports and killed at exit."""
import base64, glob, hashlib, hmac, os, re, smtplib, socket, stat, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402
import peers  # noqa: E402
from harness import Home, Server, check  # noqa: E402

for tool in peers.missing_tools():
    # Never skip: a missing peer is the machine's fault, said loudly.
    print(f"FAILED: {tool} is not installed (scripts/install-deps, scripts/packages.txt)")
    sys.exit(1)

SENDMAIL_DIR = os.path.join(harness.BUILD, "apps", "wizmail-sendmail")
_homes = []


def wait_for(cond, what, timeout=20):
    return harness.wait_for(cond, what, timeout, _homes, tail=3000)


# --- An SRS implementation of the test's own, from the scheme's description
#     (libsrs2): to check the server's addresses, and to make expired ones.
TIME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def stamp(day):
    return TIME_CHARS[(day >> 5) & 31] + TIME_CHARS[day & 31]


def srs_hash(secret, *fields):
    digest = hmac.new(secret.encode(), "".join(fields).lower().encode(), hashlib.sha1).digest()
    return base64.urlsafe_b64encode(digest).decode()[:4]


def srs0(secret, user, host, domain, day):
    ts = stamp(day)
    return f"SRS0={srs_hash(secret, ts, host, user)}={ts}={host}={user}@{domain}"


tmp = tempfile.mkdtemp(prefix="wizmail-srs-")
dnsmasq, dns_port = peers.start_dnsmasq(tmp, "--mx-host=origin.test,mx.origin.test,10",
                                        "--host-record=mx.origin.test,127.0.0.2")
mta = peers.Sink(tmp)  # example.test's MTA on 127.0.0.1
sink = mta.start()
origin_dump = os.path.join(tmp, "origin")
os.makedirs(origin_dump)
origin = harness.start_process(["smtp-sink", "-u", peers.USER, "-d", origin_dump + "/%M.", f"127.0.0.2:{mta.port}", "20"])


def origin_open():
    try:
        socket.create_connection(("127.0.0.2", mta.port), 0.2).close()
        return True
    except OSError:
        return False


wait_for(lambda: harness.port_open(mta.port) and origin_open(), "both smtp-sinks listen")

home = Home(smtp_extra=f"srs=1\ndns_servers=127.0.0.1:{dns_port}\noutbound_port={mta.port}\n"
                       "resend_scan_interval=1\n",
            accounts=(("alice", "secret"), ("fwd", "pw"), ("postmaster", "pm")))
_homes.append(home)
with open(os.path.join(home.path, "def", "wiz98msenv.dat"), "w") as f:
    f.write("domain=fwd.test\n")
with open(os.path.join(home.path, "def", "aliases.def"), "w") as f:
    f.write("carol@fwd.test: dave@example.test\n")
with open(os.path.join(home.path, "mailbox", "fwd", "forward.def"), "w") as f:
    f.write("bin=wizmail-sendmail\nparam1=FROM_ADDRESS\nparam2=bob@example.test\nparam3=-mf\nparam4=MAILFILE_PATH\n")
os.environ["PATH"] = SENDMAIL_DIR + os.pathsep + os.environ.get("PATH", "")
secret_file = os.path.join(home.path, "def", "srs.secret")
check(not os.path.exists(secret_file), "no secret before the first start")
server = Server(home)

st = os.stat(secret_file)
check(stat.S_IMODE(st.st_mode) == 0o600, "def/srs.secret was made on first use, mode 0600")
secret = open(secret_file).read().splitlines()[0]
check(len(secret) == 32, "the secret: 24 random octets in base64")


def send(sender, rcpts, subject):
    s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
    s.sendmail(sender, rcpts, f"From: <{sender or 'nobody@nowhere.test'}>\r\nSubject: {subject}\r\n\r\n"
                              f"body of {subject}\r\n")
    s.quit()


def origin_dumped():
    out = []
    for f in sorted(glob.glob(origin_dump + "/*")):
        with open(f, "rb") as fh:
            out.append(fh.read())
    return out


def dumped_with(subject, at_origin=False):
    return [m for m in (origin_dumped() if at_origin else mta.dumped())
            if f"Subject: {subject}".encode() in m and f"body of {subject}".encode() in m]


def envelope(msg):
    """(sender, [recipients]) as smtp-sink recorded them."""
    text = msg.decode("utf-8", "replace")
    sender = re.search(r"^X-Mail-Args: <([^>]*)>", text, re.M).group(1)
    return sender, re.findall(r"^X-Rcpt-Args: <([^>]*)>", text, re.M)


def today():
    return int(time.time()) // 86400 % 1024


# 1. forward.def → wizmail-sendmail → the submit socket → relay: SRS0.
send("ext@origin.test", ["fwd@fwd.test"], "forwarded")
wait_for(lambda: len(dumped_with("forwarded")) == 1, "the forwarded message reached the remote MTA")
sender, rcpts = envelope(dumped_with("forwarded")[0])
check(rcpts == ["bob@example.test"], f"sent to the forward.def target: {rcpts}")
m = re.fullmatch(r"SRS0=([A-Za-z0-9_-]{4})=([A-Z2-7]{2})=origin\.test=ext@fwd\.test", sender)
check(m is not None, f"the envelope sender is an SRS0 address at our domain: <{sender}>")
# The day may have turned between the message and now: either stamp.
check(sender in (srs0(secret, "ext", "origin.test", "fwd.test", today()),
                 srs0(secret, "ext", "origin.test", "fwd.test", (today() - 1) % 1024)),
      "its hash and time stamp are libsrs2's (HMAC-SHA1 of the secret, recomputed in Python)")
check(len(home.messages("fwd")) == 1, "the forwarding account keeps its copy")
forwarded_srs = sender

# An alias target is forwarded too.
send("ext2@origin.test", ["carol@fwd.test"], "aliased")
wait_for(lambda: len(dumped_with("aliased")) == 1, "the alias target got the message")
sender, rcpts = envelope(dumped_with("aliased")[0])
check(rcpts == ["dave@example.test"] and re.fullmatch(r"SRS0=[^=]{4}=[A-Z2-7]{2}=origin\.test=ext2@fwd\.test", sender),
      f"the alias's remote target: SRS0 sender <{sender}>")

# 2. Senders that stay: the null sender, a local sender.
send("", ["carol@fwd.test"], "null-sender")
send("alice@fwd.test", ["carol@fwd.test"], "local-sender")
wait_for(lambda: len(dumped_with("null-sender")) == 1 and len(dumped_with("local-sender")) == 1,
         "both reached the alias target")
check(envelope(dumped_with("null-sender")[0])[0] == "", "the null sender stays <>")
check(envelope(dumped_with("local-sender")[0])[0] == "alice@fwd.test", "a local sender is not rewritten")

# 3. The bounce to the SRS address goes back to the original sender.
send("", [forwarded_srs], "bounce")
wait_for(lambda: len(dumped_with("bounce", True)) == 1, "the bounce to the SRS address was relayed to origin.test")
sender, rcpts = envelope(dumped_with("bounce", True)[0])
check(rcpts == ["ext@origin.test"] and sender == "", f"to the original sender, from <>: {rcpts} <{sender}>")
send("", [forwarded_srs.lower()], "bounce-lower")
wait_for(lambda: len(dumped_with("bounce-lower", True)) == 1, "an all-lower-case SRS address reverses too")
check(envelope(dumped_with("bounce-lower", True)[0])[1] == ["ext@origin.test"], "to the original sender")

# 4. example.test's MTA refuses every RCPT now: the forward fails for good,
#    and wizmail's notice to its SRS sender reaches ext@origin.test.
sink.kill()
sink.wait()
wait_for(lambda: not harness.port_open(mta.port), "example.test's MTA stopped")
sink = mta.start("-f", "RCPT")
wait_for(lambda: harness.port_open(mta.port), "example.test's MTA refuses RCPT")
send("ext@origin.test", ["fwd@fwd.test"], "refused-forward")


def notices():
    return [m for m in origin_dumped() if b"multipart/report" in m and b"bob@example.test" in m]


wait_for(notices, "the failure notice reached the original sender at origin.test")
sender, rcpts = envelope(notices()[0])
check(rcpts == ["ext@origin.test"] and sender == "", f"the notice went to <ext@origin.test> from <>: {rcpts} <{sender}>")
check(b"Subject: refused-forward" in notices()[0], "it names the refused message")


# 5. Refused: forged, expired, malformed.
def rcpt_reply(address):
    s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
    s.ehlo("bouncer.test")
    s.mail("")
    code, text = s.rcpt(address)
    s.quit()
    return code, text.decode()


h = forwarded_srs[5:9]
forged = forwarded_srs.replace(h, "AAAA" if h.upper() != "AAAA" else "BBBB", 1)
code, text = rcpt_reply(forged)
check(code == 550 and text.startswith("5.7.1"), f"a forged hash: 550 5.7.1 ({code} {text})")
old = srs0(secret, "ext", "origin.test", "fwd.test", (today() - 22) % 1024)
code, text = rcpt_reply(old)
check(code == 550 and text.startswith("5.1.1") and "expired" in text, f"22 days old: 550 5.1.1 ({code} {text})")
code, _ = rcpt_reply(srs0(secret, "ext", "origin.test", "fwd.test", (today() - 21) % 1024))
check(code == 250, "21 days old (srs_max_age): still accepted")
code, text = rcpt_reply("SRS0=abcd=AA@fwd.test")
check(code == 550 and text.startswith("5.1.1"), f"a malformed SRS address: 550 5.1.1 ({code} {text})")


def error_log():
    try:
        return open(os.path.join(home.path, "var", "log", "error.log"), errors="replace").read()
    except FileNotFoundError:
        return ""


wait_for(lambda: "hash invalid" in error_log(), "the error log says why the forged one was refused")


def queue_empty():
    q = os.path.join(home.path, "resendmail")
    return all(not [n for n in os.listdir(os.path.join(q, d)) if not n.startswith(".")]
               for d in ("incoming", "active", "deferred") if os.path.isdir(os.path.join(q, d)))


wait_for(queue_empty, "nothing is left in the queue")
server.stop()
for p in (sink, origin):
    p.kill()
    p.wait()
print("srs e2e: all passed")
