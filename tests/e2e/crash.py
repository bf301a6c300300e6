#!/usr/bin/env python3
"""kill -9 during DATA leaves nothing in new/; kill -9 right after the 250
leaves the whole message there. Restart cleans tmp/."""
import os, socket, sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Home, Server, check, server_log, wait_until


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

tmp = os.path.join(home.path, "mailbox", "alice", "tmp")


def staged_size():
    # The message is staged in the recipient's tmp/ as it streams in (in
    # 64 KiB writes); 0 while nothing of it is on disk yet.
    sizes = []
    for n in os.listdir(tmp):
        try:
            sizes.append(os.stat(os.path.join(tmp, n)).st_size)
        except FileNotFoundError:
            pass
    return max(sizes, default=0)


# kill -9 in the middle of DATA: once a good part of the body is on disk.
srv = Server(home)
s, reply = session(home.port)
s.sendall(body[: len(body) // 2])
wait_until(lambda: staged_size() >= 128 * 1024, "the server is writing the message into tmp/")
srv.kill9()
s.close()
check(os.listdir(home.new_dir()) == [], "kill -9 during DATA: nothing in new/")
check(os.listdir(tmp) != [], "the partial message is left in tmp/")

# Restart: the leftover in tmp/ is cleaned; kill -9 right after the 250.
starts = server_log(home).count("started: ")
srv = Server(home)
# The clean-up runs before "started:" is logged (the port may accept sooner).
wait_until(lambda: server_log(home).count("started: ") == starts + 1, "the server logged its start")
check(os.listdir(tmp) == [], "restart cleaned tmp/")
check("removed 1 leftover files from alice/tmp" in server_log(home), "and said so in server.log")
s, reply = session(home.port)
s.sendall(body + b".\r\n")
r = reply()
srv.kill9()
check(r.startswith(b"250"), "message accepted")
msgs = home.messages()
check(len(msgs) == 1, "kill -9 right after 250: the message is in new/")
check(msgs[0].endswith(body), "and it is complete")
