#!/usr/bin/env python3
"""POP-before-SMTP with real clients (issue 14, item 1): a mail client checks
mail with POP3 and sends through SMTP within milliseconds; the relay must be
allowed at once, and survive a restart of the server (the `ip` files)."""
import os, poplib, re, smtplib, sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Home, Server, check

home = Home(smtp_extra="send_permits_only_smtp_auth=0\npop_before_smtp=1\npop_befor_smtp_time_to_live=10\n")
srv = Server(home)
msg = "From: alice@localhost\r\nSubject: {s}\r\n\r\nbody\r\n"


def relay(subject):
    """smtplib: alice@localhost -> a remote address, from 127.0.0.1."""
    with smtplib.SMTP("127.0.0.1", home.port, timeout=10) as s:
        try:
            return s.sendmail("alice@localhost", ["someone@remote.example"], msg.format(s=subject))
        except smtplib.SMTPRecipientsRefused as e:
            return e.recipients


def pop_login():
    p = poplib.POP3("127.0.0.1", home.pop_port, timeout=10)
    p.user("alice")
    p.pass_("secret")
    p.quit()


# Before any POP3 login the address may not relay.
refused = relay("before")
check(refused.get("someone@remote.example", (0,))[0] == 554, f"no POP3 login yet: relay refused ({refused})")

# Check mail, then send at once: the login is visible immediately.
pop_login()
check(relay("right after the login") == {}, "relay accepted right after the POP3 login")

# The manual's ip file is still written: seconds,IP with 3 digits per octet.
ip = open(os.path.join(home.path, "mailbox", "alice", "ip")).read()
check(re.fullmatch(r"\d+,127\.000\.000\.001\n", ip) is not None, f"ip file in the manual's format ({ip!r})")

# A restart keeps the login (seeded from the ip file).
srv.stop()
srv = Server(home)
check(relay("after a restart") == {}, "relay still accepted after a restart, within the TTL")

# An ip file older than the TTL does not let the address relay.
with open(os.path.join(home.path, "mailbox", "alice", "ip"), "w") as f:
    f.write("1000000000,127.000.000.001\n")
srv.stop()
srv = Server(home)
refused = relay("stale")
check(refused.get("someone@remote.example", (0,))[0] == 554, "a login older than the TTL does not relay")
srv.stop()
