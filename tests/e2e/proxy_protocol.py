#!/usr/bin/env python3
"""The PROXY protocol on every SMTP and POP3 port (issue 17, item 1), with
raw sockets playing the load balancer against a real wizmail-server:
proxy_trusted_networks=127.0.0.1, so a connection from 127.0.0.1 must start
with a header and one from 127.0.0.2 (all of 127/8 is loopback) may not
send one. The client a header names (192.0.2.x, 198.51.100.x) must be the
client everywhere: Received:, the logs, the relay rules, POP-before-SMTP,
client_connection_limit and `multiprocessing`, the auth penalty, the
`sessions` listing. What the client pipelines right after the header must
reach the session, and implicit TLS starts after the header.
A real HAProxy in front: tests/e2e/haproxy.py."""
import glob, json, os, socket, ssl, struct, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import CLI, Home, Server, check, free_port, poll, recv_line

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
home = Home(tls=True, smtp_extra=(
    "send_permits_only_smtp_auth=0\npop_before_smtp=1\naddress_permits_relay=192.0.2.7\n"
    "multiprocessing=20\nmultiprocessing_exempt=192.0.2.250\nclient_connection_limit=2\n"
    "greet_wait=300\ngreet_wait_exempt=192.0.2.251\nauth_block_failures=2\nauth_penalty_delay=0\n"),
    server_extra="proxy_trusted_networks=127.0.0.1\n")
home.pop3s_port = free_port()
with open(os.path.join(home.path, "def", "popenv.dat"), "a") as f:
    f.write(f"pop3s_port={home.pop3s_port}\n")
srv = Server(home)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def v1(src, dst="198.51.100.1", sport=40000, dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, dst="198.51.100.1", sport=40000, dport=25, tlvs=b"", local=False):
    if local:
        return SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    if ":" in src:
        body = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        fam = 0x21
    else:
        body = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x11
    body += struct.pack("!HH", sport, dport) + tlvs
    return SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def connect(port, src="127.0.0.1", timeout=15):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def reply(s):
    """One whole SMTP reply (multi-line too); "" at EOF."""
    out = ""
    while True:
        line = recv_line(s).decode(errors="replace")
        if not line:
            return out
        out += line
        if len(line) < 4 or line[3] != "-":
            return out


def at_eof(s, timeout=15):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def log(name):
    try:
        return open(os.path.join(home.path, "var", "log", name), errors="replace").read()
    except FileNotFoundError:
        return ""


def logged(name, *texts, timeout=10):
    """Whether every text shows up in var/log/NAME (the logger writes on
    its own thread: polled)."""
    return poll(lambda: all(t in log(name) for t in texts), timeout)


def smtp_session(header, commands, port=None, src="127.0.0.1", pipeline=True):
    """The header, then the commands: pipelined in the header's own send
    (pipeline) or each after the previous reply. Returns the replies (the
    greeting first)."""
    s = connect(port or home.submission_port, src)
    if pipeline:
        s.sendall(header + b"".join(c.encode() + b"\r\n" for c in commands))
        out = [reply(s) for _ in range(len(commands) + 1)]
    else:
        s.sendall(header)
        out = [reply(s)]
        for c in commands:
            s.sendall(c.encode() + b"\r\n")
            out.append(reply(s))
    s.close()
    return out


def send_mail(header, sender, rcpt, subject, port=None, src="127.0.0.1"):
    port = port or home.port
    body = f"From: <{sender}>\r\nSubject: {subject}\r\n\r\nhello\r\n."
    return smtp_session(header, ["EHLO client.example", f"MAIL FROM:<{sender}>", f"RCPT TO:<{rcpt}>", "DATA",
                                 body, "QUIT"], port=port, src=src, pipeline=False)


def message_with(subject):
    for m in home.messages():
        if f"Subject: {subject}".encode() in m:
            return m.decode(errors="replace")
    return None


def test_a_v1_names_the_client_everywhere():
    r = send_mail(v1("192.0.2.7", dport=587), "bob@remote.example", "alice@localhost", "via v1")
    check(r[0].startswith("220") and r[5].startswith("250"), f"v1: the message is accepted ({r[5].strip()})")
    m = message_with("via v1")
    check(m is not None and "Received: from client.example ([192.0.2.7])" in m,
          "Received: names the client of the v1 header, 192.0.2.7")
    check("127.0.0.1" not in m.split("\r\n\r\n")[0], "Received: does not name the proxy")
    check(logged("smtp.log", " 192.0.2.7:40000 ", "PROXY v1 TCP4 via 127.0.0.1:"),
          "smtp.log names the client (and the proxy once)")


def test_b_v2_ipv6_and_tlvs():
    tlvs = bytes([0x01]) + struct.pack("!H", 4) + b"smtp" + bytes([0x04]) + struct.pack("!H", 3) + b"\0\0\0"
    r = send_mail(v2("2001:db8::77", "2001:db8::1", 41000, 587, tlvs), "bob@remote.example", "alice@localhost",
                  "via v2 six")
    check(r[5].startswith("250"), "v2 TCP6 with TLVs: accepted")
    m = message_with("via v2 six")
    check("([IPv6:2001:db8::77])" in m, "Received: names the IPv6 client of the v2 header")


def test_c_pipelined_bytes_after_the_header_reach_the_session():
    # The header and three commands in one send: nothing after the header
    # may be lost (it is read exactly, the rest stays for the session).
    r = smtp_session(v2("192.0.2.30", dport=587), ["EHLO a.example", "NOOP", "QUIT"])
    check(r[0].startswith("220") and r[1].startswith("250") and r[2].startswith("250") and r[3].startswith("221"),
          f"header + EHLO + NOOP + QUIT in one send: every command answered ({[x[:3] for x in r]})")
    # On port 25 the same pipelining is talking before the greeting: the
    # pregreet test judges the client the header named.
    s = connect(home.port)
    s.sendall(v1("192.0.2.31") + b"EHLO early.example\r\n")
    first = reply(s)
    check(first.startswith("554"), f"port 25: pipelined EHLO after the header is a pregreet talker ({first.strip()})")
    s.close()


def test_d_relay_rules_apply_to_the_named_client():
    r = send_mail(v2("192.0.2.7"), "bob@remote.example", "carol@far.example", "relay permitted", port=home.port)
    check(r[3].startswith("250"), f"192.0.2.7 (address_permits_relay) may relay ({r[3].strip()})")
    r = send_mail(v2("198.51.100.9"), "bob@remote.example", "carol@far.example", "relay refused", port=home.port)
    check(r[3].startswith("5"), f"198.51.100.9 may not relay ({r[3].strip()})")
    # LOCAL (a health check) is the proxy itself: 127.0.0.1, not permitted either.
    r = send_mail(v2("", local=True), "bob@remote.example", "carol@far.example", "relay local", port=home.port)
    check(r[3].startswith("5"), "v2 LOCAL is the proxy's own connection: its address, not permitted")


def test_e_pop_before_smtp_follows_the_named_client():
    def relay(src):
        r = send_mail(v1(src, dport=587), "alice@localhost", "dave@far.example", f"pbs {src}")
        return r[3]
    check(relay("192.0.2.40").startswith("5"), "no POP3 login from 192.0.2.40 yet: relay refused")
    s = connect(home.pop_port)
    s.sendall(v1("192.0.2.40", dport=110) + b"USER alice\r\nPASS secret\r\nQUIT\r\n")
    got = b""
    while got.count(b"\r\n") < 4:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    check(got.count(b"+OK") == 4, f"POP3 through a v1 header, commands pipelined after it ({got!r})")
    check(logged("pop.log", " 192.0.2.40:40000 "), "pop.log names the client of the header")
    check(relay("192.0.2.40").startswith("250"), "after its POP3 login 192.0.2.40 may relay")
    check(relay("192.0.2.41").startswith("5"), "192.0.2.41 (no login) still may not")
    ip = open(os.path.join(home.path, "mailbox", "alice", "ip")).read()
    check(ip.endswith(",192.000.002.040\n"), f"the ip file names the client ({ip.strip()})")


def test_f_limits_count_the_named_client():
    held = []
    for _ in range(2):
        s = connect(home.submission_port)
        s.sendall(v2("192.0.2.20", dport=587))
        check(reply(s).startswith("220"), "a session of 192.0.2.20 (client_connection_limit 2)")
        held.append(s)
    s = connect(home.submission_port)
    s.sendall(v2("192.0.2.20", dport=587))
    third = reply(s)
    check(third.startswith("421") and "too many connections from your address" in third,
          f"a third of 192.0.2.20 is refused by client_connection_limit ({third.strip()})")
    s.close()
    s = connect(home.submission_port)
    s.sendall(v2("192.0.2.21", dport=587))
    check(reply(s).startswith("220"), "192.0.2.21 through the same proxy is not affected")
    held.append(s)
    out = subprocess.run([CLI, "sessions", "--json", "--home", home.path], capture_output=True, text=True, timeout=20)
    peers = [x.get("peer", "") for x in json.loads(out.stdout).get("sessions", [])]
    check(sum(p.startswith("192.0.2.20:") for p in peers) == 2 and any(p.startswith("192.0.2.21:") for p in peers),
          f"`sessions` lists the clients, not the proxy ({peers})")
    check(not any(p.startswith("127.0.0.1:") for p in peers), "`sessions` shows no proxy address")
    for s in held:
        s.close()
    check(logged("error.log", " 192.0.2.20:40000 ", "client_connection_limit 2"), "error.log names the refused client")
    # The balancer's own address is never counted: two of its connections
    # whose headers have not come yet do not take 127.0.0.1's two places
    # (counted at accept, they would, and refuse the next client).
    pending = [connect(home.submission_port) for _ in range(3)]
    s = connect(home.submission_port)
    s.sendall(v2("192.0.2.22", dport=587))
    check(reply(s).startswith("220"), "a client is greeted while three proxy connections still owe their header")
    s.close()
    for p in pending:
        p.close()


def test_g_auth_penalty_counts_the_named_client():
    s = connect(home.pop_port)
    s.sendall(v1("192.0.2.50", dport=110))
    recv_line(s)
    for pw in ("wrong1", "wrong2"):
        s.sendall(b"USER alice\r\n")
        recv_line(s)
        s.sendall(f"PASS {pw}\r\n".encode())
        r = recv_line(s).decode(errors="replace")
        check(r.startswith("-ERR") and "[SYS/TEMP]" not in r, f"192.0.2.50: wrong password {pw} refused")
    s.sendall(b"USER alice\r\n")
    r = recv_line(s).decode(errors="replace")
    check(r.startswith("-ERR [SYS/TEMP] too many failed logins"),
          f"past auth_block_failures (2) 192.0.2.50 is blocked ({r.strip()})")
    s.close()
    check(logged("error.log", "pop3 login refused from 192.0.2.50"), "error.log names 192.0.2.50")
    s = connect(home.pop_port)
    s.sendall(v1("192.0.2.51", dport=110) + b"USER alice\r\nPASS secret\r\nQUIT\r\n")
    got = b""
    while got.count(b"\r\n") < 4:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    check(got.count(b"+OK") == 4, "192.0.2.51 through the same proxy logs in at once: the penalty is 192.0.2.50's")


def test_h_implicit_tls_after_the_header():
    for port, header, what in ((home.smtps_port, v2("192.0.2.60", dport=465), "smtps"),
                               (home.pop3s_port, v1("192.0.2.61", dport=995), "pop3s")):
        raw = connect(port)
        raw.sendall(header)
        t = ctx.wrap_socket(raw, server_hostname="localhost")
        first = recv_line(t).decode(errors="replace")
        check(first.startswith("220") or first.startswith("+OK"), f"{what}: TLS after the header, greeting {first.strip()}")
        t.sendall(b"QUIT\r\n")
        recv_line(t)
        t.close()
    check(logged("smtp.log", " 192.0.2.60:40000 ") and logged("pop.log", " 192.0.2.61:40000 "),
          "the TLS ports name the clients of their headers")


def test_i_trusted_peer_without_a_header_is_refused():
    s = connect(home.submission_port)
    s.sendall(b"EHLO no-header.example\r\n")
    check(at_eof(s), "a trusted peer that starts with EHLO is closed at once")
    s.close()
    s = connect(home.pop_port)
    t0 = time.monotonic()
    check(at_eof(s, 15) and time.monotonic() - t0 >= 4.5, "a silent trusted peer gets no greeting and is closed after 5 s")
    s.close()
    s = connect(home.port)
    s.sendall(v1("192.0.2.9")[:20])
    t0 = time.monotonic()
    check(at_eof(s, 15) and time.monotonic() - t0 >= 4.5, "a header cut short is refused at the deadline")
    s.close()
    s = connect(home.submission_port)
    s.sendall(b"PROXY TCP4 192.0.2.07 198.51.100.1 1 2\r\n")
    check(at_eof(s), "a malformed v1 header (heading zero) is refused at once")
    s.close()
    s = connect(home.smtps_port)
    s.sendall(SIG + bytes([0x21, 0x12]) + struct.pack("!H", 12) + bytes(12))
    check(at_eof(s), "a v2 header for UDP is refused")
    s.close()
    check(logged("error.log", "bad PROXY protocol header: not a PROXY protocol header"),
          "error.log: a trusted peer without a header")
    check(logged("error.log", "no PROXY protocol header within 5 s"), "error.log: the silent one")
    check(logged("error.log", "v1: bad TCP4 source address", "v2: a datagram (UDP)"), "error.log: why each header was bad")


def test_j_untrusted_peer_with_a_header_is_refused():
    for header, what in ((v1("192.0.2.66"), "v1"), (v2("192.0.2.66"), "v2")):
        s = connect(home.submission_port, src="127.0.0.2")
        check(reply(s).startswith("220"), f"{what}: 127.0.0.2 is an ordinary client, greeted")
        s.sendall(header + b"EHLO x\r\n")
        r = reply(s)
        check(r.startswith("554 5.7.0 PROXY protocol header refused"), f"{what} from 127.0.0.2: refused by name ({r.strip()})")
        check(at_eof(s), f"{what} from 127.0.0.2: and closed")
        s.close()
    s = connect(home.pop_port, src="127.0.0.2")
    check(recv_line(s).startswith(b"+OK"), "POP3: 127.0.0.2 is greeted")
    s.sendall(v1("192.0.2.66", dport=110))
    r = recv_line(s).decode(errors="replace")
    check(r.startswith("-ERR PROXY protocol header refused"), f"POP3: a v1 header from 127.0.0.2 refused ({r.strip()})")
    s.close()
    s = connect(home.smtps_port, src="127.0.0.2")
    s.sendall(v2("192.0.2.66", dport=465))
    check(at_eof(s), "smtps: a v2 header from 127.0.0.2 instead of a ClientHello: closed")
    s.close()
    # Port 25 before the greeting (pregreet): the header is refused by name too.
    s = connect(home.port, src="127.0.0.2")
    s.sendall(v1("192.0.2.66"))
    r = reply(s)
    check(r.startswith("554 5.7.0 PROXY protocol header refused"), f"port 25 before the greeting: refused ({r.strip()})")
    s.close()
    check(poll(lambda: log("error.log").count("a PROXY protocol header from a peer outside proxy_trusted_networks") >= 5, 5),
          "error.log: each untrusted header (SMTP v1, v2, POP3, smtps, port 25)")
    # And an ordinary client from 127.0.0.2 is served as before.
    r = send_mail(b"", "bob@remote.example", "alice@localhost", "untrusted plain", src="127.0.0.2")
    check(r[5].startswith("250"), "an ordinary client from 127.0.0.2 still sends mail")
    check("Received: from client.example ([127.0.0.2])" in message_with("untrusted plain"),
          "its Received: names 127.0.0.2")


def test_k_off_by_default_nothing_changes():
    # proxy_trusted_networks empty: no header is looked for; a PROXY line is
    # an unknown command as before, and nothing about it is logged.
    plain = Home()
    other = Server(plain)
    s = connect(plain.submission_port)
    check(reply(s).startswith("220"), "without the key: 127.0.0.1 is greeted at once, no header asked")
    s.sendall(v1("192.0.2.66") + b"EHLO x\r\n")
    r1, r2 = reply(s), reply(s)
    check(r1.startswith("500") and r2.startswith("250"),
          f"without the key a PROXY line is an unknown command, the session goes on ({r1.strip()})")
    s.close()
    other.stop()
    err = open(os.path.join(plain.path, "var", "log", "error.log"), errors="replace").read() \
        if os.path.exists(os.path.join(plain.path, "var", "log", "error.log")) else ""
    check("PROXY" not in err, "without the key nothing about PROXY is logged")


if __name__ == "__main__":
    from harness import run_tests
    run_tests(globals())
    srv.stop()
