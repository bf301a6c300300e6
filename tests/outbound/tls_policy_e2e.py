"""Outbound TLS policy (smtp_tls_security_level, def/tls_policy.def) end to
end with real peers on loopback, one per loopback address (all on the one
outbound_port), found through dnsmasq's MX records:

  good.test  → mx.good.test  127.0.0.2  wizmail, certificate for mx.good.test
                                        signed by a test CA
  wrong.test,
  enc.test   → mx.wrong.test 127.0.0.3  wizmail, certificate signed by the
                                        CA for another name
  plain.test,
  mayplain.test → mx.plain.test 127.0.0.4  a Python SMTP peer without
                                        STARTTLS that records every line
  rogue.test → mx.rogue.test 127.0.0.5  wizmail, a self-signed certificate
                                        for the right name (no CA we trust)
  broken.test,
  maybroken.test → mx.broken.test 127.0.0.6  a Python peer that offers
                                        STARTTLS, says 220 and then sends
                                        garbage instead of a handshake

The sender's tls_policy.def: good.test, wrong.test and rogue.test verify,
enc.test, plain.test and broken.test encrypt; mayplain.test and
maybroken.test take the default (may). The CA and the
certificates are made with openssl here."""
import json, os, re, smtplib, socket, subprocess, sys, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import peers  # noqa: E402
from harness import Home, Server, check, wait_for, server_log  # noqa: E402
from peers import CHECK_DSN, WIZMAIL  # noqa: E402

for tool in ("dnsmasq", "openssl"):
    if not __import__("shutil").which(tool) and not os.path.exists("/usr/sbin/" + tool):
        print(f"SKIP: {tool} not installed")
        sys.exit(77)

tmp = __import__("tempfile").mkdtemp(prefix="wizmail-tlspol-")
__import__("atexit").register(__import__("shutil").rmtree, tmp, True)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- a test CA and two server certificates it signs
ca_key, ca_cert = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.pem")
openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=wizmail test CA", "-days", "2",
        "-keyout", ca_key, "-out", ca_cert, "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def server_cert(name):
    key, csr, cert = (os.path.join(tmp, f"{name}.{x}") for x in ("key", "csr", "pem"))
    ext = os.path.join(tmp, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", key, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
            "-extfile", ext, "-out", cert)
    return cert, key


good_cert, good_key = server_cert("mx.good.test")
wrong_cert, wrong_key = server_cert("not-the-mx.test")
openssl("verify", "-CAfile", ca_cert, good_cert)  # the chain is sound
rogue_key, rogue_cert = os.path.join(tmp, "rogue.key"), os.path.join(tmp, "rogue.pem")
openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mx.rogue.test", "-days", "2",
        "-keyout", rogue_key, "-out", rogue_cert, "-addext", "subjectAltName=DNS:mx.rogue.test")

port = harness.free_port()  # every peer listens on it, each on its own loopback address
dnsmasq, dns_port = peers.start_dnsmasq(
    tmp, "--mx-host=good.test,mx.good.test,10", "--host-record=mx.good.test,127.0.0.2",
    "--mx-host=wrong.test,mx.wrong.test,10", "--mx-host=enc.test,mx.wrong.test,10",
    "--host-record=mx.wrong.test,127.0.0.3",
    "--mx-host=plain.test,mx.plain.test,10", "--mx-host=mayplain.test,mx.plain.test,10",
    "--host-record=mx.plain.test,127.0.0.4",
    "--mx-host=rogue.test,mx.rogue.test,10", "--host-record=mx.rogue.test,127.0.0.5",
    "--mx-host=broken.test,mx.broken.test,10", "--mx-host=maybroken.test,mx.broken.test,10",
    "--host-record=mx.broken.test,127.0.0.6")
_homes = []


def peer_home(ip, domain, cert, key, alias=""):
    h = Home(server_extra=f"tls_cert_file={cert}\ntls_key_file={key}\n" + (f"alias={alias}\n" if alias else ""),
             accounts=(("bob", "pw"), ("postmaster", "pm")))
    h.port = port
    smtpenv = os.path.join(h.path, "def", "smtpenv.dat")
    text = open(smtpenv).read()
    text = re.sub(r"^port=\d+$", f"port={port}", text, flags=re.M)
    text = text.replace("bind_address=127.0.0.1", f"bind_address={ip}")
    with open(smtpenv, "w") as f:
        f.write(text)
    with open(os.path.join(h.path, "def", "wiz98msenv.dat")) as f:
        server = f.read().replace("domain=localhost", f"domain={domain}")
    with open(os.path.join(h.path, "def", "wiz98msenv.dat"), "w") as f:
        f.write(server)
    _homes.append(h)
    s = Server(h, wait=False)
    wait_for(lambda: can_connect(ip, port), f"the peer on {ip} listens", homes=[h])
    return h, s


def can_connect(ip, p):
    try:
        socket.create_connection((ip, p), 0.2).close()
        return True
    except OSError:
        return False


class PlainPeer:
    """A minimal SMTP server without STARTTLS that records every line it is
    sent and keeps each message it takes. `broken_tls`: it offers STARTTLS,
    answers 220 and then sends garbage instead of a TLS handshake."""

    def __init__(self, ip, p, broken_tls=False):
        self.broken_tls = broken_tls
        self.lines, self.messages = [], []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, p))
        self.sock.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        f = c.makefile("rb")
        c.sendall(b"220 mx.plain.test ESMTP test peer\r\n")
        data = None
        for raw in f:
            line = raw.decode("latin-1").rstrip("\r\n")
            if data is not None:
                if line == ".":
                    self.messages.append("".join(data))
                    data = None
                    c.sendall(b"250 2.0.0 queued\r\n")
                else:
                    data.append(line + "\n")
                continue
            self.lines.append(line)
            verb = line.split(" ")[0].upper()
            if verb == "EHLO":
                tls = b"250-STARTTLS\r\n" if self.broken_tls else b""
                c.sendall(b"250-mx.plain.test\r\n" + tls + b"250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == "STARTTLS" and self.broken_tls:
                c.sendall(b"220 2.0.0 go ahead\r\n" + b"this is not a TLS record\r\n" * 4)
                break
            elif verb == "DATA":
                data = []
                c.sendall(b"354 go ahead\r\n")
            elif verb == "QUIT":
                c.sendall(b"221 bye\r\n")
                break
            else:
                c.sendall(b"250 ok\r\n")
        c.close()


good_home, good_server = peer_home("127.0.0.2", "good.test", good_cert, good_key)
wrong_home, wrong_server = peer_home("127.0.0.3", "wrong.test", wrong_cert, wrong_key, alias="enc.test")
plain = PlainPeer("127.0.0.4", port)
rogue_home, rogue_server = peer_home("127.0.0.5", "rogue.test", rogue_cert, rogue_key)
broken = PlainPeer("127.0.0.6", port, broken_tls=True)

# --- the sender
home = Home(smtp_extra=f"dns_servers=127.0.0.1:{dns_port}\noutbound_port={port}\nresend_scan_interval=1\n"
                       f"smtp_tls_ca_file={ca_cert}\n")
_homes.append(home)
with open(os.path.join(home.path, "def", "tls_policy.def"), "w") as f:
    f.write("# outbound TLS per destination\n"
            "good.test     verify\n"
            "wrong.test    verify\n"
            "enc.test      encrypt\n"
            "plain.test    encrypt\n"
            "rogue.test    verify\n"
            "broken.test   encrypt\n")
r = subprocess.run([WIZMAIL, "--home", home.path, "config", "check"], capture_output=True, text=True)
check(r.returncode == 0, "config check accepts the table: " + r.stdout + r.stderr)
server = Server(home)


def send(rcpt, subject, rcpt_options=()):
    s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
    s.ehlo("client.test")
    s.login("alice", "secret")
    s.sendmail("alice@localhost", [rcpt], f"From: <alice@localhost>\r\nSubject: {subject}\r\n\r\nbody\r\n".encode(),
               rcpt_options=list(rcpt_options))
    s.quit()


def queue_list():
    r = subprocess.run([WIZMAIL, "--home", home.path, "queue", "list", "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        check(False, "wizmail queue list --json: " + r.stderr)
    return r.stdout


def log_has(text):
    return text in server_log(home)


def log_re(pattern):
    return re.search(pattern, server_log(home)) is not None


# 1. verify, right name → delivered; the log says verified; the peer's
#    Received: names the TLS it used.
send("bob@good.test", "tls-verify-good")
wait_for(lambda: len(good_home.messages("bob")) == 1, "verify + a good certificate: delivered", homes=[home, good_home])
# The peer has the message before its 250 reaches us: wait for our log.
wait_for(lambda: log_re(r"to <bob@good\.test> delivered: .*\(TLS TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\), "
                        r"verified, peer CN=mx\.good\.test\)"), "the delivery line says verified and the peer's CN",
         homes=[home])
check("Verified TLS connection established to mx.good.test[127.0.0.2]: TLSv1." in server_log(home),
      "server.log: Verified TLS connection, protocol and cipher")
m = good_home.messages("bob")[0].decode()
check(re.search(r"\(using TLSv1\.[23] with cipher [A-Z0-9_-]+ \(\d+/\d+ bits\)\)\r?\n\s+by ", m),
      "the peer's Received: says 'using TLSv1.x with cipher …' as Postfix does")

# 2. verify, wrong name → deferred, stays queued, nothing reaches the peer.
send("bob@wrong.test", "tls-verify-wrong", rcpt_options=["NOTIFY=DELAY,FAILURE"])
wait_for(lambda: log_has("to <bob@wrong.test> deferred"), "verify + a certificate for another name: deferred",
         homes=[home])
log = server_log(home)
check("Server certificate not verified: host mx.wrong.test[127.0.0.3] (name mx.wrong.test, peer CN=not-the-mx.test)"
      in log, "server.log says why: the name does not match")
check("Trusted TLS connection established to mx.wrong.test[127.0.0.3]" in log,
      "the chain itself was trusted (right CA, wrong name)")
wait_for(lambda: "Server certificate not verified" in queue_list(), "it stays in the queue with the reason",
         homes=[home])
check(len(wrong_home.messages("bob")) == 0, "nothing reached the peer")

# 3. encrypt, same peer (wrong name) → delivered over TLS, not verified.
send("bob@enc.test", "tls-encrypt-wrong-name")
wait_for(lambda: len(wrong_home.messages("bob")) == 1, "encrypt + a certificate for another name: delivered",
         homes=[home, wrong_home])
check("tls-encrypt-wrong-name" in wrong_home.messages("bob")[0].decode(), "…the encrypt message, not the verify one")
wait_for(lambda: log_re(r"to <bob@enc\.test> delivered: .*\(TLS TLSv1\.[23] .*trusted, name not verified, "
                        r"peer CN=not-the-mx\.test\)"), "the delivery line says the name was not verified", homes=[home])

# 4. encrypt, no STARTTLS offered → deferred; no MAIL, RCPT or DATA went in clear.
send("carol@plain.test", "tls-encrypt-plain", rcpt_options=["NOTIFY=DELAY,FAILURE"])
wait_for(lambda: log_has("to <carol@plain.test> deferred"), "encrypt + a peer without STARTTLS: deferred",
         homes=[home])
check("4.7.4 TLS is required, but was not offered by host mx.plain.test[127.0.0.4]" in server_log(home),
      "server.log: 4.7.4 TLS is required, but was not offered")
wait_for(lambda: "QUIT" in plain.lines, "the session to the peer ended with QUIT")
verbs = sorted({line.split(" ")[0].upper() for line in plain.lines})
check(verbs == ["EHLO", "QUIT"], f"the peer saw only EHLO and QUIT: {verbs}")
check(not plain.messages, "and no message")
check("carol@plain.test" in queue_list(), "the message stays queued")

# 5. may (the default), same peer → delivered in clear.
send("dave@mayplain.test", "tls-may-plain")
wait_for(lambda: len(plain.messages) == 1, "may + a peer without STARTTLS: delivered in clear", homes=[home])
check("Subject: tls-may-plain" in plain.messages[0], "the may message, in clear")
wait_for(lambda: log_re(r"to <dave@mayplain\.test> delivered: .*\(no TLS\)"), "the delivery line says no TLS",
         homes=[home])

# 6. The bounce of the deferred messages carries the TLS reason: make them
#    look old (resend_timeout, 1 day) and retry now.
server.stop()
for name in os.listdir(os.path.join(home.path, "resendmail", "deferred")):
    p = os.path.join(home.path, "resendmail", "deferred", name)
    text = open(p).read()
    with open(p, "w") as f:
        f.write(re.sub(r"^created \d+$", f"created {int(time.time()) - 2 * 86400}", text, flags=re.M))
server = Server(home)
subprocess.run([WIZMAIL, "--home", home.path, "queue", "flush"], capture_output=True)
wait_for(lambda: len(home.messages("alice")) == 2, "both TLS-deferred messages bounce after resend_timeout",
         homes=[home])
notices = [m.decode(errors="replace") for m in home.messages("alice")]
plain_dsn = next((n for n in notices if "carol@plain.test" in n), "")
wrong_dsn = next((n for n in notices if "bob@wrong.test" in n), "")
check("TLS is required, but was not offered by host mx.plain.test[127.0.0.4]" in plain_dsn.replace("\r\n ", " "),
      "the bounce's Diagnostic-Code: TLS is required, but was not offered by host …")
check(re.search(r"Status: 4\.7\.4", plain_dsn) and "Remote-MTA: dns; mx.plain.test[127.0.0.4]" in plain_dsn,
      "…Status 4.7.4 and the Remote-MTA")
check("Server certificate not verified" in wrong_dsn.replace("\r\n ", " ") and re.search(r"Status: 4\.7\.5", wrong_dsn),
      "the other bounce: Server certificate not verified, 4.7.5")
for path, rcpt, status in ((p, r, s) for p in sorted(os.listdir(home.new_dir("alice")))
                           for r, s in (("carol@plain.test", "4.7.4"), ("bob@wrong.test", "4.7.5"))):
    full = os.path.join(home.new_dir("alice"), path)
    if rcpt in open(full, errors="replace").read():
        res = subprocess.run([sys.executable, CHECK_DSN, full, "alice@localhost", f"{rcpt}={status}", "Subject: tls-"],
                             capture_output=True, text=True)
        check(res.returncode == 0, f"python's email reads the {rcpt} notice: " + res.stdout + res.stderr)
check(not plain.messages[1:] and len(wrong_home.messages("bob")) == 1, "still nothing sent where TLS failed")

# 7. verify, a self-signed certificate for the right name → deferred: the
#    chain is not trusted; nothing reaches the peer.
send("bob@rogue.test", "tls-verify-rogue")
wait_for(lambda: log_has("to <bob@rogue.test> deferred"), "verify + a self-signed certificate: deferred",
         homes=[home])
check("Untrusted TLS connection established to mx.rogue.test[127.0.0.5]" in server_log(home),
      "server.log: an Untrusted TLS connection")
check("Server certificate not verified: host mx.rogue.test[127.0.0.5] (name mx.rogue.test, peer CN=mx.rogue.test)"
      in server_log(home), "the reason names the host and the certificate")
check(len(rogue_home.messages("bob")) == 0, "nothing reached the peer")

# 8. encrypt, a peer whose handshake fails → deferred with the reason;
#    nothing after STARTTLS went in clear.
send("erin@broken.test", "tls-encrypt-broken")
wait_for(lambda: log_has("to <erin@broken.test> deferred"), "encrypt + a failing TLS handshake: deferred",
         homes=[home])
check("Cannot start TLS: handshake failure with host mx.broken.test[127.0.0.6]" in server_log(home),
      "server.log: Cannot start TLS: handshake failure with host …")
check(sorted({line.split(" ")[0].upper() for line in broken.lines}) == ["EHLO", "STARTTLS"],
      f"the peer saw only EHLO and STARTTLS ({sorted(set(broken.lines))})")
check("erin@broken.test" in queue_list(), "the message stays queued")

# 9. may, the same peer → the handshake fails, the next connection goes
#    without TLS and delivers (opportunistic TLS never loses the mail).
send("fred@maybroken.test", "tls-may-broken")
wait_for(lambda: len(broken.messages) == 1, "may + a failing TLS handshake: delivered in clear", homes=[home])
check("Subject: tls-may-broken" in broken.messages[0], "the may message, not the encrypt one")
check("STARTTLS failed" in server_log(home) and "retrying without TLS" in server_log(home),
      "server.log: STARTTLS failed, retrying without TLS")
server.stop()
good_server.stop()
wrong_server.stop()
rogue_server.stop()
print("ok - all TLS policy checks")
