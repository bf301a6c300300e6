"""DSN (RFC 3461), SMTPUTF8 (RFC 6531) and def/aliases.def end to end, with
real peers on loopback: dnsmasq (MX records), Postfix's smtp-sink (with and
without DSN; it never offers SMTPUTF8), python's smtplib as the client, a
second wizmail-server as a peer that offers SMTPUTF8, and the real
wizmail-server. Every process is started here on free ports and killed at
exit."""
import glob, os, shutil, smtplib, socket, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402
import peers  # noqa: E402
from harness import Home, Server, check  # noqa: E402
from peers import CHECK_DSN, WIZMAIL  # noqa: E402

for tool in peers.missing_tools():
    print(f"1..0 # SKIP {tool} not installed (scripts/install-deps)")
    sys.exit(77)

_homes = []


def wait_for(cond, what, timeout=20):
    return harness.wait_for(cond, what, timeout, _homes)


def port_state(port, up):
    return harness.port_open(port) == up


tmp = tempfile.mkdtemp(prefix="wizmail-ext-")
# büro.test, looked up in its A-label form
dnsmasq, dns_port = peers.start_dnsmasq(tmp, "--mx-host=xn--bro-hoa.test,mx.example.test,10")
mta = peers.Sink(tmp)
peer_port, dump, dumped = mta.port, mta.dump, mta.dumped
check(dnsmasq.poll() is None, "dnsmasq runs")


def sink(*extra):
    p = mta.start(*extra)
    wait_for(lambda: port_state(peer_port, True), "smtp-sink listens")
    return p


def stop_sink(p):
    p.kill()
    p.wait()
    wait_for(lambda: port_state(peer_port, False), "smtp-sink is gone")


def dumped_with(text):
    return [m for m in dumped() if text.encode() in m]


def queued(home):
    return sum(len(os.listdir(os.path.join(home.path, "resendmail", s))) for s in ("incoming", "active", "deferred"))


def dsn_ok(path, *args):
    r = subprocess.run([sys.executable, CHECK_DSN, path, *args], capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def newest(home, account):
    d = home.new_dir(account)
    names = sorted(os.listdir(d), key=lambda n: os.stat(os.path.join(d, n)).st_mtime_ns)
    return os.path.join(d, names[-1])


def message(subject, sender="alice@localhost", extra=""):
    return (f"From: <{sender}>\r\nSubject: {subject}\r\n{extra}\r\nbody of {subject}\r\n").encode()


def client(home, login=True):
    s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
    s.ehlo("client.test")
    if login:
        s.login("alice", "secret")
    return s


# --- Home A: MX routing to smtp-sink; relaying needs AUTH (the default
# send_permits_only_smtp_auth=1); aliases.
home = Home(smtp_extra=f"dns_servers=127.0.0.1:{dns_port}\noutbound_port={peer_port}\nresend_scan_interval=1\n"
                       "delay_warning_time=4\n",
            accounts=(("alice", "secret"), ("bob", "pw"), ("postmaster", "pm")))
_homes.append(home)
with open(os.path.join(home.path, "def", "aliases.def"), "w") as f:
    f.write("sales@localhost   alice, bob\n"
            "fwd@localhost     carol@example.test\n"
            "@localhost        bob\n"
            "j\u00f6rg@localhost    alice\n")
server = Server(home)
peer = sink()
idle = {}

# 1. A peer that offers DSN gets RET/ENVID/NOTIFY/ORCPT; we send no notice ourselves.
s = client(home)
s.sendmail("alice@localhost", ["x@example.test"], message("dsn-pass"),
           mail_options=["RET=HDRS", "ENVID=QQ+2B123"], rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;X@example.test"])
s.quit()
wait_for(lambda: dumped_with("Subject: dsn-pass"), "the message reached the DSN peer")
m = dumped_with("Subject: dsn-pass")[0]
check(b"X-Mail-Args: <alice@localhost>" in m and b"RET=HDRS" in m and b"ENVID=QQ+2B123" in m,
      "MAIL carried RET and ENVID (xtext as received): " + repr(m[:300]))
check(b"X-Rcpt-Args: <x@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;X@example.test" in m,
      "RCPT carried NOTIFY and ORCPT")
wait_for(lambda: queued(home) == 0, "the queue is empty")
check(len(home.messages("alice")) == 0, "a DSN peer reports success itself: no notice from us")

# 2. A peer without DSN (-N): NOTIFY=SUCCESS gets a "relayed" notice (RFC 3461 §5.2.2).
stop_sink(peer)
peer = sink("-N")
s = client(home)
s.sendmail("alice@localhost", ["y@example.test"], message("relayed"),
           mail_options=["ENVID=env-2"], rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;y@example.test"])
s.quit()
wait_for(lambda: len(home.messages("alice")) == 1, "the relayed notice reached the sender")
m = dumped_with("Subject: relayed")[0]
check(b"NOTIFY" not in m and b"ENVID" not in m, "nothing DSN-ish went to the peer that does not offer DSN")
ok, why = dsn_ok(newest(home, "alice"), "alice@localhost", "y@example.test=2.0.0", "Subject: relayed",
                 "--action", "relayed", "--envid", "env-2", "--orcpt", "y@example.test=rfc822; y@example.test",
                 "--absent", "body of relayed")
check(ok, "python's email reads the 'relayed' notice: " + why)

# 3. Failures: NOTIFY=NEVER → no notice (postmaster still gets a copy);
#    NOTIFY=FAILURE with RET=FULL → the whole message comes back.
stop_sink(peer)
peer = sink("-f", "RCPT")
pm_before = len(home.messages("postmaster"))
s = client(home)
s.sendmail("alice@localhost", ["never@example.test"], message("never"), rcpt_options=["NOTIFY=NEVER"])
s.quit()
wait_for(lambda: len(home.messages("postmaster")) == pm_before + 1, "postmaster got the failure")
wait_for(lambda: queued(home) == 0, "the failed message left the queue")
check(len(home.messages("alice")) == 1, "NOTIFY=NEVER: the sender gets no failure notice")
s = client(home)
s.sendmail("alice@localhost", ["full@example.test"], message("ret-full"), mail_options=["RET=FULL"],
           rcpt_options=["NOTIFY=FAILURE"])
s.quit()
wait_for(lambda: len(home.messages("alice")) == 2, "the failure notice reached the sender")
ok, why = dsn_ok(newest(home, "alice"), "alice@localhost", "full@example.test=5.3.0", "body of ret-full", "--full")
check(ok, "RET=FULL returned the whole message: " + why)
pm = newest(home, "postmaster")
ok, why = dsn_ok(pm, "alice@localhost", "full@example.test=5.3.0", "Subject: ret-full", "--absent", "body of ret-full")
check(ok, "postmaster's copy has the headers only: " + why)

# 4. Local delivery with NOTIFY=SUCCESS: a "delivered" notice, before the 250.
s = client(home, login=False)
s.sendmail("alice@localhost", ["bob@localhost"], message("local-success"), rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
s.quit()
check(len(home.messages("alice")) == 3, "the delivered notice is there when the 250 is")
ok, why = dsn_ok(newest(home, "alice"), "alice@localhost", "bob@localhost=2.0.0", "Subject: local-success",
                 "--action", "delivered")
check(ok, "python's email reads the 'delivered' notice: " + why)

# 5. Aliases: several targets, a catch-all, and a remote target that needs
#    no relay permission (like Postfix); bad addresses stay 550.
stop_sink(peer)
peer = sink()
alice_n, bob_n = len(home.messages("alice")), len(home.messages("bob"))
s = client(home, login=False)
refused = s.sendmail("someone@elsewhere.test", ["sales@localhost", "whoever@localhost", "fwd@localhost"],
                     message("alias-mail", "someone@elsewhere.test"))
check(refused == {}, "alias, catch-all and remote alias target accepted without AUTH")
try:
    s.sendmail("someone@elsewhere.test", ["z@example.test"], message("no-relay", "someone@elsewhere.test"))
    check(False, "relaying without AUTH must be refused")
except smtplib.SMTPRecipientsRefused as e:
    check(e.recipients["z@example.test"][0] == 554, "…while relaying itself is still refused (554)")
s.quit()
check(len(home.messages("alice")) == alice_n + 1, "sales@ reached alice")
check(len(home.messages("bob")) == bob_n + 1, "sales@ and the catch-all reached bob once")
wait_for(lambda: dumped_with("Subject: alias-mail"), "fwd@ was relayed to its remote target")
check(b"X-Rcpt-Args: <carol@example.test>" in dumped_with("Subject: alias-mail")[0], "…as carol@example.test")

# 6. `wizmail alias add` applies to the running server at once.
r = subprocess.run([WIZMAIL, "--home", home.path, "alias", "add", "new@localhost", "alice"],
                   capture_output=True, text=True)
check(r.returncode == 0 and "reloaded" in r.stdout, "alias add reloaded the server: " + r.stdout + r.stderr)
alice_n = len(home.messages("alice"))
s = client(home, login=False)
s.sendmail("someone@elsewhere.test", ["new@localhost"], message("new-alias", "someone@elsewhere.test"))
s.quit()
check(len(home.messages("alice")) == alice_n + 1, "the new alias (not the catch-all) took the mail")
r = subprocess.run([WIZMAIL, "--home", home.path, "alias", "add", "x@elsewhere.test", "alice"],
                   capture_output=True, text=True)
check(r.returncode != 0 and "not a local domain" in r.stderr, "an alias outside the local domains is refused")

# 7. SMTPUTF8: a UTF-8 sender and alias, UTF-8 header fields; refused without
#    the parameter; invalid UTF-8 refused.
alice_n = len(home.messages("alice"))
s = client(home)
subject = "Gr\u00fc\u00dfe"
body = f"From: J\u00f6rg <j\u00f6rg@b\u00fcro.test>\r\nSubject: {subject}\r\n\r\nutf8 body\r\n".encode()
s.sendmail("j\u00f6rg@b\u00fcro.test", ["J\u00f6rg@LOCALHOST"], body, mail_options=["SMTPUTF8"])
s.quit()
check(len(home.messages("alice")) == alice_n + 1, "the UTF-8 alias reached alice")
got = home.messages("alice")
got = [m for m in got if "Gr\u00fc\u00dfe".encode() in m][0]
check("Subject: Gr\u00fc\u00dfe".encode() in got and b"with UTF8SMTPA" in got,
      "UTF-8 header fields stored intact; Received says UTF8SMTPA")
raw = socket.create_connection(("127.0.0.1", home.port), 5)
raw.recv(512)
raw.sendall(b"EHLO c\r\n")
ehlo = b""
while not ehlo.endswith(b"250 ENHANCEDSTATUSCODES\r\n"):
    ehlo += raw.recv(4096)
check(b"250-DSN\r\n" in ehlo and b"250-SMTPUTF8\r\n" in ehlo, "EHLO offers DSN and SMTPUTF8")
raw.sendall(b"MAIL FROM:<j\xf6rg@example.test> SMTPUTF8\r\n")
reply = raw.recv(512)
check(reply.startswith(b"500 5.5.2"), "Latin-1 in MAIL is refused: " + repr(reply))
raw.sendall(b"MAIL FROM:<j\xc3\xb6rg@example.test>\r\n")
reply = raw.recv(512)
check(reply.startswith(b"553 5.6.7"), "UTF-8 without SMTPUTF8: 553 5.6.7: " + repr(reply))
raw.sendall(b"QUIT\r\n")
raw.close()

# 8. SMTPUTF8 to a peer that lacks it: U-label domain alone → sent with the
#    A-label; a UTF-8 local part → bounced 5.6.7, never mangled.
alice_n = len(home.messages("alice"))
s = client(home)
s.sendmail("alice@localhost", ["bob@b\u00fcro.test"], message("alabel"), mail_options=["SMTPUTF8"])
s.sendmail("alice@localhost", ["\u7530\u4e2d@example.test"], message("needs-utf8"), mail_options=["SMTPUTF8"])
s.quit()
wait_for(lambda: dumped_with("Subject: alabel"), "the A-label recipient reached the peer")
m = dumped_with("Subject: alabel")[0]
check(b"X-Rcpt-Args: <bob@xn--bro-hoa.test>" in m and b"SMTPUTF8" not in m,
      "…as bob@xn--bro-hoa.test, without SMTPUTF8")
wait_for(lambda: len(home.messages("alice")) == alice_n + 1, "the UTF-8 local part bounced")
check(not dumped_with("Subject: needs-utf8"), "nothing mangled reached the peer")
ok, why = dsn_ok(newest(home, "alice"), "alice@localhost", "\\x{7530}\\x{4E2D}@example.test=5.6.7",
                 "Subject: needs-utf8")
check(ok, "the bounce says 5.6.7: " + why)

# 9. A peer that offers SMTPUTF8 and DSN (another wizmail, as smart host)
#    gets both; its "delivered" notice (alias -> account, ORCPT = the
#    address it was given) comes back through the first server.
c_home = Home(smtp_extra="resend_scan_interval=1\n")
b_home = Home(smtp_extra=f"smart_host=127.0.0.1:{c_home.port}\nresend_scan_interval=1\n",
              accounts=(("frank", "pw"), ("postmaster", "pm")))
_homes += [b_home, c_home]
with open(os.path.join(c_home.path, "def", "smtpenv.dat"), "a") as f:  # each is the other's smart host
    f.write(f"smart_host=127.0.0.1:{b_home.port}\n")
with open(os.path.join(b_home.path, "def", "wiz98msenv.dat"), "w") as f:
    f.write("domain=remote.test\n")
with open(os.path.join(b_home.path, "def", "aliases.def"), "w") as f:
    f.write("\u7530\u4e2d@remote.test  frank\n")
b_server = Server(b_home)
c_server = Server(c_home)
s = client(c_home)
s.sendmail("alice@localhost", ["\u7530\u4e2d@remote.test"], body, mail_options=["SMTPUTF8", "ENVID=round-trip"],
           rcpt_options=["NOTIFY=SUCCESS"])
s.quit()
wait_for(lambda: len(b_home.messages("frank")) == 1, "the UTF-8 recipient went through the SMTPUTF8 peer")
check(subject.encode() in b_home.messages("frank")[0], "…with its UTF-8 header fields")
wait_for(lambda: len(c_home.messages("alice")) == 1, "the peer's 'delivered' notice came back to the sender")
check(queued(c_home) == 0, "…and nothing is left in the first server's queue")
ok, why = dsn_ok(newest(c_home, "alice"), "alice@localhost", "frank@remote.test=2.0.0", "Subject: " + subject,
                 "--action", "delivered", "--envid", "round-trip",
                 "--orcpt", "frank@remote.test=utf-8; \\x{7530}\\x{4E2D}@remote.test")
check(ok, "one 'delivered' notice (none 'relayed' from us), ENVID and the alias as Original-Recipient: " + why)
b_server.stop()
c_server.stop()

# 9b. swaks (no DSN options of its own): the alias and the SMTPUTF8 refusal.
if shutil.which("swaks"):
    bob_n = len(home.messages("bob"))
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{home.port}", "--from", "someone@elsewhere.test",
                        "--to", "sales@localhost", "--header", "Subject: via-swaks"], capture_output=True, text=True)
    check(r.returncode == 0 and len(home.messages("bob")) == bob_n + 1, "swaks to the alias: delivered " + r.stdout[-300:])
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{home.port}", "--from", "j\u00f6rg@example.test",
                        "--to", "alice@localhost"], capture_output=True, text=True)
    check(r.returncode != 0 and "553 5.6.7" in r.stdout, "swaks with a UTF-8 sender and no SMTPUTF8: 553 5.6.7")
else:
    check(False, "swaks is installed (scripts/packages.txt)")

# 9c. Bad DSN values from a real client: 501 5.5.4.
s = client(home)
try:
    s.sendmail("alice@localhost", ["bob@localhost"], message("bad-ret"), mail_options=["RET=BODY"])
    check(False, "RET=BODY must be refused")
except smtplib.SMTPSenderRefused as e:
    check(e.smtp_code == 501 and b"5.5.4" in e.smtp_error, "RET=BODY: 501 5.5.4")
s.rset()
try:
    s.sendmail("alice@localhost", ["bob@localhost"], message("bad-notify"), rcpt_options=["NOTIFY=NEVER,SUCCESS"])
    check(False, "NOTIFY=NEVER,SUCCESS must be refused")
except smtplib.SMTPRecipientsRefused as e:
    code, text = e.recipients["bob@localhost"]
    check(code == 501 and b"5.5.4" in text, "NOTIFY=NEVER,SUCCESS: 501 5.5.4")
s.quit()

# 10. Delay notices: only for NOTIFY=DELAY, once, after delay_warning_time.
stop_sink(peer)
alice_n = len(home.messages("alice"))
s = client(home)
s.sendmail("alice@localhost", ["slow@example.test"], message("delayed"), rcpt_options=["NOTIFY=DELAY,FAILURE"])
s.sendmail("alice@localhost", ["quiet@example.test"], message("quiet"))
s.quit()
deferred = os.path.join(home.path, "resendmail", "deferred")
wait_for(lambda: len(os.listdir(deferred)) == 2, "peer down: both messages deferred")
check(len(home.messages("alice")) == alice_n, "no delay notice before delay_warning_time")
server.stop()
for name in os.listdir(deferred):  # five hours pass
    p = os.path.join(deferred, name)
    lines = open(p).read().split("\n")
    lines = [("created %d" % (int(l.split()[1]) - 5 * 3600)) if l.startswith("created ") else l for l in lines]
    open(p, "w").write("\n".join(lines))
server = Server(home)
subprocess.run([WIZMAIL, "--home", home.path, "queue", "flush"], capture_output=True)
wait_for(lambda: len(home.messages("alice")) == alice_n + 1, "a delay notice for the message that asked")
ok, why = dsn_ok(newest(home, "alice"), "alice@localhost", "slow@example.test=4.0.0", "Subject: delayed",
                 "--action", "delayed")
check(ok, "python's email reads the delay notice: " + why)
subprocess.run([WIZMAIL, "--home", home.path, "queue", "flush"], capture_output=True)
def delay_recorded():
    # The runner may move an entry to active/ between the listing and the
    # read (after "queue flush"): not there now, look again.
    try:
        texts = [open(os.path.join(deferred, n)).read() for n in os.listdir(deferred)]
    except FileNotFoundError:
        return False
    return all("delay-notified" in t or "slow" not in t for t in texts)


wait_for(delay_recorded, "the notice is recorded in the queue entry")
r = subprocess.run([WIZMAIL, "--home", home.path, "queue", "list", "--json"], capture_output=True, text=True)
check(r.returncode == 0 and "slow@example.test" in r.stdout, "queue list still reads the entry")
log = os.path.join(home.path, "var", "log", "server.log")
rounds = open(log, errors="replace").read().count("slow@example.test> deferred")
subprocess.run([WIZMAIL, "--home", home.path, "queue", "flush"], capture_output=True)
wait_for(lambda: open(log, errors="replace").read().count("slow@example.test> deferred") > rounds,
         "another round for the delayed message ran")
check(len(home.messages("alice")) == alice_n + 1, "one delay notice only; none for the one that did not ask")
server.stop()

# 11. Final delivery and the delivery agent. Delivered-To names the address
#     as it arrived (the alias, the catch-all address) on the plain path and
#     the agent's (an account with a hook); success notices for copies the
#     agent stores come from the agent once stored (one, never two); the
#     agent's failure notices (a refused list post) honour NOTIFY, ENVID, ORCPT.
d_home = Home(accounts=(("alice", "secret"), ("carol", "pw"), ("dave", "pw"), ("postmaster", "pm")))
_homes.append(d_home)
with open(os.path.join(d_home.path, "def", "aliases.def"), "w") as f:
    f.write("team@localhost  alice, carol\n@localhost  dave\n")
with open(os.path.join(d_home.path, "mailbox", "carol", "exec.def"), "w") as f:
    f.write("bin=/bin/true\n")  # carol's mail goes through the delivery agent
for name in ("ml", "ml2"):
    r = subprocess.run([WIZMAIL, "--home", d_home.path, "ml", "create", name, "pw"], capture_output=True, text=True)
    check(r.returncode == 0, "ml create " + name + ": " + r.stderr)
with open(os.path.join(d_home.path, "mailbox", "ml", "ml_member.csv"), "w") as f:
    f.write("dave@localhost\n")
with open(os.path.join(d_home.path, "mailbox", "ml2", "config.def"), "w") as f:
    f.write("mailing_list_public_level=0\n")  # members only: alice's posts are refused
d_server = Server(d_home)
spool = os.path.join(d_home.path, "var", "spool", "agent")


def spool_empty():
    return all(not os.path.isdir(os.path.join(spool, st)) or not os.listdir(os.path.join(spool, st))
               for st in ("incoming", "active", "deferred"))


def top_fields(raw):
    return raw.split(b"\r\n")[:2]


s = client(d_home, login=False)
s.sendmail("someone@elsewhere.test", ["team@localhost"], message("to-team", "someone@elsewhere.test"))
s.sendmail("someone@elsewhere.test", ["whoever@localhost"], message("to-catchall", "someone@elsewhere.test"))
s.quit()
wait_for(lambda: len(d_home.messages("carol")) == 1 and spool_empty(), "the agent stored carol's copy")
want = [b"Return-Path: <someone@elsewhere.test>", b"Delivered-To: team@localhost"]
check(top_fields(d_home.messages("alice")[0]) == want, "plain copy: Delivered-To names the alias: " +
      repr(top_fields(d_home.messages("alice")[0])))
check(top_fields(d_home.messages("carol")[0]) == want, "agent's copy: Delivered-To names the alias: " +
      repr(top_fields(d_home.messages("carol")[0])))
check(top_fields(d_home.messages("dave")[0]) ==
      [b"Return-Path: <someone@elsewhere.test>", b"Delivered-To: whoever@localhost"],
      "catch-all copy: Delivered-To names the address as it arrived")

s = client(d_home)
s.sendmail("alice@localhost", ["carol@localhost"], message("carol-success"), mail_options=["ENVID=c-1"],
           rcpt_options=["NOTIFY=SUCCESS"])
s.sendmail("alice@localhost", ["ml@localhost"], message("list-success"), rcpt_options=["NOTIFY=SUCCESS"])
s.quit()
wait_for(lambda: len(d_home.messages("alice")) == 3 and len(d_home.messages("dave")) == 2 and spool_empty(),
         "carol's copy stored, the list post distributed, two success notices")
notices = sorted(newest_n for newest_n in glob.glob(os.path.join(d_home.new_dir("alice"), "*"))
                 if b"Successful Mail Delivery Report" in open(newest_n, "rb").read())
check(len(notices) == 2, "exactly one 'delivered' notice each (none from the commit for agent copies)")
by_subject = {("carol" if b"carol-success" in open(n, "rb").read() else "list"): n for n in notices}
ok, why = dsn_ok(by_subject["carol"], "alice@localhost", "carol@localhost=2.0.0", "Subject: carol-success",
                 "--action", "delivered", "--envid", "c-1")
check(ok, "the agent's 'delivered' notice for carol: " + why)
ok, why = dsn_ok(by_subject["list"], "alice@localhost", "ml@localhost=2.0.0", "Subject: list-success",
                 "--action", "delivered")
check(ok, "the agent's 'delivered' notice for the list post: " + why)

s = client(d_home)
s.sendmail("alice@localhost", ["ml2@localhost"], message("refused-quietly"), rcpt_options=["NOTIFY=NEVER"])
s.sendmail("alice@localhost", ["ml2@localhost"], message("refused-loudly"), mail_options=["ENVID=r-2", "RET=FULL"],
           rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;lists@localhost"])
s.quit()
log = os.path.join(d_home.path, "var", "log", "server.log")
wait_for(lambda: open(log, errors="replace").read().count("not distributed (not permitted)") == 2 and spool_empty(),
         "both posts refused by ml2")
wait_for(lambda: len(d_home.messages("alice")) == 4, "one refusal notice")
ok, why = dsn_ok(newest(d_home, "alice"), "alice@localhost", "ml2@localhost=5.7.1", "body of refused-loudly",
                 "--envid", "r-2", "--orcpt", "ml2@localhost=rfc822; lists@localhost", "--full")
check(ok, "the refusal honours ENVID, ORCPT and RET=FULL; NOTIFY=NEVER got none: " + why)
check("refusal notice not sent: NOTIFY=NEVER" in open(log, errors="replace").read(), "…and the log says why")
check(not [m for m in d_home.messages("alice") if b"Successful" in m and b"refused-loudly" in m],
      "a post the list refused got no 'delivered' notice (the commit does not report copies the agent takes)")
d_server.stop()
print("all DSN / SMTPUTF8 / alias end-to-end checks passed")
