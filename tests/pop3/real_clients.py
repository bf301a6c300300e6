#!/usr/bin/env python3
"""Real POP3 clients against wizmail's POP3 (pop3_test_server): python3
poplib (USER/PASS, APOP, TOP, UIDL, DELE), fetchmail (UIDL keep mode, APOP,
then fetch-and-delete) and openssl s_client (-starttls pop3, implicit TLS).
usage: real_clients.py PATH/TO/pop3_test_server"""
import os
import poplib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402

SERVER = sys.argv[1]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def make_home(tls):
    home = tempfile.mkdtemp(prefix="wizmail-pop3-real-")
    os.makedirs(f"{home}/def")
    with open(f"{home}/def/popenv.dat", "w") as f:
        f.write("host=pop.test\n")
    if tls:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-keyout", f"{home}/key.pem", "-out",
                        f"{home}/cert.pem"], check=True, capture_output=True)
        with open(f"{home}/def/wiz98msenv.dat", "w") as f:
            f.write(f"tls_cert_file={home}/cert.pem\ntls_key_file={home}/key.pem\n")
    acct = f"{home}/mailbox/alice"
    for sub in ("new", "cur", "tmp"):
        os.makedirs(f"{acct}/{sub}")
    fd = os.open(f"{acct}/password", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"secret\n")
    os.close(fd)
    return home


seq = [0]


def deliver(home, body):
    seq[0] += 1
    data = body.encode()
    name = f"{int(time.time())}.M{seq[0]}P{os.getpid()}.test,S={len(data)}"
    with open(f"{home}/mailbox/alice/tmp/{name}", "wb") as f:
        f.write(data)
    os.rename(f"{home}/mailbox/alice/tmp/{name}", f"{home}/mailbox/alice/new/{name}")
    return name


def count(home):
    return sum(len(os.listdir(f"{home}/mailbox/alice/{d}")) for d in ("new", "cur"))


def wait_unlocked(home):
    return harness.poll(lambda: not os.path.exists(f"{home}/mailbox/alice/pop3.lock"), 3, 0.01)


def start(home):
    p = subprocess.Popen([SERVER, home], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    ports = {}
    for _ in range(2 if os.path.exists(f"{home}/cert.pem") else 1):
        kind, port = p.stdout.readline().split()
        ports[kind] = int(port)
    return p, ports


def stop(p):
    p.stdin.close()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def msg(n):
    return (f"From: a@example.com\r\nTo: alice@pop.test\r\nSubject: message {n}\r\n\r\n"
            f"line one of {n}\r\n.dotted line\r\nline three\r\n")


def test_poplib():
    home = make_home(False)
    p, ports = start(home)
    try:
        for n in range(3):
            deliver(home, msg(n))
        c = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
        check(c.getwelcome().startswith(b"+OK") and b"@pop.test>" in c.getwelcome(),
              "poplib: greeting with APOP timestamp")
        caps = c.capa()
        check("UIDL" in caps and "TOP" in caps and "USER" in caps and "PIPELINING" in caps,
              "poplib: CAPA")
        c.user("alice")
        c.pass_("secret")
        check(c.stat()[0] == 3, "poplib: USER/PASS, STAT")
        resp, listing, _ = c.list()
        sizes = [int(l.split()[1]) for l in listing]
        resp, uidls, _ = c.uidl()
        uids = [l.split()[1].decode() for l in uidls]
        check(len(uids) == 3 and len(set(uids)) == 3, "poplib: UIDL")
        resp, lines, octets = c.retr(1)
        body = b"\r\n".join(lines) + b"\r\n"
        check(body == msg(0).encode() or body.decode() in [msg(i) for i in range(3)],
              "poplib: RETR unstuffed content")
        check(len(body) == sizes[0], "poplib: LIST size == octets received")
        resp, lines, _ = c.top(2, 1)
        check(lines[-1].startswith(b"line one of") and len(lines) == 5, "poplib: TOP 2 1")
        try:
            c.retr(99)
            check(False, "poplib: RETR 99 refused")
        except poplib.error_proto as e:
            check(str(e).startswith("b'-ERR no such message"), "poplib: RETR 99 refused")
        c.dele(1)
        c.quit()
        check(count(home) == 2, "poplib: DELE+QUIT deleted one")
        check(wait_unlocked(home), "poplib: lock released after QUIT")

        # dropped connection: nothing deleted
        c = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
        c.user("alice")
        c.pass_("secret")
        resp, uidls2, _ = c.uidl()
        check([l.split()[1].decode() for l in uidls2] == uids[1:], "poplib: UIDLs stable")
        c.dele(1)
        c.dele(2)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        check(wait_unlocked(home) and count(home) == 2, "poplib: drop without QUIT deletes nothing")

        # APOP
        c = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
        c.apop("alice", "secret")
        check(c.stat()[0] == 2, "poplib: APOP login")
        c.quit()
        wait_unlocked(home)
        c = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
        try:
            c.apop("alice", "wrong")
            check(False, "poplib: bad APOP refused")
        except poplib.error_proto as e:
            check("[AUTH]" in str(e), "poplib: bad APOP refused with [AUTH]")
        c.close()
        # raw bad input
        s = socket.create_connection(("127.0.0.1", ports["pop3"]), timeout=10)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"X" * 10000 + b"\r\nRETR 1\r\nUSER alice\r\nPASS secret\r\nRETR 0\r\nRETR -1\r\n"
                  b"RETR abc\r\nLIST 99\r\nTOP 1\r\nBOGUS\r\nQUIT\r\n")
        replies = [f.readline().decode().rstrip() for _ in range(11)]
        check(replies[0] == "-ERR line too long (at most 512 octets)", "raw: 10,000-octet line")
        check(replies[1] == "-ERR RETR is not allowed before login", "raw: RETR before login")
        check(all(r.startswith("-ERR") for r in replies[4:10]), "raw: bad numbers and arguments")
        check(replies[10].startswith("+OK"), "raw: QUIT")
        s.close()
    finally:
        stop(p)
        shutil.rmtree(home)


def fetchmail(home, port, proto, keep, out):
    rc = f"{home}/fetchmailrc"
    with open(rc, "w") as f:
        f.write(f"poll 127.0.0.1 service {port} protocol {proto} uidl timeout 10\n"
                f"  user alice password secret {'keep' if keep else 'nokeep'} sslproto ''\n")
    os.chmod(rc, 0o600)
    r = subprocess.run(["fetchmail", "-f", rc, "-i", f"{home}/fetchids", "--bsmtp", out,
                        "--nosyslog", "-v"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=home, FETCHMAILHOME=home))
    return r.returncode, r.stdout + r.stderr


def fetched(out):
    if not os.path.exists(out):
        return 0
    return open(out).read().count("\nDATA\n") + open(out).read().startswith("DATA\n")


def test_fetchmail():
    if not shutil.which("fetchmail"):
        check(False, "fetchmail installed (scripts/packages.txt)")
        return
    home = make_home(False)
    p, ports = start(home)
    try:
        for n in range(2):
            deliver(home, msg(n))
        out = f"{home}/out1.bsmtp"
        rc, log = fetchmail(home, ports["pop3"], "pop3", True, out)
        check(rc == 0 and fetched(out) == 2, f"fetchmail: keep+uidl fetched 2 (rc {rc})")
        if rc != 0:
            print(log)
        wait_unlocked(home)
        out = f"{home}/out2.bsmtp"
        rc, log = fetchmail(home, ports["pop3"], "pop3", True, out)
        check(rc == 1 and fetched(out) == 0, f"fetchmail: second run finds nothing new (rc {rc})")
        wait_unlocked(home)
        deliver(home, msg(2))
        out = f"{home}/out3.bsmtp"
        rc, log = fetchmail(home, ports["pop3"], "apop", True, out)
        check(rc == 0 and fetched(out) == 1, f"fetchmail: APOP fetches only the new one (rc {rc})")
        if rc != 0:
            print(log)
        check(count(home) == 3, "fetchmail: keep left everything on the server")
        wait_unlocked(home)
        out = f"{home}/out4.bsmtp"
        os.unlink(f"{home}/fetchids")
        rc, log = fetchmail(home, ports["pop3"], "pop3", False, out)
        check(rc == 0 and fetched(out) == 3, f"fetchmail: nokeep fetched 3 (rc {rc})")
        wait_unlocked(home)
        check(count(home) == 0, "fetchmail: nokeep deleted them")
        content = open(out).read()
        check("\n..dotted line\n" in content or "\r\n..dotted line" in content,
              "fetchmail: dot-stuffed line round-trips (BSMTP re-stuffs it)")
    finally:
        stop(p)
        shutil.rmtree(home)


def s_client(args, stdin):
    r = subprocess.run(["openssl", "s_client", "-quiet", "-verify_quiet"] + args,
                       input=stdin, capture_output=True, text=True, timeout=30)
    return r.stdout


def test_openssl():
    home = make_home(True)
    p, ports = start(home)
    try:
        deliver(home, msg(0))
        out = s_client(["-starttls", "pop3", "-connect", f"127.0.0.1:{ports['pop3']}"],
                       "CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n")
        check("+OK logged in; 1 messages" in out and "\n+OK 1 " in out,
              "openssl s_client -starttls pop3: login and STAT over TLS")
        check("STLS" not in out.split("+OK logged in")[0].split("capability list follows")[-1],
              "openssl: CAPA after STLS does not offer STLS")
        wait_unlocked(home)
        out = s_client(["-connect", f"127.0.0.1:{ports['pop3s']}"],
                       "USER alice\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n")
        check("+OK wizmail POP3 server ready" in out and "\n..dotted line\n" in out,
              "openssl s_client on pop3s_port: implicit TLS, RETR")
        if "+OK wizmail POP3 server ready" not in out or "\n..dotted line\n" not in out:
            print(repr(out))
    finally:
        stop(p)
        shutil.rmtree(home)


test_poplib()
test_fetchmail()
test_openssl()
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
