#!/usr/bin/env python3
"""POP3 RETR throughput: wizmail against Dovecot (dovecot-pop3d) on loopback.

Each of 4 accounts gets the same N x 4 KiB messages (one Maildir, copied for
Dovecot). Clients: a raw pipelining client keeping 16 RETRs in flight, and
python3 poplib (one RETR at a time); 1 and 4 parallel clients (one account
each). Prints messages/s per case and the wizmail/Dovecot ratio.

usage: run.py [--messages N] [--build DIR] [--baseline DIR] [--skip-dovecot]
Needs: a build dir with apps/wizmail-server (the daemon, run with its
defaults: one session thread per core), dovecot-pop3d installed; run as
root or a user that may start dovecot with its own configuration.
"""
import argparse, statistics
import multiprocessing as mp
import os
import poplib
import shutil
import socket
import subprocess
import tempfile
import time

ACCOUNTS = ["bench0", "bench1", "bench2", "bench3"]
PASSWORD = "benchpw"


def message(i):
    head = (f"From: sender{i}@example.com\r\nTo: bench@pop.test\r\n"
            f"Subject: benchmark message {i}\r\nMessage-ID: <{i}@bench>\r\n"
            f"Date: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\n")
    body = []
    size = len(head)
    n = 0
    while size < 4096 - 80:
        line = (".dotted " if n % 20 == 5 else "") + f"line {n} of message {i} " + "x" * 40
        body.append(line)
        size += len(line) + 2
        n += 1
    text = head + "\r\n".join(body) + "\r\n"
    return text.encode()


def make_maildirs(root, count):
    master = os.path.join(root, "master")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(master, sub))
    t0 = int(time.time()) - count
    for i in range(count):
        data = message(i)
        name = f"{t0 + i}.M{i}P1.bench,S={len(data)}:2,"
        with open(os.path.join(master, "cur", name), "wb") as f:
            f.write(data)
    return master


def setup_wizmail(root, master, name="wizmail"):
    home = os.path.join(root, name)
    os.makedirs(os.path.join(home, "def"))
    with open(os.path.join(home, "def", "popenv.dat"), "w") as f:
        f.write("host=pop.test\n")
    for a in ACCOUNTS:
        d = os.path.join(home, "mailbox", a)
        shutil.copytree(master, d)
        fd = os.open(os.path.join(d, "password"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (PASSWORD + "\n").encode())
        os.close(fd)
    return home


def start_wizmail(build, home):
    """The real daemon (apps/wizmail-server: one session thread per core),
    POP3 on a free loopback port; SMTP on another free port."""
    server = os.path.join(build, "apps", "wizmail-server", "wizmail-server")
    pop, smtp = free_port(), free_port()
    with open(os.path.join(home, "def", "smtpenv.dat"), "w") as f:
        f.write(f"port={smtp}\nbind_address=127.0.0.1\nmultiprocessing=1000\n")
    with open(os.path.join(home, "def", "popenv.dat"), "w") as f:
        f.write(f"host=pop.test\nport={pop}\n")
    p = subprocess.Popen([server, "--home", home], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", pop), timeout=1).close()
            return p, pop
        except OSError:
            if p.poll() is not None:
                raise SystemExit("wizmail-server exited at start")
            time.sleep(0.05)
    raise SystemExit("wizmail-server does not listen")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_dovecot(root, master):
    d = os.path.join(root, "dovecot")
    mail = os.path.join(d, "mail")
    os.makedirs(os.path.join(d, "run"))
    for a in ACCOUNTS:
        shutil.copytree(master, os.path.join(mail, a))
    with open(os.path.join(d, "passwd"), "w") as f:
        for a in ACCOUNTS:
            f.write(f"{a}:{{PLAIN}}{PASSWORD}\n")
    port = free_port()
    # Dovecot refuses to serve mail as root: use the dovecot user then.
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        import pwd
        pw = pwd.getpwnam("dovecot")
        uid, gid = pw.pw_uid, pw.pw_gid
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""
base_dir = {d}/run
state_dir = {d}/state
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = {d}/log
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
mail_location = maildir:{mail}/%u
first_valid_uid = 0
pop3_uidl_format = %f
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""")
    for dirpath, dirs, files in os.walk(mail):
        for n in dirs + files:
            os.chown(os.path.join(dirpath, n), uid, gid)
    os.chown(mail, uid, gid)
    subprocess.run(["dovecot", "-c", conf], check=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return conf, port


def stop_dovecot(conf):
    subprocess.run(["dovecot", "-c", conf, "stop"], check=False)


def raw_client(args):
    """Login, then RETR every message with 16 in flight; returns messages."""
    port, account, count = args
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    f.readline()
    s.sendall(f"USER {account}\r\nPASS {PASSWORD}\r\n".encode())
    f.readline()
    line = f.readline()
    assert line.startswith(b"+OK"), line
    # Switch to raw recv for speed; the file buffer may hold nothing now.
    sent = 0
    done = 0
    inflight = 16
    tail = b""
    while sent < min(inflight, count):
        sent += 1
        s.sendall(f"RETR {sent}\r\n".encode())
    while done < count:
        data = s.recv(1 << 20)
        if not data:
            raise RuntimeError("connection closed")
        buf = tail + data
        n = buf.count(b"\r\n.\r\n")
        tail = buf[-4:]  # too short to hold a whole terminator: never counted twice
        done += n
        batch = []
        while sent < count and sent - done < inflight:
            sent += 1
            batch.append(f"RETR {sent}\r\n")
        if batch:
            s.sendall("".join(batch).encode())
    s.sendall(b"QUIT\r\n")
    s.close()
    return count


def poplib_client(args):
    port, account, count = args
    c = poplib.POP3("127.0.0.1", port)
    c.user(account)
    c.pass_(PASSWORD)
    for i in range(1, count + 1):
        c.retr(i)
    c.quit()
    return count


LOAD = None  # bench/pop3-throughput/pop3-load in the build dir (main())


def measure(port, kind, clients, count):
    if kind == "raw":
        # The C++ load generator: the server's cost, not the client's, sets
        # the pace (raw_client above is the same protocol in python, kept
        # for --python-raw).
        if LOAD:
            out = subprocess.run([LOAD, str(port), PASSWORD, str(count), "16"] + ACCOUNTS[:clients],
                                 check=True, capture_output=True, text=True).stdout.split()
            return float(out[2])
    fn = raw_client if kind == "raw" else poplib_client
    jobs = [(port, ACCOUNTS[i], count) for i in range(clients)]
    t0 = time.perf_counter()
    if clients == 1:
        total = fn(jobs[0])
    else:
        with mp.Pool(clients) as pool:
            total = sum(pool.map(fn, jobs))
    return total / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "..", "build"))
    ap.add_argument("--skip-dovecot", action="store_true")
    ap.add_argument("--baseline", help="build dir of a second wizmail-server (e.g. the commit before a "
                    "change), measured in the same run on its own copy of the mailboxes")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each case this many times (with --baseline the two take turns going "
                    "first) and print the median; use more on a busy machine")
    ap.add_argument("--python-raw", action="store_true",
                    help="raw pipelining client in python instead of pop3-load")
    a = ap.parse_args()
    global LOAD
    if not a.python_raw:
        LOAD = os.path.join(a.build, "bench", "pop3-throughput", "pop3-load")
        if not os.path.exists(LOAD):
            raise SystemExit(f"{LOAD} missing: build the tree first (ninja -C {a.build})")
    if not a.skip_dovecot and shutil.which("dovecot") is None:
        raise SystemExit("dovecot is not installed: apt-get install dovecot-pop3d (or --skip-dovecot)")
    root = tempfile.mkdtemp(prefix="wizmail-pop3-bench-")
    os.chmod(root, 0o755)  # Dovecot's auth process runs as user dovecot
    wiz = dov = base = None
    try:
        master = make_maildirs(root, a.messages)
        home = setup_wizmail(root, master)
        wiz, wport = start_wizmail(a.build, home)
        if a.baseline:
            bhome = setup_wizmail(root, master, name="baseline")
            base, bport = start_wizmail(a.baseline, bhome)
        dconf = None
        if not a.skip_dovecot:
            dconf, dport = start_dovecot(root, master)
        print(f"{a.messages} x 4 KiB messages per account, loopback")
        head = f"{'case':<14}{'wizmail msg/s':>15}"
        if base:
            head += f"{'base msg/s':>12}"
        head += f"{'dovecot msg/s':>15}{'ratio':>8}"
        if base:
            head += f"{'base ratio':>12}{'new/base':>10}"
        print(head)
        # Warm-up: page cache, Dovecot's indexes, the servers' first logins.
        measure(wport, "raw", 4, a.messages)
        if base:
            measure(bport, "raw", 4, a.messages)
        if dconf:
            measure(dport, "raw", 4, a.messages)
        case = 0
        for kind in ("raw", "poplib"):
            for clients in (1, 4):
                # With a baseline the two take turns going first (the first
                # of a pair may run slower). Each side's median over the rounds.
                ws, bs, ds = [], [], []
                for r in range(a.rounds):
                    if base and (case + r) % 2:
                        bs.append(measure(bport, kind, clients, a.messages))
                        ws.append(measure(wport, kind, clients, a.messages))
                    else:
                        ws.append(measure(wport, kind, clients, a.messages))
                        if base:
                            bs.append(measure(bport, kind, clients, a.messages))
                    if dconf:
                        ds.append(measure(dport, kind, clients, a.messages))
                case += 1
                w = statistics.median(ws)
                b = statistics.median(bs) if bs else 0.0
                d = statistics.median(ds) if ds else 0.0
                ratio = f"{w / d:.2f}" if d else "-"
                line = f"{kind + ' x' + str(clients):<14}{w:>15.0f}"
                if base:
                    line += f"{b:>12.0f}"
                line += f"{d:>15.0f}{ratio:>8}"
                if base:
                    bratio = f"{b / d:.2f}" if d else "-"
                    line += f"{bratio:>12}{w / b:>9.2f}x"
                print(line, flush=True)
    finally:
        for p in (wiz, base):
            if p:
                p.terminate()
                p.wait(timeout=30)
        if not a.skip_dovecot and dconf:
            stop_dovecot(dconf)
        if os.environ.get("KEEP"):
            print("kept", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
