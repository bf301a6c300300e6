#!/usr/bin/env python3
"""Real clients against wizmail-server: smtplib (STARTTLS, smtps, AUTH PLAIN,
LOGIN, CRAM-MD5), swaks (pipelining, AUTH, TLS), openssl s_client."""
import os, re, shutil, smtplib, ssl, subprocess, sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Home, Server, check

home = Home(tls=True)
srv = Server(home)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
msg = "Subject: {s}\r\n\r\nbody {s}\r\n"

# Each AUTH mechanism on the submission port after STARTTLS.
for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
    with smtplib.SMTP("127.0.0.1", home.submission_port, timeout=10) as s:
        s.ehlo("client.example")
        check(s.has_extn("starttls"), f"{mech}: STARTTLS offered")
        s.starttls(context=ctx)
        s.ehlo("client.example")
        check(mech in s.esmtp_features.get("auth", "").upper(), f"{mech}: offered after TLS")
        s.user, s.password = "alice", "secret"
        code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower().replace("-", "_")))
        check(code == 235, f"AUTH {mech} accepted")
        refused = s.sendmail("alice@localhost", ["alice@localhost"], msg.format(s=mech))
        check(refused == {}, f"{mech}: message accepted")

with smtplib.SMTP("127.0.0.1", home.submission_port, timeout=10) as s:
    s.starttls(context=ctx)
    s.ehlo()
    s.user, s.password = "alice", "wrong"
    try:
        s.auth("PLAIN", s.auth_plain)
        check(False, "wrong password refused")
    except smtplib.SMTPAuthenticationError as e:
        check(e.smtp_code == 535, f"wrong password refused with 535 ({e.smtp_code} {e.smtp_error!r})")

# Submission requires AUTH.
with smtplib.SMTP("127.0.0.1", home.submission_port, timeout=10) as s:
    s.ehlo()
    code, _ = s.mail("alice@localhost")
    check(code == 530, "submission: MAIL without AUTH refused (530)")

# Implicit TLS.
with smtplib.SMTP_SSL("127.0.0.1", home.smtps_port, timeout=10, context=ctx) as s:
    s.login("alice", "secret")
    check(s.sendmail("alice@localhost", ["alice@localhost"], msg.format(s="smtps")) == {}, "smtps: accepted")

# swaks: pipelining, AUTH and TLS.
if shutil.which("swaks"):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{home.port}", "--to", "alice@localhost",
                        "--from", "x@example.org", "--pipeline", "--header", "Subject: swaks-pipe"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "250" in r.stdout, "swaks --pipeline")
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{home.submission_port}", "--to", "someone@remote.example",
                        "--from", "alice@localhost", "--tls", "--auth", "LOGIN", "--auth-user", "alice",
                        "--auth-password", "secret", "--header", "Subject: swaks-relay"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "swaks --tls --auth: authenticated relay accepted")
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{home.port}", "--to", "someone@remote.example",
                        "--from", "x@example.org", "--quit-after", "RCPT"],
                       capture_output=True, text=True, timeout=30)
    check("554" in r.stdout, "swaks: unauthenticated relay denied (554)")
else:
    check(False, "swaks is installed (scripts/packages.txt)")

# openssl s_client -starttls smtp.
r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{home.port}",
                    "-tls1_2", "-quiet"], input="EHLO x\r\nQUIT\r\n", capture_output=True, text=True, timeout=30)
check("250" in r.stdout and "221" in r.stdout, "openssl s_client -starttls smtp (TLS 1.2)")
r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{home.port}",
                    "-tls1_1", "-quiet"], input="QUIT\r\n", capture_output=True, text=True, timeout=30)
check(r.returncode != 0, "TLS 1.1 refused")

srv.stop()
msgs = home.messages()
check(len(msgs) == 5, f"five messages delivered to alice ({len(msgs)})")
check(all(re.match(rb"Return-Path: <[^>\r\n]*>\r\nDelivered-To: alice@localhost\r\nReceived: ", m) for m in msgs),
      "every message starts with Return-Path, Delivered-To, Received:")
queued = [n for s in ("incoming", "active", "deferred")
          for n in os.listdir(os.path.join(home.path, "resendmail", s))]
check(len(queued) == 1, "the authenticated relay is in resendmail/ (waiting: no DNS on loopback)")
log = open(os.path.join(home.path, "var", "log", "error.log")).read()
check("alice" in log or "auth" in log.lower(), "the auth failure is in error.log")
