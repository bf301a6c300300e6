#!/usr/bin/env python3
"""Two wizmail-server nodes sharing one real redis-server (issue 17, item 3;
docs/cluster.md): each node its own home with the same accounts, both with
redis_url to a redis-server the test starts on a free loopback port (no
persistence) and kills. A POP3 session on node A holds the account: a
login on node B gets -ERR [IN-USE]; QUIT on A frees it; A killed with
SIGKILL keeps it only until its lease expires (redis_lease_seconds=2).
Redis killed: a POP3 login answers -ERR [SYS/TEMP] (never a silent pass)
and SMTP still accepts mail for local accounts."""
import os, poplib, signal, smtplib, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
import harness
from harness import Home, Server, check, free_port, poll, port_open

redis_port = free_port()


def start_redis():
    return harness.start_redis(redis_port)


redis = start_redis()
extra = f"redis_url=redis://127.0.0.1:{redis_port}/0\nredis_lease_seconds=2\n"
home_a = Home(server_extra=extra)
home_b = Home(server_extra=extra)
a = Server(home_a)
b = Server(home_b)


def login(home):
    p = poplib.POP3("127.0.0.1", home.pop_port, timeout=10)
    p.user("alice")
    p.pass_("secret")
    return p


def login_error(home):
    """The -ERR line of alice's login, None when it succeeded."""
    return harness.pop3_login_error("127.0.0.1", home.pop_port, "alice", "secret")


def log(home, name):
    try:
        return open(os.path.join(home.path, "var", "log", name), errors="replace").read()
    except FileNotFoundError:
        return ""


check(poll(lambda: f"shared state: redis://127.0.0.1:{redis_port}" in log(home_a, "server.log"), 5),
      "node A names its shared state in server.log")

# 1. A holds alice: B says [IN-USE], and so does A itself for a second session.
pa = login(home_a)
err = login_error(home_b)
check(err is not None and err.startswith("-ERR [IN-USE]"), f"login on B while A holds alice: {err!r}")
err = login_error(home_a)
check(err is not None and err.startswith("-ERR [IN-USE]"), f"second login on A: {err!r}")
# An idle holder keeps it past the lease's ttl (renewed by the node, not by activity).
time.sleep(3)
err = login_error(home_b)
check(err is not None and err.startswith("-ERR [IN-USE]"), f"login on B after A idled past the ttl: {err!r}")
pa.stat()

# 2. QUIT on A frees it for B before A's +OK: a login on B right after
#    the answer (no retry) gets the mailbox. Several times, as a race would
#    show only sometimes.
pa.quit()
err = login_error(home_b)
check(err is None, f"B logs in right after A's QUIT was answered: {err!r}")
for i in range(5):
    pa = login(home_a)
    pa.quit()
    pb = login(home_b)  # raises (and fails the test) on -ERR [IN-USE]
    pb.quit()
print("ok - five more times: A's QUIT answered, B's login at once", flush=True)
pb = login(home_b)
err = login_error(home_a)
check(err is not None and err.startswith("-ERR [IN-USE]"), f"A while B holds alice: {err!r}")
pb.quit()

# 3. A dies holding alice (SIGKILL: nothing released): B waits for the ttl.
pa = None
check(login_error(home_a) is None, "A can log in again at once")  # that session quit
pa = login(home_a)
a.kill9()
killed = time.time()
err = login_error(home_b)
check(err is not None and err.startswith("-ERR [IN-USE]"), f"B right after A died: {err!r}")
pb = None
while time.time() - killed < 10:
    try:
        pb = login(home_b)
        break
    except poplib.error_proto:
        time.sleep(0.1)
check(pb is not None, "B logs in once the dead node's lease expired")
check(time.time() - killed >= 1.0, "not before the lease could have expired")
pb.quit()

# 4. Redis gone: POP3 login is a temporary failure, quickly; SMTP still takes local mail.
redis.kill()
redis.wait()
t0 = time.time()
err = login_error(home_b)
took = time.time() - t0
check(err is not None and err.startswith("-ERR [SYS/TEMP]"), f"login with Redis down: {err!r}")
check(took < 3, f"the login failed within 3 s ({took:.2f})")
check(poll(lambda: "redis redis://127.0.0.1" in log(home_b, "error.log"), 5),
      "error.log says Redis is the cause")
before = len(os.listdir(home_b.new_dir()))
with smtplib.SMTP("127.0.0.1", home_b.port, timeout=10) as s:
    s.ehlo("client.test")
    s.sendmail("someone@example.org", ["alice@localhost"],
               "From: someone@example.org\r\nSubject: redis down\r\n\r\nstill accepted\r\n")
check(len(os.listdir(home_b.new_dir())) == before + 1, "mail delivered to alice on B with Redis down")

# 5. Redis back (empty): logins work again without restarting the node.
redis = start_redis()
pb = login(home_b)
count, _ = pb.stat()
check(count >= 1, "alice's mail is there")
pb.quit()

b.stop()

# 6. A malformed redis_url: `wizmail config check` warns, and the server
# refuses to start (never in-process silently).
bad = Home(server_extra="redis_url=redis://10.0.0.5:99999/0\n")
r = subprocess.run([harness.CLI, "--home", bad.path, "config", "check"], capture_output=True, text=True)
out = r.stdout + r.stderr
check("redis_url" in out and "99999" in out and "warning" in out.lower(), f"config check warns: {out!r}")
p = subprocess.run([harness.SERVER, "--home", bad.path], capture_output=True, text=True, timeout=20)
check(p.returncode != 0, "the server does not start with a malformed redis_url")
check("redis_url" in p.stdout + p.stderr + log(bad, "server.log"), "and says why")
print("ok")
