#!/usr/bin/env python3
"""wizmail-server as a daemon: refuses a bad config (all errors printed,
non-zero exit), pid file, SIGHUP reload (bad reload keeps the old config),
SIGTERM → graceful stop with exit 0 and the pid file removed."""
import os, signal, smtplib, subprocess, sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SERVER, Home, Server, check, server_log, wait_until

home = Home()
smtpenv = os.path.join(home.path, "def", "smtpenv.dat")
good = open(smtpenv).read()

with open(smtpenv, "a") as f:
    f.write("max_recipients=many\nsession_timeout=-5\n")
r = subprocess.run([SERVER, "--home", home.path], capture_output=True, text=True, timeout=30)
check(r.returncode != 0, "a bad config refuses to start")
check("max_recipients" in r.stderr and "session_timeout" in r.stderr, "every config error is printed")

with open(smtpenv, "w") as f:
    f.write(good + "max_recipients=1\n")
srv = Server(home)
pid_file = os.path.join(home.path, "var", "run", "wizmail.pid")
check(open(pid_file).read().strip() == str(srv.proc.pid), "pid file holds the server's pid")


def rcpt_codes():
    with smtplib.SMTP("127.0.0.1", home.port, timeout=10) as s:
        s.ehlo()
        s.mail("x@example.org")
        return [s.rcpt("alice@localhost")[0], s.rcpt("postmaster@localhost")[0]]


check(rcpt_codes()[1] != 250, "max_recipients=1 in force")
with open(smtpenv, "w") as f:
    f.write(good + "max_recipients=5\n")
check("reload" not in server_log(home), "no reload yet")
srv.proc.send_signal(signal.SIGHUP)
# Logged after the new configuration is in place.
wait_until(lambda: "configuration reloaded" in server_log(home), "SIGHUP: the reload is logged")
check(rcpt_codes() == [250, 250], "SIGHUP reloaded max_recipients=5")
with open(smtpenv, "w") as f:
    f.write(good + "max_recipients=oops\n")
srv.proc.send_signal(signal.SIGHUP)
wait_until(lambda: "reload failed" in server_log(home), "the failed reload is logged")
check(srv.proc.poll() is None, "a bad reload does not stop the server")
check(rcpt_codes() == [250, 250], "a bad reload keeps the running config")
check(server_log(home).count("configuration reloaded") == 1, "and took nothing")
srv.stop()
check(not os.path.exists(pid_file), "SIGTERM: exit 0 and the pid file is removed")
