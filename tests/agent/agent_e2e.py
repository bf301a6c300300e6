#!/usr/bin/env python3
"""The delivery agent as a user meets it: the real wizmail-server, the real
wizmail-sendmail started by hooks, smtplib and poplib as the clients, and the
manual's own recipes copied verbatim (issue 14, items 2, 3, 7, 11, 14).

  final headers   every stored copy starts with Return-Path and Delivered-To
                  (SMTP, the submit socket, lists, hooks); a forged
                  Return-Path is dropped; read back over POP3
  forwarding      the manual's exec.def recipe (bin=sendmail FROM TO): refused
                  with a hint without stdin=1, forwards once with it, and a
                  forwarding loop between two accounts ends
  auto-reply      the manual's reply.def recipe: the reply says
                  Auto-Submitted: auto-replied, In-Reply-To, References
  notices         a refused list post, a member over quota, a failed forward,
                  a rewritten copy over quota: an RFC 3464 notice, never to <>
  permissions     wizmail-sendmail as another user: exit 77 naming the folder
                  or the socket's group; a member of that group may submit
Run one test: agent_e2e.py test_forwarding_recipe"""
import atexit, email, email.header, email.policy, os, poplib, shutil, smtplib, stat, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402

BUILD = harness.BUILD
SENDMAIL_DIR = os.path.join(BUILD, "apps", "wizmail-sendmail")
SENDMAIL = os.path.join(SENDMAIL_DIR, "wizmail-sendmail")
DOMAIN = "example.test"
ACCOUNTS = ("alice", "bob", "carol", "dave", "erin", "fwd1", "listadmin", "postmaster", "nobodyhome")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


CURRENT = []  # the running Env, for its log when a wait fails


def wait_for(pred, what, limit=60):
    """Wait for an observable state (a deadline, not a timing assertion)."""
    if not harness.poll(pred, limit):
        if CURRENT:
            print(CURRENT[-1].log()[-4000:], file=sys.stderr)
        raise AssertionError("never happened: " + what)


class Env:
    """A home with the accounts above at example.test and a running server
    whose hooks find wizmail-sendmail on PATH."""

    def __init__(self, extra_server=""):
        # Loopback may relay: one test sends to a remote recipient as well.
        self.home = harness.Home(accounts=[(a, "pw-" + a) for a in ACCOUNTS],
                                 smtp_extra="address_permits_relay=127.0.0.0/8\n")
        self.path = self.home.path
        with open(os.path.join(self.path, "def", "wiz98msenv.dat"), "w") as f:
            f.write(f"domain={DOMAIN}\n" + extra_server)
        os.environ["PATH"] = SENDMAIL_DIR + os.pathsep + os.environ.get("PATH", "")
        self.server = harness.Server(self.home)
        CURRENT.append(self)
        # The listeners answer before the local sockets are bound.
        wait_for(lambda: os.path.exists(os.path.join(self.path, "var", "run", "submit.sock")), "the submit socket")

    def stop(self):
        self.server.stop()

    def account(self, a):
        return os.path.join(self.path, "mailbox", a)

    def write(self, account, name, text):
        with open(os.path.join(self.account(account), name), "w", encoding="utf-8") as f:
            f.write(text)

    def files(self, account):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.account(account), sub)
            out += [os.path.join(d, n) for n in os.listdir(d)]
        return sorted(out, key=os.path.getmtime)

    def count(self, account):
        return len(self.files(account))

    def messages(self, account):
        return [open(p, "rb").read() for p in self.files(account)]

    def log(self):
        try:
            return open(os.path.join(self.path, "var", "log", "server.log"), encoding="utf-8",
                        errors="replace").read()
        except OSError:
            return ""

    def spool_empty(self):
        spool = os.path.join(self.path, "var", "spool", "agent")
        for state in ("incoming", "active", "deferred"):
            d = os.path.join(spool, state)
            if os.path.isdir(d) and os.listdir(d):
                return False
        return True

    def smtp(self, sender, rcpts, data):
        with smtplib.SMTP("127.0.0.1", self.home.port, timeout=20) as s:
            refused = s.sendmail(sender, rcpts, data)
            check(refused == {}, f"SMTP accepted ({refused})")

    def pop3(self, account):
        """Every message of the account as a POP3 client gets it (RETR)."""
        p = poplib.POP3("127.0.0.1", self.home.pop_port, timeout=20)
        p.user(account)
        p.pass_("pw-" + account)
        out = []
        for i in range(1, len(p.list()[1]) + 1):
            out.append(b"\r\n".join(p.retr(i)[1]) + b"\r\n")
        p.quit()
        return out

    def hook_exits(self, label):
        return [line for line in self.log().splitlines() if f"hook {label}[" in line and (": exit " in line or
                                                                                            ": killed " in line)]


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def top_fields(raw, n=2):
    """The first n header lines, as written."""
    return raw.split(b"\r\n")[:n]


# ---------------------------------------------------------------- item 3

def getmail_return_path(env, account):
    """The Return-Path of each message getmail6 stores when it fetches the
    account over POP3 (sorted); None when getmail or setpriv is missing
    (getmail refuses to deliver as root: it runs as nobody)."""
    if not shutil.which("getmail") or not shutil.which("setpriv") or os.geteuid() != 0:
        print("skip getmail: getmail6, setpriv and root needed")
        return None
    g = tempfile.mkdtemp(prefix="wizmail-getmail-")
    try:
        md = os.path.join(g, "Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        with open(os.path.join(g, "getmailrc"), "w") as f:
            f.write(f"[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\nport = {env.home.pop_port}\n"
                    f"username = {account}\npassword = pw-{account}\n\n[destination]\ntype = Maildir\n"
                    f"path = {md}/\n\n[options]\ndelete = false\nread_all = true\nverbose = 0\n")
        for root, dirs, files in os.walk(g):
            for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                os.chown(n, 65534, 65534)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "getmail", "--getmaildir",
                            g, "--rcfile", "getmailrc"], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, HOME=g))
        check(r.returncode == 0, (r.stdout, r.stderr))
        out = []
        for n in os.listdir(os.path.join(md, "new")):
            first = open(os.path.join(md, "new", n), "rb").read().split(b"\n", 1)[0].rstrip(b"\r")
            check(first.startswith(b"Return-Path: "), first)
            out.append(first[len(b"Return-Path: "):])
        return sorted(out)
    finally:
        shutil.rmtree(g, ignore_errors=True)


def test_final_headers():
    env = Env()
    try:
        # One local recipient over SMTP (the hot path), a forged Return-Path.
        env.smtp("someone@remote.example", ["alice@example.test"],
                 "Return-Path: <forged@evil.example>\r\nSubject: one\r\n\r\nbody\r\n")
        # Three recipients, one of them remote: each local copy its own.
        env.smtp("someone@remote.example", ["bob@example.test", "Carol@EXAMPLE.TEST", "far@remote.example"],
                 "Subject: three\r\n\r\nbody\r\n")
        # The null sender.
        env.smtp("", ["dave@example.test"], "Subject: bounce\r\n\r\nbody\r\n")
        # The submit socket.
        r = subprocess.run([SENDMAIL, "--home", env.path, "-i", "-f", "erin@example.test", "alice@example.test"],
                           input=b"Subject: local\n\nbody\n", capture_output=True, timeout=60)
        check(r.returncode == 0, r.stderr)
        # getmail (as its users met it: the sender was "<unknown>") takes the
        # sender from the Return-Path of what it retrieves.
        getmail_sender = getmail_return_path(env, "alice")
        if getmail_sender is not None:
            check(getmail_sender == [b"<erin@example.test>", b"<someone@remote.example>"], getmail_sender)
        got = env.pop3("alice")
        check(len(got) == 2, f"alice has 2 messages ({len(got)})")
        one = [m for m in got if b"Subject: one" in m][0]
        check(top_fields(one) == [b"Return-Path: <someone@remote.example>", b"Delivered-To: alice@example.test"],
              top_fields(one))
        check(b"forged@evil.example" not in one, "the forged Return-Path is gone")
        check(parse(one)["Return-Path"] == "<someone@remote.example>", "Return-Path as a client reads it")
        local = [m for m in got if b"Subject: local" in m][0]
        check(top_fields(local) == [b"Return-Path: <erin@example.test>", b"Delivered-To: alice@example.test"],
              top_fields(local))
        b = env.pop3("bob")[0]
        c = env.pop3("carol")[0]
        check(top_fields(b) == [b"Return-Path: <someone@remote.example>", b"Delivered-To: bob@example.test"],
              top_fields(b))
        check(top_fields(c) == [b"Return-Path: <someone@remote.example>", b"Delivered-To: Carol@example.test"],
              top_fields(c))
        check(b.split(b"\r\n", 2)[2] == c.split(b"\r\n", 2)[2], "the rest of both copies is the same")
        d = env.pop3("dave")[0]
        check(top_fields(d) == [b"Return-Path: <>", b"Delivered-To: dave@example.test"], top_fields(d))
        # The relayed copy carries none of it.
        q = os.path.join(env.path, "resendmail", "data")
        data = [open(os.path.join(q, n), "rb").read() for n in os.listdir(q)]
        check(len(data) == 1 and data[0].startswith(b"Received: ") and b"Delivered-To" not in data[0],
              data[0][:200] if data else "no queue entry")

        # A list copy to a member with hooks goes through the agent: it has
        # the list's Return-Path like every other member's copy.
        r = subprocess.run([os.path.join(BUILD, "apps", "wizmail", "wizmail"), "--home", env.path, "ml", "create",
                            "ml", "pw", "listadmin@example.test"], capture_output=True, text=True)
        check(r.returncode == 0, r.stderr)
        with open(os.path.join(env.account("ml"), "ml_member.csv"), "w") as f:
            f.write("bob@example.test\ncarol@example.test\n")
        env.write("carol", "exec.def", "bin=/bin/true\n")
        env.smtp("bob@example.test", ["ml@example.test"], "Subject: post\r\n\r\nbody\r\n")
        wait_for(lambda: env.count("bob") == 2 and env.count("carol") == 2 and env.spool_empty(), "list copies")
        for acct in ("bob", "carol"):
            m = [x for x in env.messages(acct) if b"List-Id" in x][0]
            check(m.startswith(b"Return-Path: <") and b"Delivered-To: " + acct.encode() + b"@example.test" in m,
                  (acct, m[:200]))
            check(m.count(b"Return-Path:") == 1 and m.count(b"Delivered-To:") == 1, (acct, m[:300]))
    finally:
        env.stop()


# ---------------------------------------------------------------- item 7

RECIPE = "// sendmail 差出人メールアドレス 宛先メールアドレス\nbin=wizmail-sendmail fwd1@example.test bob@example.test\n"


def test_forwarding_recipe():
    env = Env()
    try:
        # 1. Copied verbatim: the hook gets no mail on its standard input.
        #    The tool refuses the empty message and says what to write; no
        #    mail is made, nothing loops.
        env.write("fwd1", "exec.def", RECIPE)
        env.smtp("someone@remote.example", ["fwd1@example.test"], "Subject: first\r\n\r\nbody 1\r\n")
        wait_for(lambda: len(env.hook_exits("fwd1/exec.def")) == 1, "the hook ran")
        check(": exit 66" in env.hook_exits("fwd1/exec.def")[0], env.hook_exits("fwd1/exec.def"))
        check("stdin=1" in env.log(), "the log says to add stdin=1")
        check(env.count("fwd1") == 1 and env.count("bob") == 0, (env.count("fwd1"), env.count("bob")))
        # The agent removes the spool entry just after the hook's exit is
        # logged: wait for it, bounded (an entry kept for a retry stays).
        wait_for(env.spool_empty, "nothing else in the agent's spool", limit=10)

        # 2. With stdin=1 (the migration note): forwarded once, as is.
        env.write("fwd1", "exec.def", RECIPE + "stdin=1\n")
        env.smtp("someone@remote.example", ["fwd1@example.test"], "Subject: second\r\n\r\nbody 2\r\n.dot\r\n")
        wait_for(lambda: len(env.hook_exits("fwd1/exec.def")) == 2 and env.count("bob") == 1 and env.spool_empty(),
                 "forwarded")
        check(": exit 0" in env.hook_exits("fwd1/exec.def")[1], env.hook_exits("fwd1/exec.def"))
        fwd = env.messages("bob")[0]
        check(top_fields(fwd) == [b"Return-Path: <fwd1@example.test>", b"Delivered-To: bob@example.test"],
              top_fields(fwd))
        check(b"Delivered-To: fwd1@example.test" in fwd and b"Subject: second" in fwd and b"\r\n.dot\r\n" in fwd,
              fwd)
        check(env.count("fwd1") == 2, env.count("fwd1"))

        # 3. bob forwards back the same way: fwd1 -> bob -> fwd1, where the
        #    Delivered-To of fwd1 stops every hook of fwd1.
        env.write("bob", "exec.def", "bin=wizmail-sendmail bob@example.test fwd1@example.test\nstdin=1\n")
        env.smtp("someone@remote.example", ["fwd1@example.test"], "Subject: third\r\n\r\nbody 3\r\n")
        wait_for(lambda: "fwd1/exec.def not run: the message was already delivered to fwd1@example.test (loop)"
                 in env.log() and env.spool_empty() and len(env.hook_exits("bob/exec.def")) == 1, "the loop ended")
        check(len(env.hook_exits("fwd1/exec.def")) == 3, env.hook_exits("fwd1/exec.def"))
        check(env.count("fwd1") == 4 and env.count("bob") == 2, (env.count("fwd1"), env.count("bob")))
    finally:
        env.stop()
    # Nothing ran after the loop guard: the counts are final.
    check(env.count("fwd1") == 4 and env.count("bob") == 2, "no more mail after the stop")


# ---------------------------------------------------------------- item 2

def test_auto_reply_recipe():
    env = Env()
    try:
        sab = os.path.join(env.account("alice"), "reply.sab")
        with open(sab, "w", encoding="utf-8") as f:
            f.write("ただいま旅行中です。\nメールありがとうございました。\n")
        once = os.path.join(env.account("alice"), "onlyonce.csv")
        env.write("alice", "reply.def", f"bin=wizmail-sendmail\nparam1=TO_ADDRESS\nparam2=FROM_ADDRESS\n"
                                        f"param3=-sb\nparam4={sab}\nparam5=-onlyonce\nparam6={once}\n")
        env.smtp("dave@example.test", ["alice@example.test"],
                 "From: dave@example.test\r\nMessage-ID: <orig-1@example.test>\r\n"
                 "References: <older@example.test>\r\nSubject: hi\r\n\r\nx\r\n")
        wait_for(lambda: env.count("dave") == 1, "the auto-reply")
        m = parse(env.messages("dave")[0])
        check(m["Auto-Submitted"] == "auto-replied", dict(m))
        check(m["In-Reply-To"] == "<orig-1@example.test>", m["In-Reply-To"])
        check(" ".join(m["References"].split()) == "<older@example.test> <orig-1@example.test>", m["References"])
        check(str(email.header.make_header(email.header.decode_header(m["Subject"]))) == "ただいま旅行中です。",
              m["Subject"])
        check(m["From"] == "alice@example.test" and m["Return-Path"] == "<alice@example.test>", dict(m))
        # wizmail-sendmail records the pair after its submission returns:
        # the reply can arrive first (seen under ASan).
        wait_for(lambda: os.path.exists(once) and open(once).read() == "alice@example.test,dave@example.test\n",
                 "the pair recorded in the -onlyonce file")
    finally:
        env.stop()


# ---------------------------------------------------------------- item 11

def notices(env, account):
    return [parse(m) for m in env.messages(account) if b"report-type=delivery-status" in m]


def test_notices_and_quotas():
    env = Env()
    wiz = os.path.join(BUILD, "apps", "wizmail", "wizmail")
    try:
        for name in ("ml", "ml2"):
            r = subprocess.run([wiz, "--home", env.path, "ml", "create", name, "pw"], capture_output=True, text=True)
            check(r.returncode == 0, r.stderr)
        with open(os.path.join(env.account("ml"), "ml.def"), "a") as f:
            f.write("return_path=listadmin@example.test\n")
        with open(os.path.join(env.account("ml"), "ml_member.csv"), "w") as f:
            f.write("bob@example.test\nalice@example.test\ncarol@example.test\n")
        # carol is full: one message allowed, one there.
        env.write("carol", "config.def", "mailbox_capacity_mail_count=1\n")
        env.smtp("x@remote.example", ["carol@example.test"], "Subject: fills\r\n\r\nx\r\n")
        env.smtp("bob@example.test", ["ml@example.test"], "Subject: post\r\n\r\nbody\r\n")
        wait_for(lambda: env.count("alice") == 1 and env.count("listadmin") == 1 and env.spool_empty(),
                 "the post and the over-quota notice")
        check(env.count("carol") == 1, "no copy for the member over quota")
        n = notices(env, "listadmin")
        check(len(n) == 1, "one notice for the list's envelope sender")
        text = env.messages("listadmin")[0]
        check(b"Final-Recipient: rfc822; carol@example.test" in text and b"Status: 5.2.2" in text, text)
        check(env.count("bob") == 1 and not notices(env, "bob"), "the poster gets his copy, no notice")

        # A refused post: ml2 takes posts from members only.
        env.write("ml2", "config.def", "mailing_list_public_level=0\n")
        env.smtp("dave@example.test", ["ml2@example.test"], "From: dave@example.test\r\nSubject: let me in\r\n\r\nx\r\n")
        env.smtp("", ["ml2@example.test"], "Subject: from nobody\r\n\r\nx\r\n")
        wait_for(lambda: env.count("dave") == 1 and env.log().count("not distributed (not permitted)") == 2
                 and env.spool_empty(), "the refusal notice")
        text = env.messages("dave")[0]
        check(b"Final-Recipient: rfc822; ml2@example.test" in text and b"Status: 5.7.1" in text, text)
        check(top_fields(text) == [b"Return-Path: <>", b"Delivered-To: dave@example.test"], top_fields(text))
        check(b"Subject: let me in" in text, "the original headers are returned")
        check(env.count("postmaster") == 0, "the null sender's post: no notice to anybody")

        # A failed forward: the manual's forward.def to an unknown user.
        env.write("erin", "forward.def", "bin=wizmail-sendmail\nparam1=FROM_ADDRESS\nparam2=nosuch@example.test\n"
                                         "param3=-mf\nparam4=MAILFILE_PATH\n")
        env.smtp("dave@example.test", ["erin@example.test"], "Subject: please forward\r\n\r\nx\r\n")
        env.smtp("", ["erin@example.test"], "Subject: null sender\r\n\r\nx\r\n")
        wait_for(lambda: len(env.hook_exits("erin/forward.def")) == 2 and env.count("dave") == 2, "forward notice")
        # sendmail: 67 unknown user; the null sender's mail (no From: to
        # stand for FROM_ADDRESS either) fails too, and nobody is told.
        # The two hooks run concurrently: their exits are logged in either order.
        exits = env.hook_exits("erin/forward.def")
        codes = sorted(int(e.rsplit(": exit ", 1)[1]) for e in exits)
        check(67 in codes and 0 not in codes, exits)
        check(env.count("erin") == 2, "erin keeps both")
        text = [m for m in env.messages("dave") if b"please forward" in m][0]
        check(b"Final-Recipient: rfc822; erin@example.test" in text and b"nosuch@example.test" in text and
              b"550" in text, text)

        # A copy rewritten by a hook (wait mode) is held to the quota too.
        env.write("alice", "config.def", "application_cooperation_wait_for_apl_end=1\n"
                                         "mailbox_capacity_mail_size=20000\n")
        grow = os.path.join(env.path, "grow.py")
        with open(grow, "w") as f:
            f.write("import sys\nopen(sys.argv[1], 'ab').write((b'y' * 70 + b'\\r\\n') * 500)\n")
        env.write("alice", "exec.def", f"bin={sys.executable} {grow}\nparam1=MAILFILE_PATH\n")
        before = env.count("alice")
        env.smtp("dave@example.test", ["alice@example.test"], "Subject: grows\r\n\r\nsmall\r\n")
        wait_for(lambda: env.count("dave") == 3 and env.spool_empty(), "the over-quota notice")
        check(env.count("alice") == before, "not stored: the rewritten copy is over quota")
        text = [m for m in env.messages("dave") if b"Subject: grows" in m][0]
        check(b"Final-Recipient: rfc822; alice@example.test" in text and b"Status: 5.2.2" in text, text)
    finally:
        env.stop()


# ---------------------------------------------------------------- item 14

_nobody_copy = None


def nobody_sendmail():
    """wizmail-sendmail where an unprivileged user can run it: a copy, with
    the shared libwizmail beside it where its RUNPATH ($ORIGIN/../../libwizmail)
    looks, in a world-readable temp dir. The build tree may lie under a folder
    nobody may search (/root on a fresh machine): there the binary would not
    find its library, which tells nothing about sendmail's own checks."""
    global _nobody_copy
    if _nobody_copy is None:
        top = tempfile.mkdtemp(prefix="wizmail-nobody-")
        atexit.register(shutil.rmtree, top, ignore_errors=True)
        os.chmod(top, 0o755)
        apps = os.path.join(top, "apps", "wizmail-sendmail")
        lib = os.path.join(top, "libwizmail")
        os.makedirs(apps)
        os.makedirs(lib)
        for d in (os.path.join(top, "apps"), apps, lib):
            os.chmod(d, 0o755)
        _nobody_copy = shutil.copy2(SENDMAIL, apps)
        libdir = os.path.join(BUILD, "libwizmail")
        for name in os.listdir(libdir):
            src = os.path.join(libdir, name)
            if name.startswith("libwizmail.so") and os.path.isfile(src):  # none if static
                shutil.copy2(src, os.path.join(lib, name))
    return _nobody_copy


def as_nobody(extra_groups, *args, input=b""):
    cmd = ["setpriv", "--reuid=65534", "--regid=65534"]
    cmd += ["--groups=" + ",".join(map(str, extra_groups))] if extra_groups else ["--clear-groups"]
    env = dict(os.environ, WIZ98MS_HOME="")
    env.pop("LD_LIBRARY_PATH", None)  # meson's points into the build tree
    return subprocess.run(cmd + [nobody_sendmail(), *args], input=input, capture_output=True,
                          timeout=60, env=env)


def test_permissions():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("skip test_permissions: needs root and setpriv")
        return
    env = Env()
    try:
        msg = b"Subject: from nobody\n\nx\n"
        # The home is 0700: a folder on the way may not be searched.
        os.chmod(env.path, 0o700)
        r = as_nobody([], "--home", env.path, "-i", "alice@example.test", input=msg)
        check(r.returncode == 77, (r.returncode, r.stderr))
        check(b"may not be searched" in r.stderr and env.path.encode() in r.stderr, r.stderr)
        # The folders are open, the socket is not: say which group to join.
        for d in (env.path, os.path.join(env.path, "var"), os.path.join(env.path, "var", "run")):
            os.chmod(d, os.stat(d).st_mode | 0o055)
        sock = os.path.join(env.path, "var", "run", "submit.sock")
        check(stat.S_IMODE(os.stat(sock).st_mode) == 0o660, oct(os.stat(sock).st_mode))
        r = as_nobody([], "--home", env.path, "-i", "alice@example.test", input=msg)
        check(r.returncode == 77, (r.returncode, r.stderr))
        check(b"join the group (usermod -aG root" in r.stderr, r.stderr)
        check(env.count("alice") == 0, "nothing sent")
        # A member of the socket's group (a supplementary group, as usermod
        # -aG makes it) may submit.
        r = as_nobody([os.stat(sock).st_gid], "--home", env.path, "-i", "alice@example.test", input=msg)
        check(r.returncode == 0, (r.returncode, r.stderr))
        wait_for(lambda: env.count("alice") == 1, "delivered")
        # Usage and configuration errors keep their own codes.
        r = subprocess.run([SENDMAIL, "-i", "alice@example.test"], input=msg, capture_output=True,
                           env={k: v for k, v in os.environ.items() if k != "WIZ98MS_HOME"})
        check(r.returncode == 78, (r.returncode, r.stderr))
        r = subprocess.run([SENDMAIL, "--home", env.path, "-i", "nosuch@example.test"], input=msg,
                           capture_output=True)
        check(r.returncode == 67 and b"550" in r.stderr, (r.returncode, r.stderr))
        r = subprocess.run([SENDMAIL, "--home", env.path, "-i", "alice@example.test"], input=b"\n\n",
                           capture_output=True)
        check(r.returncode == 66 and b"no message" in r.stderr, (r.returncode, r.stderr))
    finally:
        env.stop()


if __name__ == "__main__":
    harness.run_tests(globals())
