"""Shared helpers for every Python test (tests/e2e, tests/agent,
tests/control, tests/outbound, tests/install): a temp home, free ports, a
throwaway certificate, a wizmail-server that is always killed at exit,
helper processes likewise, polling for an observable state, raw line reads,
and a runner for scripts made of test_* functions."""
import atexit, os, poplib, random, re, shutil, signal, socket, subprocess, sys, tempfile, time

BUILD = os.environ.get("WIZMAIL_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SERVER = os.path.join(BUILD, "apps", "wizmail-server", "wizmail-server")
CLI = os.path.join(BUILD, "apps", "wizmail", "wizmail")
_procs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback port free now, chosen below the kernel's ephemeral range:
    a port the kernel hands out (bind to 0) is also what the outgoing
    connections of tests running in parallel receive, so one of them can
    take it between this call and the server's bind. Ports under the
    ephemeral range are given only to those who ask for them by number."""
    low = max(1024, min(_ephemeral_low(), 65536) - 12000)
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, low + 12000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_cert(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Home:
    def __init__(self, tls=False, smtp_extra="", accounts=(("alice", "secret"), ("postmaster", "pm")),
                 root=None, server_extra=""):
        self.path = tempfile.mkdtemp(prefix="wizmail-e2e-", dir=root)
        atexit.register(shutil.rmtree, self.path, True)
        self.port = free_port()
        self.submission_port = free_port()
        self.smtps_port = free_port() if tls else 0
        os.makedirs(os.path.join(self.path, "def"))
        for name, password in accounts:
            for sub in ("new", "cur", "tmp"):
                os.makedirs(os.path.join(self.path, "mailbox", name, sub))
            pw = os.path.join(self.path, "mailbox", name, "password")
            with open(pw, "w") as f:
                f.write(password + "\n")
            os.chmod(pw, 0o600)
        smtp = (f"port={self.port}\nsubmission_port={self.submission_port}\nsmtps_port={self.smtps_port}\n"
                f"bind_address=127.0.0.1\n")
        if "send_permits_only_smtp_auth=" not in smtp_extra:
            smtp += "send_permits_only_smtp_auth=1\n"
        smtp += smtp_extra
        # The daemon relays queued mail: keep its DNS look-ups on loopback
        # (nothing answers on port 9, so remote mail just waits, deferred).
        if "dns_servers=" not in smtp_extra:
            smtp += "dns_servers=127.0.0.1:9\n"
        with open(os.path.join(self.path, "def", "smtpenv.dat"), "w") as f:
            f.write(smtp)
        server = "domain=localhost\n" + server_extra
        if tls:
            self.cert, self.key = make_cert(self.path)
            server += f"tls_cert_file={self.cert}\ntls_key_file={self.key}\n"
        with open(os.path.join(self.path, "def", "wiz98msenv.dat"), "w") as f:
            f.write(server)
        self.pop_port = free_port()
        with open(os.path.join(self.path, "def", "popenv.dat"), "w") as f:
            f.write(f"port={self.pop_port}\n")

    def repick_ports(self, taken):
        """Another process took one of this home's ports between free_port()
        and the server's bind (`taken`, from the server's message): give
        every listener that had it a new port in the def files. Returns
        whether one had it."""
        changed = False
        for attr, file, key in (("port", "smtpenv.dat", "port"), ("submission_port", "smtpenv.dat", "submission_port"),
                                ("smtps_port", "smtpenv.dat", "smtps_port"), ("pop_port", "popenv.dat", "port")):
            if getattr(self, attr, 0) != taken:
                continue
            new = free_port()
            path = os.path.join(self.path, "def", file)
            with open(path) as f:
                lines = f.read().split("\n")
            lines = [f"{key}={new}" if line == f"{key}={taken}" else line for line in lines]
            with open(path, "w") as f:
                f.write("\n".join(lines))
            setattr(self, attr, new)
            changed = True
        return changed

    def new_dir(self, account="alice"):
        return os.path.join(self.path, "mailbox", account, "new")

    def messages(self, account="alice"):
        d = self.new_dir(account)
        return [open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))]


def catches(pid, sig):
    """Whether process pid has a handler for sig (SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (int(sig) - 1) & 1)
    except FileNotFoundError:
        pass
    return False


class Server:
    def __init__(self, home, wait=True):
        self.home = home
        self.log = open(os.path.join(home.path, "stderr.log"), "ab")
        self._start()
        if wait:
            for attempt in range(3):
                taken = self._port_taken()
                if taken is None or attempt == 2 or not home.repick_ports(taken):
                    break
                # A test running in parallel took the port after free_port()
                # chose it: start again on new ports (the server bound nothing).
                print(f"# port {taken} was taken meanwhile; restarting on new ports", flush=True)
                self._start()
            self.wait_listening()

    def _start(self):
        self.log.flush()
        self._log_start = os.path.getsize(self.log.name)  # this start's output begins here
        self.proc = subprocess.Popen([SERVER, "--home", self.home.path], stdout=self.log, stderr=self.log)
        _procs.append(self.proc)

    def _port_taken(self, timeout=20):
        """The port of ours the server could not bind (it exited saying so),
        or None once it listens or has failed for another reason."""
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                with open(self.log.name) as f:
                    f.seek(self._log_start)
                    text = f.read()
                m = re.search(r"cannot listen on [^ ]*:(\d+): Address already in use", text)
                return int(m.group(1)) if m else None
            # Started: its signal handlers are set after every bind (a port
            # that answers may be the other process's).
            if catches(self.proc.pid, signal.SIGTERM) and catches(self.proc.pid, signal.SIGHUP):
                return None
            time.sleep(0.05)
        return None

    def wait_listening(self, timeout=20):
        end = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("wizmail-server exited: " + open(self.log.name).read())
            try:
                socket.create_connection(("127.0.0.1", self.home.port), 0.2).close()
                # The port may accept before the signal handlers are set up
                # (an early SIGTERM or SIGHUP would kill the process): ready
                # once the kernel says both are caught.
                if catches(self.proc.pid, signal.SIGTERM) and catches(self.proc.pid, signal.SIGHUP):
                    return
                if time.time() > end:
                    raise SystemExit("wizmail-server did not set up its signal handlers")
                time.sleep(0.05)
            except OSError:
                if time.time() > end:
                    raise SystemExit("wizmail-server did not start listening")
                time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        if rc != 0:
            raise SystemExit(f"wizmail-server exited with {rc}")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()


def check(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)
    print("ok -", what, flush=True)


def poll(cond, timeout, step=0.05):
    """Whether cond() holds within timeout seconds (asked once more at the
    end): an observable state, never a fixed sleep."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def wait_until(cond, what, timeout=20):
    """Poll until cond() holds; fail the test when it never does."""
    if not poll(cond, timeout):
        raise SystemExit("FAILED: " + what + " (timed out)")
    print("ok -", what, flush=True)


def wait_for(cond, what, timeout=20, homes=(), tail=4000):
    """Poll until cond() holds; when it never does, print the end of each
    home's stderr.log (the servers' own account) and fail."""
    if poll(cond, timeout, 0.1):
        return True
    for h in homes:
        log = os.path.join(h.path, "stderr.log")
        if os.path.exists(log):
            print("---", log, file=sys.stderr)
            print(open(log, errors="replace").read()[-tail:], file=sys.stderr)
    check(False, what + " (timed out)")


def start_process(argv, **kw):
    """A helper process (a peer server, a DNS server), killed at exit."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    _procs.append(p)
    return p


def start_node(home, node, smtp_port, *args):
    """wizmail-server --node NODE on the shared home (its ports in
    HOME/nodes/NODE/node.dat), stdout and stderr appended to
    HOME/stderr-NODE.log, killed at exit; returns once it listens on
    smtp_port, fails the test if it exits first."""
    log = open(os.path.join(home, f"stderr-{node}.log"), "ab")
    p = subprocess.Popen([SERVER, "--home", home, "--node", node, "--threads", "1", *args], stdout=log, stderr=log)
    _procs.append(p)
    if not poll(lambda: p.poll() is not None or port_open(smtp_port), 20):
        raise SystemExit(f"FAILED: node {node} did not listen")
    if p.poll() is not None:
        raise SystemExit(f"FAILED: node {node} exited: " + open(log.name).read())
    return p


def start_redis(port):
    """A throw-away redis-server on the loopback port (nothing saved, killed
    at exit); fails the test when redis-server is missing or does not
    start."""
    server = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)), None)
    if server is None:
        raise SystemExit("FAILED: redis-server is not installed (Debian package `redis-server`; scripts/install-deps "
                         "installs it from scripts/packages.txt)")
    p = start_process([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                       "--dir", "/tmp", "--logfile", ""])
    if not poll(lambda: port_open(port), 15):
        raise SystemExit("FAILED: redis-server did not start")
    return p


def pop3_login_error(host, port, user, password):
    """A POP3 login (USER/PASS, poplib): the -ERR line it got, or None when
    it succeeded (then QUIT)."""
    p = poplib.POP3(host, port, timeout=15)
    p.user(user)
    try:
        p.pass_(password)
    except poplib.error_proto as e:
        p.close()
        return e.args[0].decode()
    p.quit()
    return None


def port_open(port):
    """Whether something accepts connections on the loopback port."""
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def recv_line(sock, size=1):
    """Bytes up to and with the next LF (reads of `size` bytes; with more
    than 1, what follows the LF in the same read is kept too), or up to EOF."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(size)
        if not chunk:
            break
        data += chunk
    return data


def run_tests(scope):
    """Run a script's test_* functions (scope: its globals()) in name order,
    or only those named on the command line."""
    tests = [v for k, v in sorted(scope.items()) if k.startswith("test_")]
    only = sys.argv[1:]
    for t in tests:
        if only and t.__name__ not in only:
            continue
        t0 = time.time()
        t()
        print(f"ok {t.__name__} ({time.time() - t0:.1f}s)", flush=True)


def server_log(home):
    """var/log/server.log as written so far (its own thread writes it)."""
    try:
        with open(os.path.join(home.path, "var", "log", "server.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""
