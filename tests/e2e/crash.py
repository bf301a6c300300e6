#!/usr/bin/env python3
"""kill -9 during DATA leaves nothing in new/; kill -9 right after the 250
leaves the whole message there. Restart cleans tmp/."""
import os, socket, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Home, Server, check


def session(port):
    s = socket.create_connection(("127.0.0.1", port), 10)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return line

    reply()
    for c in (b"EHLO x", b"MAIL FROM:<x@example.org>", b"RCPT TO:<alice@localhost>", b"DATA"):
        s.sendall(c + b"\r\n")
        reply()
    return s, reply


home = Home()
body = b"Subject: crash\r\n\r\n" + b"".join(b"line %06d of the message body\r\n" % i for i in range(20000))

# kill -9 in the middle of DATA.
srv = Server(home)
s, reply = session(home.port)
s.sendall(body[: len(body) // 2])
time.sleep(0.3)
srv.kill9()
s.close()
check(os.listdir(home.new_dir()) == [], "kill -9 during DATA: nothing in new/")
tmp = os.path.join(home.path, "mailbox", "alice", "tmp")

# Restart: the leftover in tmp/ is cleaned; kill -9 right after the 250.
srv = Server(home)
time.sleep(0.2)
check(os.listdir(tmp) == [], "restart cleaned tmp/")
s, reply = session(home.port)
s.sendall(body + b".\r\n")
r = reply()
srv.kill9()
check(r.startswith(b"250"), "message accepted")
msgs = home.messages()
check(len(msgs) == 1, "kill -9 right after 250: the message is in new/")
check(msgs[0].endswith(body), "and it is complete")
