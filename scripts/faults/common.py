"""Shared by the fault commands (scripts/crash-sweep, scripts/disk-full):
senders with unique message ids, and the accounting of every acknowledged
message against what is in the Maildirs. The server, its home and its
ports come from the end-to-end test harness (tests/e2e/harness.py)."""
import hashlib, os, random, smtplib, sys, threading, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def use_build(build):
    """Point the harness at a build directory; returns the harness module."""
    os.environ["WIZMAIL_BUILD_DIR"] = os.path.abspath(build)
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    import harness
    if not os.access(harness.SERVER, os.X_OK):
        raise SystemExit(f"no server at {harness.SERVER}: build first (ninja -C {build})")
    return harness


def message(mid, size):
    """The message of id `mid`, about `size` bytes, its content derived from
    the id (so a stored copy can be compared without keeping it)."""
    head = f"Subject: fault {mid}\r\nX-Fault-Id: {mid}\r\nMessage-ID: <{mid}@faults.test>\r\n\r\n"
    seed = hashlib.sha256(mid.encode()).hexdigest()
    line = (seed * 2)[:76] + "\r\n"
    n = max(1, (size - len(head)) // len(line))
    return (head + line * n).encode()


def fault_id(data):
    """The X-Fault-Id of a stored message, None when absent."""
    end = data.find(b"\r\n\r\n")
    for l in data[: end if end >= 0 else len(data)].split(b"\r\n"):
        if l.lower().startswith(b"x-fault-id:"):
            return l.split(b":", 1)[1].strip().decode()
    return None


class Ledger:
    """What the senders saw, by message id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}  # id -> (recipients' accounts, size, sha256)
        self.codes = {}  # reply code -> count (refusals)
        self.refused_at = {}  # "MAIL 452" etc. -> count
        self.conn_errors = 0

    def ack(self, mid, accounts, data):
        digest = hashlib.sha256(data).digest()
        with self.lock:
            self.acked[mid] = (tuple(accounts), len(data), digest)

    def refuse(self, stage, code):
        with self.lock:
            self.codes[code] = self.codes.get(code, 0) + 1
            key = f"{stage} {code}"
            self.refused_at[key] = self.refused_at.get(key, 0) + 1

    def error(self):
        with self.lock:
            self.conn_errors += 1

    def count(self, lo, hi):
        with self.lock:
            return sum(n for c, n in self.codes.items() if lo <= c < hi)


class Sender(threading.Thread):
    """Sends messages with unique ids until stopped; reconnects (with a
    short back-off) whenever the server is gone. A message counts as
    acknowledged only when the 250 after its data was read."""

    def __init__(self, n, port, accounts, ledger, sizes, stop, pause=0.0):
        super().__init__(daemon=True)
        self.n, self.port, self.accounts, self.ledger = n, port, accounts, ledger
        self.sizes, self.stop, self.pause = sizes, stop, pause
        self.rng = random.Random(n)
        self.seq = 0

    def run(self):
        s = None
        while not self.stop.is_set():
            try:
                if s is None:
                    s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
                    s.ehlo("sender%d.faults.test" % self.n)
                self.one(s)
                if self.pause:
                    time.sleep(self.pause)
            except (OSError, smtplib.SMTPException):
                self.ledger.error()
                try:
                    if s is not None:
                        s.close()
                except OSError:
                    pass
                s = None
                time.sleep(0.05)
        if s is not None:
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass

    def one(self, s):
        self.seq += 1
        mid = f"s{self.n}-{self.seq}"
        accounts = self.rng.sample(self.accounts, 2 if self.rng.random() < 0.2 else 1)
        data = message(mid, self.rng.choice(self.sizes))
        code, _ = s.mail("sender@faults.test", [f"SIZE={len(data)}"])
        if code != 250:
            self.ledger.refuse("MAIL", code)
            s.rset()
            return
        taken = []
        for a in accounts:
            code, _ = s.rcpt(f"{a}@localhost")
            if code == 250:
                taken.append(a)
            else:
                self.ledger.refuse("RCPT", code)
        if not taken:
            s.rset()
            return
        code, _ = s.data(data)
        if code == 250:
            self.ledger.ack(mid, taken, data)
        else:
            self.ledger.refuse("DATA", code)


def stored(mailbox_dir, accounts):
    """id -> [(account, data)] for every message in new/ and cur/."""
    out = {}
    for a in accounts:
        for sub in ("new", "cur"):
            d = os.path.join(mailbox_dir, a, sub)
            for name in os.listdir(d):
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
                out.setdefault(fault_id(data) or "?" + name, []).append((a, data))
    return out


def account(ledger, copies):
    """lost / duplicated / truncated over the acknowledged copies (one per
    recipient), and the delivered messages that were never acknowledged (a
    kill between the commit and the reply: allowed, the client retries).
    A stored copy is the message as sent with the server's headers before
    it: it must end with exactly the bytes sent."""
    lost = dup = trunc = 0
    for mid, (accounts, size, digest) in ledger.acked.items():
        got = copies.get(mid, [])
        for a in accounts:
            mine = [d for acc, d in got if acc == a]
            if not mine:
                lost += 1
            elif len(mine) > 1:
                dup += 1
            if any(len(d) < size or hashlib.sha256(d[-size:]).digest() != digest for d in mine):
                trunc += 1
    unacked = sum(len(v) for k, v in copies.items() if k not in ledger.acked)
    return lost, dup, trunc, unacked


def accounting_rows(ledger, copies):
    """The table rows every fault command prints, and whether any
    acknowledged copy was lost, duplicated or truncated."""
    lost, dup, trunc, unacked = account(ledger, copies)
    rows = [
        ("acknowledged messages", len(ledger.acked)),
        ("acknowledged copies (per recipient)", sum(len(a) for a, _, _ in ledger.acked.values())),
        ("lost", lost),
        ("duplicated", dup),
        ("truncated (content differs)", trunc),
        ("delivered, never acknowledged", unacked),
    ]
    return rows, bool(lost or dup or trunc)


def table(title, rows):
    w = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (w + 14))
    for k, v in rows:
        print(f"{k:<{w}}  {v:>10}")
    print("-" * (w + 14))

