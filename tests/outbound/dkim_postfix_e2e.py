"""DKIM signatures checked by a Postfix + OpenDKIM peer, the way a real
receiver checks them.

wizmail-server relays (MX from dnsmasq) to a private Postfix instance on a
free loopback port; that Postfix runs OpenDKIM (Debian's opendkim, verify
mode, its key look-ups answered from the records `wizmail dkim keygen`
printed, through TestPublicKeys) as its smtpd milter, and delivers into a
Maildir. The receiver's own verdict is read from the Authentication-Results
field OpenDKIM added: dkim=pass for rsa-sha256 and ed25519-sha256, and
dkim=fail when the record published for a domain is not its key's. Postfix
needs root (its daemons switch to the postfix user): as another user the
test is skipped (77), as run_as_user.py is. Every process is started here
and stopped at exit."""
import glob, os, pwd, re, shutil, smtplib, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402
import peers  # noqa: E402
from harness import Home, Server, check  # noqa: E402
from peers import WIZMAIL  # noqa: E402

if os.geteuid() != 0:
    print("SKIP: a private Postfix instance needs root")
    sys.exit(77)
for tool in peers.missing_tools() + [t for t in ("opendkim", "postfix") if not shutil.which(t)
                                     and not os.path.exists("/usr/sbin/" + t)]:
    # Never skip for a missing peer: that is the machine's fault, said loudly.
    print(f"FAILED: {tool} is not installed (scripts/install-deps, scripts/packages.txt)")
    sys.exit(1)

_homes = []
tmp = tempfile.mkdtemp(prefix="wizmail-dkim-pf-")
os.chmod(tmp, 0o755)  # Postfix's daemons run as the postfix user


def wait_for(cond, what, timeout=30):
    return harness.wait_for(cond, what, timeout, _homes, tail=3000)


# --- The wizmail side: keys, and the records to publish as keygen prints them.
dnsmasq, dns_port = peers.start_dnsmasq(tmp)
postfix_port = harness.free_port()
home = Home(smtp_extra=f"address_permits_relay=127.0.0.1\ndns_servers=127.0.0.1:{dns_port}\n"
                       f"outbound_port={postfix_port}\nresend_scan_interval=1\n")
_homes.append(home)
records = {}


def keygen(domain, *extra):
    r = subprocess.run([WIZMAIL, "--home", home.path, "dkim", "keygen", domain, *extra],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"dkim keygen {domain} {' '.join(extra)}")
    m = re.match(r'^(\S+)\. IN TXT((?: "[^"]*")+)$', r.stdout.strip())
    check(m is not None, "keygen prints a zone-file TXT line")
    records[m.group(1).lower()] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    return m.group(1).lower()


keygen("sender.test")
keygen("ed.test", "--ed25519")
# wrong.test signs with its key, but DNS publishes another key's record.
wrong = keygen("wrong.test")
other = os.path.join(tmp, "other")
os.makedirs(other)
r = subprocess.run([WIZMAIL, "--home", other, "setup"], capture_output=True, text=True, timeout=60)
r = subprocess.run([WIZMAIL, "--home", other, "dkim", "keygen", "wrong.test"], capture_output=True, text=True, timeout=60)
check(r.returncode == 0, "a second key for wrong.test, made in another home")
records[wrong] = "".join(re.findall(r'"([^"]*)"', r.stdout))

# --- The receiver: OpenDKIM (verify) as Postfix's milter.
keys = os.path.join(tmp, "opendkim-keys.txt")
with open(keys, "w") as f:
    for name, rec in records.items():
        f.write(name + " " + re.sub(r"\s+", "", rec) + "\n")
od_port = harness.free_port()
od_conf = os.path.join(tmp, "opendkim.conf")
with open(od_conf, "w") as f:
    f.write(f"Mode v\nSocket inet:{od_port}@127.0.0.1\nSyslog no\nTestPublicKeys {keys}\n"
            f"AuthservID peer.test\nPidFile {tmp}/opendkim.pid\nUserID postfix\n")
harness.start_process(["opendkim", "-f", "-x", od_conf])
wait_for(lambda: harness.port_open(od_port), f"OpenDKIM (verify) listens on {od_port}")

pf_dir = os.path.join(tmp, "postfix")
etc, queue, data, vmail = (os.path.join(pf_dir, d) for d in ("etc", "queue", "data", "vmail"))
for d in (etc, queue, data, vmail):
    os.makedirs(d)
pf = pwd.getpwnam("postfix")
os.chown(data, pf.pw_uid, pf.pw_gid)
os.chown(vmail, pf.pw_uid, pf.pw_gid)
for f in ("master.cf", "dynamicmaps.cf", "postfix-files"):
    if os.path.exists(f"/etc/postfix/{f}"):
        shutil.copy(f"/etc/postfix/{f}", etc)
for d in ("dynamicmaps.cf.d", "postfix-files.d"):
    if os.path.isdir(f"/etc/postfix/{d}"):
        shutil.copytree(f"/etc/postfix/{d}", os.path.join(etc, d))
with open(os.path.join(etc, "main.cf"), "w") as f:
    f.write(f"""compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
myhostname = peer.test
mydomain = peer.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = example.test
virtual_mailbox_base = {vmail}
virtual_mailbox_maps = static:bob/
virtual_uid_maps = static:{pf.pw_uid}
virtual_gid_maps = static:{pf.pw_gid}
smtpd_milters = inet:127.0.0.1:{od_port}
milter_default_action = tempfail
maillog_file_prefixes = {pf_dir}
maillog_file = {pf_dir}/maillog
biff = no
""")
master = open(os.path.join(etc, "master.cf")).read()
master = master.replace("\nsmtp      inet", "\n#smtp      inet")
master += f"\n127.0.0.1:{postfix_port} inet n - n - - smtpd\n"
master += "postlog unix-dgram n - n - 1 postlogd\n" if "postlog" not in master else ""
with open(os.path.join(etc, "master.cf"), "w") as f:
    f.write(master)
subprocess.run(["postfix", "-c", etc, "check"], check=False, capture_output=True)
r = subprocess.run(["postfix", "-c", etc, "start"], capture_output=True, text=True)
check(r.returncode == 0, "the Postfix peer starts: " + (r.stdout + r.stderr).strip()[-400:])
try:
    wait_for(lambda: harness.port_open(postfix_port), f"Postfix listens on {postfix_port}")
    server = Server(home)

    def delivered(subject):
        for p in glob.glob(os.path.join(vmail, "bob", "new", "*")):
            with open(p, "rb") as fh:
                m = fh.read()
            if f"Subject: {subject}\n".encode() in m.replace(b"\r\n", b"\n"):
                return m.decode(errors="replace")
        return None

    def verdict(subject):
        """OpenDKIM's Authentication-Results field, unfolded."""
        m = delivered(subject)
        field = re.search(r"^Authentication-Results: peer\.test;.*?(?=^\S)", m, re.M | re.S)
        return re.sub(r"\s+", " ", field.group(0)) if field else ""

    for sender, subject in (("alice@sender.test", "rsa"), ("carol@ed.test", "ed25519"),
                            ("mallory@wrong.test", "wrong-key")):
        s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
        s.sendmail(sender, ["bob@example.test"],
                   f"From: {sender}\r\nTo: bob@example.test\r\nSubject: {subject}\r\n"
                   f"Message-ID: <{subject}@wizmail.test>\r\n\r\nHello Bob,\r\n.dotted\r\n".encode())
        s.quit()
        wait_for(lambda: delivered(subject) is not None, f"the {subject} message reached Postfix's Maildir")

    v = verdict("rsa")
    check("dkim=pass" in v and "header.d=sender.test" in v, "Postfix+OpenDKIM: rsa-sha256 passes: " + v)
    v = verdict("ed25519")
    check("dkim=pass" in v and "header.d=ed.test" in v, "Postfix+OpenDKIM: ed25519-sha256 passes: " + v)
    v = verdict("wrong-key")
    check("dkim=fail" in v and "header.d=wrong.test" in v and "dkim=pass" not in v,
          "a record that is not the signing key's fails: " + v)
    server.stop()
finally:
    subprocess.run(["postfix", "-c", etc, "stop"], check=False, capture_output=True)
print("all Postfix+OpenDKIM checks passed")
