#!/usr/bin/env python3
"""Admin commands run as root on a home whose server runs as `run_as_user`
create what the server can use: every file they make belongs to that user,
an account made by `wizmail account create` gets mail and logs in over
POP3, a notice from `wizmail notify` can be retrieved. A home that does not
belong to the user is refused with the chown to run. Needs root; makes a
throwaway system user and removes it at the end."""
import atexit, os, poplib, pwd, shutil, smtplib, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Home, Server, _cleanup, check

WIZMAIL = os.path.join(BUILD, "apps", "wizmail", "wizmail")
if os.geteuid() != 0 or not shutil.which("useradd"):
    print("1..0 # SKIP needs root and useradd")
    sys.exit(77)

user = f"wizt{os.getpid() % 100000}"
subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                "--shell", "/usr/sbin/nologin", user], check=True)


def remove_user():
    _cleanup()  # the server runs as the user: stop it first
    subprocess.run(["userdel", user], check=False)


atexit.register(remove_user)
pw = pwd.getpwnam(user)


def wiz(*args, home, stdin=None):
    return subprocess.run([WIZMAIL, "--home", home, *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def chown_tree(root, uid, gid):
    for d, dirs, files in os.walk(root):
        for n in [d] + [os.path.join(d, x) for x in dirs + files]:
            os.lchown(n, uid, gid)


def not_the_users(root):
    bad = []
    for d, dirs, files in os.walk(root):
        for n in [d] + [os.path.join(d, x) for x in dirs + files]:
            st = os.lstat(n)
            if st.st_uid != pw.pw_uid:
                bad.append(os.path.relpath(n, root))
    return bad


home = Home()
chown_tree(home.path, pw.pw_uid, pw.pw_gid)  # as the manual says: chown -R the home
with open(os.path.join(home.path, "def", "wiz98msenv.dat"), "a") as f:
    f.write(f"run_as_user={user}\n")

# Run as root: the admin commands.
r = wiz("account", "create", "bob", "bobpw", home=home.path)
check(r.returncode == 0, f"account create bob (as root): {r.stderr.strip()}")
r = wiz("account", "passwd", "bob", "bobpw2", home=home.path)
check(r.returncode == 0, f"account passwd bob: {r.stderr.strip()}")
r = wiz("ml", "create", "team", "teampw", home=home.path)
check(r.returncode == 0, f"ml create team: {r.stderr.strip()}")
r = wiz("ml", "add", "team", "bob@localhost", home=home.path)
check(r.returncode == 0, f"ml add: {r.stderr.strip()}")
notice = os.path.join(home.path, "notice.txt")
with open(notice, "w") as f:
    f.write("Maintenance tonight\nThe server restarts at 22:00.\n")
os.chown(notice, pw.pw_uid, pw.pw_gid)
r = wiz("notify", notice, home=home.path)
check(r.returncode == 0, f"notify: {r.stdout.strip()} {r.stderr.strip()}")
bad = not_the_users(home.path)
check(bad == [], f"everything in the home belongs to {user} (not: {bad[:8]})")
bob = os.path.join(home.path, "mailbox", "bob")
check(oct(os.stat(bob).st_mode & 0o777) == "0o700", "bob's folder is private (0700)")

# The server, started as root, drops to the user and uses what the CLI made.
srv = Server(home)
with smtplib.SMTP("127.0.0.1", home.port, timeout=30) as c:
    c.ehlo("client.example")
    c.mail("carol@example.org")
    code, text = c.rcpt("bob@localhost")
    check(code == 250, f"RCPT bob accepted ({code} {text!r})")
    code, text = c.data(b"Subject: hello bob\r\n\r\nhi\r\n")
    check(code == 250, f"mail to bob accepted ({code} {text!r})")
p = poplib.POP3("127.0.0.1", home.pop_port, timeout=30)
p.user("bob")
check(p.pass_("bobpw2").startswith(b"+OK"), "bob logs in over POP3 with the password set by the CLI")
count = p.stat()[0]
check(count == 2, f"bob has the notice and the mail ({count})")
try:
    bodies = [b"\n".join(p.retr(i)[1]) for i in (1, 2)]
except poplib.error_proto as e:
    print(open(os.path.join(home.path, "var", "log", "error.log")).read()[-2000:])
    print(subprocess.run(["ls", "-laR", os.path.join(home.path, "mailbox", "bob")], capture_output=True, text=True).stdout)
    check(False, f"RETR: {e}")
check(any(b"Maintenance tonight" in m for m in bodies), "the notice is retrieved")
check(any(b"hello bob" in m for m in bodies), "the mail is retrieved")
p.quit()
srv.stop()
# What the server made (the message, var/, the journal) is the user's too:
# it became the user before it touched the store or accepted a client.
bad = [n for n in not_the_users(home.path) if n != "stderr.log"]  # the test's own file
check(bad == [], f"everything the server made belongs to {user} (not: {bad[:8]})")

# A home that does not belong to the user: refused, with the chown to run.
other = tempfile.mkdtemp(prefix="wizmail-e2e-root-")
atexit.register(shutil.rmtree, other, True)
r = wiz("setup", home=other)
check(r.returncode == 0, f"setup (as root) {r.stderr.strip()}")
env = os.path.join(other, "def", "wiz98msenv.dat")
lines = [f"run_as_user={user}" if l.startswith("run_as_user=") else l for l in open(env).read().splitlines()]
with open(env, "w") as f:
    f.write("\n".join(lines) + "\n")
r = wiz("account", "create", "dave", "davepw", home=other)
check(r.returncode == 1 and "chown -R " + user in r.stderr,
      f"root-owned home: account create refused, saying which chown to run ({r.stderr.strip()})")
check(not os.path.exists(os.path.join(other, "mailbox", "dave")), "and nothing was created")
# Commands that need root or only read still run as root.
r = wiz("config", "check", home=other)
check(r.returncode == 0, f"config check runs as root ({r.stderr.strip()})")
