"""DKIM signing at transport time, checked by an independent verifier.

wizmail-server relays through dnsmasq (MX) to Postfix's smtp-sink; the keys
are made by `wizmail dkim keygen`, and what smtp-sink received is verified
by python3-dkim (Debian's, hence /usr/bin/python3: tests/outbound/meson.build)
with dkim.verify(msg, dnsfunc=...) answering the TXT records keygen printed,
and by OpenDKIM (`opendkim -t`, its key lookup pointed at the same records
with TestPublicKeys).
Also: a tampered copy fails; a domain without a key and one whose key file
is corrupt get their mail delivered unsigned, the latter with the problem
in server.log; a post to one of wizmail's mailing lists, From: a domain
without a key, is signed with the list's domain. Every process is started here on free ports and killed at
exit."""
import os, re, shutil, smtplib, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402
import peers  # noqa: E402
from harness import Home, Server, check  # noqa: E402
from peers import WIZMAIL  # noqa: E402

try:
    import dkim  # python3-dkim
except ImportError:
    # Never skip: a missing verifier is the machine's fault, said loudly.
    print("FAILED: python3-dkim is not installed for " + sys.executable + " (scripts/packages.txt)")
    sys.exit(1)
for tool in peers.missing_tools() + [t for t in ("opendkim",) if not shutil.which(t)]:
    print(f"FAILED: {tool} is not installed (scripts/install-deps, scripts/packages.txt)")
    sys.exit(1)

_homes = []


def wait_for(cond, what, timeout=20):
    return harness.wait_for(cond, what, timeout, _homes, tail=3000)


tmp = tempfile.mkdtemp(prefix="wizmail-dkim-")
dnsmasq, dns_port = peers.start_dnsmasq(tmp)
mta = peers.Sink(tmp)
sink = mta.start()
wait_for(lambda: harness.port_open(mta.port), "smtp-sink listens")

home = Home(smtp_extra=f"address_permits_relay=127.0.0.1\ndns_servers=127.0.0.1:{dns_port}\n"
                       f"outbound_port={mta.port}\nresend_scan_interval=1\n")
_homes.append(home)


def wiz(*args):
    return subprocess.run([WIZMAIL, "--home", home.path, *args], capture_output=True, text=True, timeout=60)


# --- Keys, and the records to publish as keygen prints them.
records = {}


def keygen(domain, *extra):
    r = wiz("dkim", "keygen", domain, *extra)
    check(r.returncode == 0, f"dkim keygen {domain} {' '.join(extra)}: " + r.stderr.strip())
    line = r.stdout.strip()
    m = re.match(r'^(\S+)\. IN TXT((?: "[^"]*")+)$', line)
    check(m is not None, "keygen prints a zone-file TXT line: " + line[:80])
    strings = re.findall(r'"([^"]*)"', m.group(2))
    check(all(len(s) <= 255 for s in strings), "each character-string is at most 255 octets")
    records[m.group(1).lower()] = "".join(strings).encode()
    return m.group(1)


name = keygen("sender.test")
check(name == "wizmail._domainkey.sender.test", "the record's name is <selector>._domainkey.<domain>")
check(len(records[name]) > 255 and records[name].startswith(b"v=DKIM1; k=rsa; p="), "an RSA 2048 record, in two strings")
key_file = os.path.join(home.path, "def", "dkim", "sender.test", "wizmail.key")
check(os.stat(key_file).st_mode & 0o777 == 0o600, "the key file is mode 0600")
r = wiz("dkim", "keygen", "sender.test")
check(r.returncode != 0 and "exists" in r.stderr, "keygen refuses to overwrite a key: " + r.stderr.strip())
r = wiz("dkim", "show", "sender.test")
check(r.returncode == 0 and r.stdout.strip().startswith(name + ". IN TXT"), "dkim show prints the same record")
name_ed = keygen("ed.test", "--ed25519", "--selector", "ed1")
check(records[name_ed].startswith(b"v=DKIM1; k=ed25519; p="), "an Ed25519 record (RFC 8463)")
for bad in (["keygen", "bad_domain"], ["keygen", "../x.test"], ["keygen", "ok.test", "--selector", "a/b"]):
    r = wiz("dkim", *bad)
    check(r.returncode == 2 and "not a" in r.stderr, "refused: dkim " + " ".join(bad) + ": " + r.stderr.strip())
check(not os.path.exists(os.path.join(home.path, "def", "dkim", "ok.test", "a")), "nothing written for a bad selector")
# A key that cannot be used: its mail must still leave, unsigned.
keygen("broken.test")
with open(os.path.join(home.path, "def", "dkim", "broken.test", "wizmail.key"), "w") as f:
    f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")

# This server's own domain is lists.test, with a key, and a mailing list
# (ml@lists.test) whose members are remote: its posts leave From: the
# poster, with the list's bounce address (postmaster@lists.test).
with open(os.path.join(home.path, "def", "wiz98msenv.dat")) as f:
    env = f.read()
with open(os.path.join(home.path, "def", "wiz98msenv.dat"), "w") as f:
    f.write(env.replace("domain=localhost\n", "domain=lists.test\n"))
keygen("lists.test", "--ed25519")
r = wiz("ml", "create", "ml", "pw")
check(r.returncode == 0, "ml create: " + r.stderr.strip())
with open(os.path.join(home.path, "mailbox", "ml", "ml_member.csv"), "w") as f:
    f.write("poster@example.test\nbob@example.test\n")

server = Server(home)


def dnsfunc(name, timeout=5):
    return records.get(name.decode().rstrip(".").lower())


def send(sender, from_header, subject, rcpt="bob@example.test"):
    s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
    body = (f"From: {from_header}\r\nTo: Bob <{rcpt}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@wizmail.test>\r\n\r\nHello Bob,\r\n.a dotted line\r\n\r\nthe end of {subject}\r\n")
    s.sendmail(sender, [rcpt], body)
    s.quit()


def received(subject):
    """The message as smtp-sink took it, without the lines smtp-sink puts in
    front (X-Client-Args, X-Rcpt-Args ..., its Received:), CRLF line ends."""
    for m in mta.dumped():
        if f"the end of {subject}".encode() not in m:
            continue
        m = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        lines = m.split(b"\r\n")
        while lines and (lines[0].startswith(b"X-Client-") or lines[0].startswith(b"X-Helo-")
                         or lines[0].startswith(b"X-Mail-") or lines[0].startswith(b"X-Rcpt-")):
            lines.pop(0)
        # smtp-sink's own Received: field (with its continuation lines).
        if lines and lines[0].startswith(b"Received: ") and len(lines) > 1 and b"by smtp-sink" in lines[1]:
            lines.pop(0)
            while lines and lines[0][:1] in (b" ", b"\t"):
                lines.pop(0)
        return b"\r\n".join(lines)
    return None


def opendkim_verdict(msg, label):
    """OpenDKIM's verifier (Debian's opendkim, `-t FILE`) on msg; its keys
    are the TXT records keygen printed (TestPublicKeys: one `name record`
    per line, the record without blanks). Returns opendkim's output line."""
    keys = os.path.join(tmp, "opendkim-keys.txt")
    with open(keys, "w") as f:
        for name, rec in records.items():
            f.write(name + " " + re.sub(r"\s+", "", rec.decode()) + "\n")
    conf = os.path.join(tmp, "opendkim-verify.conf")
    with open(conf, "w") as f:
        f.write(f"Mode v\nSyslog no\nTestPublicKeys {keys}\nPidFile {tmp}/opendkim.pid\n")
    path = os.path.join(tmp, label + ".eml")
    with open(path, "wb") as f:
        f.write(msg)
    r = subprocess.run(["opendkim", "-x", conf, "-t", path], capture_output=True, text=True, timeout=30)
    return (r.stdout + r.stderr).strip()


# 1. RSA: signed with sender.test's key, verified by python3-dkim.
send("alice@sender.test", "Alice <alice@sender.test>", "rsa-signed")
wait_for(lambda: received("rsa-signed") is not None, "the message reached the remote MTA")
msg = received("rsa-signed")
check(msg.startswith(b"DKIM-Signature: "), "it arrives with a DKIM-Signature first: " + repr(msg[:60]))
sig = msg.split(b"\r\n\r\n")[0].decode()
flat = re.sub(r"\s+", "", sig)
check("a=rsa-sha256" in flat and "c=relaxed/relaxed" in flat and "d=sender.test" in flat and "s=wizmail" in flat,
      "rsa-sha256, relaxed/relaxed, d=sender.test, s=wizmail")
h = re.search(r";h=([^;]*)", flat).group(1).lower().split(":")
check(h.count("from") == 2 and h.count("subject") == 2 and h.count("to") == 2,
      "From, Subject and To are over-signed: h=" + ":".join(h))
check(dkim.verify(msg, dnsfunc=dnsfunc), "python3-dkim verifies the signature with the record keygen printed")
check(not dkim.verify(msg.replace(b"Hello Bob", b"Hello Eve"), dnsfunc=dnsfunc),
      "a tampered body fails python3-dkim's verification")
verdict = opendkim_verdict(msg, "rsa")
check("verification (s=wizmail, d=sender.test, 2048-bit key) succeeded" in verdict, "OpenDKIM verifies it: " + verdict)
verdict = opendkim_verdict(msg.replace(b"Hello Bob", b"Hello Eve"), "rsa-tampered")
check("failed" in verdict and "succeeded" not in verdict, "and fails the tampered copy: " + verdict)
check(not dkim.verify(msg.replace(b"Subject: rsa-signed", b"Subject: rsa-signed!"), dnsfunc=dnsfunc),
      "a tampered Subject fails")
check(not dkim.verify(msg.replace(b"\r\n\r\n", b"\r\nFrom: mallory@evil.test\r\n\r\n", 1), dnsfunc=dnsfunc),
      "a From: added on the way fails (over-signed)")
check("DKIM-signed d=sender.test s=wizmail (rsa-sha256)" in harness.server_log(home),
      "server.log says the message was DKIM-signed")

# 2. Ed25519 (RFC 8463).
send("carol@ed.test", "carol@ed.test", "ed-signed")
wait_for(lambda: received("ed-signed") is not None, "the Ed25519 message reached the remote MTA")
msg = received("ed-signed")
check(b"a=ed25519-sha256" in re.sub(rb"\s+", b"", msg.split(b"\r\n\r\n")[0]), "signed with ed25519-sha256")
check(dkim.verify(msg, dnsfunc=dnsfunc), "python3-dkim verifies the ed25519-sha256 signature")
verdict = opendkim_verdict(msg, "ed25519")
check("verification (s=ed1, d=ed.test" in verdict and "succeeded" in verdict,
      "OpenDKIM verifies the ed25519-sha256 signature: " + verdict)
verdict = opendkim_verdict(msg.replace(b"the end of", b"the END of"), "ed25519-tampered")
check("failed" in verdict and "succeeded" not in verdict, "and fails the tampered copy: " + verdict)
check(not dkim.verify(msg.replace(b"the end of", b"the END of"), dnsfunc=dnsfunc), "tampered: fails")

# 3. No key for the domain: sent, unsigned.
send("dave@nokey.test", "dave@nokey.test", "no-key")
wait_for(lambda: received("no-key") is not None, "mail from a domain without a key is delivered")
check(b"DKIM-Signature" not in received("no-key"), "and it is not signed")

# 4. A corrupt key: the problem is logged, the mail still leaves (unsigned).
send("erin@broken.test", "erin@broken.test", "broken-key")
wait_for(lambda: received("broken-key") is not None, "mail from a domain with a corrupt key is delivered")
check(b"DKIM-Signature" not in received("broken-key"), "unsigned")
log = harness.server_log(home)
check("dkim: broken.test" in log and "unsigned" in log, "server.log names the unusable key")

# 4b. A message the library will not sign (a header line that is no field):
#     the failure is logged and the message sent, unsigned.
s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
s.sendmail("alice@sender.test", ["bob@example.test"],
           "From: alice@sender.test\r\nSubject: unsignable\r\nthis line is not a field\r\n\r\n"
           "the end of unsignable\r\n")
s.quit()
wait_for(lambda: received("unsignable") is not None, "a message that cannot be signed is still delivered")
check(b"DKIM-Signature" not in received("unsignable"), "unsigned")
check(re.search(r"DKIM signing for sender\.test failed, sent unsigned", harness.server_log(home)) is not None,
      "server.log says signing failed and the message went unsigned")

# 5. The From: domain has no key but the envelope sender's does (a list
#    post leaves with the list's bounce address): signed with that domain.
send("list-owner@sender.test", "Outside Poster <poster@elsewhere.test>", "list-post")
wait_for(lambda: received("list-post") is not None, "the list post is delivered")
msg = received("list-post")
check(b"d=sender.test" in re.sub(rb"\s+", b"", msg.split(b"\r\n\r\n")[0]), "signed with the envelope sender's domain")
check(dkim.verify(msg, dnsfunc=dnsfunc), "python3-dkim verifies it")

# 6. A real list post: From: the poster (example.test, no key), sent by
#    wizmail's list agent with the list's envelope sender → signed with
#    lists.test; both members' copies verify.
send("poster@example.test", "Poster <poster@example.test>", "ml-post", rcpt="ml@lists.test")
wait_for(lambda: sum(b"the end of ml-post" in m for m in mta.dumped()) == 2, "both list copies reached the remote MTA")
copies = []
for m in mta.dumped():
    if b"the end of ml-post" in m:
        copies.append(m)
for m in copies:
    m = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    m = m[m.index(b"DKIM-Signature: "):] if b"DKIM-Signature: " in m else m
    head = re.sub(rb"\s+", b"", m.split(b"\r\n\r\n")[0])
    check(b"List-Id:" in m and b"d=lists.test" in head and b"a=ed25519-sha256" in head,
          "a list copy is signed with the list's domain: " + repr(head[:120]))
    check(dkim.verify(m, dnsfunc=dnsfunc), "python3-dkim verifies the list copy")

# 7. reload picks up a new key (keys are cached, not read per message).
keygen("later.test")
r = wiz("reload")
check(r.returncode == 0, "wizmail reload: " + r.stdout.strip() + r.stderr.strip())
wait_for(lambda: "configuration reloaded" in harness.server_log(home), "the server reloaded")
send("frank@later.test", "frank@later.test", "after-reload")
wait_for(lambda: received("after-reload") is not None, "delivered after the reload")
check(dkim.verify(received("after-reload"), dnsfunc=dnsfunc), "signed with the key made before the reload")

server.stop()
print("all DKIM end-to-end checks passed")
