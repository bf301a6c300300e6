#!/usr/bin/env python3
"""Three wizmail nodes as one service (issue 17, item 6; docs/cluster.md,
"Tests"): nodes n1, n2, n3 on one shared home, each listening on its own
loopback address (127.0.0.11-13) and ports chosen now (HOME/nodes/NAME/
node.dat), with redis_url to a redis-server the test starts and a real
HAProxy in TCP mode in front (send-proxy-v2 to every node's SMTP and POP3
listener, from 127.0.0.2, the only proxy_trusted_networks entry). Every
process runs on loopback and is killed at the end, also on failure.

a. SMTP load through HAProxy (smtplib, several threads, one connection a
   message, each attempt with its own Message-ID token) while n1 is killed
   with SIGKILL in the middle: a failed attempt is retried through HAProxy
   with a new token. Every token that got a 250 is in its recipient's
   Maildir (new/ or cur/) exactly once, in no other mailbox; a token that
   never got a 250 is there at most once. n1, started again, serves again.
b. The POP3 lock across nodes, on the nodes' own ports: a session on n2
   holds alice, a login on n3 gets -ERR [IN-USE], after QUIT on n2 the
   login on n3 succeeds; the Redis lease is n2's, then n3's, then gone (on
   one host the nodes' flock on cur/ would refuse n3 without Redis too).
c. A dead node's queue entries are delivered by the others (issue 17 item
   4: a node claims an entry by renaming it into resendmail/claims/<node>/;
   when its heartbeat is older than cluster_takeover_seconds a live node
   moves its claims back and delivers them, logging "took over"). Mail for
   a remote domain goes to an SMTP sink here (smart_host) that holds its
   reply to the DATA dot until the test lets it go, and counts a message as
   delivered only once it has sent its 250 and then read the client's next
   command (a reset before that: the client died mid-transaction, RFC 5321
   §6.1, the message is not counted). Twenty messages are submitted on n3's
   own port; while n3 lives and holds claims (longer than the takeover
   time) no other node starts a second transaction of any of them; n3 is
   killed with SIGKILL; within 60 s the sink has every message exactly
   once, none of the transactions n3 died in is sent again before its
   heartbeat is cluster_takeover_seconds old, and n1's or n2's server.log
   says it took over n3's entries, with their number.

WIZMAIL_SHARED_HOME_BASE: the folder the shared home is made in (default:
the system's temp folder); scripts/test-glusterfs points it at a GlusterFS
FUSE mount."""
import collections, os, poplib, re, shutil, signal, smtplib, socket, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(__file__))
import harness
from harness import CLI, SERVER, Home, catches, check, free_port, poll

HAPROXY = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy", "/sbin/haproxy") if os.path.exists(p)), None)
if HAPROXY is None:
    raise SystemExit("FAILED: haproxy is not installed (Debian package `haproxy`; scripts/install-deps installs "
                     "it from scripts/packages.txt)")

NODES = ("n1", "n2", "n3")
ADDR = {"n1": "127.0.0.11", "n2": "127.0.0.12", "n3": "127.0.0.13"}
BALANCER = "127.0.0.2"   # HAProxy's source address towards the nodes: the only trusted proxy
CLIENT = "127.0.0.5"     # the load's clients, as HAProxy sees them (and wizmail must)
ACCOUNTS = ("alice", "bob", "carol")
REMOTE = "remote.example"
HEARTBEAT, TAKEOVER = 1, 4
# The clients' EHLO name, given: without it smtplib asks socket.getfqdn(),
# a DNS query for this host's name, which a resolver that drops some
# queries stalls 5 s (seen in a clean bookworm root: 600 messages took
# 176 s instead of 2).
EHLO = "load.example"

base = os.environ.get("WIZMAIL_SHARED_HOME_BASE") or None
if base and not os.path.isdir(base):
    raise SystemExit(f"FAILED: WIZMAIL_SHARED_HOME_BASE={base} is not a folder")


def port_open(host, port):
    try:
        socket.create_connection((host, port), 0.2).close()
        return True
    except OSError:
        return False


# --- The remote MTA: an SMTP sink that holds its reply to the DATA dot ---

TOKEN = re.compile(rb"Message-ID: <(\w+)@three-nodes\.test>", re.I)


class Sink:
    """A minimal SMTP server on a free loopback port. While `release` is
    clear, the reply to a DATA dot waits for it (the entry stays claimed by
    the delivering node). A message counts as delivered once its 250 was
    sent and the client's next command (RSET, MAIL, QUIT, ...) was read;
    a connection that ends before that is an aborted transaction."""

    def __init__(self):
        self.port = free_port()
        self.lock = threading.Lock()
        self.data = collections.Counter()       # token -> transactions whose dot was read
        self.delivered = collections.Counter()  # token -> 250 sent and the next command read
        self.aborted = collections.Counter()    # token -> the dot read, the transaction not finished
        self.held = 0                           # replies waiting for `release` now
        self.data_times = []                    # (time, token) of every dot read
        self.release = threading.Event()
        self.release.set()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(120)
        rf = conn.makefile("rb")
        pending = None  # a token whose 250 was sent, waiting for the next command

        def settle(line):
            nonlocal pending
            if pending is not None:
                with self.lock:
                    (self.delivered if line else self.aborted)[pending] += 1
                pending = None

        try:
            conn.sendall(b"220 sink.test ESMTP\r\n")
            while True:
                try:
                    line = rf.readline()
                except OSError:
                    line = b""
                settle(line)
                if not line:
                    return
                cmd = line.strip().upper()
                if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
                    conn.sendall(b"250 sink.test\r\n")
                elif cmd == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    body = b""
                    while True:
                        part = rf.readline()
                        if not part:
                            return  # the client died in the body: nothing to count
                        if part == b".\r\n":
                            break
                        body += part
                    m = TOKEN.search(body)
                    token = m.group(1).decode() if m else "?"
                    with self.lock:
                        self.data[token] += 1
                        self.data_times.append((time.time(), token))
                        self.held += 1
                    self.release.wait(90)
                    with self.lock:
                        self.held -= 1
                    pending = token
                    try:
                        conn.sendall(b"250 2.0.0 queued as " + token.encode() + b"\r\n")
                    except OSError:
                        settle(b"")
                        return
                elif cmd == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:  # MAIL, RCPT, RSET, NOOP
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            settle(b"")
        finally:
            conn.close()

    def counts(self):
        with self.lock:
            return collections.Counter(self.data), collections.Counter(self.delivered), collections.Counter(self.aborted)


sink = Sink()

# --- The shared home, the nodes, Redis and HAProxy ---

redis_port = free_port()
redis = harness.start_redis(redis_port)
home = Home(root=base, accounts=tuple((a, "secret") for a in ACCOUNTS) + (("postmaster", "pm"),),
            smtp_extra=("greet_wait=0\naddress_permits_relay=127.0.0.1\n"
                        f"smart_host=127.0.0.1:{sink.port}\nresend_scan_interval=1\n"),
            server_extra=(f"proxy_trusted_networks={BALANCER}\nredis_url=redis://127.0.0.1:{redis_port}/0\n"
                          f"redis_lease_seconds=10\ncluster_heartbeat_seconds={HEARTBEAT}\n"
                          f"cluster_takeover_seconds={TAKEOVER}\n"))
H = home.path
ports = {n: {"smtp": free_port(), "pop": free_port()} for n in NODES}
procs = {}


def node_dir(n):
    return os.path.join(H, "nodes", n)


def server_log(n):
    try:
        with open(os.path.join(node_dir(n), "log", "server.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def stderr_tail(n, size=3000):
    try:
        with open(os.path.join(H, f"stderr-{n}.log"), errors="replace") as f:
            return f.read()[-size:]
    except FileNotFoundError:
        return ""


def write_node_dat(n):
    with open(os.path.join(node_dir(n), "node.dat"), "w") as f:
        f.write(f"# node {n}: its own loopback address and ports\nbind_address={ADDR[n]}\n"
                f"smtpenv.port={ports[n]['smtp']}\nsubmission_port=0\npopenv.port={ports[n]['pop']}\n")


for n in NODES:
    os.makedirs(node_dir(n))
    write_node_dat(n)


def start(n, first=False):
    for attempt in range(3):
        log = open(os.path.join(H, f"stderr-{n}.log"), "ab")
        start_at = log.tell()
        p = subprocess.Popen([SERVER, "--home", H, "--node", n, "--threads", "1"], stdout=log, stderr=log)
        harness._procs.append(p)
        procs[n] = p
        ready = lambda: p.poll() is not None or (port_open(ADDR[n], ports[n]["smtp"])
                                                  and port_open(ADDR[n], ports[n]["pop"]) and catches(p.pid, signal.SIGTERM))
        if poll(ready, 30) and p.poll() is None:
            return
        with open(log.name, errors="replace") as f:
            f.seek(start_at)
            said = f.read()
        if first and "Address already in use" in said and attempt < 2:
            # Another process took a port between free_port() and the bind
            # (before HAProxy was told the ports): new ports, again.
            ports[n] = {"smtp": free_port(), "pop": free_port()}
            write_node_dat(n)
            continue
        raise SystemExit(f"FAILED: node {n} did not start: " + said[-3000:])


def dump():
    """The nodes' own account of a failure: the end of each one's stderr and
    server.log, the queue's folders, the sink's counts."""
    for n in NODES:
        print(f"--- {n} stderr:\n{stderr_tail(n, 1500)}\n--- {n} server.log:\n{server_log(n)[-1500:]}", file=sys.stderr)
    print(f"--- queue: {queue_left() if 'queue_left' in globals() else '?'}", file=sys.stderr)
    print(f"--- sink: held {sink.held}, counts {sink.counts()}", file=sys.stderr)


def expect(cond, what, timeout):
    """Poll until cond() holds; otherwise dump() and fail."""
    if not poll(cond, timeout, 0.1):
        dump()
        check(False, what + " (timed out)")
    print("ok -", what, flush=True)


def kill9(n):
    procs[n].send_signal(signal.SIGKILL)
    procs[n].wait()


for n in NODES:
    start(n, first=True)

front = {"smtp": free_port(), "pop3": free_port()}
cfg = ["global", "    maxconn 500", "defaults", "    mode tcp", "    balance roundrobin", "    retries 3",
       "    option redispatch", "    timeout connect 2s", "    timeout client 60s", "    timeout server 60s"]
for name, key in (("smtp", "smtp"), ("pop3", "pop")):
    cfg += [f"frontend f_{name}", f"    bind 127.0.0.1:{front[name]}", f"    default_backend b_{name}",
            f"backend b_{name}"]
    if name == "smtp":
        cfg.append("    option smtpchk EHLO haproxy.test")
    for n in NODES:
        cfg.append(f"    server {n} {ADDR[n]}:{ports[n][key]} send-proxy-v2 source {BALANCER} "
                   "check check-send-proxy inter 500ms fall 1 rise 1")
cfg_path = os.path.join(H, "haproxy.cfg")
with open(cfg_path, "w") as f:
    f.write("\n".join(cfg) + "\n")
r = subprocess.run([HAPROXY, "-c", "-f", cfg_path], capture_output=True, text=True)
check(r.returncode == 0, "haproxy.cfg is valid" + ("" if r.returncode == 0 else ": " + r.stdout + r.stderr))
haproxy_log = os.path.join(H, "haproxy.log")
hap = subprocess.Popen([HAPROXY, "-db", "-f", cfg_path], stdout=open(haproxy_log, "wb"), stderr=subprocess.STDOUT)
harness._procs.append(hap)
if not poll(lambda: all(port_open("127.0.0.1", p) for p in front.values()), 15):
    raise SystemExit("FAILED: haproxy did not open its frontends: " + open(haproxy_log, errors="replace").read())


def mailbox_files(account):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(H, "mailbox", account, sub)
        out += [os.path.join(d, f) for f in os.listdir(d) if not f.startswith(".")]
    return out


def writer(path):
    """The node in a Maildir name (<sec>.M<usec>P<pid>Q<seq>.<node>,S=...)."""
    return os.path.basename(path).split(",")[0].split(".", 2)[2]


def message(token, rcpt, subject):
    return (f"From: <sender@example.org>\r\nTo: <{rcpt}>\r\nMessage-ID: <{token}@three-nodes.test>\r\n"
            f"Subject: {subject} {token}\r\n\r\nbody of {token}\r\n")


# --- a. SMTP load through HAProxy, one node killed in the middle ---

def test_a_load_through_haproxy_with_a_node_killed():
    check(all(procs[n].poll() is None for n in NODES), "three nodes run")
    total, threads = 600, 8
    lock = threading.Lock()
    acked = {}          # logical message -> (token, account)
    tried = {}          # token -> account, every attempt
    failures = collections.Counter()
    errors = []

    def worker(k):
        for i in range(k, total, threads):
            account = ACCOUNTS[i % len(ACCOUNTS)]
            for attempt in range(30):
                token = f"a{i:04d}x{attempt}"
                with lock:
                    tried[token] = account
                try:
                    s = smtplib.SMTP("127.0.0.1", front["smtp"], timeout=30, source_address=(CLIENT, 0),
                                     local_hostname=EHLO)
                    try:
                        s.ehlo(EHLO)
                        s.sendmail("sender@example.org", [f"{account}@localhost"],
                                   message(token, f"{account}@localhost", "load"))
                        with lock:
                            acked[i] = (token, account)
                    finally:
                        try:
                            s.quit()
                        except (smtplib.SMTPException, OSError):
                            pass
                    break
                except smtplib.SMTPResponseException as e:
                    with lock:
                        failures[f"{e.smtp_code}"] += 1
                    if e.smtp_code >= 500:
                        with lock:
                            errors.append(f"{token}: {e.smtp_code} {e.smtp_error!r}")
                        return
                except smtplib.SMTPRecipientsRefused as e:
                    code = list(e.recipients.values())[0][0]
                    with lock:
                        failures[f"{code}"] += 1
                    if code >= 500:
                        with lock:
                            errors.append(f"{token}: {e.recipients}")
                        return
                except (smtplib.SMTPException, OSError) as e:
                    with lock:
                        failures[type(e).__name__] += 1
                time.sleep(0.1)
            else:
                with lock:
                    errors.append(f"message {i}: no 250 in 30 attempts")

    ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    t0 = time.time()
    for t in ts:
        t.start()
    check(poll(lambda: len(acked) >= total // 3, 120, 0.01), f"a third of the load acknowledged ({len(acked)})")
    kill9("n1")
    at_kill = len(acked)
    print(f"# n1 killed with SIGKILL after {at_kill} acknowledged messages ({time.time() - t0:.1f}s)", flush=True)
    for t in ts:
        t.join(240)
    check(not any(t.is_alive() for t in ts), "every client thread finished")
    check(not errors, f"no permanent failure and no message without a 250 ({errors[:5]})")
    check(len(acked) == total, f"every one of {total} messages got a 250 in the end ({len(acked)}; "
                               f"failed attempts retried: {dict(failures)}; {time.time() - t0:.1f}s)")

    found = collections.defaultdict(list)  # token -> [(account, path)]
    strays = []
    for account in ACCOUNTS:
        for path in mailbox_files(account):
            with open(path, "rb") as f:
                tokens = set(TOKEN.findall(f.read()))
            if len(tokens) != 1:
                strays.append((path, tokens))
            for t in tokens:
                found[t.decode()].append((account, path))
    check(not strays, f"every Maildir file holds one message of the load ({strays[:3]})")
    twice = {t: v for t, v in found.items() if len(v) > 1}
    check(not twice, f"no token is stored twice ({list(twice.items())[:3]})")
    missing = [(i, tok) for i, (tok, acc) in acked.items() if tok not in found]
    check(not missing, f"every acknowledged token is in a Maildir ({missing[:5]})")
    wrong = [(tok, acc, found[tok][0][0]) for tok, acc in acked.values() if found[tok][0][0] != acc]
    check(not wrong, f"each in its recipient's mailbox ({wrong[:3]})")
    acked_tokens = {tok for tok, _ in acked.values()}
    unacked = set(found) - acked_tokens
    check(all(t in tried for t in found), "nothing in the mailboxes the load did not send")
    print(f"# stored: {len(acked_tokens)} acknowledged exactly once, {len(unacked)} unacknowledged attempts "
          f"stored once (a 250 lost with the killed node), {sum(failures.values())} failed attempts", flush=True)
    writers = collections.Counter(writer(p) for v in found.values() for _, p in v)
    check(writers["n1"] > 0 and writers["n2"] > 0 and writers["n3"] > 0,
          f"all three nodes stored part of the load ({dict(writers)})")
    # The client HAProxy names is the client, not the balancer.
    with open(found[acked[total - 1][0]][0][1], "rb") as f:
        head = f.read().split(b"\r\n\r\n")[0].decode(errors="replace")
    check(f"[{CLIENT}]" in head and f"[{BALANCER}]" not in head, f"Received: names {CLIENT}, not HAProxy")

    # n1 comes back and takes load through HAProxy again.
    start("n1")
    before = {p for a in ACCOUNTS for p in mailbox_files(a)}

    def one_via_haproxy(j):
        token = f"r{j:04d}"
        with smtplib.SMTP("127.0.0.1", front["smtp"], timeout=30, source_address=(CLIENT, 0),
                          local_hostname=EHLO) as s:
            s.sendmail("sender@example.org", ["alice@localhost"], message(token, "alice@localhost", "back"))
        new = {p for p in mailbox_files("alice")} - before
        return any(writer(p) == "n1" for p in new)

    counter = iter(range(1000))
    expect(lambda: one_via_haproxy(next(counter)), "n1, started again, stores mail that comes through HAProxy", 30)


# --- b. The POP3 lock across nodes ---

def pop_login(n):
    p = poplib.POP3(ADDR[n], ports[n]["pop"], timeout=15)
    p.user("alice")
    p.pass_("secret")
    return p


def pop_error(n):
    return harness.pop3_login_error(ADDR[n], ports[n]["pop"], "alice", "secret")


def lease_owner():
    """The Redis lease of alice's mailbox (docs/cluster.md: owner
    <host>:<pid>:<nonce>:<session>), "" when there is none."""
    redis_cli = shutil.which("redis-cli")
    if not redis_cli:
        raise SystemExit("FAILED: redis-cli is needed (Debian package redis-server, scripts/packages.txt)")
    return subprocess.run([redis_cli, "-p", str(redis_port), "GET", "wizmail:pop3lock:alice"], capture_output=True,
                          text=True, timeout=10).stdout.strip()


def held_by(n):
    return f":{procs[n].pid}:" in lease_owner()


def test_b_pop3_lock_across_nodes():
    # On one host the nodes' mailbox lock (flock on cur/) excludes them too:
    # the Redis lease, what excludes nodes on other hosts, is checked apart.
    check(lease_owner() == "", "nobody holds alice's lease")
    p2 = pop_login("n2")
    count, _ = p2.stat()
    check(count == len(mailbox_files("alice")), f"n2 holds alice: {count} messages, as in the Maildir")
    check(held_by("n2"), f"the Redis lease is n2's ({lease_owner()})")
    err = pop_error("n3")
    check(err is not None and err.startswith("-ERR [IN-USE]"), f"a login on n3 meanwhile: {err!r}")
    err = pop_error("n1")
    check(err is not None and err.startswith("-ERR [IN-USE]"), f"a login on n1 meanwhile: {err!r}")
    p2.quit()
    p3 = pop_login("n3")  # poplib raises on -ERR: fails the test
    count3, _ = p3.stat()
    check(count3 == count, f"after QUIT on n2 the login on n3 succeeds ({count3} messages)")
    check(held_by("n3"), f"the Redis lease is n3's ({lease_owner()})")
    err = pop_error("n2")
    check(err is not None and err.startswith("-ERR [IN-USE]"), f"and now n2 is refused: {err!r}")
    p3.quit()
    check(lease_owner() == "", "QUIT on n3 released the lease")
    # Through HAProxy too (whichever node it picks), once the lock is free.
    p = poplib.POP3("127.0.0.1", front["pop3"], timeout=15)
    p.user("alice")
    p.pass_("secret")
    check(p.stat()[0] == count, "a POP3 login through HAProxy sees the same mailbox")
    p.quit()


# --- c. The dead node's queue entries are delivered by the others ---

def entries(folder):
    try:
        return [e for e in os.listdir(folder) if not e.startswith(".")]
    except FileNotFoundError:
        return []


def queue_left():
    q = os.path.join(H, "resendmail")
    left = {s: entries(os.path.join(q, s)) for s in ("incoming", "active", "deferred")}
    claims = os.path.join(q, "claims")
    for n in entries(claims):
        left["claims/" + n] = entries(os.path.join(claims, n))
    left["adopted"] = entries(os.path.join(q, "adopted"))
    return {k: v for k, v in left.items() if v}


def test_c_dead_nodes_queue_delivered_by_the_others():
    victim, n_msgs = "n3", 20
    claims = os.path.join(H, "resendmail", "claims", victim)
    sink.release.clear()  # hold every reply to a DATA dot
    tokens = [f"q{i:02d}" for i in range(n_msgs)]
    with smtplib.SMTP(ADDR[victim], ports[victim]["smtp"], timeout=30, local_hostname=EHLO) as s:
        for t in tokens:
            refused = s.sendmail("alice@localhost", [f"{t}@{REMOTE}"], message(t, f"{t}@{REMOTE}", "relay"))
            if refused:
                raise SystemExit(f"FAILED: {t} refused: {refused}")
    check(True, f"{n_msgs} messages for {REMOTE} accepted on {victim}'s own port")
    expect(lambda: entries(claims) and sink.held > 0,
           f"{victim} claimed entries (resendmail/claims/{victim}/) and is in a transaction with the sink", 30)
    # While the owner lives (longer than cluster_takeover_seconds), nobody
    # else delivers what it claimed.
    claimed_before = set(entries(claims))
    t_end = time.time() + TAKEOVER + 2
    while time.time() < t_end:
        data, delivered, _ = sink.counts()
        dup = {t: c for t, c in data.items() if c > 1}
        if dup or delivered:
            break
        time.sleep(0.1)
    data, delivered, _ = sink.counts()
    check(not {t: c for t, c in data.items() if c > 1},
          f"while {victim} lives, no second transaction of a message it holds ({dict(data)})")
    check(not delivered, "while the sink holds its replies, nothing is delivered")
    check(claimed_before <= set(entries(claims)),
          f"{victim} still holds its claims after {TAKEOVER + 2}s ({len(entries(claims))})")
    check(all("took over" not in server_log(n) for n in NODES), "no node took anything over from a live node")

    held_at_kill = sink.held
    kill9(victim)
    killed_at = time.time()
    claimed_at_kill = sorted(entries(claims))
    # The others' runners scan incoming/ too: one of them may have claimed
    # some of these entries before n3 did (they finish once the sink lets go).
    all_claims = {k: len(v) for k, v in queue_left().items() if k.startswith("claims/")}
    print(f"# {victim} killed holding {len(claimed_at_kill)} claims (every node's: {all_claims}), "
          f"{held_at_kill} transactions open at the sink", flush=True)
    sink.release.set()  # the dead node's transactions: the 250 goes nowhere; the next ones at once

    def all_delivered():
        _, d, _ = sink.counts()
        return all(d[t] >= 1 for t in tokens)

    t0 = time.time()
    expect(all_delivered, "the sink got every message", 60)
    took = time.time() - t0
    expect(lambda: any("took over" in server_log(n) for n in ("n1", "n2")),
           "n1's or n2's server.log says it took over", 10)
    time.sleep(2 * HEARTBEAT + 1)  # a late duplicate would show by now
    data, delivered, aborted = sink.counts()
    check(all(delivered[t] == 1 for t in tokens) and set(delivered) <= set(tokens),
          f"every message delivered exactly once in {took:.1f}s "
          f"(delivered {dict(delivered)}; aborted with {victim}: {dict(aborted)})")
    # The transactions that died with n3 (its 250 sent into a closed
    # connection): none of those messages may be sent again before n3's
    # beat is cluster_takeover_seconds old (its last beat was at most one
    # interval before the kill).
    check(aborted, f"{victim} died in the middle of transactions ({len(aborted)}; the RFC 5321 §6.1 case)")
    first = min(t for t, tok in sink.data_times if t > killed_at and tok in aborted)
    check(first - killed_at >= TAKEOVER - HEARTBEAT - 0.5,
          f"not taken over before its heartbeat was {TAKEOVER}s old (the first of them sent again "
          f"{first - killed_at:.1f}s after the kill)")
    lines = [l for n in ("n1", "n2") for l in server_log(n).splitlines() if "took over" in l]
    check(any(re.search(rf"\b{victim}\b", l) for l in lines), f"the log names {victim}: {lines}")
    # "took over node DEAD (heartbeat N s old): Q queue entries and S agent
    # spool entries back in incoming/, ..." (docs/cluster.md)
    taken = [int(m.group(1)) for l in lines
             for m in [re.search(rf"took over node {victim}\b[^:]*: (\d+) queue entries", l)] if m]
    check(taken and sum(taken) == len(claimed_at_kill),
          f"the log gives the count of {victim}'s claims ({len(claimed_at_kill)}): {lines}")
    expect(lambda: not queue_left(), "the shared queue is empty", 15)
    check(not entries(claims), f"resendmail/claims/{victim}/ is empty")


def test_z_stop():
    # What the nodes logged as errors, for the record (a network file
    # system's refusals would show here first; scripts/test-glusterfs).
    for n in NODES:
        try:
            with open(os.path.join(node_dir(n), "log", "error.log"), errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        kinds = collections.Counter(re.sub(r"[0-9a-f]*\d[0-9a-f]*", "#", l[24:])[:110] for l in lines)
        print(f"# {n} error.log: {len(lines)} lines" + "".join(f"\n#   {c} x {k}" for k, c in kinds.most_common(6)),
              flush=True)
    for n in NODES:
        if procs[n].poll() is None:
            r = subprocess.run([CLI, "--home", H, "--node", n, "stop"], capture_output=True, text=True, timeout=60)
            check(r.returncode == 0 and procs[n].wait(30) == 0, f"node {n} stopped cleanly")
    hap.terminate()
    hap.wait(10)


harness.run_tests(globals())
