#!/usr/bin/env python3
"""End-to-end tests of the admin CLI: setup, account, ml, mailbox status.

Runs the built `wizmail` binary and its manual-name links in temporary homes
and checks exit codes, stderr and that a refused command changed nothing on
disk (a snapshot of paths, sizes, modes and mtimes before and after).
Needs WIZMAIL_BUILD_DIR (meson's test() sets it).
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

BUILD = os.environ.get("WIZMAIL_BUILD_DIR", "")
BIN = os.path.join(BUILD, "apps", "wizmail")
LAYOUT = ["def", "mailbox", "resendmail", "deadmail", "dustbox",
          "var/log", "var/run", "var/trace"]
INITIAL = ["administrator", "forward", "notifi", "postmaster"]


def run(args, home=None, program="wizmail", stdin="", env_home=None):
    env = {k: v for k, v in os.environ.items() if k != "WIZ98MS_HOME"}
    if env_home is not None:
        env["WIZ98MS_HOME"] = env_home
    argv = [os.path.join(BIN, program)]
    if home is not None and program != "wizmail":
        # The manual's commands take their flags (-a, -cp) first; the home
        # comes from the environment, as for the original commands.
        env["WIZ98MS_HOME"] = home
    elif home is not None:
        argv += ["--home", home]
    argv += args
    return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                          env=env, timeout=30)


def snapshot(root):
    """Every path under root with its type, size, mode and mtime."""
    out = {}
    if not os.path.exists(root):
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), st.st_size,
                                             stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    st = os.lstat(root)
    out["."] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wizmail-cli-")
        self.home = os.path.join(self.tmp, "home")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def setup_home(self, *extra):
        r = run(["setup", "--smtp-port", "2525", "--pop-port", "1110",
                 "--bind", "127.0.0.1", "--domain", "localhost", *extra], self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def ok(self, args, program="wizmail", stdin=""):
        r = run(args, self.home, program, stdin)
        self.assertEqual(r.returncode, 0, f"{program} {args}: {r.stderr}")
        return r

    def refused(self, args, expect, program="wizmail", stdin="", home="default"):
        """The command fails with `expect` on stderr and changes nothing."""
        h = self.home if home == "default" else home
        before = snapshot(self.tmp)
        r = run(args, h, program, stdin)
        self.assertNotEqual(r.returncode, 0, f"{program} {args} succeeded: {r.stdout}")
        self.assertIn(expect, r.stderr, f"{program} {args}")
        self.assertEqual(snapshot(self.tmp), before, f"{program} {args} changed the disk")
        return r

    def account_dir(self, name):
        return os.path.join(self.home, "mailbox", name)

    # --- home resolution -------------------------------------------------

    def test_no_home_is_a_clear_error(self):
        for args in (["account", "list"], ["setup"], ["mailbox", "status"]):
            r = run(args)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("--home", r.stderr)
            self.assertIn("WIZ98MS_HOME", r.stderr)
        self.assertEqual(os.listdir(self.tmp), [])

    def test_env_home_and_home_option(self):
        self.setup_home()
        r = run(["account", "list"], env_home=self.home)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("postmaster", r.stdout)
        # --home wins over the environment.
        r = run(["account", "list"], home=self.home, env_home=os.path.join(self.tmp, "nope"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_missing_home_is_refused(self):
        missing = os.path.join(self.tmp, "missing")
        for args in (["account", "list"], ["account", "create", "x", "pw"],
                     ["ml", "create", "l", "pw"], ["mailbox", "status"]):
            self.refused(args, "does not exist", home=missing)

    # --- setup -------------------------------------------------------------

    def test_setup_makes_the_layout(self):
        r = self.setup_home()
        for d in LAYOUT:
            self.assertTrue(os.path.isdir(os.path.join(self.home, d)), d)
        self.assertIn("port=2525", read(os.path.join(self.home, "def/smtpenv.dat")).splitlines())
        self.assertIn("bind_address=127.0.0.1",
                      read(os.path.join(self.home, "def/smtpenv.dat")).splitlines())
        self.assertIn("port=1110", read(os.path.join(self.home, "def/popenv.dat")).splitlines())
        self.assertIn("domain=localhost",
                      read(os.path.join(self.home, "def/wiz98msenv.dat")).splitlines())
        smtp = read(os.path.join(self.home, "def/smtpenv.dat")).splitlines()
        self.assertIn("relay=0", smtp)
        self.assertIn("send_permits_only_smtp_auth=1", smtp)
        for name in INITIAL:
            d = self.account_dir(name)
            for sub in ("new", "cur", "tmp"):
                self.assertTrue(os.path.isdir(os.path.join(d, sub)))
            pw_file = os.path.join(d, "password")
            self.assertEqual(stat.S_IMODE(os.stat(pw_file).st_mode), 0o600)
            pw = read(pw_file).strip()
            self.assertGreaterEqual(len(pw), 12)
            self.assertIn(f"created account {name} with password {pw}", r.stdout)
        fwd = read(os.path.join(self.account_dir("forward"), "forward.def"))
        self.assertIn("param4=MAILFILE_PATH", fwd)
        self.assertIn("bin=", fwd)
        # Every password differs.
        pws = {read(os.path.join(self.account_dir(n), "password")) for n in INITIAL}
        self.assertEqual(len(pws), 4)

    def test_setup_is_idempotent_and_keeps_everything(self):
        self.setup_home()
        self.ok(["account", "create", "alice", "pw"])
        with open(os.path.join(self.home, "def/smtpenv.dat"), "a") as f:
            f.write("# a local note\n")
        before = snapshot(self.tmp)
        r = self.ok(["setup", "--smtp-port", "2626"])
        self.assertEqual(snapshot(self.tmp), before)
        self.assertIn("kept existing def/smtpenv.dat", r.stdout)
        self.assertIn("not applied", r.stdout)
        for name in INITIAL:
            self.assertIn(f"kept existing account {name}", r.stdout)
        self.assertNotIn("password", r.stdout)

    def test_setup_recreates_what_is_missing(self):
        self.setup_home()
        shutil.rmtree(os.path.join(self.home, "var"))
        os.remove(os.path.join(self.home, "def/popenv.dat"))
        shutil.rmtree(self.account_dir("notifi"))
        r = self.ok(["setup", "--pop-port", "1111"])
        self.assertTrue(os.path.isdir(os.path.join(self.home, "var/trace")))
        self.assertIn("port=1111", read(os.path.join(self.home, "def/popenv.dat")).splitlines())
        self.assertIn("created account notifi with password", r.stdout)
        self.assertIn("kept existing account postmaster", r.stdout)

    def test_setup_with_a_given_password(self):
        self.setup_home("--password", "try-me")
        for name in INITIAL:
            self.assertEqual(read(os.path.join(self.account_dir(name), "password")), "try-me\n")

    def test_setup_refuses_bad_options_before_touching_disk(self):
        for args, expect in (
                (["setup", "--smtp-port", "0"], "smtp-port"),
                (["setup", "--smtp-port", "70000"], "smtp-port"),
                (["setup", "--pop-port", "x"], "pop-port"),
                (["setup", "--bind", "not-an-ip"], "not an IP address"),
                (["setup", "--bind", "127.0.0.1,999.1.1.1"], "not an IP address"),
                (["setup", "--domain", "bad domain"], "not a domain name"),
                (["setup", "--domain", "a/../b"], "not a domain name"),
                (["setup", "--password", "{CRYPT}x"], "--password"),
                (["setup", "extra"], "extra")):
            self.refused(args, expect)
        self.assertFalse(os.path.exists(self.home))

    def test_setup_refuses_a_broken_existing_config(self):
        self.setup_home()
        with open(os.path.join(self.home, "def/smtpenv.dat"), "a") as f:
            f.write("port=notanumber\n")
        shutil.rmtree(os.path.join(self.home, "var"))
        self.refused(["setup"], "smtpenv.dat")

    def test_setup_refuses_a_file_as_home(self):
        os.makedirs(self.tmp, exist_ok=True)
        with open(self.home, "w") as f:
            f.write("x")
        self.refused(["setup"], "not a directory")

    # --- accounts ----------------------------------------------------------

    def test_account_lifecycle(self):
        self.setup_home()
        r = self.ok(["account", "create", "Alice", "pw1"])
        self.assertIn("created account alice", r.stdout)
        self.assertEqual(read(os.path.join(self.account_dir("alice"), "password")), "pw1\n")
        self.ok(["account", "passwd", "ALICE", "pw2"])
        self.assertEqual(read(os.path.join(self.account_dir("alice"), "password")), "pw2\n")
        self.ok(["account", "passwd", "alice", "pw3", "--crypt"])
        self.assertTrue(read(os.path.join(self.account_dir("alice"), "password"))
                        .startswith("{CRYPT}$6$"))
        listed = json.loads(self.ok(["account", "list", "--json"]).stdout)
        self.assertEqual([a["name"] for a in listed], sorted(INITIAL + ["alice"]))
        self.assertTrue(all(a["mailing_list"] is False for a in listed))
        self.assertEqual(self.ok(["account", "list"]).stdout.split(),
                         sorted(INITIAL + ["alice"]))
        self.ok(["account", "delete", "alice"])
        self.assertFalse(os.path.exists(self.account_dir("alice")))
        self.assertEqual(sorted(os.listdir(os.path.join(self.home, "mailbox"))), INITIAL)

    def test_account_create_crypt(self):
        self.setup_home()
        self.ok(["account", "create", "h", "secret", "--crypt"])
        self.assertTrue(read(os.path.join(self.account_dir("h"), "password"))
                        .startswith("{CRYPT}$6$"))

    def test_account_misuse_changes_nothing(self):
        self.setup_home()
        self.ok(["account", "create", "alice", "pw"])
        cases = [
            (["account", "create", "alice", "x"], "already exists"),
            (["account", "create", "ALICE", "x"], "already exists"),
            (["account", "create", "../x", "pw"], "account name"),
            (["account", "create", "a/b", "pw"], "account name"),
            (["account", "create", ".hidden", "pw"], "account name"),
            (["account", "create", "a" * 65, "pw"], "longer than 64"),
            (["account", "create", "a b", "pw"], "account name"),
            (["account", "create", "..", "pw"], "account name"),
            (["account", "create", "new1", "{CRYPT}abc"], "{CRYPT}"),
            (["account", "create", "new1", "a\nb"], "CR, LF"),
            (["account", "create", "a", "b", "c"], "not expected"),
            (["account", "delete", "notifi"], "cannot be deleted"),
            (["account", "delete", "postmaster"], "cannot be deleted"),
            (["account", "delete", "PostMaster"], "cannot be deleted"),
            (["account", "delete", "ghost"], "no account ghost"),
            (["account", "delete", "../mailbox"], "account name"),
            (["account", "delete"], "name"),
            (["account", "passwd", "ghost", "pw"], "no account ghost"),
            (["account", "passwd", "alice"], "password"),
            (["account", "passwd", "alice", "x\ny"], "CR, LF"),
            (["account", "passwd", "../alice", "pw"], "account name"),
            (["account"], "subcommand"),
            (["account", "rename", "a", "b"], "subcommand"),
            (["nosuchcommand"], "subcommand"),
        ]
        for args, expect in cases:
            with self.subTest(args=args):
                self.refused(args, expect)

    def test_wmsactcrt_prompts_on_stdin(self):
        self.setup_home()
        r = self.ok([], program="wmsactcrt", stdin="Carol\nsecret pw\n")
        self.assertIn("Account name", r.stderr)
        self.assertIn("Password", r.stderr)
        self.assertEqual(read(os.path.join(self.account_dir("carol"), "password")),
                         "secret pw\n")
        # Only the name given: the password is asked for.
        r = self.ok(["dave"], program="wmsactcrt", stdin="pw\r\n")
        self.assertEqual(read(os.path.join(self.account_dir("dave"), "password")), "pw\n")
        # The manual's forms, with -nowait.
        self.ok(["erin", "pw", "-nowait"], program="wmsactcrt")
        self.ok(["frank", "pw"], program="wmscrtact")
        for n in ("erin", "frank"):
            self.assertTrue(os.path.isdir(self.account_dir(n)))

    def test_wmsactcrt_refuses_bad_or_missing_input(self):
        self.setup_home()
        self.refused([], "no account name", program="wmsactcrt", stdin="")
        self.refused([], "no account name", program="wmsactcrt", stdin="\n")
        self.refused([], "account name", program="wmsactcrt", stdin="../x\npw\n")
        self.refused([], "no password", program="wmsactcrt", stdin="gina\n")
        self.refused([], "password is empty", program="wmsactcrt", stdin="gina\n\n")
        self.refused([], "already exists", program="wmsactcrt", stdin="postmaster\npw\n")

    def test_manual_names(self):
        home2 = os.path.join(self.tmp, "manual")
        r = run([], home2, "wmssetupenv")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isdir(os.path.join(home2, "var/trace")))
        self.home = home2
        self.ok(["ml", "pw", "ml_err@localhost", "-nowait"], program="wmscrtml")
        self.ok(["-a", "ml", "a@localhost"], program="wmsmngml")
        self.ok(["-a", "ml", "b@localhost", "-nowait"], program="wmsmngml")
        self.ok(["-d", "ml", "a@localhost"], program="wmsmngml")
        self.assertEqual(read(os.path.join(self.account_dir("ml"), "ml_member.csv")),
                         "b@localhost\n")
        self.ok(["ml2", "pw"], program="wmscrtml")
        self.ok(["-cp", "ml", "newpw"], program="wmsmngact")
        self.assertEqual(read(os.path.join(self.account_dir("ml"), "password")), "newpw\n")
        self.ok(["ml2"], program="wmsdelact")
        self.assertFalse(os.path.exists(self.account_dir("ml2")))
        r = self.ok([], program="wmsprtmailbox")
        self.assertIn("(total)", r.stdout)
        self.refused(["notifi", "-nowait"], "cannot be deleted", program="wmsdelact")
        self.refused(["-x", "ml", "a@b"], "subcommand", program="wmsmngml")

    def test_manual_flags_after_home_option(self):
        # `wmsmngml --home H -a LIST ADDRESS`: the manual's flag need not come first.
        self.setup_home()
        self.ok(["ml", "create", "team", "pw"])
        for argv, program in ((["--home", self.home, "-a", "team", "x@localhost"], "wmsmngml"),
                              (["--home", self.home, "-cp", "team", "pw2"], "wmsmngact")):
            r = run(argv, None, program)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(read(os.path.join(self.account_dir("team"), "ml_member.csv")),
                         "x@localhost\n")
        self.assertEqual(read(os.path.join(self.account_dir("team"), "password")), "pw2\n")

    # --- mailing lists -----------------------------------------------------

    def test_mailing_lists(self):
        self.setup_home()
        self.ok(["ml", "create", "List", "pw", "ml_err@localhost"])
        d = self.account_dir("list")
        self.assertEqual(read(os.path.join(d, "ml.def")),
                         "count=0\nadmin_mail_address=ml_err@localhost\n")
        self.assertEqual(read(os.path.join(d, "ml_member.csv")), "")
        self.ok(["ml", "add", "list", "a@localhost"])
        self.ok(["ml", "add", "LIST", "B@example.com"])
        self.assertEqual(self.ok(["ml", "list", "list"]).stdout.split(),
                         ["a@localhost", "B@example.com"])
        self.assertEqual(json.loads(self.ok(["ml", "list", "list", "--json"]).stdout),
                         ["a@localhost", "B@example.com"])
        self.ok(["ml", "del", "list", "A@LOCALHOST"])
        self.assertEqual(read(os.path.join(d, "ml_member.csv")), "B@example.com\n")
        listed = json.loads(self.ok(["account", "list", "--json"]).stdout)
        self.assertEqual([a["name"] for a in listed if a["mailing_list"]], ["list"])
        self.ok(["ml", "create", "noadmin", "pw"])
        self.assertEqual(read(os.path.join(self.account_dir("noadmin"), "ml.def")),
                         "count=0\nadmin_mail_address=\n")

    def test_ml_misuse_changes_nothing(self):
        self.setup_home()
        self.ok(["ml", "create", "list", "pw"])
        self.ok(["ml", "add", "list", "a@localhost"])
        cases = [
            (["ml", "create", "list", "pw"], "already exists"),
            (["ml", "create", "l2", "pw", "not an address"], "mail address"),
            (["ml", "create", "../l", "pw"], "account name"),
            (["ml", "create", "l2"], "password"),
            (["ml", "add", "list", "a@localhost"], "already a member"),
            (["ml", "add", "list", "A@LocalHost"], "already a member"),
            (["ml", "add", "list", "no-at-sign"], "mail address"),
            (["ml", "add", "list", "a@b c"], "mail address"),
            (["ml", "add", "administrator", "x@y"], "not a mailing list"),
            (["ml", "add", "ghost", "x@y"], "no account ghost"),
            (["ml", "add", "list"], "address"),
            (["ml", "del", "list", "z@localhost"], "not a member"),
            (["ml", "del", "ghost", "z@localhost"], "no account ghost"),
            (["ml", "list", "administrator"], "not a mailing list"),
            (["ml", "list", "../list"], "account name"),
            (["ml"], "subcommand"),
        ]
        for args, expect in cases:
            with self.subTest(args=args):
                self.refused(args, expect)

    # --- aliases (def/aliases.def) ------------------------------------------

    def test_aliases(self):
        self.setup_home()
        aliases = os.path.join(self.home, "def", "aliases.def")
        r = self.ok(["alias", "add", "Sales@localhost", "administrator,", "partner@example.com"])
        self.assertIn("not running", r.stdout)
        self.assertEqual(read(aliases), "Sales@localhost  administrator, partner@example.com\n")
        r = self.ok(["alias", "add", "team", "administrator", "ghost"])
        self.assertIn("target ghost@localhost names no account", r.stderr)
        self.ok(["alias", "add", "@localhost", "postmaster"])  # now ghost@localhost goes there
        self.assertEqual(json.loads(self.ok(["alias", "list", "--json"]).stdout), [
            {"alias": "sales@localhost", "targets": ["administrator", "partner@example.com"], "line": 1},
            {"alias": "team", "targets": ["administrator", "ghost"], "line": 2},
            {"alias": "@localhost", "targets": ["postmaster"], "line": 3}])
        self.assertEqual(self.ok(["alias", "list"]).stdout.splitlines()[0],
                         "sales@localhost  administrator, partner@example.com")
        # Replacing keeps the line's place; a hand-written comment stays.
        with open(aliases, "a") as f:
            f.write("# by hand\n")
        self.ok(["alias", "add", "SALES@LOCALHOST", "postmaster"])
        self.assertEqual(read(aliases), "SALES@LOCALHOST  postmaster\nteam  administrator, ghost\n"
                                        "@localhost  postmaster\n# by hand\n")
        self.ok(["alias", "del", "team"])
        self.assertNotIn("team", read(aliases))
        # `config check` reads the file with the others.
        self.ok(["config", "check"])

    def test_alias_misuse_changes_nothing(self):
        self.setup_home()
        self.ok(["alias", "add", "a@localhost", "administrator"])
        cases = [
            (["alias", "add", "x@example.com", "administrator"], "not a local domain"),
            (["alias", "add", "@example.com", "administrator"], "not a local domain"),
            (["alias", "add", "x@localhost", "Bad Name"], "bad target"),
            (["alias", "add", "x@localhost", "a,,b"], "bad target"),
            (["alias", "add", "x@localhost", "@localhost"], "account or an address"),
            (["alias", "add", "x y@localhost", "administrator"], "bad alias"),
            (["alias", "add", "b@localhost", "a@localhost"], None),
            (["alias", "add", "a@localhost", "b@localhost"], "alias loop"),
            (["alias", "add", "x@localhost"], "targets"),
            (["alias", "del", "nobody@localhost"], "no alias"),
            (["alias", "del", "@"], "empty domain"),
            (["alias"], "subcommand"),
        ]
        for args, expect in cases:
            with self.subTest(args=args):
                if expect is None:
                    self.ok(args)
                else:
                    self.refused(args, expect)
        # A broken file (by hand) is a file:line error for every command that loads the config.
        with open(os.path.join(self.home, "def", "aliases.def"), "a") as f:
            f.write("broken-line-without-targets\n")
        r = run(["alias", "list"], self.home)
        self.assertEqual(r.returncode, 1)
        self.assertIn("aliases.def:3", r.stderr)

    # --- mailbox status ----------------------------------------------------

    def test_mailbox_status(self):
        self.setup_home()
        self.ok(["account", "create", "alice", "pw"])
        d = self.account_dir("alice")
        for i, body in enumerate(["x" * 10, "y" * 20]):
            with open(os.path.join(d, "new", f"17000000{i}.M1P1Q{i}.host,S={len(body)}"), "w") as f:
                f.write(body)
        with open(os.path.join(d, "cur", "foreign:2,S"), "w") as f:
            f.write("z" * 5)
        with open(os.path.join(d, "counters"), "w") as f:
            f.write("received=7\nsent=3\ndeleted=2\n")
        r = self.ok(["mailbox", "status", "--json"])
        data = json.loads(r.stdout)
        alice = [a for a in data["accounts"] if a["name"] == "alice"][0]
        self.assertEqual(alice, {"name": "alice", "messages": 3, "bytes": 35, "new": 2,
                                 "cur": 1, "received": 7, "sent": 3, "deleted": 2})
        self.assertEqual(data["total"]["messages"], 3)
        self.assertEqual(data["total"]["bytes"], 35)
        self.assertEqual(len(data["accounts"]), 5)
        text = self.ok(["mailbox", "status"]).stdout.splitlines()
        self.assertTrue(text[0].startswith("account"))
        row = [line.split() for line in text if line.startswith("alice")][0]
        self.assertEqual(row, ["alice", "3", "35", "2", "1", "7", "3", "2"])

    def test_mailbox_status_refuses_extra_arguments(self):
        self.setup_home()
        self.refused(["mailbox", "status", "extra"], "extra")
        self.refused(["mailbox"], "subcommand")


if __name__ == "__main__":
    if not BUILD or not os.path.isfile(os.path.join(BIN, "wizmail")):
        sys.stderr.write("WIZMAIL_BUILD_DIR must name a build with apps/wizmail/wizmail\n")
        sys.exit(1)
    unittest.main(verbosity=2)
