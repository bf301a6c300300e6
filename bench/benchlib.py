"""Shared pieces of the benchmarks under bench/ (run by hand, never in CI):
free loopback ports, a wizmail-server in a temporary home, a private
Postfix instance (postfix -c DIR), Postfix's smtp-sink as the remote MTA
with its running message counter, dnsmasq answering MX look-ups, and
/proc readings. Every process started here is stopped by its owner's
stop(); the scripts call them in `finally`."""
import os, pwd, re, shutil, signal, socket, subprocess, sys, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# SIGTERM (`timeout`, kill) as SystemExit, so the scripts' `finally` still
# stops every process they started (a killed run once left a Postfix master).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=30, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"process {proc.args[0]} exited before listening on {port}")
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def need_postfix():
    if shutil.which("smtp-source") is None or shutil.which("smtp-sink") is None:
        subprocess.run(["apt-get", "install", "-y", "postfix"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def proc_status(pid, key):
    """A kB field of /proc/PID/status (VmRSS, VmHWM), in KiB; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def count_files(d):
    try:
        return len(os.listdir(d))
    except FileNotFoundError:
        return 0


def make_maildir(d):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)


class Wizmail:
    """wizmail-server in <tmp>/<name>: SMTP and POP3 on free loopback ports;
    `smtp` and `wiz98` are extra lines of def/smtpenv.dat and
    def/wiz98msenv.dat; `accounts` get a Maildir and the password x."""

    def __init__(self, build, tmp, name="wizmail", smtp="", wiz98="", accounts=("postmaster",),
                 start=True, args=()):
        self.build = build
        self.home = os.path.join(tmp, name)
        self.port = free_port()
        self.pop_port = free_port()
        self.args = list(args)
        os.makedirs(os.path.join(self.home, "def"), exist_ok=True)
        for acct in accounts:
            self.add_account(acct)
        with open(os.path.join(self.home, "def", "smtpenv.dat"), "w") as f:
            f.write(f"port={self.port}\nbind_address=127.0.0.1\nmultiprocessing=10000\n{smtp}")
        with open(os.path.join(self.home, "def", "popenv.dat"), "w") as f:
            f.write(f"port={self.pop_port}\n")
        if wiz98:
            with open(os.path.join(self.home, "def", "wiz98msenv.dat"), "w") as f:
                f.write(wiz98)
        self.proc = None
        if start:
            self.start()

    def add_account(self, acct, password="x"):
        d = os.path.join(self.home, "mailbox", acct)
        make_maildir(d)
        with open(os.path.join(d, "password"), "w") as f:
            f.write(password + "\n")
        return d

    def newdir(self, acct):
        return os.path.join(self.home, "mailbox", acct, "new")

    def start(self):
        exe = os.path.join(self.build, "apps", "wizmail-server", "wizmail-server")
        self.proc = subprocess.Popen([exe, "--home", self.home, *self.args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def wizmail(self, *argv, **kw):
        """The admin CLI on this home."""
        exe = os.path.join(self.build, "apps", "wizmail", "wizmail")
        return subprocess.run([exe, "--home", self.home, *argv], **kw)

    def queue_empty(self):
        q = os.path.join(self.home, "resendmail")
        for state in ("incoming", "active", "deferred"):
            if count_files(os.path.join(q, state)):
                return False
        return True

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Postfix:
    """A private Postfix instance under <tmp>/<name> (postfix -c etc): its
    own main.cf, queue and data directories, smtpd on a free loopback port,
    no system mail touched. `extra` is appended to main.cf."""

    def __init__(self, tmp, extra="", name="postfix"):
        self.dir = os.path.join(tmp, name)
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.vmail = os.path.join(self.dir, "vmail")
        self.port = free_port()
        for d in (self.etc, self.queue, self.data, self.vmail):
            os.makedirs(d)
        pf = pwd.getpwnam("postfix")
        self.uid, self.gid = pf.pw_uid, pf.pw_gid
        os.chown(self.data, pf.pw_uid, pf.pw_gid)
        os.chown(self.vmail, pf.pw_uid, pf.pw_gid)
        for f in ("master.cf", "dynamicmaps.cf", "postfix-files"):
            if os.path.exists(f"/etc/postfix/{f}"):
                shutil.copy(f"/etc/postfix/{f}", self.etc)
        for d in ("dynamicmaps.cf.d", "postfix-files.d"):
            if os.path.isdir(f"/etc/postfix/{d}"):
                shutil.copytree(f"/etc/postfix/{d}", os.path.join(self.etc, d))
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
myhostname = postfix.bench.test
mydomain = bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_base = {self.vmail}
virtual_uid_maps = static:{pf.pw_uid}
virtual_gid_maps = static:{pf.pw_gid}
virtual_destination_concurrency_limit = 20
local_destination_concurrency_limit = 20
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtp_tls_security_level = none
maillog_file_prefixes = {self.dir}
maillog_file = {self.dir}/maillog
biff = no
{extra}
""")
        master = open(os.path.join(self.etc, "master.cf")).read()
        master = master.replace("\nsmtp      inet", "\n#smtp      inet")
        master += f"\n127.0.0.1:{self.port} inet n - n - - smtpd\n"
        master += "postlog unix-dgram n - n - 1 postlogd\n" if "postlog" not in master else ""
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master)
        subprocess.run(["postfix", "-c", self.etc, "check"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["postfix", "-c", self.etc, "start"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def queue_empty(self):
        for state in ("incoming", "active", "deferred", "maildrop"):
            for _, _, files in os.walk(os.path.join(self.queue, state)):
                if files:
                    return False
        return True

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Sink:
    """Postfix's smtp-sink on a free loopback port as the remote MTA: its
    running counters (-c: "sess=N quit=N mesg=N", one per '.') are read
    from its output; with dump=True each transaction is written to
    <dir>/ (envelope as X-Rcpt-Args: lines, then the message)."""

    COUNTER = re.compile(rb"mesg=(\d+)")

    def __init__(self, tmp, name="sink"):
        self.port = free_port()
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o777)
        self.proc = None
        self.messages = 0

    def start(self, dump=False, backlog=256):
        self.messages = 0
        argv = ["smtp-sink", "-c", "-u", "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name]
        if dump:
            argv += ["-d", self.dir + "/m."]
        argv += ["-m", "1000", f"127.0.0.1:{self.port}", str(backlog)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        wait_port(self.port, proc=self.proc)
        return self

    def _read(self, proc):
        buf = b""
        while True:
            data = proc.stdout.read1(4096)
            if not data:
                return
            buf = (buf + data)[-256:]
            m = self.COUNTER.findall(buf)
            if m:
                self.messages = int(m[-1])

    def wait_messages(self, n, timeout=600, what="messages"):
        end = time.time() + timeout
        while self.messages < n:
            if time.time() > end:
                raise SystemExit(f"sink got {self.messages} of {n} {what}")
            time.sleep(0.002)
        return time.time()

    def dumps(self):
        return [os.path.join(self.dir, n) for n in os.listdir(self.dir)]

    def clear_dumps(self):
        for p in self.dumps():
            os.unlink(p)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Dnsmasq:
    """dnsmasq on a free loopback port answering MX look-ups: every domain
    in `domains` has MX mx.bench.test (10) -> 127.0.0.1."""

    def __init__(self, tmp, domains):
        self.port = free_port()
        user = pwd.getpwuid(os.getuid()).pw_name
        argv = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                f"--pid-file={tmp}/dnsmasq.pid", f"--user={user}",
                "--host-record=mx.bench.test,127.0.0.1", "--local=/test/"]
        argv += [f"--mx-host={d},mx.bench.test,10" for d in domains]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise SystemExit("dnsmasq did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def smtp_source(port, conc, count, size, rcpt, recipients=1, sender="bench@example.org"):
    subprocess.run(["smtp-source", "-s", str(conc), "-m", str(count), "-l", str(size), "-r", str(recipients),
                    "-f", sender, "-t", rcpt, f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL)


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values))) - 1))
    return sorted_values[i]
