"""Check a delivery status notification with python3's email package.

usage: check_dsn.py FILE SENDER RCPT=STATUS[,RCPT=STATUS...] HEADER-SUBSTRING
Exit 0 when FILE is an RFC 3464 report to SENDER listing exactly those
recipients with those Status values and carrying the original headers.
"""
import email, email.policy, sys


def fail(why):
    print("check_dsn: " + why, file=sys.stderr)
    sys.exit(1)


def main():
    path, sender, rcpts, header_text = sys.argv[1:5]
    want = dict(item.split("=", 1) for item in rcpts.split(","))
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report":
        fail("content type " + msg.get_content_type())
    if msg.get_param("report-type") != "delivery-status":
        fail("report-type " + str(msg.get_param("report-type")))
    if "MAILER-DAEMON@" not in msg["From"]:
        fail("From " + msg["From"])
    if sender not in msg["To"]:
        fail("To " + msg["To"])
    parts = msg.get_payload()
    kinds = [p.get_content_type() for p in parts]
    if kinds != ["text/plain", "message/delivery-status", "text/rfc822-headers"]:
        fail("parts " + repr(kinds))
    human = parts[0].get_payload(decode=True).decode("ascii")
    for r in want:
        if r not in human:
            fail("human part does not name " + r)
    blocks = parts[1].get_payload()  # per-message fields, then one block per recipient
    if "Reporting-MTA" not in blocks[0]:
        fail("no Reporting-MTA")
    got = {}
    for b in blocks[1:]:
        rcpt = b["Final-Recipient"].split(";", 1)[1].strip()
        if b["Action"].strip() != "failed":
            fail("Action " + b["Action"])
        got[rcpt] = b["Status"].strip()
    if got != want:
        fail("recipients %r, want %r" % (got, want))
    headers = parts[2].get_payload(decode=True).decode("utf-8", "replace")
    if header_text not in headers:
        fail("original headers lack %r: %r" % (header_text, headers[:300]))
    print("check_dsn: ok", sorted(got.items()))


main()
