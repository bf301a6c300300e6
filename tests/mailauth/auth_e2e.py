"""SPF, DKIM and DMARC on inbound mail, end to end (docs/authentication.md).

dnsmasq (started here, on a free loopback port; wizmail's dns_servers point
at it) publishes SPF, DKIM and DMARC TXT records for test domains; test
messages are signed by python3-dkim (Debian's, hence /usr/bin/python3) with
a key made here whose public half dnsmasq publishes. The client connects
from 127.0.0.1 to port 25 unauthenticated, with mail_auth_exempt=none so
that loopback is checked like any MTA. Checked:
  - forged mail From: a p=reject domain (SPF fail, no signature): 550 5.7.1;
  - aligned mail (SPF pass, DKIM pass): delivered with spf=pass, dkim=pass,
    dmarc=pass in our one Authentication-Results: field, on top;
  - misaligned mail (SPF and DKIM pass for another domain): p=reject → 550,
    p=quarantine → delivered with dmarc=fail (p=quarantine);
  - SPF fail of a domain without DMARC: recorded (spf=fail), delivered;
    with spf_reject_fail=1 refused at MAIL with 550 5.7.23;
  - a forged incoming Authentication-Results claiming our authserv-id is
    removed, another server's is kept;
  - DNS dead (a port nothing answers, and a UDP socket that never replies):
    temperror, the message accepted — never a 5xx; with
    mail_auth_temperror_defer=1 a 451.
Every process is killed at exit."""
import base64, os, re, smtplib, socket, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "outbound"))
import harness  # noqa: E402
import peers  # noqa: E402
from harness import Home, Server, check  # noqa: E402

try:
    import dkim  # python3-dkim
except ImportError:
    print("FAILED: python3-dkim is not installed for " + sys.executable + " (scripts/packages.txt)")
    sys.exit(1)
if not os.path.exists("/usr/sbin/dnsmasq"):
    print("FAILED: dnsmasq is not installed (scripts/packages.txt)")
    sys.exit(1)

AUTHSERV = "mx.wizmail.test"
tmp = tempfile.mkdtemp(prefix="wizmail-auth-")
_homes = []


def wait_for(cond, what, timeout=20):
    return harness.wait_for(cond, what, timeout, _homes, tail=3000)


# --- A DKIM key, its record split into character-strings for dnsmasq.
# python3-dkim reads the traditional RSAPrivateKey form (RFC 8017).
key_pem = subprocess.run(["openssl", "genrsa", "-traditional", "2048"], capture_output=True, check=True).stdout
pub_der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=key_pem,
                         capture_output=True, check=True).stdout
record = "v=DKIM1; k=rsa; p=" + base64.b64encode(pub_der).decode()
strings = [record[i:i + 200] for i in range(0, len(record), 200)]


def txt(name, *texts):
    return "--txt-record=" + ",".join([name, *texts])


dns_records = [
    # good.test: SPF allows 127.0.0.1, DKIM key sel1, DMARC p=reject.
    txt("good.test", "v=spf1 ip4:127.0.0.1 -all"),
    txt("sel1._domainkey.good.test", *strings),
    txt("_dmarc.good.test", "v=DMARC1; p=reject"),
    # bank.test: SPF allows someone else, DMARC p=reject: forgeries refused.
    txt("bank.test", "v=spf1 ip4:192.0.2.1 -all"),
    txt("_dmarc.bank.test", "v=DMARC1; p=reject"),
    # quar.test: p=quarantine.
    txt("quar.test", "v=spf1 ip4:192.0.2.1 -all"),
    txt("_dmarc.quar.test", "v=DMARC1; p=quarantine"),
    # bulk.test: a sender whose SPF and DKIM pass, for its own domain only.
    txt("bulk.test", "v=spf1 ip4:127.0.0.1 -all"),
    txt("sel1._domainkey.bulk.test", *strings),
    # fail.test: SPF -all, no DMARC.
    txt("fail.test", "v=spf1 -all"),
    # The HELO name.
    txt("client.good.test", "v=spf1 ip4:127.0.0.1 -all"),
]
dnsmasq, dns_port = peers.start_dnsmasq(tmp, *dns_records)


def make_home(dns, extra=""):
    h = Home(smtp_extra=f"dns_servers={dns}\nmail_auth_exempt=none\nauthserv_id={AUTHSERV}\n" + extra)
    _homes.append(h)
    return h


def sign(msg, domain):
    sig = dkim.sign(msg, b"sel1", domain.encode(), key_pem,
                    include_headers=[b"from", b"to", b"subject", b"message-id"])
    return sig + msg


def message(from_header, subject, extra_headers=""):
    return (f"{extra_headers}From: {from_header}\r\nTo: Alice <alice@localhost>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@wizmail.test>\r\n\r\nHello Alice,\r\nthis is {subject}.\r\n").encode()


def send(home, sender, data, helo="client.good.test"):
    """(MAIL reply code, final reply code and text)."""
    s = smtplib.SMTP("127.0.0.1", home.port, local_hostname=helo, timeout=60)
    s.ehlo(helo)
    code, text = s.mail(sender)
    if code != 250:
        s.quit()
        return code, code, text.decode()
    code, text = s.rcpt("alice@localhost")
    check(code == 250, f"RCPT accepted ({code} {text!r})")
    code, text = s.data(data)
    s.quit()
    return 250, code, text.decode()


def delivered(home, subject):
    for m in home.messages():
        if f"this is {subject}.".encode() in m:
            return m
    return None


def ar_fields(msg):
    head = msg.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.findall(r"^(Authentication-Results:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M | re.I)
    return [re.sub(r"\r\n[ \t]+", " ", f) for f in fields]


def ours(msg):
    mine = [f for f in ar_fields(msg) if f.split(":", 1)[1].strip().lower().startswith(AUTHSERV + ";")]
    check(len(mine) == 1, f"exactly one Authentication-Results of ours: {ar_fields(msg)}")
    return mine[0]


home = make_home(f"127.0.0.1:{dns_port}")
server = Server(home)

# 1. Forged: From: and MAIL FROM bank.test from an address SPF does not allow.
mail, code, text = send(home, "ceo@bank.test", message("CEO <ceo@bank.test>", "forged"))
check(mail == 250, "MAIL of the forgery is accepted (SPF fail only recorded by default)")
check(code == 550 and text.startswith("5.7.1"), f"forged p=reject mail refused 550 5.7.1: {code} {text}")
check(delivered(home, "forged") is None, "nothing of it delivered")

# 2. Aligned: SPF pass for good.test, DKIM d=good.test, From: good.test.
_, code, text = send(home, "news@good.test", sign(message("News <news@good.test>", "aligned"), "good.test"))
check(code == 250, f"aligned mail accepted: {code} {text}")
wait_for(lambda: delivered(home, "aligned") is not None, "aligned mail delivered")
m = delivered(home, "aligned")
ar = ours(m)
check("spf=pass" in ar and "smtp.mailfrom=news@good.test" in ar, "spf=pass for the MAIL FROM: " + ar)
check("spf=pass" in ar and "smtp.helo=client.good.test" in ar, "spf=pass for the HELO name: " + ar)
check("dkim=pass header.d=good.test header.s=sel1" in ar, "dkim=pass d=good.test: " + ar)
check("dmarc=pass (p=reject) header.from=good.test" in ar, "dmarc=pass: " + ar)
first = m.split(b"\r\n", 3)
check(any(l.startswith(b"Authentication-Results: " + AUTHSERV.encode()) for l in first[:3]),
      "our field is on top (above our Received:)")

# 3. Misaligned: SPF and DKIM pass for bulk.test, From: bank.test (p=reject) → refused;
#    From: quar.test (p=quarantine) → delivered, dmarc=fail.
_, code, text = send(home, "mailer@bulk.test", sign(message("<ceo@bank.test>", "misaligned-reject"), "bulk.test"))
check(code == 550 and text.startswith("5.7.1"), f"misaligned p=reject mail refused: {code} {text}")
_, code, text = send(home, "mailer@bulk.test", sign(message("<x@quar.test>", "misaligned-quar"), "bulk.test"))
check(code == 250, f"misaligned p=quarantine mail accepted: {code} {text}")
wait_for(lambda: delivered(home, "misaligned-quar") is not None, "p=quarantine mail delivered")
ar = ours(delivered(home, "misaligned-quar"))
check("spf=pass" in ar and "dkim=pass header.d=bulk.test" in ar, "SPF and DKIM pass for bulk.test: " + ar)
check("dmarc=fail (p=quarantine) header.from=quar.test" in ar, "dmarc=fail (p=quarantine): " + ar)

# 4. SPF fail without DMARC: recorded.
_, code, text = send(home, "a@fail.test", message("<a@fail.test>", "spf-fail"))
check(code == 250, f"SPF fail without DMARC accepted by default: {code} {text}")
wait_for(lambda: delivered(home, "spf-fail") is not None, "spf-fail mail delivered")
ar = ours(delivered(home, "spf-fail"))
check("spf=fail" in ar and "smtp.mailfrom=a@fail.test" in ar, "spf=fail recorded: " + ar)
check("dkim=none" in ar and "dmarc=none" in ar, "dkim=none, dmarc=none: " + ar)

# 5. Forged Authentication-Results: ours removed (any case, folded), another kept.
forged = (f"Authentication-Results: {AUTHSERV}; dmarc=pass header.from=bank.test\r\n"
          f"authentication-results: (c) MX.WIZMAIL.TEST;\r\n\tdkim=pass\r\n"
          "Authentication-Results: other.example; spf=pass smtp.mailfrom=x@other.example\r\n")
_, code, text = send(home, "news@good.test",
                     sign(message("News <news@good.test>", "forged-ar", forged), "good.test"))
check(code == 250, f"message with forged Authentication-Results accepted: {code} {text}")
wait_for(lambda: delivered(home, "forged-ar") is not None, "it is delivered")
m = delivered(home, "forged-ar")
ar = ours(m)
check("header.from=bank.test" not in m.decode(), "the forged field claiming our id is gone")
check(any(f.startswith("Authentication-Results: other.example;") for f in ar_fields(m)),
      "another server's field is kept")
check(len(ar_fields(m)) == 2, f"ours and the other one only: {ar_fields(m)}")

# 6. Null sender: checked as postmaster@HELO.
_, code, text = send(home, "", message("<mailer-daemon@good.test>", "null-sender"))
check(code == 250, f"null sender accepted: {code} {text}")
wait_for(lambda: delivered(home, "null-sender") is not None, "null-sender mail delivered")
ar = ours(delivered(home, "null-sender"))
check(re.search(r"spf=pass (\([^)]*\) )?smtp\.helo=client\.good\.test", ar) is not None,
      "null sender: SPF of the HELO name: " + ar)
check("smtp.mailfrom" not in ar, "no smtp.mailfrom for <>: " + ar)
server.stop()

# 7. spf_reject_fail=1: refused at MAIL.
home2 = make_home(f"127.0.0.1:{dns_port}", "spf_reject_fail=1\n")
server2 = Server(home2)
mail, code, text = send(home2, "a@fail.test", message("<a@fail.test>", "spf-refused"))
check(mail == 550 and text.startswith("5.7.23"), f"spf_reject_fail: MAIL refused 550 5.7.23: {mail} {text}")
mail, code, text = send(home2, "news@good.test", message("<news@good.test>", "spf-pass-2"))
check(mail == 250 and code == 250, f"SPF pass still accepted: {code} {text}")
# Authenticated submission is not checked.
s = smtplib.SMTP("127.0.0.1", home2.submission_port, timeout=30)
s.login("alice", "secret")
code, _ = s.mail("a@fail.test")
check(code == 250, "an authenticated sender is not SPF-checked")
s.quit()
server2.stop()

# 8. DNS dead: refused port (ICMP) and a silent UDP socket (time-outs).
silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
silent.bind(("127.0.0.1", 0))
for dns, what in ((f"127.0.0.1:{harness.free_port()}", "nothing listening"),
                  (f"127.0.0.1:{silent.getsockname()[1]}", "a server that never answers")):
    h = make_home(dns, "spf_reject_fail=1\n")
    srv = Server(h)
    subj = "dns-dead-" + str(len(_homes))
    mail, code, text = send(h, "ceo@bank.test", message("<ceo@bank.test>", subj))
    check(mail == 250 and code == 250, f"DNS {what}: accepted, never a 5xx ({mail}, {code} {text})")
    wait_for(lambda: delivered(h, subj) is not None, "it is delivered")
    ar = ours(delivered(h, subj))
    check("spf=temperror" in ar and "dmarc=temperror" in ar, f"DNS {what}: temperror recorded: " + ar)
    srv.stop()
# mail_auth_temperror_defer=1: a 4xx instead.
h = make_home(f"127.0.0.1:{harness.free_port()}", "spf_reject_fail=1\nmail_auth_temperror_defer=1\n")
srv = Server(h)
mail, code, text = send(h, "ceo@bank.test", message("<ceo@bank.test>", "deferred"))
check(mail == 451 and text.startswith("4.7.24"), f"temperror_defer: MAIL gets 451 4.7.24: {mail} {text}")
srv.stop()
silent.close()
print("all ok")
