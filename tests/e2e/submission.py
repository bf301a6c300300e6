#!/usr/bin/env python3
"""Real clients against wizmail-server for issue 14, items 5, 9, 12, 13:
- more recipients than max_recipients (smtplib one by one, swaks pipelined):
  every accepted recipient gets the message (452 4.5.3 is no error);
- a submission without Date:/Message-ID: (AUTH, the submit socket) gets
  both; mail from an unauthenticated peer is stored as it came;
- `wizmail mailbox status` shows what the account sent;
- an account folder the store cannot read answers 451 4.3.0 / [SYS/TEMP],
  never 550 5.1.1 / wrong password."""
import email.utils, json, os, poplib, re, shutil, smtplib, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import CLI, Home, Server, check

# Date: is the server's local time with its zone: give it a zone that is not UTC.
os.environ["TZ"] = "JST-9"
users = [f"u{i}" for i in range(30)]
home = Home(smtp_extra="max_recipients=5\n",
            accounts=[("alice", "secret"), ("bob", "pw"), ("postmaster", "pm")] + [(u, "pw") for u in users])
srv = Server(home)


def count(account):
    return len(os.listdir(home.new_dir(account)))


def only(account):
    msgs = home.messages(account)
    check(len(msgs) == 1, f"{account} has exactly one message ({len(msgs)})")
    return msgs[0]


# --- 12: a long recipient list -------------------------------------------
# smtplib sends RCPTs one by one: 25 refusals are more than max_errors (20),
# yet the session must reach DATA for the 5 accepted recipients.
with smtplib.SMTP("127.0.0.1", home.port, timeout=10) as s:
    refused = s.sendmail("sender@example.org", [u + "@localhost" for u in users],
                         "Subject: thirty\r\n\r\nto many\r\n")
check(len(refused) == 25 and all(c == 452 for c, _ in refused.values()),
      f"smtplib: 25 recipients over max_recipients get 452 ({len(refused)})")
check(all(count(u) == 1 for u in users[:5]) and all(count(u) == 0 for u in users[5:]),
      "smtplib: the 5 accepted recipients got the message, nobody else")
for u in users:
    for n in os.listdir(home.new_dir(u)):
        os.unlink(os.path.join(home.new_dir(u), n))

# swaks pipelines MAIL, every RCPT and DATA in one batch.
if shutil.which("swaks"):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{home.port}", "--pipeline", "--from", "sender@example.org",
                        "--to", ",".join(u + "@localhost" for u in users), "--header", "Subject: swaks-many"],
                       capture_output=True, text=True, timeout=60)
    # A reply line of the server ("<-  421 ..." or "<** 421 ..."), not the
    # digits "421" inside a queue id or a date that swaks echoes.
    replies_421 = re.findall(r"^<[-*~]+\s+421[ -].*$", r.stdout, re.M)
    check(not replies_421, f"swaks --pipeline: no 421 before DATA {replies_421}")
    check(re.search(r"<-\s+250 2\.0\.0 Ok: queued", r.stdout) is not None, "swaks --pipeline: message queued")
    check(all(count(u) == 1 for u in users[:5]) and all(count(u) == 0 for u in users[5:]),
          "swaks --pipeline: the 5 accepted recipients got the message")

# --- 13: Date: and Message-ID: for submissions --------------------------
bare = "From: alice@localhost\r\nTo: bob@localhost\r\nSubject: {s}\r\n\r\nbody {s}\r\n"


def header_of(raw, name):
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return [l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith(name.lower() + ":")]


def check_added(raw, what):
    dates, ids = header_of(raw, "Date"), header_of(raw, "Message-ID")
    check(len(dates) == 1 and len(ids) == 1, f"{what}: one Date: and one Message-ID: ({dates}, {ids})")
    parsed = email.utils.parsedate_to_datetime(dates[0])
    check(dates[0].endswith(" +0900") and abs(parsed.timestamp() - time.time()) < 600,
          f"{what}: Date: is RFC 5322, local time with its zone, now ({dates[0]})")
    check(re.fullmatch(r"<[^<>@\s]+@localhost>", ids[0]) is not None, f"{what}: Message-ID: <unique@hostname> ({ids[0]})")
    # Added at the end of the header section, the body untouched.
    check(raw.split(b"\r\n\r\n", 1)[1].startswith(b"body "), f"{what}: the body is intact")
    return ids[0]


with smtplib.SMTP("127.0.0.1", home.submission_port, timeout=10) as s:
    s.login("alice", "secret")
    check(s.sendmail("alice@localhost", ["bob@localhost"], bare.format(s="auth")) == {}, "AUTH submission accepted")
id1 = check_added(only("bob"), "submission port with AUTH")
os.unlink(os.path.join(home.new_dir("bob"), os.listdir(home.new_dir("bob"))[0]))

with smtplib.SMTP("127.0.0.1", home.port, timeout=10) as s:
    s.login("alice", "secret")
    s.sendmail("alice@localhost", ["bob@localhost"], bare.format(s="auth25"))
id2 = check_added(only("bob"), "AUTH on port 25")
check(id1 != id2, "each message its own Message-ID")
os.unlink(os.path.join(home.new_dir("bob"), os.listdir(home.new_dir("bob"))[0]))

# The local submit socket, spoken to directly (wizmail-sendmail completes
# headers itself; any other program on the socket must get them too).
class UnixSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(host)
        return sock


with UnixSMTP(os.path.join(home.path, "var", "run", "submit.sock"), timeout=10) as s:
    s.sendmail("alice@localhost", ["bob@localhost"], bare.format(s="socket"))
check_added(only("bob"), "submit socket")
os.unlink(os.path.join(home.new_dir("bob"), os.listdir(home.new_dir("bob"))[0]))

# A peer MTA without AUTH: stored as it came.
with smtplib.SMTP("127.0.0.1", home.port, timeout=10) as s:
    s.sendmail("someone@example.org", ["bob@localhost"], bare.format(s="mta"))
raw = only("bob")
check(header_of(raw, "Date") == [] and header_of(raw, "Message-ID") == [],
      "unauthenticated peer: no Date:/Message-ID: added")
# A submission that has both keeps them as they are.
with smtplib.SMTP("127.0.0.1", home.submission_port, timeout=10) as s:
    s.login("alice", "secret")
    s.sendmail("alice@localhost", ["alice@localhost"],
               "Date: Mon, 1 Dec 2025 10:00:00 +0100\r\nMessage-ID: <kept@example.org>\r\n\r\nbody x\r\n")
raw = only("alice")
check(header_of(raw, "Date") == ["Mon, 1 Dec 2025 10:00:00 +0100"] and
      header_of(raw, "Message-ID") == ["<kept@example.org>"], "present Date:/Message-ID: kept, none added")

# --- 9: the sent counter -------------------------------------------------
# alice sent 4 submissions (3 to bob, 1 to herself) and relays one message.
with smtplib.SMTP("127.0.0.1", home.submission_port, timeout=10) as s:
    s.login("alice", "secret")
    s.sendmail("alice@localhost", ["far@remote.example"], bare.format(s="relayed"))
r = subprocess.run([CLI, "--home", home.path, "mailbox", "status", "--json"], capture_output=True, text=True,
                   timeout=30)
check(r.returncode == 0, "wizmail mailbox status --json " + r.stderr)
rows = {a["name"]: a for a in json.loads(r.stdout)["accounts"]}
check(rows["alice"]["sent"] == 5, f"mailbox status: alice sent 5 ({rows['alice']})")
check(rows["bob"]["sent"] == 0, "mailbox status: bob sent nothing (he only received)")
r = subprocess.run([CLI, "--home", home.path, "monitor", "--once", "--json"], capture_output=True, text=True,
                   timeout=30)
rows = {a["account"]: a for a in json.loads(r.stdout)["accounts"]}
check(r.returncode == 0 and rows["alice"]["sent"] == 5, f"monitor --once --json: alice sent 5 ({rows['alice']})")

# --- 5: a mailbox folder the store cannot read ------------------------------
# As root no permission bit stops us: a loop of symbolic links (ELOOP) does.
loop = os.path.join(home.path, "mailbox", "carol")
os.symlink(loop, loop)
with smtplib.SMTP("127.0.0.1", home.port, timeout=10) as s:
    s.ehlo()
    s.mail("someone@example.org")
    code, text = s.rcpt("carol@localhost")
    check(code == 451 and text.startswith(b"4.3.0"), f"RCPT to an unreadable account: 451 4.3.0 ({code} {text})")
    code, _ = s.rcpt("nobody@localhost")
    check(code == 550, "RCPT to a missing account: still 550")
with smtplib.SMTP("127.0.0.1", home.submission_port, timeout=10) as s:
    try:
        s.login("carol", "pw")
        check(False, "AUTH as an unreadable account refused")
    except smtplib.SMTPAuthenticationError as e:
        check(e.smtp_code == 454, f"AUTH as an unreadable account: 454, temporary ({e.smtp_code})")
p = poplib.POP3("127.0.0.1", home.pop_port, timeout=10)
p.user("carol")
try:
    p.pass_("pw")
    check(False, "POP3 login of an unreadable account refused")
except poplib.error_proto as e:
    check(str(e).startswith("b'-ERR [SYS/TEMP]"), f"POP3 login: -ERR [SYS/TEMP] ({e})")
r = subprocess.run([CLI, "--home", home.path, "account", "create", "carol", "pw"], capture_output=True, text=True,
                   timeout=30)
check(r.returncode != 0 and "already exists" not in r.stderr and "carol" in r.stderr,
      f"account create: the fault is named ({r.stderr.strip()})")
notice = os.path.join(home.path, "notice.txt")
with open(notice, "w") as f:
    f.write("Maintenance\nTonight.\n")
r = subprocess.run([CLI, "--home", home.path, "account", "list"], capture_output=True, text=True, timeout=30)
check(r.returncode == 1 and "carol" in r.stderr and "alice\n" in r.stdout and "bob\n" in r.stdout,
      f"account list: the unreadable account is named, the others listed ({r.stderr.strip()})")
bob_before = count("bob")
r = subprocess.run([CLI, "--home", home.path, "notify", notice], capture_output=True, text=True, timeout=30)
check(r.returncode == 1 and "not delivered to carol" in r.stderr and count("bob") == bob_before + 1,
      f"notify: the unreadable account is reported, the others served ({r.stderr.strip()})")
os.unlink(loop)
srv.stop()
