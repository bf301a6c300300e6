#!/usr/bin/env python3
"""A queue every node works (issue 17, item 4; docs/cluster.md): two
wizmail-server nodes, A and B, on one shared home, relaying through a smart
host that is a peer written here (a bare socket server on loopback). The peer
can stall in the middle of DATA (it stops reading, so the node's write
blocks with the message half sent), and it counts a message only when its
final dot arrived.

1. Fencing: while A is stuck in DATA, its claims/ folder is taken away
   exactly as a takeover does (one rename into adopted/<A>@<B>@…). When the
   peer reads again, A must not send the final dot: the peer sees the
   connection end without it, and A logs that the entry is no longer its
   own. B, started next, finishes that takeover at its start and delivers
   the message: the peer has it once.
2. Takeover: A stuck in DATA again, B alive. For longer than
   cluster_takeover_seconds nobody touches A's claim (A beats). Then A is
   killed with SIGKILL; B logs "took over node A" and delivers the entry:
   once, whole.
3. The agent spool: A's agent waits for a hook of the recipient's account
   (the spool entry stays claimed by A); A killed, B takes the entry over,
   runs the hook and stores the copy once.
"""
import os, signal, smtplib, socket, sys, threading, time

sys.path.insert(0, os.path.dirname(__file__))
import harness
from harness import Home, check, free_port, poll

BIG = 8 * 1024 * 1024  # far more than the socket buffers hold


class Peer:
    """An SMTP server that records, per transaction, the token in the
    Subject and whether the final dot came."""

    def __init__(self):
        self.port = free_port()
        self.stall = threading.Event()    # set: stop reading after 354
        self.release = threading.Event()  # set: read again
        self.in_data = threading.Event()  # a transaction reached 354 while stalling
        self.complete, self.aborted = [], []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        f = c.makefile("rb")
        try:
            c.sendall(b"220 peer.example ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line[:4].upper()
                if cmd in (b"EHLO", b"HELO"):
                    c.sendall(b"250-peer.example\r\n250 8BITMIME\r\n")
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                elif cmd == b"DATA":
                    c.sendall(b"354 go on\r\n")
                    if self.stall.is_set():
                        self.in_data.set()
                        self.release.wait(60)
                    token, done = None, False
                    while True:
                        l = f.readline()
                        if not l:
                            break
                        if l.startswith(b"Subject: ") and token is None:
                            token = l[9:].strip().decode()
                        if l == b".\r\n":
                            done = True
                            break
                    with self.lock:
                        (self.complete if done else self.aborted).append(token)
                    if not done:
                        return
                    c.sendall(b"250 2.0.0 queued\r\n")
                else:
                    c.sendall(b"250 ok\r\n")
        except OSError:
            with self.lock:
                self.aborted.append(None)
        finally:
            c.close()

    def count(self, token):
        with self.lock:
            return self.complete.count(token)


peer = Peer()
home = Home(smtp_extra=f"address_permits_relay=127.0.0.1\nsend_permits_only_smtp_auth=0\n"
                       f"smart_host=127.0.0.1:{peer.port}\nresend_scan_interval=1\n",
            server_extra="cluster_heartbeat_seconds=1\ncluster_takeover_seconds=4\n")
H = home.path
Q = os.path.join(H, "resendmail")
ports = {n: free_port() for n in ("A", "B")}
for n, p in ports.items():
    os.makedirs(os.path.join(H, "nodes", n))
    with open(os.path.join(H, "nodes", n, "node.dat"), "w") as f:
        f.write(f"smtpenv.port={p}\nsubmission_port=0\npopenv.port={free_port()}\n")
procs = {}


def start(n):
    procs[n] = harness.start_node(H, n, ports[n])


def stop(n):
    """A graceful stop (SIGTERM), so the next entry is surely the other
    node's to claim (every live node's runner competes for each one)."""
    procs[n].send_signal(signal.SIGTERM)
    procs[n].wait(30)


def log_of(n):
    try:
        with open(os.path.join(H, "nodes", n, "log", "server.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def claims(n):
    try:
        return sorted(os.listdir(os.path.join(Q, "claims", n)))
    except FileNotFoundError:
        return []


def send(n, token):
    body = ("x" * 998 + "\r\n") * (BIG // 1000)
    with smtplib.SMTP("127.0.0.1", ports[n], timeout=30) as s:
        s.sendmail("alice@localhost", ["bob@remote.example"],
                   f"From: alice@localhost\r\nTo: bob@remote.example\r\nSubject: {token}\r\n\r\n{body}")


def wait(cond, what, timeout=30):
    if not poll(cond, timeout, 0.1):
        for n in procs:
            sys.stdout.write(f"--- node {n} log (end):\n{log_of(n)[-3000:]}\n")
        raise SystemExit(f"FAILED: {what}")


# 1. The fence: A cannot finish a delivery whose claim was taken from it.
start("A")
peer.stall.set()
send("A", "fence-1")
wait(lambda: peer.in_data.is_set() and len(claims("A")) == 1, "A claimed the entry and is in DATA")
entry = claims("A")[0]
os.makedirs(os.path.join(Q, "adopted", "A@B@e2e"))
os.rename(os.path.join(Q, "claims", "A"), os.path.join(Q, "adopted", "A@B@e2e", "claims"))
peer.stall.clear()
peer.release.set()
wait(lambda: len(peer.aborted) + len(peer.complete) == 1, "the peer saw A's transaction end")
check(peer.count("fence-1") == 0, "A did not send the final dot of an entry no longer its own")
wait(lambda: f"{entry}: no longer claimed by this node" in log_of("A"), "A logged the lost claim")
check(os.path.exists(os.path.join(Q, "adopted", "A@B@e2e", "claims", entry)),
      "the entry is where the takeover put it, not written back by A")
check(not os.path.exists(os.path.join(Q, "incoming", entry)) and not os.path.exists(os.path.join(Q, "deferred", entry)),
      "A did not defer it or put it back")
start("B")
wait(lambda: peer.count("fence-1") == 1, "B finished the takeover at its start and delivered the entry")
check(not os.path.exists(os.path.join(Q, "adopted", "A@B@e2e")), "the adopted folder is gone")
time.sleep(2)
check(peer.count("fence-1") == 1, "delivered once")

# 2. The takeover: nobody touches a live node's claim; a dead node's is
# delivered by the other.
peer.in_data.clear()
peer.release.clear()
peer.stall.set()
before = len(peer.aborted)
stop("B")
threading.Thread(target=send, args=("A", "takeover-2"), daemon=True).start()
wait(lambda: peer.in_data.is_set() and len(claims("A")) == 1, "A claimed the second entry and is in DATA")
entry2 = claims("A")[0]
start("B")
time.sleep(6)  # more than cluster_takeover_seconds: A beats, so B must not take over
check(claims("A") == [entry2], "the claim of a live node stays its own past cluster_takeover_seconds")
check("took over node A" not in log_of("B"), "B took nothing over from a live A")
peer.stall.clear()
os.kill(procs["A"].pid, signal.SIGKILL)
procs["A"].wait()
peer.release.set()
wait(lambda: len(peer.aborted) > before, "the peer saw the dead node's transaction end")
wait(lambda: "took over node A" in log_of("B"), "B took over node A", timeout=30)
wait(lambda: peer.count("takeover-2") == 1, "B delivered the dead node's entry")
time.sleep(2)
check(peer.count("takeover-2") == 1 and peer.count("fence-1") == 1, "each message delivered exactly once")
check(not claims("A") and not os.path.exists(os.path.join(Q, "claims", "A")), "nothing left claimed by A")
check(not os.listdir(os.path.join(Q, "incoming")) and not os.listdir(os.path.join(Q, "deferred")),
      "the queue is empty")

# 3. The agent spool is shared the same way: a hook that A waits for keeps
# A's claim on the spool entry; A killed, B takes the entry over, runs the
# hook itself and stores the copy: once.
hooked = os.path.join(H, "mailbox", "hooked")
for sub in ("new", "cur", "tmp"):
    os.makedirs(os.path.join(hooked, sub))
with open(os.path.join(hooked, "password"), "w") as f:
    f.write("pw\n")
marks, stall, pids = (os.path.join(H, x) for x in ("hook-marks", "hook-stall", "hook-pids"))
script = os.path.join(H, "hook.sh")
with open(script, "w") as f:
    f.write(f"#!/bin/sh\necho $$ >> {pids}\necho \"$WIZMAIL_NODE start\" >> {marks}\n"
            f"while [ -e {stall} ]; do sleep 0.1; done\necho \"$WIZMAIL_NODE done\" >> {marks}\n")
os.chmod(script, 0o755)
with open(os.path.join(hooked, "config.def"), "w") as f:
    f.write("application_cooperation_wait_for_apl_end=1\n")
with open(os.path.join(hooked, "exec.def"), "w") as f:
    f.write(f"bin={script}\n")
open(stall, "w").close()
S = os.path.join(H, "var", "spool", "agent")


def read(path):
    try:
        with open(path) as f:
            return f.read().split("\n")[:-1]
    except FileNotFoundError:
        return []


def spool_claims(n):
    try:
        return os.listdir(os.path.join(S, "claims", n))
    except FileNotFoundError:
        return []


stop("B")
start("A")
with smtplib.SMTP("127.0.0.1", ports["A"], timeout=30) as s:
    s.sendmail("alice@localhost", ["hooked@localhost"], "Subject: hooked-3\r\n\r\nfor the hook\r\n")
wait(lambda: read(marks) == ["A start"] and len(spool_claims("A")) == 1, "A's agent claimed the entry and runs the hook")
start("B")
os.kill(procs["A"].pid, signal.SIGKILL)
procs["A"].wait()
for pid in read(pids):  # A's hook outlives A (its own process group): end it
    try:
        os.kill(int(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass
os.unlink(stall)
wait(lambda: "1 agent spool entries back in incoming/" in log_of("B"), "B took over A's agent spool entry")
wait(lambda: len(os.listdir(os.path.join(hooked, "new"))) == 1, "B stored the copy")
wait(lambda: read(marks)[-2:] == ["B start", "B done"], "B ran the hook")
time.sleep(2)
check(len(os.listdir(os.path.join(hooked, "new"))) == 1, "one copy in the mailbox")
check(not spool_claims("A") and not spool_claims("B") and not os.listdir(os.path.join(S, "incoming")),
      "the agent spool is empty")
print("OK queue_takeover")
