#!/usr/bin/env python3
"""The rest of issue 17 item 3 (docs/cluster.md): two wizmail-server nodes,
each its own home with the same accounts, sharing one real redis-server
that the test starts on a free loopback port (no persistence) and kills.

- An address penalised on node A is blocked on node B (and only it).
- A POP3 login on A lets the client relay through B (POP-before-SMTP).
- A daily send limit counts the messages of both nodes.
- Mailing-list post numbers are unique across the nodes.
- One auto-reply per sender and day across the nodes.
- Redis stopped: the checks that need it answer 4xx with an enhanced code
  (never 5xx, never a pass), mail that needs none of it is accepted, a
  list post accepted meanwhile is distributed later; Redis back (empty):
  everything works again without restarting the nodes.

Each scenario uses its own loopback source address (127.0.0.x), so one
scenario's penalty or login does not leak into another's."""
import os, poplib, re, smtplib, socket, stat, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
import harness
from harness import Home, Server, check, free_port, poll, port_open, wait_for

redis_port = free_port()


def start_redis():
    return harness.start_redis(redis_port)


redis = start_redis()
scratch = Home(accounts=())  # a folder for the hook's record, removed at exit
replies_log = os.path.join(scratch.path, "replies.log")
hook = os.path.join(scratch.path, "reply-hook.sh")
with open(hook, "w") as f:
    f.write(f"#!/bin/sh\necho \"$1\" >> {replies_log}\n")
os.chmod(hook, stat.S_IRWXU)

server_extra = f"redis_url=redis://127.0.0.1:{redis_port}/0\nredis_lease_seconds=5\n"
smtp_extra = ("greet_wait=0\nauth_penalty_delay=0\nauth_block_failures=3\nauth_block_time=600\n"
              "pop_before_smtp=1\npop_befor_smtp_time_to_live=10\nsend_permits_only_smtp_auth=0\n"
              "send_max_during_a_day=3\n")
ACCOUNTS = (("alice", "secret"), ("bob", "pw-bob"), ("postmaster", "pm"))


def make_home():
    h = Home(accounts=ACCOUNTS, smtp_extra=smtp_extra, server_extra=server_extra)
    r = subprocess.run([harness.CLI, "--home", h.path, "ml", "create", "team", "pw-team"],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"ml create team: {r.stderr}")
    with open(os.path.join(h.path, "mailbox", "team", "ml_member.csv"), "w") as f:
        f.write("alice@localhost\n")
    with open(os.path.join(h.path, "mailbox", "bob", "reply.def"), "w") as f:
        f.write(f"bin={hook}\nparam1=FROM_ADDRESS\n")
    return h


home_a, home_b = make_home(), make_home()
a, b = Server(home_a), Server(home_b)


def log(home, name):
    try:
        return open(os.path.join(home.path, "var", "log", name), errors="replace").read()
    except FileNotFoundError:
        return ""


def smtp(home, source):
    s = smtplib.SMTP("127.0.0.1", home.port, timeout=10, source_address=(source, 0))
    s.ehlo("client.test")
    return s


class Pop3From(poplib.POP3):
    """poplib from a chosen loopback source address."""

    def __init__(self, port, source):
        self._source = source
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self._source, 0))


def auth(home, source, password):
    """The SMTP AUTH PLAIN reply to alice/password from `source`: (code, text)."""
    try:
        s = smtp(home, source)
    except smtplib.SMTPServerDisconnected as e:
        return 0, str(e)
    try:
        code, text = s.docmd("AUTH", "PLAIN " + __import__("base64").b64encode(
            b"\0alice\0" + password.encode()).decode())
        return code, text.decode()
    finally:
        try:
            s.close()
        except Exception:
            pass


def rcpt(home, source, sender, rcpt_to, login=None):
    """RCPT's reply (code, text) for one remote recipient; the message is
    sent when it is accepted."""
    s = smtp(home, source)
    try:
        if login:
            s.login(*login)
        s.mail(sender)
        code, text = s.rcpt(rcpt_to)
        if code == 250:
            s.data(f"From: {sender}\r\nSubject: relayed\r\n\r\nx\r\n".encode())
        return code, text.decode()
    finally:
        s.quit()


# ---------------------------------------------------------------- penalties

# 127.0.0.2 fails twice on A and once on B: blocked on both.
check(auth(home_a, "127.0.0.2", "wrong")[0] == 535, "a wrong password on A: 535")
check(auth(home_a, "127.0.0.2", "wrong")[0] == 535, "a second one on A: 535")
check(auth(home_b, "127.0.0.2", "wrong")[0] == 535, "a third one, on B: 535")
code, text = auth(home_b, "127.0.0.2", "secret")
check(code == 421 and text.startswith("4.7.0"), f"B: the network failed on both nodes is blocked: {code} {text}")
code, text = auth(home_a, "127.0.0.2", "secret")
check(code == 421 and text.startswith("4.7.0"), f"A: blocked there too, right password or not: {code} {text}")
# One address never locks others out.
code, text = auth(home_b, "127.0.0.12", "secret")
check(code == 235, f"another address logs in on B: {code} {text}")

# ---------------------------------------------------------------- POP-before-SMTP

code, text = rcpt(home_b, "127.0.0.4", "alice@localhost", "friend@remote.example")
check(code == 554 and "5.7.1" in text, f"no POP3 login yet: relay denied on B: {code} {text}")
p = Pop3From(home_a.pop_port, "127.0.0.4")
p.user("alice")
p.pass_("secret")
p.quit()
code, text = rcpt(home_b, "127.0.0.4", "alice@localhost", "friend@remote.example")
check(code == 250, f"a POP3 login on A lets 127.0.0.4 relay through B: {code} {text}")
code, text = rcpt(home_b, "127.0.0.14", "alice@localhost", "friend@remote.example")
check(code == 554, f"another address still may not: {code} {text}")

# ---------------------------------------------------------------- daily limit

# alice may relay 3 messages a day (send_max_during_a_day=3); one was
# relayed above through B. One more on A, one on B: the fourth is refused.
login = ("alice", "secret")
check(rcpt(home_a, "127.0.0.3", "alice@localhost", "x1@remote.example", login)[0] == 250, "relay 2 of 3, on A")
check(rcpt(home_b, "127.0.0.3", "alice@localhost", "x2@remote.example", login)[0] == 250, "relay 3 of 3, on B")
code, text = rcpt(home_a, "127.0.0.3", "alice@localhost", "x3@remote.example", login)
check(code == 450 and "4.7.1" in text, f"the fourth, on A: the limit counts both nodes: {code} {text}")
code, text = rcpt(home_b, "127.0.0.3", "alice@localhost", "x4@remote.example", login)
check(code == 450, f"and on B: {code} {text}")

# ---------------------------------------------------------------- list post numbers


def post(home, n):
    with smtp(home, "127.0.0.1") as s:
        s.sendmail("poster@example.org", ["team@localhost"],
                   f"From: poster@example.org\r\nSubject: post {n}\r\n\r\nbody {n}\r\n")


def list_numbers(homes=None):
    out = []
    for h in homes or (home_a, home_b):
        for sub in ("new", "cur"):
            d = os.path.join(h.path, "mailbox", "alice", sub)
            for name in os.listdir(d):
                m = re.search(rb"^Subject: ?\[team(\d+)\]\s*post", open(os.path.join(d, name), "rb").read(), re.M)
                if m:
                    out.append(int(m.group(1)))
    return sorted(out)


for i in range(6):
    post(home_a if i % 2 == 0 else home_b, i)
wait_for(lambda: len(list_numbers()) == 6, "six list posts distributed", homes=(home_a, home_b))
check(list_numbers() == [1, 2, 3, 4, 5, 6], f"post numbers unique across the nodes: {list_numbers()}")

# ---------------------------------------------------------------- auto-reply


def replies():
    try:
        return open(replies_log).read().split()
    except FileNotFoundError:
        return []


def mail(home, source, sender, to, subject):
    with smtp(home, source) as s:
        s.sendmail(sender, [to], f"From: {sender}\r\nSubject: {subject}\r\n\r\nx\r\n")


mail(home_a, "127.0.0.1", "dave@example.org", "bob@localhost", "first")
wait_for(lambda: replies() == ["dave@example.org"], "the auto-reply for dave, on A", homes=(home_a,))
mail(home_b, "127.0.0.1", "dave@example.org", "bob@localhost", "second")
wait_for(lambda: "had an auto-reply recently" in log(home_b, "server.log"),
         "B does not reply to dave again", homes=(home_b,))
mail(home_a, "127.0.0.1", "Dave@Example.org", "bob@localhost", "third")
wait_for(lambda: log(home_a, "server.log").count("had an auto-reply recently") == 1, "nor A", homes=(home_a,))
check(replies() == ["dave@example.org"], f"one auto-reply per day across the nodes: {replies()}")
mail(home_b, "127.0.0.1", "erin@example.org", "bob@localhost", "other")
wait_for(lambda: replies() == ["dave@example.org", "erin@example.org"], "another sender gets hers, on B")

# ---------------------------------------------------------------- Redis down

redis.kill()
redis.wait()
t0 = time.time()
code, text = auth(home_a, "127.0.0.6", "secret")
check(code == 454 and text.startswith("4.7.0"), f"AUTH with Redis down: {code} {text}")
check(time.time() - t0 < 3, "answered within 3 s")
code, text = rcpt(home_b, "127.0.0.4", "alice@localhost", "friend@remote.example")
check(code == 451 and "4.3.0" in text, f"a relay that needs POP-before-SMTP with Redis down: {code} {text}")
try:
    pp = Pop3From(home_a.pop_port, "127.0.0.7")
    pp.user("alice")
    pp.pass_("secret")
    check(False, "a POP3 login with Redis down must fail")
except poplib.error_proto as e:
    check(e.args[0].startswith(b"-ERR [SYS/TEMP]"), f"POP3 login with Redis down: {e.args[0]!r}")
check(poll(lambda: "redis redis://127.0.0.1" in log(home_a, "error.log"), 5), "error.log says Redis is the cause")
# What needs no Redis goes on: local mail is accepted and delivered.
before = len(os.listdir(home_b.new_dir("alice")))
mail(home_b, "127.0.0.1", "someone@example.org", "alice@localhost", "redis down")
check(len(os.listdir(home_b.new_dir("alice"))) == before + 1, "local mail delivered on B with Redis down")
a_numbers = list_numbers((home_a,))
# A list post is accepted (250); the agent cannot take its number and
# defers it: nothing is distributed without one.
post(home_a, 6)
wait_for(lambda: "deferred: ml.def count: redis" in log(home_a, "server.log"),
         "the agent defers the post until Redis answers", homes=(home_a,))
check(list_numbers() == [1, 2, 3, 4, 5, 6], "no post distributed without its number")

# ---------------------------------------------------------------- Redis back

redis = start_redis()  # empty: the nodes need no restart
code, text = auth(home_a, "127.0.0.6", "secret")
check(code == 235, f"AUTH works again: {code} {text}")
p = Pop3From(home_b.pop_port, "127.0.0.8")
p.user("alice")
p.pass_("secret")
p.quit()
code, text = rcpt(home_a, "127.0.0.8", "alice@localhost", "friend@remote.example")
check(code == 250, f"POP-before-SMTP works again: {code} {text}")
# The post accepted while Redis was down is distributed, numbered from
# A's ml.def (the key was lost with Redis): above every number A gave.
# (Not necessarily above B's: with separate homes and a Redis that lost
# the key a number may repeat once — docs/cluster.md; a shared home or a
# Redis with persistence closes that.)
wait_for(lambda: len(list_numbers()) == 7, "the post accepted with Redis down is distributed", timeout=90,
         homes=(home_a,))
new_numbers = [n for n in list_numbers((home_a,)) if n not in a_numbers]
check(len(new_numbers) == 1 and new_numbers[0] > max(a_numbers),
      f"its number continues above A's ml.def: {a_numbers} then {new_numbers}")
before = list_numbers()
post(home_b, 7)  # the key exists again: max(it, B's ml.def) + 1
wait_for(lambda: len(list_numbers()) == 8, "a post on B after Redis came back", homes=(home_b,))
check(list_numbers()[-1] == before[-1] + 1 and list_numbers().count(before[-1] + 1) == 1,
      f"B's number is above every number given: {list_numbers()}")
a.stop()
b.stop()
print("ok")
