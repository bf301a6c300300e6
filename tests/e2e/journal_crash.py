#!/usr/bin/env python3
"""The delivery journal never brings back what a client was told is gone:
- a message retrieved and deleted by POP3 right after its 250 (inside the
  journal's checkpoint window) stays deleted after kill -9;
- a message answered 451 because its link into new/ failed (EIO injected
  with strace) is not delivered by start-up recovery, so the client's retry
  makes one copy, not two."""
import os, poplib, shutil, signal, smtplib, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SERVER, Home, Server, check, _procs

home = Home()
alice = os.path.join(home.path, "mailbox", "alice")


def stored():
    return sorted(os.listdir(os.path.join(alice, "new")) + os.listdir(os.path.join(alice, "cur")))


def send(subject):
    with smtplib.SMTP("127.0.0.1", home.port, timeout=30) as c:
        c.ehlo("client.example")
        c.mail("bob@example.org")
        c.rcpt("alice@localhost")
        return c.data(f"Subject: {subject}\r\n\r\nbody of {subject}\r\n".encode())


# --- DELE + QUIT of a fresh message, then kill -9: it stays deleted.
srv = Server(home)
for i in range(5):
    code, _ = send(f"fresh {i}")
    check(code == 250, f"round {i}: message accepted")
    p = poplib.POP3("127.0.0.1", home.pop_port, timeout=30)
    p.user("alice")
    p.pass_("secret")
    check(p.stat()[0] == 1, f"round {i}: POP3 sees it")
    p.retr(1)
    p.dele(1)
    check(p.quit().startswith(b"+OK"), f"round {i}: QUIT +OK (deleted)")
    srv.kill9()
    srv = Server(home)
    check(stored() == [], f"round {i}: after kill -9 and restart the deleted message is gone ({stored()})")
    p = poplib.POP3("127.0.0.1", home.pop_port, timeout=30)
    p.user("alice")
    p.pass_("secret")
    check(p.stat()[0] == 0, f"round {i}: POP3 STAT shows no message")
    p.quit()
srv.stop()

# --- A refused message stays refused: link(2) fails with EIO.
if not shutil.which("strace"):
    check(False, "strace is installed (scripts/packages.txt)")
log = open(os.path.join(home.path, "strace-server.log"), "wb")
traced = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=link,linkat",
                           "-e", "inject=link,linkat:error=EIO", SERVER, "--home", home.path],
                          stdout=log, stderr=log)
_procs.append(traced)
pid_file = os.path.join(home.path, "var", "run", "wizmail.pid")
end = time.time() + 30
while True:
    try:
        smtplib.SMTP("127.0.0.1", home.port, timeout=5).quit()
        break
    except OSError:
        check(traced.poll() is None and time.time() < end, "the traced server starts")
        time.sleep(0.1)
try:
    code, text = send("refused")
except smtplib.SMTPResponseException as e:
    code, text = e.smtp_code, e.smtp_error
check(400 <= code < 500, f"link EIO: the message is refused with 4xx ({code} {text!r})")
check(stored() == [], "link EIO: nothing in new/ or cur/")
error_log = os.path.join(home.path, "var", "log", "error.log")
end = time.time() + 30
while not (os.path.exists(error_log) and "link " in open(error_log).read()) and time.time() < end:
    time.sleep(0.1)
check("Input/output error" in open(error_log).read(), "error.log names the failed link")
server_pid = int(open(pid_file).read().split()[0])
os.kill(server_pid, signal.SIGKILL)
traced.wait(30)
srv = Server(home)
check(stored() == [], f"after kill -9 and restart, recovery did not deliver the refused message ({stored()})")
code, _ = send("refused")  # the client's retry
check(code == 250, "the retry is accepted")
check(len(stored()) == 1, f"exactly one copy after the retry ({len(stored())})")
srv.stop()
