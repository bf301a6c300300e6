#!/usr/bin/env python3
"""Disk-full run: a real wizmail-server whose home (mailboxes, queue,
journal, logs) is a small tmpfs; parallel SMTP senders with unique message
ids until the file system is full and the server refuses; then the
owners download and delete their mail over POP3 (the space is freed the way
a user frees it), every acknowledged message is accounted for, and new mail
must be taken again.

usage: scripts/disk-full [--build build] [--size 64m] [--senders 6]
                         [--minfree BYTES] [--full-for 3]
Needs root (mount -t tmpfs). Runs by hand (never in CI); exits 1 when an
acknowledged message is lost, duplicated or truncated, when a 5xx was
answered, or when the server stopped answering or did not recover."""
import argparse, atexit, os, poplib, smtplib, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(__file__))
import common

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--build", default=os.path.join(common.ROOT, "build"))
ap.add_argument("--size", default="64m", help="tmpfs size (the home)")
ap.add_argument("--senders", type=int, default=6)
ap.add_argument("--minfree", type=int, default=4 << 20, help="queue_minfree, bytes")
ap.add_argument("--full-for", type=float, default=3.0,
                help="seconds of nothing but refusals that count as full")
ap.add_argument("--limit", type=float, default=600, help="give up filling after this many seconds")
args = ap.parse_args()
harness = common.use_build(args.build)

mnt = tempfile.mkdtemp(prefix="wizmail-disk-full-")
r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.size}", "tmpfs", mnt],
                   capture_output=True, text=True)
if r.returncode != 0:
    raise SystemExit("cannot mount a tmpfs (run as root): " + r.stderr.strip())


def unmount():
    subprocess.run(["umount", "-l", mnt])
    os.rmdir(mnt)


atexit.register(unmount)


def free():
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


ACCOUNTS = ["alice", "bob", "carol"]
SIZES = [2000, 8000, 30000, 120000, 400000]
home = harness.Home(accounts=[(a, "pw") for a in ACCOUNTS] + [("postmaster", "pm")], root=mnt,
                    smtp_extra=f"queue_minfree={args.minfree}\nmax_mail_size={1 << 20}\nmultiprocessing=500\n")
srv = harness.Server(home)
journal = os.path.join(home.path, "var", "journal", "delivery")
end = time.time() + 30  # the listeners open before the journal is made
while not os.path.exists(journal) and time.time() < end:
    time.sleep(0.05)
print(f"disk-full run: home {home.path} on a {args.size} tmpfs, {free()} bytes free at start "
      f"({'the journal took 16 MiB' if os.path.exists(journal) else 'no journal'}), "
      f"queue_minfree={args.minfree}", flush=True)

ledger, stop = common.Ledger(), threading.Event()
senders = [common.Sender(i, home.port, ACCOUNTS, ledger, SIZES, stop, pause=0.01)
           for i in range(args.senders)]
for s in senders:
    s.start()
t0 = time.time()
last_ack, last_count = time.time(), 0
lowest = free()
while time.time() - t0 < args.limit:
    time.sleep(0.2)
    lowest = min(lowest, free())
    n = len(ledger.acked)
    if n != last_count:
        last_ack, last_count = time.time(), n
    if ledger.count(400, 500) and time.time() - last_ack > args.full_for:
        break
full_after = time.time() - t0
stop.set()
for s in senders:
    s.join(60)
free_when_full = free()
print(f"  full after {full_after:.1f} s: {len(ledger.acked)} acknowledged, {free_when_full} bytes free "
      f"(lowest {lowest})", flush=True)

# Still answering?
answering = True
try:
    with smtplib.SMTP("127.0.0.1", home.port, timeout=10) as s:
        s.ehlo("probe.faults.test")
        answering = s.noop()[0] == 250
        code, text = s.mail("probe@faults.test")
        print(f"  MAIL on the full disk: {code} {text.decode()}", flush=True)
except (OSError, smtplib.SMTPException) as e:
    answering = False
    print(f"  SMTP not answering: {e}", flush=True)
answering = answering and srv.proc.poll() is None

# The owners download (the accounting) and delete (the space comes back).
pop_ok = True
copies = {}
for a in ACCOUNTS:
    try:
        p = poplib.POP3("127.0.0.1", home.pop_port, timeout=30)
        p.user(a)
        p.pass_("pw")
        n, _ = p.stat()
        for i in range(1, n + 1):
            data = b"\r\n".join(p.retr(i)[1]) + b"\r\n"
            copies.setdefault(common.fault_id(data) or f"?{a}{i}", []).append((a, data))
            p.dele(i)
        pop_ok = p.quit().startswith(b"+OK") and pop_ok
    except (OSError, poplib.error_proto) as e:
        pop_ok = False
        print(f"  POP3 {a}: {e}", flush=True)
rows, bad = common.accounting_rows(ledger, copies)
# poplib strips line ends and un-stuffs; RETR sends what is stored (the
# server's headers first), so the same end-of-message comparison holds.

# Recovered: new mail is taken again once the space is back.
deadline = time.time() + 15
recovered = False
while time.time() < deadline and not recovered:
    try:
        with smtplib.SMTP("127.0.0.1", home.port, timeout=10) as s:
            recovered = s.sendmail("probe@faults.test", ["alice@localhost"],
                                   common.message("recovered-1", 4000)) == {}
    except smtplib.SMTPException:
        time.sleep(0.3)
srv.stop()

five = ledger.count(500, 600)
common.table(f"disk-full run ({args.size} tmpfs, queue_minfree={args.minfree})", rows + [
    ("4xx refusals", ledger.count(400, 500)),
    *[(f"  {k}", v) for k, v in sorted(ledger.refused_at.items())],
    ("5xx refusals (must be 0)", five),
    ("bytes free when full", free_when_full),
    ("lowest bytes free seen", lowest),
    ("server still answering", "yes" if answering else "NO"),
    ("POP3 download+delete on the full disk", "yes" if pop_ok else "NO"),
    ("recovered after space freed", "yes" if recovered else "NO"),
])
sys.exit(1 if bad or five or not answering or not pop_ok or not recovered else 0)
