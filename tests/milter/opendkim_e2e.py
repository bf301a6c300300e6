"""OpenDKIM (Debian's opendkim) as a milter of wizmail (docs/milter.md):
started here on a free loopback port with a key made by opendkim-genkey,
it signs mail that wizmail accepts from a local sender; python3-dkim (an
independent verifier, run with Debian's /usr/bin/python3) checks the
signature of the delivered copy against the published TXT record, and
fails it once the body is changed. Mail from a domain OpenDKIM has no key
for stays unsigned. Every process is killed at exit."""
import os, re, smtplib, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402
from harness import Home, Server, check  # noqa: E402

try:
    import dkim
except ImportError:
    print("FAILED: python3-dkim is not installed (scripts/packages.txt); run with /usr/bin/python3")
    sys.exit(1)
for tool in ("opendkim", "opendkim-genkey"):
    if not any(os.access(os.path.join(d, tool), os.X_OK) for d in ("/usr/sbin", "/usr/bin")):
        print(f"FAILED: {tool} is not installed (scripts/packages.txt)")
        sys.exit(1)

tmp = tempfile.mkdtemp(prefix="wizmail-opendkim-")
subprocess.run(["opendkim-genkey", "-D", tmp, "-d", "localhost", "-s", "sel"], check=True)
record = "".join(re.findall(r'"([^"]*)"', open(os.path.join(tmp, "sel.txt")).read())).encode()
port = harness.free_port()
conf = os.path.join(tmp, "opendkim.conf")
with open(conf, "w") as f:
    f.write(f"Syslog no\nMode sv\nDomain localhost\nSelector sel\nKeyFile {tmp}/sel.private\n"
            f"Socket inet:{port}@127.0.0.1\nPidFile {tmp}/pid\nCanonicalization relaxed/relaxed\n"
            "RequireSafeKeys false\nInternalHosts 127.0.0.1\n")
harness.start_process(["opendkim", "-f", "-x", conf])
harness.wait_until(lambda: harness.port_open(port), f"opendkim listens on {port}", 15)


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return record if name.rstrip(".") == "sel._domainkey.localhost" else None


home = Home(smtp_extra=f"smtpd_milters=inet:127.0.0.1:{port}\n",
            accounts=(("alice", "secret"), ("bob", "pw"), ("postmaster", "pm")))
srv = Server(home)


def test_signed_and_verified():
    c = smtplib.SMTP("127.0.0.1", home.submission_port, timeout=30)
    c.ehlo("client.test")
    c.login("alice", "secret")
    c.sendmail("alice@localhost", ["bob@localhost"],
               b"From: Alice <alice@localhost>\r\nTo: bob@localhost\r\nSubject: signed by opendkim\r\n"
               b"Date: Sun, 06 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@localhost>\r\n\r\nhello bob\r\n")
    c.quit()
    msgs = [m for m in home.messages("bob") if b"Subject: signed by opendkim" in m]
    check(len(msgs) == 1, "the message is delivered")
    msg = msgs[0]
    check(b"DKIM-Signature:" in msg and b"d=localhost" in msg and b"s=sel" in msg,
          "OpenDKIM's signature header was added through the milter client")
    check(dkim.verify(msg, dnsfunc=dnsfunc), "python3-dkim verifies it against the published key")
    check(not dkim.verify(msg.replace(b"hello bob", b"hello eve"), dnsfunc=dnsfunc),
          "and fails it once the body is changed")


def test_foreign_domain_unsigned():
    c = smtplib.SMTP("127.0.0.1", home.port, timeout=30)
    c.sendmail("ext@remote.test", ["bob@localhost"],
               b"From: ext@remote.test\r\nTo: bob@localhost\r\nSubject: not ours\r\n\r\nhi\r\n")
    c.quit()
    msgs = [m for m in home.messages("bob") if b"Subject: not ours" in m]
    check(len(msgs) == 1 and b"DKIM-Signature:" not in msgs[0],
          "mail from a domain OpenDKIM has no key for passes unsigned")


harness.run_tests(globals())
srv.stop()
