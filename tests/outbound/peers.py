"""The far side of the outbound tests (relay_e2e.py, ext_e2e.py): dnsmasq
answering the MX look-ups and Postfix's smtp-sink as the remote MTA, each on
a free loopback port and killed at exit (harness.start_process)."""
import glob, os, pwd, shutil, sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402

WIZMAIL = os.path.join(harness.BUILD, "apps", "wizmail", "wizmail")
CHECK_DSN = os.path.join(os.path.dirname(__file__), "check_dsn.py")
USER = pwd.getpwuid(os.getuid()).pw_name


def missing_tools():
    """The peers this machine lacks (scripts/install-deps installs them)."""
    return [t for t in ("dnsmasq", "smtp-sink") if not shutil.which(t) and not os.path.exists("/usr/sbin/" + t)]


def start_dnsmasq(tmp, *records):
    """dnsmasq on a free port: example.test has MX mx.example.test (10) →
    127.0.0.1, plus `records`; every other name under .test does not exist.
    Returns (process, port)."""
    port = harness.free_port()
    p = harness.start_process(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                               "--conf-file=/dev/null", f"--port={port}", "--listen-address=127.0.0.1",
                               "--bind-interfaces", f"--pid-file={tmp}/dnsmasq.pid", f"--user={USER}",
                               "--mx-host=example.test,mx.example.test,10",
                               "--host-record=mx.example.test,127.0.0.1", *records, "--local=/test/"])
    return p, port


class Sink:
    """smtp-sink on a free port (started and stopped by the test, as often
    as it likes), writing each message it takes into <tmp>/dump/."""

    def __init__(self, tmp):
        self.port = harness.free_port()
        self.dump = os.path.join(tmp, "dump")
        os.makedirs(self.dump)

    def start(self, *extra):
        return harness.start_process(["smtp-sink", "-u", USER, "-d", self.dump + "/%M.", *extra,
                                      f"127.0.0.1:{self.port}", "20"])

    def dumped(self):
        """Every message taken so far, oldest name first."""
        out = []
        for f in sorted(glob.glob(self.dump + "/*")):
            with open(f, "rb") as fh:
                out.append(fh.read())
        return out
