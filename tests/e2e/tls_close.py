#!/usr/bin/env python3
"""TLS sessions end with close_notify both ways (RFC 8446 §6.1), never with a
bare TCP close that OpenSSL 3 reports as "unexpected eof": after QUIT, on
the idle time-out and on a server stop, for SMTP (STARTTLS, smtps), POP3
(STLS, pop3s) and the outbound SMTP client; a client that never answers
the close_notify is cut off after a bounded wait."""
import os, select, signal, smtplib, socket, ssl, subprocess, sys, threading

sys.path.insert(0, os.path.dirname(__file__))
from harness import Home, Server, check, free_port

CLIENT = ssl.create_default_context()
CLIENT.check_hostname = False
CLIENT.verify_mode = ssl.CERT_NONE


class Lines:
    """Line reader over a plain or TLS socket (empty buffer when TLS starts)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise SystemExit(f"FAILED: connection ended, got {self.buf!r}")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def reply(self):  # SMTP: the last line of a (multi-line) reply
        while True:
            line = self.line()
            if line[3:4] != b"-":
                return line

    def say(self, text, multi=False):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply() if not multi else self.line()


def tls_session(kind, port):
    """Connect, start TLS the way `kind` does, return (tls socket, reader)."""
    raw = socket.create_connection(("127.0.0.1", port), 10)
    implicit = kind in ("smtps", "pop3s")
    if implicit:
        s = CLIENT.wrap_socket(raw)
        r = Lines(s)
        (r.reply if kind == "smtps" else r.line)()
        return s, r
    r = Lines(raw)
    if kind == "starttls":
        r.reply()
        r.say("EHLO client.example")
        check(r.say("STARTTLS").startswith(b"220"), "STARTTLS accepted")
    else:
        r.line()
        check(r.say("STLS", multi=True).startswith(b"+OK"), "STLS accepted")
    s = CLIENT.wrap_socket(raw)
    return s, Lines(s)


def unwraps(s):
    """Our close_notify out, the server's in: True; a bare TCP end: the error."""
    try:
        s.unwrap().close()
        return True
    except (ssl.SSLError, OSError) as e:
        s.close()
        return repr(e)


home = Home(tls=True, smtp_extra="session_timeout=10\n")
home.pop3s_port = free_port()
with open(os.path.join(home.path, "def", "popenv.dat"), "a") as f:
    f.write(f"pop3s_port={home.pop3s_port}\n")
srv = Server(home)
ports = {"starttls": home.port, "smtps": home.smtps_port, "stls": home.pop_port, "pop3s": home.pop3s_port}

# --- QUIT, with python's ssl: unwrap() needs the server's close_notify.
for kind, port in ports.items():
    s, r = tls_session(kind, port)
    pop = kind in ("stls", "pop3s")
    if pop:
        check(r.say("USER alice", multi=True).startswith(b"+OK"), f"{kind}: USER")
        check(r.say("PASS secret", multi=True).startswith(b"+OK"), f"{kind}: PASS")
        reply = r.say("QUIT", multi=True)
    else:
        reply = r.say("QUIT")
    check(reply.startswith(b"+OK" if pop else b"221"), f"{kind}: QUIT answered ({reply!r})")
    res = unwraps(s)
    check(res is True, f"{kind}: the session ends with close_notify both ways (unwrap: {res})")

# --- QUIT, with openssl s_client: "close notify" read, no "unexpected eof".
for kind, port in ports.items():
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-crlf", "-ign_eof", "-state"]
    if kind == "starttls":
        argv += ["-starttls", "smtp"]
    elif kind == "stls":
        argv += ["-starttls", "pop3"]
    r = subprocess.run(argv, input="QUIT\n", capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    check("unexpected eof" not in out, f"s_client {kind}: no 'unexpected eof'")
    check("alert read:warning:close notify" in out, f"s_client {kind}: close_notify received")
    check(r.returncode == 0, f"s_client {kind}: exit 0 ({r.returncode})")

# --- The idle time-out (session_timeout=10): 421, then close_notify.
s, r = tls_session("starttls", home.port)
# The client waits longer than the server's 10 s: with equal time-outs the
# client could give up first (it did under ASan on a loaded machine).
s.settimeout(60)
reply = r.reply()
check(reply.startswith(b"421"), f"idle TLS session: 421 after session_timeout ({reply!r})")
res = unwraps(s)
check(res is True, f"idle time-out: close_notify both ways (unwrap: {res})")

# --- A client that never answers the close_notify: the server still ends
#     the connection (bounded wait), and the session slot is freed.
s, r = tls_session("smtps", home.smtps_port)
check(r.say("QUIT").startswith(b"221"), "silent client: QUIT answered")
check(s.recv(100) == b"", "silent client: the server's close_notify arrives")
fd = s.fileno()
ready, _, _ = select.select([fd], [], [], 60)
check(ready and os.read(fd, 100) == b"", "silent client: the server closes TCP without our close_notify")
s.close()

# --- Outbound: wizmail's SMTP client (STARTTLS to a smart host) ends TLS
#     with close_notify too; the peer's unwrap() after 221 tells.
peer_port = free_port()
listener = socket.create_server(("127.0.0.1", peer_port))
peer_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
peer_ctx.load_cert_chain(home.cert, home.key)
peer = {"done": threading.Event()}


def serve_peer():
    conn, _ = listener.accept()
    conn.settimeout(60)
    r = Lines(conn)
    conn.sendall(b"220 peer.example ESMTP\r\n")
    tls = None
    while True:
        cmd = r.line().strip().upper()
        sock = tls or conn
        if cmd.startswith(b"EHLO"):
            sock.sendall(b"250-peer.example\r\n" + (b"" if tls else b"250-STARTTLS\r\n") + b"250 8BITMIME\r\n")
        elif cmd == b"STARTTLS":
            conn.sendall(b"220 go ahead\r\n")
            tls = peer_ctx.wrap_socket(conn, server_side=True)
            r = Lines(tls)
        elif cmd == b"DATA":
            sock.sendall(b"354 go\r\n")
            while r.line() != b".\r\n":
                pass
            peer["tls"] = tls is not None
            sock.sendall(b"250 queued\r\n")
        elif cmd == b"QUIT":
            sock.sendall(b"221 bye\r\n")
            peer["unwrap"] = unwraps(tls) if tls else "no TLS"
            break
        else:
            sock.sendall(b"250 ok\r\n")
    peer["done"].set()


threading.Thread(target=serve_peer, daemon=True).start()
srv.stop()
with open(os.path.join(home.path, "def", "smtpenv.dat"), "a") as f:
    f.write(f"smart_host=127.0.0.1:{peer_port}\n")
srv = Server(home)
with smtplib.SMTP("127.0.0.1", home.submission_port, timeout=10) as c:
    c.starttls(context=CLIENT)
    c.login("alice", "secret")
    c.sendmail("alice@localhost", ["someone@remote.example"], "Subject: out\r\n\r\nbody\r\n")
check(peer["done"].wait(120), "outbound: the smart host got the message and QUIT")
check(peer.get("tls") is True, "outbound: the message went over STARTTLS")
check(peer.get("unwrap") is True, f"outbound: wizmail's client answers close_notify (unwrap: {peer.get('unwrap')})")

# --- A server stop: idle TLS sessions get 421 / -ERR, then close_notify.
smtp_s, smtp_r = tls_session("starttls", home.port)
smtp_r.say("EHLO client.example")
pop_s, pop_r = tls_session("pop3s", home.pop3s_port)
srv.proc.send_signal(signal.SIGTERM)
reply = smtp_r.reply()
check(reply.startswith(b"421"), f"stop: the idle SMTP session gets 421 ({reply!r})")
res = unwraps(smtp_s)
check(res is True, f"stop: SMTP close_notify both ways (unwrap: {res})")
reply = pop_r.line()
check(reply.startswith(b"-ERR"), f"stop: the idle POP3 session gets -ERR ({reply!r})")
res = unwraps(pop_s)
check(res is True, f"stop: POP3 close_notify both ways (unwrap: {res})")
check(srv.proc.wait(60) == 0, "the server stopped cleanly")
