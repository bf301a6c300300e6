#!/usr/bin/env python3
"""A stand-in for wizmail-sendmail in the agent tests, deliberately naive:
it sends over SMTP to 127.0.0.1:$WIZTEST_SMTP_PORT and adds no loop
protection of its own (no Auto-Submitted), so the tests show that the
server's own guards end forwarding and auto-reply loops.

  fake_sendmail.py FROM TO -mf FILE     send FILE as is
  fake_sendmail.py FROM TO -sb FILE     line 1 subject, rest body
"""
import os
import smtplib
import sys


def main():
    if len(sys.argv) != 5 or sys.argv[3] not in ("-mf", "-sb"):
        print("usage: fake_sendmail.py FROM TO -mf|-sb FILE", file=sys.stderr)
        return 2
    sender, to, mode, path = sys.argv[1:5]
    with open(path, "rb") as f:
        data = f.read()
    if mode == "-sb":
        lines = data.decode("utf-8").split("\n", 1)
        subject = lines[0].strip()
        body = lines[1] if len(lines) > 1 else ""
        data = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n" + body.replace("\n", "\r\n")).encode()
    port = int(os.environ["WIZTEST_SMTP_PORT"])
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail(sender, [to], data)
    print(f"sent {mode} from {sender} to {to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
