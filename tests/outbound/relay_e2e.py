"""Outbound delivery end to end, with real peers on loopback:
dnsmasq (MX records) + Postfix's smtp-sink (the remote MTA, told to fail on
demand) + the real wizmail-server (restarted and kill -9'd on the way).
Every process is started here on free ports and killed at exit."""
import os, smtplib, socket, struct, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402
import peers  # noqa: E402
from harness import Home, Server, check  # noqa: E402
from peers import CHECK_DSN, WIZMAIL  # noqa: E402

for tool in peers.missing_tools():
    # Never skip: a missing peer is the machine's fault, said loudly.
    print(f"FAILED: {tool} is not installed (scripts/install-deps, scripts/packages.txt)")
    sys.exit(1)


def wait_port(port, up=True, timeout=10):
    if not harness.poll(lambda: harness.port_open(port) == up, timeout):
        raise SystemExit(f"port {port} not {'up' if up else 'down'}")


def wait_for(cond, what, timeout=15):
    return harness.wait_for(cond, what, timeout, _homes, tail=3000)


_homes = []


def dns_answers(port, name="mx.example.test"):
    """Whether the DNS server on the loopback port answers an A query for
    name with at least one record (what wizmail's resolver will ask)."""
    query = struct.pack(">HHHHHH", 0x5a5a, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p for p in name.encode().split(b".")) + b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(query, ("127.0.0.1", port))
            data = s.recv(512)
        except OSError:
            return False
    return len(data) >= 12 and data[:2] == b"\x5a\x5a" and data[3] & 0x0F == 0 and struct.unpack(">H", data[6:8])[0] >= 1


def peer_connections(port):
    """Established TCP connections to the loopback port (the peer's side of
    a delivery in progress), from /proc/net/tcp."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            local, state = line.split()[1], line.split()[3]
            if state == "01" and int(local.split(":")[1], 16) == port:
                n += 1
    return n


tmp = tempfile.mkdtemp(prefix="wizmail-outbound-")

# --- DNS: example.test has MX mx.example.test (10) → 127.0.0.1;
#     gone.test does not exist (NXDOMAIN).
dnsmasq, dns_port = peers.start_dnsmasq(tmp)
wait_for(lambda: dns_answers(dns_port) or dnsmasq.poll() is not None, "dnsmasq answers")
check(dnsmasq.poll() is None and dns_answers(dns_port), "dnsmasq runs on a free loopback port and answers")

# --- The remote MTA.
mta = peers.Sink(tmp)
peer_port, dump, dumped = mta.port, mta.dump, mta.dumped


def sink(*extra):
    p = mta.start(*extra)
    wait_port(peer_port)
    return p


def queue_files(home, state):
    # Entries only: the runner rewrites an envelope through a temporary
    # ".<id>.tmp.*" file in the same folder (queue ids never start with '.').
    return [n for n in os.listdir(os.path.join(home.path, "resendmail", state)) if not n.startswith(".")]


def queued(home):
    return sum(len(queue_files(home, s)) for s in ("incoming", "active", "deferred"))


def send(home, rcpts, subject, sender="alice@localhost"):
    s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
    s.sendmail(sender, rcpts, f"From: <{sender}>\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n.dot line\r\n")
    s.quit()


extra = (f"address_permits_relay=127.0.0.1\ndns_servers=127.0.0.1:{dns_port}\noutbound_port={peer_port}\n"
         "resend_scan_interval=1\n")
home = Home(smtp_extra=extra)
_homes.append(home)
server = Server(home)

# 1. MX routing through dnsmasq to smtp-sink, dot-stuffing intact.
peer = sink()
send(home, ["bob@example.test", "carol@example.test"], "mx-routing")
# smtp-sink writes its dump file as the transaction goes: wait for the whole
# message (its last body line), not just for the file.
wait_for(lambda: len(dumped()) == 1 and b"dot line" in dumped()[0], "message delivered to the MX host found by DNS")
msg = dumped()[0]
check(b"X-Rcpt-Args: <bob@example.test>" in msg and b"X-Rcpt-Args: <carol@example.test>" in msg,
      "one transaction carried both recipients")
check(b"\r\n.dot line\r\n" in msg.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"),
      "a line starting with '.' arrives as sent (dot-stuffing)")
wait_for(lambda: queued(home) == 0, "the queue is empty after delivery")

# 2. Permanent failure: 5xx to RCPT → RFC 3464 DSN to the local sender,
#    a copy to postmaster, the message kept in deadmail/.
peer.kill(); peer.wait()
peer = sink("-f", "RCPT")
send(home, ["nobody@example.test"], "will-bounce")
wait_for(lambda: len(home.messages("alice")) == 1, "the bounce reached the local sender")
bounce = os.path.join(home.new_dir("alice"), os.listdir(home.new_dir("alice"))[0])
# smtp-sink -f answers RCPT with "500 5.3.0 Error: command failed".
r = subprocess.run([sys.executable, CHECK_DSN, bounce, "alice@localhost", "nobody@example.test=5.3.0",
                    "Subject: will-bounce"], capture_output=True, text=True)
check(r.returncode == 0, "python's email package reads the DSN: " + r.stdout + r.stderr)
check(len(home.messages("postmaster")) == 1, "postmaster got a copy of the notice")
check(any(not n.endswith(".envelope") for n in os.listdir(os.path.join(home.path, "deadmail"))),
      "the failed message is kept in deadmail/")
wait_for(lambda: queued(home) == 0, "nothing is left queued after the bounce")

# 3. NXDOMAIN is permanent too.
send(home, ["someone@gone.test"], "nxdomain")
wait_for(lambda: len(home.messages("alice")) == 2, "a bounce for a domain that does not exist")

# 4. Peer down → deferred; server restarted; peer up; flush → delivered once.
peer.kill(); peer.wait()
wait_port(peer_port, up=False)
send(home, ["dave@example.test"], "peer-down")
wait_for(lambda: len(queue_files(home, "deferred")) == 1, "peer down: the message waits in deferred/")
r = subprocess.run([WIZMAIL, "--home", home.path, "queue", "list", "--json"], capture_output=True, text=True)
check(r.returncode == 0 and "dave@example.test" in r.stdout and "pending" in r.stdout,
      "wizmail queue list shows the waiting recipient")
server.stop()
server = Server(home)
# The restarted runner may be moving it deferred/ → active/ → deferred/
# while the three folders are listed one after the other: poll (a lost
# message never comes back, so this still fails on a real loss).
wait_for(lambda: queued(home) == 1, "the deferred message survived the restart: " +
         repr({st: queue_files(home, st) for st in ("incoming", "active", "deferred")}), timeout=10)
print("ok - the deferred message survived the restart", flush=True)
n_before = len(dumped())
peer = sink()
r = subprocess.run([WIZMAIL, "--home", home.path, "queue", "flush"], capture_output=True, text=True)
check(r.returncode == 0, "wizmail queue flush: " + r.stdout.strip() + r.stderr.strip())
wait_for(lambda: len(dumped()) == n_before + 1, "after the flush the message reaches the peer", timeout=10)
wait_for(lambda: queued(home) == 0, "and leaves the queue")

# 5. kill -9 of wizmail-server in the middle of a delivery (the peer waits
#    before answering DATA): nothing is lost, the restart delivers it.
peer.kill(); peer.wait()
peer = sink("-w", "3")
n_before = len(dumped())
send(home, ["erin@example.test"], "kill-9")
wait_for(lambda: len(queue_files(home, "active")) == 1, "the message is being delivered (active/)")
# In the middle of the delivery: connected to the peer, which holds back its
# answer to DATA for 3 s.
wait_for(lambda: peer_connections(peer_port) >= 1, "wizmail is connected to the peer")
server.kill9()
check(queued(home) == 1, "after kill -9 the message is still queued")
peer.kill(); peer.wait()
peer = sink()
server = Server(home)
wait_for(lambda: len(dumped()) >= n_before + 1, "after restart the message is delivered", timeout=15)
wait_for(lambda: queued(home) == 0, "and the queue is empty")
got = [m for m in dumped() if b"Subject: kill-9" in m]
check(1 <= len(got) <= 2, f"delivered {len(got)} time(s): no loss, at most the duplicate RFC 5321 allows")

# 6a. wizmail exists / check-smtp against the peer (MX from dnsmasq).
def wiz(*args):
    return subprocess.run([WIZMAIL, "--home", home.path, *args], capture_output=True, text=True, timeout=60)


r = wiz("exists", "bob@example.test")
check(r.returncode == 0 and "exists" in r.stdout, "exists: accepted RCPT → exit 0: " + r.stdout.strip())
r = wiz("exists", "x@gone.test")
check(r.returncode == 1, "exists: NXDOMAIN → exit 1: " + r.stdout.strip())
peer.kill(); peer.wait()
peer = sink("-f", "RCPT")
r = wiz("exists", "bob@example.test")
check(r.returncode == 1 and "does-not-exist" in r.stdout, "exists: 5xx to RCPT → exit 1")
peer.kill(); peer.wait()
wait_port(peer_port, up=False)
r = wiz("exists", "bob@example.test", "--timeout", "2")
check(r.returncode == 2 and "unknown" in r.stdout, "exists: nobody reachable → exit 2")
peer = sink()
r = wiz("check-smtp", f"127.0.0.1:{peer_port}", "--json")
check(r.returncode == 0 and '"PIPELINING"' in r.stdout and '"starttls":false' in r.stdout,
      "check-smtp lists the peer's capabilities")
tls_home = Home(tls=True)
tls_server = Server(tls_home)
r = wiz("check-smtp", f"127.0.0.1:{tls_home.port}")
check(r.returncode == 0 and "STARTTLS:     ok" in r.stdout and "CN=localhost" in r.stdout,
      "check-smtp: STARTTLS and the certificate subject: " + r.stdout.replace("\n", " | ")[:300])
tls_server.stop()

# 6. Two wizmail servers: A relays to B through smart_host.
b_home = Home(accounts=(("frank", "pw"), ("postmaster", "pm")))
with open(os.path.join(b_home.path, "def", "wiz98msenv.dat"), "w") as f:
    f.write("domain=remote.test\n")
b_server = Server(b_home)
a_home = Home(smtp_extra=f"address_permits_relay=127.0.0.1\nsmart_host=127.0.0.1:{b_home.port}\n"
                         "resend_scan_interval=1\n")
a_server = Server(a_home)
send(a_home, ["frank@remote.test"], "via-smart-host")
wait_for(lambda: len(b_home.messages("frank")) == 1, "A relayed to B through smart_host; B stored it")
check(b"Subject: via-smart-host" in b_home.messages("frank")[0], "the message arrived whole")
a_server.stop()
b_server.stop()

# 7. queue delete: a deferred entry goes without a bounce; a bad id is refused.
peer.kill(); peer.wait()
wait_port(peer_port, up=False)
bounces = len(home.messages("alice"))
send(home, ["gina@example.test"], "to-delete")
wait_for(lambda: len(queue_files(home, "deferred")) == 1, "peer down again: deferred")
qid = queue_files(home, "deferred")[0]
r = wiz("queue", "delete", "../etc")
check(r.returncode != 0, "queue delete refuses a bad id")
for attempt in range(20):
    r = subprocess.run([WIZMAIL, "--home", home.path, "queue", "delete", qid], capture_output=True, text=True)
    if r.returncode == 0 or "being delivered" not in r.stderr:
        break
    # Claimed by a retry right then: the peer is down, so it comes back to
    # deferred/ (a failure would have bounced, which is checked below).
    wait_for(lambda: qid in queue_files(home, "deferred"), "the retry put the entry back in deferred/")
check(r.returncode == 0, "queue delete removes the entry: " + r.stdout.strip() + r.stderr.strip())
check(queued(home) == 0 and not os.path.exists(os.path.join(home.path, "resendmail", "data", qid)),
      "envelope and data are gone")
# A delete takes the entry from deferred/ by one rename, so the runner (which
# claims it by renaming it into active/) can no longer deliver or bounce it.
# The runner goes on: a message to a domain that does not exist is bounced
# after the delete, and that is the only new notice alice gets.
send(home, ["after-delete@gone.test"], "after-delete")
wait_for(lambda: len(home.messages("alice")) == bounces + 1, "the later message is bounced")
wait_for(lambda: queued(home) == 0, "nothing is left queued")
msgs = home.messages("alice")
check(sum(b"after-delete@gone.test" in m for m in msgs) == 1 and not any(b"gina@example.test" in m for m in msgs),
      "a deleted message is not bounced (the only new notice is the later one's)")

# 8. Sessions at once: outbound_max_per_destination bounds those to one
#    destination (set on the running server, reloaded); below it, messages
#    that arrive while every session is busy get sessions of their own. The
#    peer holds each DATA reply for a second so that sessions overlap.
peer = sink("-w", "1")


def most_sessions(n, tag):
    def mine():  # the dump files are named by message id, not in order
        return [m for m in dumped() if f"Subject: {tag}-".encode() in m and b"dot line" in m]

    for i in range(n):
        send(home, [f"c{i}@example.test"], f"{tag}-{i}")
    top, end = 0, time.time() + 60
    while queued(home) > 0 and time.time() < end:
        top = max(top, peer_connections(peer_port))
        time.sleep(0.01)
    wait_for(lambda: queued(home) == 0, f"{tag}: every message delivered", timeout=30)
    wait_for(lambda: len(mine()) >= n, f"{tag}: every message at the peer", timeout=10)
    check(len(mine()) == n, f"{tag}: {n} messages at the peer, each once (got {len(mine())})")
    return top


r = wiz("config", "set", "outbound_max_per_destination", "3")
check(r.returncode == 0, "config set outbound_max_per_destination 3: " + r.stdout.strip() + r.stderr.strip())
top = most_sessions(12, "conc3")
check(2 <= top <= 3, f"outbound_max_per_destination=3: at most 3 sessions at once, and more than one ({top})")
r = wiz("config", "set", "outbound_max_per_destination", "8")
check(r.returncode == 0, "config set outbound_max_per_destination 8")
top = most_sessions(16, "conc8")
check(4 <= top <= 8, f"outbound_max_per_destination=8: more than 3 sessions at once, at most 8 ({top})")
r = wiz("config", "set", "outbound_max_per_destination", "0")
check(r.returncode != 0 and "outbound_max_per_destination" in r.stderr,
      "0 sessions is refused with the key named: " + r.stderr.strip()[:200])
peer.kill(); peer.wait()
server.stop()
print("all outbound end-to-end checks passed")
