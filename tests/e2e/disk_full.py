#!/usr/bin/env python3
"""A full disk is survivable (issue 13, item 6), met the honest way: small
tmpfs file systems filled up (tests run as root: `mount -t tmpfs` works).

(a) The owner logs into POP3 (poplib), downloads and deletes on a mailbox
    file system without a free block, then without a free inode either; a
    second session still gets [IN-USE].
(b) A home with less room than the delivery journal (16 MiB) starts, takes
    mail on the classic commit path, and makes the journal at a start with
    room.
(c) Too little free space is refused at MAIL/RCPT with 452 4.3.1 (SIZE=
    counted, queue_minfree), for the mailbox file system of a local
    recipient and the queue's of a remote one, before any data is sent;
    mail is taken again once there is room."""
import atexit, errno, os, poplib, shutil, smtplib, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Home, Server, check


def tmpfs(options):
    d = tempfile.mkdtemp(prefix="wizmail-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", d], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("FAILED: cannot mount a tmpfs (tests run as root): " + r.stderr.strip())
    atexit.register(lambda: (subprocess.run(["umount", "-l", d]), os.rmdir(d)))
    return d


def remount(d, options):
    subprocess.run(["mount", "-o", "remount," + options, d], check=True)


def fill(d, name="filler", leave=0):
    """Write into d/name until ENOSPC, or until `leave` bytes are free."""
    with open(os.path.join(d, name), "ab", buffering=0) as f:
        while True:
            st = os.statvfs(d)
            room = st.f_bavail * st.f_frsize - leave
            if room <= 0:
                return
            try:
                f.write(b"\0" * min(room, 1 << 20))
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                return


def fill_inodes(d):
    made = []
    while True:
        p = os.path.join(d, f".inode.{len(made)}")
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            return made
        made.append(p)


def free_of(d):
    st = os.statvfs(d)
    return st.f_bavail * st.f_frsize


def eventually(what, fn, want):
    """fn() until it returns `want`: the server reads free space at most
    every 250 ms. A deadline, not a timed assertion."""
    end = time.time() + 15
    got = fn()
    while got != want and time.time() < end:
        time.sleep(0.05)
        got = fn()
    check(got == want, f"{what} (got {got})")


def send(home, body, rcpt="alice@localhost"):
    with smtplib.SMTP("127.0.0.1", home.port, timeout=10) as s:
        return s.sendmail("x@example.org", [rcpt], body)


def log_text(home, name):
    p = os.path.join(home.path, "var", "log", name)
    return open(p, errors="replace").read() if os.path.exists(p) else ""


# ---- (a) POP3 on a full mailbox file system --------------------------------
mbox = tmpfs("size=2m,nr_inodes=64")
home = Home(smtp_extra="queue_minfree=1024\n", server_extra=f"mailbox_path={mbox}\n")
for name in os.listdir(os.path.join(home.path, "mailbox")):
    shutil.move(os.path.join(home.path, "mailbox", name), os.path.join(mbox, name))
srv = Server(home)
bodies = [f"Subject: full {i}\r\n\r\nmessage {i} for a full disk\r\n" for i in range(4)]
for b in bodies:
    check(send(home, b) == {}, "message accepted while there is room")
alice = os.path.join(mbox, "alice")


def count_alice():
    return sum(len(os.listdir(os.path.join(alice, sub))) for sub in ("new", "cur"))


check(count_alice() == 4, "four messages delivered")


def pop_round(deletions, what):
    p = poplib.POP3("127.0.0.1", home.pop_port, timeout=10)
    p.user("alice")
    try:
        r = p.pass_("secret")
    except poplib.error_proto as e:
        check(False, f"{what}: POP3 login on a full disk ({e})")
    check(r.startswith(b"+OK"), f"{what}: POP3 login on a full disk")
    q = poplib.POP3("127.0.0.1", home.pop_port, timeout=10)
    q.user("alice")
    try:
        q.pass_("secret")
        check(False, f"{what}: a second session is kept out")
    except poplib.error_proto as e:
        check(b"[IN-USE]" in e.args[0], f"{what}: a second session gets [IN-USE] ({e.args[0]!r})")
    q.quit()
    count, _ = p.stat()
    got = []
    for i in range(1, count + 1):
        got.append(b"\r\n".join(p.retr(i)[1]) + b"\r\n")
    for i in range(1, deletions + 1):
        p.dele(i)
    r = p.quit()
    check(r.startswith(b"+OK"), f"{what}: DELE + QUIT answered {r!r}")
    return got


fill(mbox)
check(free_of(mbox) == 0, "(a) mailbox file system full (no block)")
got = pop_round(2, "no block")
check([g.endswith(b.encode()) for g, b in zip(got, bodies)] == [True] * 4, "all four downloaded whole")
check(count_alice() == 2, "two deleted")
check(not os.path.exists(os.path.join(alice, "pop3.lock")), "the empty lock file went with the session")
eventually("error.log says the lock file was left empty", lambda: "left empty" in log_text(home, "error.log"), True)

fill(mbox)
inodes = fill_inodes(mbox)
check(free_of(mbox) == 0 and os.statvfs(mbox).f_favail == 0, "(a) full again, no inode either")
got = pop_round(2, "no inode")
check(len(got) == 2 and got[0].endswith(bodies[2].encode()), "the other two downloaded")
check(count_alice() == 0, "and deleted")
eventually("error.log says the lock held without a lock file",
           lambda: "no lock file" in log_text(home, "error.log"), True)
for p in inodes:
    os.unlink(p)
os.unlink(os.path.join(mbox, "filler"))
check(send(home, bodies[0]) == {}, "mail taken again once there is room")
srv.stop()

# ---- (b) a home with less room than the journal ----------------------------
small = tmpfs("size=8m")
home = Home(smtp_extra="queue_minfree=1048576\n", root=small)
srv = Server(home)
eventually("(b) started without the journal, logged",
           lambda: "delivery journal not made" in log_text(home, "server.log"), True)
check(send(home, "Subject: classic\r\n\r\nclassic path\r\n") == {}, "mail accepted on the classic path")
check(len(home.messages()) == 1, "and delivered")
srv.stop()
remount(small, "size=48m")
srv = Server(home)
journal = os.path.join(home.path, "var", "journal", "delivery")
# (the listeners open before the journal is made; it appears whole, renamed)
eventually("next start with room made the journal",
           lambda: os.path.exists(journal) and os.path.getsize(journal) == 16 << 20, True)
check(send(home, "Subject: journal\r\n\r\nwith the journal\r\n") == {}, "mail accepted with the journal")
check(len(home.messages()) == 2, "and delivered")
srv.stop()

# ---- (c) queue_minfree at MAIL and RCPT ------------------------------------
MiB = 1 << 20
queue_fs = tmpfs("size=48m")  # the home: journal (16 MiB), logs, resendmail/
mbox = tmpfs("size=8m")
home = Home(smtp_extra=f"queue_minfree={4 * MiB}\nmax_mail_size={2 * MiB}\n",
            server_extra=f"mailbox_path={mbox}\n", root=queue_fs)
for name in os.listdir(os.path.join(home.path, "mailbox")):
    shutil.move(os.path.join(home.path, "mailbox", name), os.path.join(mbox, name))
srv = Server(home)
s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
s.login("alice", "secret")  # to relay


def mail(size=None):
    s.rset()
    return s.mail("alice@localhost", [f"SIZE={size}"] if size else [])[0]


def rcpt(to):
    s.rset()
    s.mail("alice@localhost")
    return s.rcpt(to)


fill(mbox)
eventually("(c) mailbox file system full: a local RCPT gets 452", lambda: rcpt("alice@localhost")[0], 452)
check(rcpt("alice@localhost")[1].startswith(b"4.3.1 Insufficient system storage"), "with 4.3.1 Insufficient system storage")
check(mail() == 250, "MAIL still 250 (the queue has room)")
check(rcpt("bob@remote.example")[0] == 250, "a remote RCPT still 250 (the queue's file system)")

fill(home.path, leave=5 * MiB)
eventually("queue at 5 MiB free: MAIL SIZE=1.5 MiB (+4 MiB queue_minfree) gets 452",
           lambda: mail(3 * MiB // 2), 452)
check(mail(MiB // 2) == 250, "MAIL SIZE=0.5 MiB fits: 250")
check(rcpt("bob@remote.example")[0] == 250, "a remote RCPT without SIZE fits: 250")
s.rset()
s.mail("alice@localhost", [f"SIZE={3 * MiB // 2}"])  # refused
code, _ = s.rcpt("bob@remote.example")
check(code == 503, "no RCPT after a refused MAIL")

fill(home.path, name="filler2")
eventually("queue full too: MAIL without SIZE gets 452 4.3.1", lambda: mail(), 452)
check(s.noop()[0] == 250, "the server still answers")
os.unlink(os.path.join(mbox, "filler"))
eventually("mailbox file system freed: a local RCPT is taken again", lambda: rcpt("alice@localhost")[0], 250)
s.rset()
check(s.sendmail("alice@localhost", ["alice@localhost"], "Subject: room\r\n\r\nroom again\r\n") == {},
      "and the message is delivered")
s.quit()
check(len(os.listdir(os.path.join(mbox, "alice", "new"))) == 1, "it is in new/")
eventually("the refusals are in error.log", lambda: "insufficient storage" in log_text(home, "error.log"), True)
srv.stop()
