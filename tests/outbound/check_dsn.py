"""Check a delivery status notification with python3's email package.

usage: check_dsn.py FILE SENDER RCPT=STATUS[,RCPT=STATUS...] TEXT [options]
Exit 0 when FILE is an RFC 3464 report to SENDER listing exactly those
recipients with those Status values and returning TEXT (in the original
headers, or in the whole original message with --full).

options:
  --action A          every recipient's Action (default: failed)
  --envid ID          Original-Envelope-Id must be ID (default: absent)
  --orcpt RCPT=VALUE  that recipient's Original-Recipient (repeatable)
  --full              the third part is the whole message (message/rfc822)
  --absent TEXT       TEXT must not be returned (e.g. the body with RET=HDRS)
"""
import argparse, email, email.policy, sys


def fail(why):
    print("check_dsn: " + why, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("sender")
    ap.add_argument("rcpts")
    ap.add_argument("header_text")
    ap.add_argument("--action", default="failed")
    ap.add_argument("--envid")
    ap.add_argument("--orcpt", action="append", default=[])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--absent")
    a = ap.parse_args()
    want = dict(item.split("=", 1) for item in a.rcpts.split(","))
    with open(a.path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report":
        fail("content type " + msg.get_content_type())
    if msg.get_param("report-type") != "delivery-status":
        fail("report-type " + str(msg.get_param("report-type")))
    if "MAILER-DAEMON@" not in msg["From"]:
        fail("From " + msg["From"])
    # A UTF-8 sender (SMTPUTF8, RFC 6532) is raw UTF-8 in To:.
    if a.sender not in str(msg["To"]) and b"\r\nTo: <" + a.sender.encode() + b">\r\n" not in raw:
        fail("To " + str(msg["To"]))
    parts = msg.get_payload()
    kinds = [p.get_content_type() for p in parts]
    third = "message/rfc822" if a.full else "text/rfc822-headers"
    if kinds != ["text/plain", "message/delivery-status", third]:
        fail("parts " + repr(kinds))
    human = parts[0].get_payload(decode=True).decode("ascii")
    for r in want:
        if r not in human and "\\x{" not in r:
            fail("human part does not name " + r)
    blocks = parts[1].get_payload()  # per-message fields, then one block per recipient
    if "Reporting-MTA" not in blocks[0]:
        fail("no Reporting-MTA")
    envid = blocks[0]["Original-Envelope-Id"]
    if (envid.strip() if envid else None) != a.envid:
        fail("Original-Envelope-Id %r, want %r" % (envid, a.envid))
    got = {}
    orcpts = {}
    for b in blocks[1:]:
        rcpt = b["Final-Recipient"].split(";", 1)[1].strip()
        if b["Action"].strip() != a.action:
            fail("Action " + b["Action"])
        got[rcpt] = b["Status"].strip()
        if b["Original-Recipient"]:
            orcpts[rcpt] = b["Original-Recipient"].strip()
    if got != want:
        fail("recipients %r, want %r" % (got, want))
    want_orcpt = dict(item.split("=", 1) for item in a.orcpt)
    if orcpts != want_orcpt:
        fail("Original-Recipient %r, want %r" % (orcpts, want_orcpt))
    if a.full:
        returned = parts[2].get_payload()[0].as_bytes().decode("utf-8", "replace")
    else:
        returned = parts[2].get_payload(decode=True).decode("utf-8", "replace")
    if a.header_text not in returned:
        fail("returned content lacks %r: %r" % (a.header_text, returned[:300]))
    if a.absent and a.absent in returned:
        fail("returned content has %r" % a.absent)
    print("check_dsn: ok", a.action, sorted(got.items()))


main()
