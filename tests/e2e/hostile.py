#!/usr/bin/env python3
"""Hostile-client limits of the SMTP listeners (issue 13, item 4), against a
real wizmail-server with raw sockets and smtplib:
- a client that talks before the greeting on port 25 gets 554 5.5.1 and is
  disconnected, without a 220 (postscreen's pregreet test); a client that
  waits is served, and its address is then greeted at once (the cache);
  the submission port never waits; loopback is exempt by default;
- DATA with the message pipelined behind it gets 554 5.5.0 and a close, and
  nothing is stored; a client that waits for the 354 delivers;
- junk commands past junk_command_limit get 421; BDAT gets 502."""
import os, smtplib, socket, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Home, Server, check


def talk(port, data, wait_greeting=False):
    """Connect, optionally read the greeting first, send `data` at once,
    then read everything until the server closes (or 30 s of silence)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    got = b""
    if wait_greeting:
        while not got.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    s.sendall(data)
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        got += b"<timeout>"
    s.close()
    return got.decode("latin-1")


def lines(text):
    return [l for l in text.split("\r\n") if l]


def in_error_log(home, text):
    """Whether error.log gets `text`; the logger writes on its own thread,
    so wait for it (a deadline, not a timed assertion)."""
    p = os.path.join(home.path, "var", "log", "error.log")
    end = time.time() + 15
    while True:
        if os.path.exists(p) and text in open(p).read():
            return True
        if time.time() > end:
            return False
        time.sleep(0.05)


# --- pregreet: nobody exempt, a wait long enough for a noisy machine -----
home = Home(smtp_extra="greet_wait=3000\ngreet_wait_exempt=none\n")
srv = Server(home)

got = lines(talk(home.port, b"EHLO spambot.example\r\nQUIT\r\n"))
check(got == ["554 5.5.1 Error: SMTP protocol synchronization: talked before the greeting"],
      f"port 25: talking before the greeting gets 554 5.5.1 and a close, no 220 ({got})")
check(in_error_log(home, "pregreet"), "the pregreet refusal is in error.log")

# The submission port is for authenticated users: no wait, no test.
got = lines(talk(home.submission_port, b"EHLO c\r\nQUIT\r\n"))
check(got[0].startswith("220 ") and got[1].startswith("250-") and got[-1] == "221 2.0.0 Bye",
      f"submission port: no greeting wait ({got[0]!r}, {got[-1]!r})")

# A client that waits for the greeting (smtplib) is served ...
with smtplib.SMTP("127.0.0.1", home.port, timeout=30) as c:
    c.sendmail("sender@example.org", ["alice@localhost"], "Subject: polite\r\n\r\nwaited\r\n")
check(len(home.messages()) == 1, "port 25: a client that waits for the greeting delivers")

# ... and its address passed: the next connection is greeted at once, so
# the same early talk is now simply answered.
got = lines(talk(home.port, b"EHLO c\r\nQUIT\r\n"))
check(got[0].startswith("220 ") and got[-1] == "221 2.0.0 Bye",
      f"a passed address is not held again (greet_pass_ttl) ({got[0]!r}, {got[-1]!r})")
srv.stop()

# --- defaults: loopback exempt; pipelined DATA; junk; BDAT ---------------
home = Home(smtp_extra="junk_command_limit=5\n")
srv = Server(home)

got = lines(talk(home.port, b"EHLO c\r\nQUIT\r\n"))
check(got[0].startswith("220 ") and got[-1] == "221 2.0.0 Bye",
      "port 25: loopback is exempt from the greeting wait by default")

body = b"Subject: pipelined\r\n\r\nsent blind\r\n.\r\n"
got = lines(talk(home.port,
                 b"EHLO c\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n" + body +
                 b"QUIT\r\n", wait_greeting=True))
check(got[-3:] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "554 5.5.0 Error: SMTP protocol synchronization"],
      f"DATA with the message pipelined behind it: 554 5.5.0 and a close ({got[-3:]})")
check("354" not in " ".join(got) and home.messages() == [], "nothing stored from a pipelined body")
check(in_error_log(home, "improper command pipelining after DATA"), "the refusal is in error.log")

# A client that pipelines up to DATA and waits for the 354 is fine.
s = socket.create_connection(("127.0.0.1", home.port), timeout=30)
f = s.makefile("rb")
f.readline()
s.sendall(b"EHLO c\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
replies = []
while not replies or not replies[-1].startswith(b"354"):
    replies.append(f.readline())
s.sendall(b"Subject: waited\r\n\r\nafter the 354\r\n.\r\nQUIT\r\n")
rest = f.read().decode()
s.close()
check(rest.startswith("250 2.0.0 Ok: queued") and len(home.messages()) == 1,
      "DATA last in a pipelined group, the message after the 354: accepted")

got = lines(talk(home.port, b"EHLO c\r\nNOOP\r\nRSET\r\nVRFY x\r\nHELP\r\nNOOP\r\nNOOP\r\n", wait_greeting=True))
check(got[-1].startswith("421 4.7.0") and "junk" in got[-1],
      f"the sixth junk command over junk_command_limit=5 gets 421 and a close ({got[-1]})")

got = lines(talk(home.port, b"EHLO c\r\nBDAT 4 LAST\r\nQUIT\r\n", wait_greeting=True))
check("502 5.5.1 Error: command not implemented" in got, "BDAT gets 502 5.5.1")
srv.stop()

# --- address_permits_relay is exempt too (Postfix: permit_mynetworks) -----
home = Home(smtp_extra="greet_wait=3000\ngreet_wait_exempt=none\naddress_permits_relay=127.0.0.1\n")
srv = Server(home)
got = lines(talk(home.port, b"EHLO c\r\nQUIT\r\n"))
check(got[0].startswith("220 ") and got[-1] == "221 2.0.0 Bye",
      "port 25: a client in address_permits_relay is greeted at once")
srv.stop()
