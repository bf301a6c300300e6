#!/usr/bin/env python3
"""One address cannot take the server (issue 13, item 5), with real clients
against a real wizmail-server on loopback. Distinct clients are distinct
127.x addresses (all of 127.0.0.0/8 is loopback on Linux); only 127.0.0.1
is in multiprocessing_exempt here, so 127.0.0.2 and up are outside clients.

(a) client_connection_limit: one address holding its cap does not lock
    anybody else out; command_deadline and data_min_rate cut a slowloris
    (one byte at a time) although its bytes keep the silence timer alive.
(b) the auth penalty: every attempt of a penalised network waits before it
    is checked, right or wrong; a guesser gets 421 / -ERR [SYS/TEMP] past
    auth_block_failures; a guess abandoned during its wait is never
    checked; parallel attempts of one network are capped.

Only lower bounds of time are asserted (waits the server must have made),
never upper bounds."""
import base64, glob, os, poplib, smtplib, socket, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Home, Server, check, recv_line

LIMITS = ("multiprocessing=8\nmultiprocessing_exempt=127.0.0.1\nclient_connection_limit=2\n"
          "command_deadline=2\ndata_min_rate=1000\nsession_timeout=30\n")


def connect(home, src, port=None, timeout=30):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port or home.port))
    return s


def read_line(s):
    return recv_line(s).decode(errors="replace")


def read_reply(s):
    """A whole SMTP reply (multi-line too); "" at EOF."""
    lines = []
    while True:
        line = read_line(s)
        if not line:
            return "".join(lines)
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return "".join(lines)


def at_eof(s):
    try:
        return s.recv(1) == b""
    except OSError:
        return True


def trickle(s, text, gap):
    """Send `text` one byte at a time, `gap` seconds apart, until the server
    answers: returns (the first line it answered, seconds taken); "" if it
    closed without a word. Bytes are collected across the waits (a line may
    arrive in pieces), and a send that fails because the server already
    closed does not lose the answer it sent before closing."""
    s.settimeout(gap)
    buf = b""
    t0 = time.monotonic()
    try:
        for ch in text.encode():
            try:
                s.sendall(bytes([ch]))
            except OSError:
                break  # closed by the server: its answer may still be queued
            try:
                b = s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return buf.decode(errors="replace"), time.monotonic() - t0
            if not b:
                break
            buf += b
            if b"\n" in buf:
                break
        s.settimeout(5)
        while b"\n" not in buf:
            try:
                b = s.recv(4096)
            except OSError:
                break
            if not b:
                break
            buf += b
        return buf.split(b"\n")[0].decode(errors="replace") + ("\n" if b"\n" in buf else ""), \
            time.monotonic() - t0
    finally:
        s.settimeout(30)


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def log_text(home):
    text = ""
    for name in glob.glob(os.path.join(home.path, "var", "log", "*")):
        try:
            text += open(name, errors="replace").read()
        except OSError:
            pass
    return text


class POP3From(poplib.POP3):
    """poplib.POP3 from a given source address (distinct clients)."""

    def __init__(self, src, port):
        self.src = src
        super().__init__("127.0.0.1", port, timeout=30)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.src, 0))


def wait_for(what, cond, timeout=30):
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            raise SystemExit("FAILED: waited in vain for " + what)
        time.sleep(0.05)


# ---------------------------------------------------------------- (a) limits
home = Home(smtp_extra=LIMITS)
srv = Server(home)

# One outside address opens as many connections as it can: only 2 are served.
held = []
for i in range(6):
    s = connect(home, "127.0.0.2")
    held.append((s, read_line(s)))
greeted = [s for s, r in held if r.startswith("220 ")]
refused = [(s, r) for s, r in held if not r.startswith("220 ")]
check(len(greeted) == 2, f"127.0.0.2 gets 220 on 2 connections (client_connection_limit=2): {[r for _, r in held]}")
check(all(r.startswith("421 4.7.0 ") and "too many connections from your address" in r for _, r in refused),
      "its 3rd and later connections: 421 4.7.0 Too many connections from your address")
check(all(at_eof(s) for s, _ in refused), "and they are closed")
for s, _ in refused:
    s.close()

# Another client is still served, by SMTP and POP3 (the refused ones took no
# multiprocessing slot; 4 refusals > 8 - 2 would otherwise have filled it).
for src in ("127.0.0.3", "127.0.0.4"):
    with smtplib.SMTP(timeout=30, source_address=(src, 0)) as c:
        code, _ = c.connect("127.0.0.1", home.port)
        check(code == 220, f"another address ({src}) gets 220 while 127.0.0.2 holds its cap")
p = connect(home, "127.0.0.3", home.pop_port)
check(read_line(p).startswith("+OK"), "another address gets POP3's +OK")
p.close()
# The cap is per address across SMTP and POP3.
p = connect(home, "127.0.0.2", home.pop_port)
r = read_line(p)
check(r.startswith("-ERR [SYS/TEMP] too many connections from your address"),
      f"127.0.0.2 at its cap: POP3 answers -ERR [SYS/TEMP] ({r.strip()})")
p.close()
# Exempt local applications are not capped.
local = []
for i in range(4):
    s = connect(home, "127.0.0.1")
    local.append(s)
    check(read_line(s).startswith("220 "), f"exempt 127.0.0.1: connection {i + 1} gets 220")
for s in local:
    s.close()
# A place given back is free again (once the server has seen the close).
greeted[0].close()


def third_one_served():
    s = connect(home, "127.0.0.2")
    ok = read_line(s).startswith("220 ")
    if ok:
        greeted[0] = s
    else:
        s.close()
    return ok


wait_for("127.0.0.2 to be served again after closing one connection", third_one_served)
check(True, "127.0.0.2 is served again once one of its connections ended")
for s in greeted:
    s.close()

# Slowloris, SMTP command: one byte every 0.3 s keeps session_timeout (30 s)
# from ever firing, but the line must end within command_deadline (2 s).
s = connect(home, "127.0.0.5")
read_line(s)
reply, elapsed = trickle(s, "EHLO " + "x" * 400, 0.3)
check(reply.startswith("421 4.4.2 "), f"a command trickled at ~3 bytes/s is cut with 421 4.4.2 ({reply.strip()!r})")
check(elapsed >= 2.0, f"not before command_deadline (after {elapsed:.1f} s)")
check(at_eof(s), "and the connection is closed")
s.close()

# Slowloris, DATA: a body at a few bytes/s is cut after the grace period.
s = connect(home, "127.0.0.6")
read_reply(s)
for cmd in ("EHLO x", "MAIL FROM:<a@example.com>", "RCPT TO:<alice@localhost>", "DATA"):
    s.sendall((cmd + "\r\n").encode())
    r = read_reply(s)
check(r.startswith("354"), "DATA: 354")
before = len(os.listdir(home.new_dir()))
reply, elapsed = trickle(s, "Subject: slow\r\n\r\n" + "y" * 5000, 0.2)
check(reply.startswith("421 4.4.2 "), f"DATA at ~5 bytes/s (data_min_rate=1000) is cut with 421 4.4.2 ({reply.strip()!r})")
check(elapsed >= 2.0, f"not before the grace period of command_deadline (after {elapsed:.1f} s)")
check(len(os.listdir(home.new_dir())) == before, "nothing of the cut message is delivered")
s.close()
wait_for("error.log to say DATA was too slow", lambda: "DATA too slow" in log_text(home))
check(True, "error.log says DATA was too slow")

# A normal client sending a big message at full speed is not hurt.
with smtplib.SMTP(timeout=30, source_address=("127.0.0.7", 0)) as c:
    c.connect("127.0.0.1", home.port)
    c.sendmail("a@example.com", ["alice@localhost"], "Subject: big\r\n\r\n" + ("z" * 998 + "\r\n") * 2000)
check(len(os.listdir(home.new_dir())) == before + 1, "a 2 MB message at full speed is accepted")

# Slowloris, POP3: the same deadline for a command line.
p = connect(home, "127.0.0.8", home.pop_port)
read_line(p)
reply, elapsed = trickle(p, "USER " + "a" * 300, 0.3)
check(reply.startswith("-ERR [SYS/TEMP] command not complete in time"),
      f"a POP3 command trickled byte by byte is cut ({reply.strip()!r})")
check(elapsed >= 2.0, f"not before command_deadline (after {elapsed:.1f} s)")
p.close()
srv.stop()

# ------------------------------------------------- (b) guessing: the block
home = Home(smtp_extra=LIMITS.replace("client_connection_limit=2", "client_connection_limit=4") +
            "auth_penalty_delay=100\nauth_penalty_max_delay=800\nauth_block_failures=5\n"
            "auth_block_time=600\nauth_concurrency_limit=1\n")
srv = Server(home)


def smtp_session(src):
    """A connected, EHLO'd raw SMTP socket from `src`; retried while the
    server still counts the previous connection (421 from the cap)."""
    while True:
        s = connect(home, src)
        g = read_line(s)
        if g.startswith("220 "):
            s.sendall(b"EHLO x\r\n")
            read_reply(s)
            return s
        s.close()
        time.sleep(0.05)


def smtp_guess(src, user, password):
    """One AUTH PLAIN on its own connection (the guesser's way): the reply."""
    s = smtp_session(src)
    s.sendall(f"AUTH PLAIN {plain(user, password)}\r\n".encode())
    r = read_reply(s)
    s.close()
    return r


# 200 guesses from one address, each on a new connection.
t0 = time.monotonic()
replies = [smtp_guess("127.0.0.2", "alice", f"guess{i}") for i in range(200)]
elapsed = time.monotonic() - t0
codes = [r[:3] for r in replies]
check(codes[:5] == ["535"] * 5, f"the first 5 guesses are checked: 535 ({codes[:6]})")
check(all(r.startswith("421 4.7.0 ") and "too many authentication failures from your network" in r
          for r in replies[5:]), "past auth_block_failures (5) every guess gets 421 4.7.0, unchecked")
# Guesses 2..5 each waited by the failures before them: 0.1+0.2+0.4+0.8 s.
check(elapsed >= 1.5, f"200 guesses took at least the 1.5 s of waits the server enforces ({elapsed:.1f} s)")
# The right password is refused too while blocked.
r = smtp_guess("127.0.0.2", "alice", "secret")
check(r.startswith("421 4.7.0 "), "blocked: the right password gets 421 as well (nothing is checked)")
# POP3 shares the block: USER and APOP refused with -ERR [SYS/TEMP].
p = connect(home, "127.0.0.2", home.pop_port)
read_line(p)
p.sendall(b"USER alice\r\n")
r = read_line(p)
check(r.startswith("-ERR [SYS/TEMP] too many failed logins"), f"blocked network: POP3 USER -ERR [SYS/TEMP] ({r.strip()})")
check(at_eof(p), "and the POP3 connection is closed")
p.close()
p = connect(home, "127.0.0.2", home.pop_port)
read_line(p)
p.sendall(b"APOP alice 0123456789abcdef0123456789abcdef\r\n")
r = read_line(p)
check(r.startswith("-ERR [SYS/TEMP] too many failed logins"), "blocked network: POP3 APOP -ERR [SYS/TEMP]")
p.close()
# Another address is not blocked.
check(smtp_guess("127.0.0.3", "alice", "secret").startswith("235"), "another address logs in (235)")

# A POP3 guesser (poplib) is blocked the same way.
pop_replies = []
for i in range(30):
    while True:
        try:
            p = POP3From("127.0.0.4", home.pop_port)
            break
        except poplib.error_proto:  # the cap still counts the last one
            time.sleep(0.05)
    try:
        p.user("alice")
        p.pass_(f"guess{i}")
        pop_replies.append("+OK")
    except poplib.error_proto as e:
        pop_replies.append(e.args[0].decode(errors="replace"))
    try:
        p.close()
    except OSError:
        pass
check(all(r.startswith("-ERR [AUTH]") for r in pop_replies[:5]), f"POP3: the first 5 guesses -ERR [AUTH] ({pop_replies[:6]})")
check(all(r.startswith("-ERR [SYS/TEMP]") for r in pop_replies[5:]), "POP3: then -ERR [SYS/TEMP] for every guess")
srv.stop()

# ------------------------ (b) waits before the check, hang-ups, concurrency
home = Home(smtp_extra=LIMITS + "auth_penalty_delay=500\nauth_penalty_max_delay=8000\n"
            "auth_block_failures=0\nauth_concurrency_limit=1\n")
srv = Server(home)


def timed_guess(src, password):
    t0 = time.monotonic()
    r = smtp_guess(src, "alice", password)
    return r, time.monotonic() - t0


# Two networks with two failures each: the right password of one waits as
# long as the wrong password of the other (2 failures: 1 s), before either
# is checked.
for src in ("127.0.0.2", "127.0.0.3"):
    smtp_guess(src, "alice", "wrong")
    r, d = timed_guess(src, "wrong")
    check(r.startswith("535") and d >= 0.5, f"{src}: 2nd wrong guess waited {d:.2f} s >= 0.5 s")
r_right, d_right = timed_guess("127.0.0.2", "secret")
r_wrong, d_wrong = timed_guess("127.0.0.3", "wrong")
check(r_right.startswith("235"), "the right password from a penalised network: 235")
check(d_right >= 1.0, f"... but only after the wait of 2 failures: {d_right:.2f} s >= 1 s")
check(r_wrong.startswith("535") and d_wrong >= 1.0, f"a wrong one waits as long: {d_wrong:.2f} s >= 1 s")

# POP3: the right password of a penalised network waits as well (poplib).
for i in range(2):
    p = POP3From("127.0.0.4", home.pop_port)
    p.user("alice")
    try:
        p.pass_("wrong")
    except poplib.error_proto:
        pass
    p.close()
p = POP3From("127.0.0.4", home.pop_port)
p.user("alice")
t0 = time.monotonic()
ok = p.pass_("secret")
d = time.monotonic() - t0
check(ok.startswith(b"+OK") and d >= 1.0, f"POP3: the right PASS of a penalised network waited {d:.2f} s >= 1 s")
p.quit()

# A guesser that sends the right password and hangs up before the answer:
# its attempt is never checked, so the network's failures are not cleared.
smtp_guess("127.0.0.5", "alice", "wrong")
smtp_guess("127.0.0.5", "alice", "wrong")
s = smtp_session("127.0.0.5")
s.sendall(f"AUTH PLAIN {plain('alice', 'secret')}\r\n".encode())
s.close()
wait_for("the server to notice the hang-up",
         lambda: "client left while its login attempt waited: not checked" in log_text(home))
check(True, "the hung-up attempt was never checked (smtp.log)")


def admitted_guess(src, password):
    """Retries while the network's previous attempt still holds its place
    (auth_concurrency_limit=1 answers 454 meanwhile)."""
    while True:
        r, d = timed_guess(src, password)
        if not r.startswith("454"):
            return r, d
        time.sleep(0.05)


r, d = admitted_guess("127.0.0.5", "wrong")
check(r.startswith("535") and d >= 1.0,
      f"the network still has its 2 failures: the next guess waited {d:.2f} s >= 1 s")

# Parallel attempts of one network: one waits, the other is refused (454).
for i in range(3):
    smtp_guess("127.0.0.6", "alice", "wrong")  # 3 failures: a wait of 2 s
a = smtp_session("127.0.0.6")
b = smtp_session("127.0.0.6")
a.sendall(f"AUTH PLAIN {plain('alice', 'wrong')}\r\n".encode())
b.sendall(f"AUTH PLAIN {plain('alice', 'wrong')}\r\n".encode())
codes = sorted([read_reply(b)[:3], read_reply(a)[:3]])
check(codes == ["454", "535"], f"two parallel attempts of one network: one checked, one 454 4.7.0 ({codes})")
a.close()
b.close()
srv.stop()
print("all limits checks passed")
