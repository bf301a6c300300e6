#!/usr/bin/env python3
"""Crash sweep: parallel SMTP senders with unique message ids against a real
wizmail-server that is killed with SIGKILL at random moments — under load
and during start-up (journal and queue recovery) — and restarted, again and
again. Then one clean start and stop, and every acknowledged message is
looked for in the Maildirs: lost, duplicated, truncated (content compared).

usage: scripts/crash-sweep [--build build] [--seconds 180] [--kills 30]
                           [--senders 8] [--seed N]
Runs by hand (never in CI); exits 1 when anything acknowledged is lost,
duplicated or truncated."""
import argparse, os, random, re, sys, threading, time

sys.path.insert(0, os.path.dirname(__file__))
import common

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--build", default=os.path.join(common.ROOT, "build"))
ap.add_argument("--seconds", type=float, default=180, help="run at least this long")
ap.add_argument("--kills", type=int, default=30, help="and kill at least this often")
ap.add_argument("--senders", type=int, default=8)
ap.add_argument("--startup-share", type=float, default=0.35,
                help="share of restarts killed again before the server is up")
ap.add_argument("--seed", type=int, default=None)
args = ap.parse_args()
harness = common.use_build(args.build)
seed = args.seed if args.seed is not None else int(time.time())
rng = random.Random(seed)

ACCOUNTS = ["alice", "bob", "carol", "dave"]
# Mostly small (the journal's commit path), some over its 1 MiB record limit
# (the classic path); 20 % of the messages go to two accounts (hard links).
SIZES = [600, 2000, 2000, 8000, 8000, 60000, 300000, 1500000]
home = harness.Home(accounts=[(a, "pw") for a in ACCOUNTS] + [("postmaster", "pm")],
                    smtp_extra="multiprocessing=500\n")
server_log = os.path.join(home.path, "var", "log", "server.log")


def log_size():
    return os.path.getsize(server_log) if os.path.exists(server_log) else 0


def log_since(offset):
    if not os.path.exists(server_log):
        return ""
    with open(server_log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


class Run:
    """One server process, and where its start-up begins in server.log."""

    def __init__(self):
        self.log_at = log_size()
        self.spawned = time.time()
        self.srv = harness.Server(home, wait=False)

    def up(self):
        return "started:" in log_since(self.log_at)

    def wait_up(self, timeout=60):
        end = time.time() + timeout
        while not self.up():
            if self.srv.proc.poll() is not None:
                raise SystemExit("wizmail-server exited by itself: see " + home.path)
            if time.time() > end:
                raise SystemExit("wizmail-server did not start: see " + home.path)
            time.sleep(0.01)
        return time.time() - self.spawned


print(f"crash sweep: home {home.path}, seed {seed}, {args.senders} senders, "
      f">= {args.seconds:.0f} s and >= {args.kills} kills", flush=True)
ledger, stop = common.Ledger(), threading.Event()
run = Run()
startup = run.wait_up()
senders = [common.Sender(i, home.port, ACCOUNTS, ledger, SIZES, stop) for i in range(args.senders)]
for s in senders:
    s.start()
t0 = time.time()
kills = startup_kills = 0
starts = 1
while time.time() - t0 < args.seconds or kills < args.kills:
    time.sleep(rng.uniform(0.2, 2.0))
    run.srv.kill9()
    kills += 1
    while True:
        run = Run()
        starts += 1
        if rng.random() < args.startup_share:
            time.sleep(rng.uniform(0, startup))
            was_up = run.up()
            run.srv.kill9()
            kills += 1
            if not was_up:
                startup_kills += 1
            continue
        startup = max(0.05, run.wait_up())
        break
    print(f"  {time.time() - t0:6.1f} s: {kills} kills ({startup_kills} in start-up), "
          f"{len(ledger.acked)} acknowledged", flush=True)

stop.set()
for s in senders:
    s.join(60)
run.srv.kill9()
kills += 1
# One clean start (recovers what the last kill left) and a graceful stop.
run = Run()
starts += 1
run.wait_up()
run.srv.stop()

text = log_since(0)
recoveries = re.findall(r"delivery journal recovery: (\d+) records, (\d+) copies whole, (\d+) restored, (\d+) repaired", text)
queue_recoveries = len(re.findall(r"queue recovery:", text))
tmp_cleanups = sum(int(n) for n in re.findall(r"removed (\d+) leftover files from", text))
copies = common.stored(os.path.join(home.path, "mailbox"), ACCOUNTS)
rows, bad = common.accounting_rows(ledger, copies)
leftover_tmp = sum(len(os.listdir(os.path.join(home.path, "mailbox", a, "tmp"))) for a in ACCOUNTS)
common.table(f"crash sweep ({time.time() - t0:.0f} s, seed {seed})", rows + [
    ("kills (SIGKILL)", kills),
    ("  of them during start-up", startup_kills),
    ("starts", starts),
    ("journal recoveries (records replayed)", f"{len(recoveries)} ({sum(int(r[0]) for r in recoveries)})"),
    ("  copies restored / repaired", f"{sum(int(r[2]) for r in recoveries)} / {sum(int(r[3]) for r in recoveries)}"),
    ("queue recoveries", queue_recoveries),
    ("tmp/ files cleaned at start", tmp_cleanups),
    ("tmp/ files left after the clean stop", leftover_tmp),
    ("sender connection errors", ledger.conn_errors),
    ("refusals (4xx/5xx)", f"{ledger.count(400, 500)}/{ledger.count(500, 600)}"),
])
sys.exit(1 if bad else 0)
