"""`wizmail check-dns DOMAIN` end to end (docs/internet.md, "Checking it").

dnsmasq (started here on a free loopback port; the home's dns_servers point
at it) serves:
  - good.test: published as docs/internet.md says — MX mail.good.test, whose
    A/AAAA are the server's addresses and whose PTRs name it back, SPF
    `mx -all` (and `a -all` for the HELO name), the DKIM record that
    `wizmail dkim keygen good.test` printed, DMARC p=reject, MTA-STS;
  - bad.test: MX at someone else's host, two SPF records, the DKIM record of
    another key, no DMARC;
  - temp.test: forwarded by dnsmasq to a port where nothing answers
    (SERVFAIL/REFUSED): "could not check", never a FAIL.
The real `wizmail` binary runs against them: exit 0 and only OK/INFO lines
for good.test, exit 1 and the expected FAIL lines for bad.test, exit 0 with
temporary findings for temp.test, exit 2 for a bad command line."""
import atexit, json, os, shutil, socket, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "outbound"))
import harness  # noqa: E402
import peers  # noqa: E402
from harness import Home, check  # noqa: E402

if not os.path.exists("/usr/sbin/dnsmasq"):
    print("FAILED: dnsmasq is not installed (scripts/packages.txt)")
    sys.exit(1)

WIZMAIL = harness.CLI
tmp = tempfile.mkdtemp(prefix="wizmail-checkdns-")
atexit.register(shutil.rmtree, tmp, True)
home = Home(smtp_extra="dns_servers=127.0.0.1:9\n")
# The server's public name, as docs/internet.md section 1 says.
with open(os.path.join(home.path, "def", "wiz98msenv.dat"), "w") as f:
    f.write("domain=mail.good.test\n")


def wizmail(*args):
    return subprocess.run([WIZMAIL, "--home", home.path, *args], capture_output=True, text=True, timeout=120)


def dkim_strings(domain):
    r = wizmail("dkim", "keygen", domain, "--json")
    check(r.returncode == 0, f"dkim keygen {domain}: {r.stderr}")
    return json.loads(r.stdout)["strings"]


def txt(name, *texts):
    return "--txt-record=" + ",".join([name, *texts])


good_key = dkim_strings("good.test")
dkim_strings("bad.test")  # the key in the home …
other = os.path.join(tmp, "other-home")
os.makedirs(os.path.join(other, "def"))
r = subprocess.run([WIZMAIL, "--home", other, "dkim", "keygen", "bad.test", "--json"], capture_output=True, text=True)
check(r.returncode == 0, "a second key: " + r.stderr)
other_key = json.loads(r.stdout)["strings"]  # … and the record of another one

dead_port = harness.free_port()  # nothing listens there
records = [
    "--host-record=mail.good.test,127.0.0.25,2001:db8::25",  # A, AAAA and both PTRs
    "--mx-host=good.test,mail.good.test,10",
    txt("good.test", "v=spf1 mx -all"),
    txt("good.test", "google-site-verification=abc"),
    txt("mail.good.test", "v=spf1 a -all"),
    txt("wizmail._domainkey.good.test", *good_key),
    txt("_dmarc.good.test", "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"),
    txt("_mta-sts.good.test", "v=STSv1; id=2026120601"),
    "--mx-host=bad.test,mx.elsewhere.test,10",
    "--host-record=mx.elsewhere.test,127.0.0.99",
    txt("bad.test", "v=spf1 ip4:127.0.0.25 -all"),
    txt("bad.test", "v=spf1 mx ~all"),
    txt("wizmail._domainkey.bad.test", *other_key),
    f"--server=/temp.test/127.0.0.1#{dead_port}",
]
dnsmasq, dns_port = peers.start_dnsmasq(tmp, *records)


def udp_bound(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


harness.wait_until(lambda: udp_bound(dns_port), "dnsmasq listening")
with open(os.path.join(home.path, "def", "smtpenv.dat")) as f:
    smtp = f.read().replace("dns_servers=127.0.0.1:9", f"dns_servers=127.0.0.1:{dns_port}")
with open(os.path.join(home.path, "def", "smtpenv.dat"), "w") as f:
    f.write(smtp)


def lines(out, level):
    return [ln for ln in out.splitlines() if ln.startswith(level)]


def test_good_zone_all_ok():
    r = wizmail("check-dns", "good.test")
    print(r.stdout)
    check(r.returncode == 0, f"exit 0 for a correct zone ({r.returncode}, {r.stderr})")
    check(not lines(r.stdout, "FAIL") and not lines(r.stdout, "WARN"), "no FAIL or WARN line")
    for expected in ["OK   MX          good.test MX 10 mail.good.test → 127.0.0.25, 2001:db8::25 (this server)",
                     "OK   A/AAAA      mail.good.test → 127.0.0.25, 2001:db8::25",
                     "OK   PTR         127.0.0.25 → mail.good.test → 127.0.0.25 (forward-confirmed)",
                     "OK   PTR         2001:db8::25 → mail.good.test → 2001:db8::25 (forward-confirmed)",
                     "OK   SPF         \"v=spf1 mx -all\" passes for 127.0.0.25, 2001:db8::25",
                     "OK   SPF (HELO)  SPF of mail.good.test passes",
                     "OK   DKIM        selector wizmail (in use): wizmail._domainkey.good.test matches",
                     "OK   DMARC       \"v=DMARC1; p=reject; rua=mailto:dmarc@good.test\" (p=reject)",
                     "INFO MTA-STS     \"v=STSv1; id=2026120601\" is well-formed",
                     "good.test: 8 OK, 0 WARN, 0 FAIL, 1 INFO"]:
        check(any(ln.startswith(expected) for ln in r.stdout.splitlines()), "line: " + expected)
    # --address (repeated, before DOMAIN) that the name has changes nothing; --json says the same.
    r = wizmail("check-dns", "--address", "127.0.0.25", "--address", "2001:db8::25", "good.test", "--json")
    check(r.returncode == 0, "exit 0 with --address")
    found = json.loads(r.stdout)
    check(all(f["level"] in ("OK", "INFO") for f in found), "JSON: only OK and INFO")
    check({f["check"] for f in found} == {"MX", "A/AAAA", "PTR", "SPF", "SPF (HELO)", "DKIM", "DMARC", "MTA-STS"},
          "JSON: every check")


def test_broken_zone_fails():
    r = wizmail("check-dns", "bad.test")
    print(r.stdout)
    check(r.returncode == 1, f"exit 1 for a broken zone ({r.returncode}, {r.stderr})")
    out = r.stdout.splitlines()
    for expected in ["FAIL MX          no MX host of bad.test points to this server (127.0.0.25, 2001:db8::25): "
                     "10 mx.elsewhere.test → 127.0.0.99",
                     "FAIL SPF         bad.test has 2 SPF records (permerror",
                     "FAIL DKIM        selector wizmail (in use): the key published at wizmail._domainkey.bad.test "
                     "is not the public half of",
                     "FAIL DMARC       no DMARC record at _dmarc.bad.test"]:
        i = next((i for i, ln in enumerate(out) if ln.startswith(expected)), None)
        check(i is not None, "line: " + expected)
        check(out[i + 1].startswith("     fix: "), "a fix follows: " + expected)
    check("     fix: merge them into one v=spf1 record" in out, "the SPF fix")
    check(any("wizmail dkim show bad.test --selector wizmail" in ln for ln in out), "the DKIM fix")
    # The server's own name and PTR are fine whatever the domain.
    check(any(ln.startswith("OK   PTR         127.0.0.25 → mail.good.test") for ln in out), "PTR still OK")
    check(out[-1] == "bad.test: 4 OK, 0 WARN, 4 FAIL, 1 INFO", "summary: " + out[-1])


def test_no_dkim_key_warns():
    r = wizmail("check-dns", "good.test", "--host-name", "mail.good.test")
    check(r.returncode == 0, "still 0")
    os.rename(os.path.join(home.path, "def", "dkim", "good.test"), os.path.join(tmp, "moved"))
    try:
        r = wizmail("check-dns", "good.test")
    finally:
        os.rename(os.path.join(tmp, "moved"), os.path.join(home.path, "def", "dkim", "good.test"))
    check(r.returncode == 0, "a missing key is a warning, exit 0")
    check("WARN DKIM        no DKIM key for good.test in the home: mail from it is not signed" in r.stdout, r.stdout)
    check("     fix: `wizmail dkim keygen good.test`, publish the record it prints, then `wizmail reload`" in r.stdout,
          "the keygen hint")


def test_temporary_errors_are_not_failures():
    r = wizmail("check-dns", "temp.test")
    print(r.stdout)
    out = r.stdout.splitlines()
    check(r.returncode == 0, f"exit 0: nothing could be checked, nothing failed ({r.returncode})")
    check(not lines(r.stdout, "FAIL"), "no FAIL line")
    for check_name in ("MX", "SPF", "DMARC"):
        prefix = f"WARN {check_name:<11} could not check (temporary DNS error)"
        check(any(ln.startswith(prefix) for ln in out), "line: " + prefix)


def test_usage_errors_exit_2():
    for args in (["check-dns"], ["check-dns", "not a domain"], ["check-dns", "good.test", "--address", "300.1.1.1"],
                 ["check-dns", "good.test", "--bogus"]):
        r = wizmail(*args)
        check(r.returncode == 2, f"{args}: exit 2 ({r.returncode})")
    r = subprocess.run([WIZMAIL, "--home", os.path.join(tmp, "nohome"), "check-dns", "good.test"],
                       capture_output=True, text=True)
    check(r.returncode == 2, f"a home that cannot be loaded: exit 2 ({r.returncode}, {r.stderr})")


harness.run_tests(globals())
print("PASSED")
