#!/usr/bin/env python3
"""10,000 idle POP3 connections against wizmail (pop3_test_server, one session thread): open
them all (each reads the greeting), then print the server's RSS.
usage: idle.py BUILD_DIR [N]"""
import os
import resource
import socket
import subprocess
import sys
import tempfile
import shutil

build = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, n + 100))
home = tempfile.mkdtemp(prefix="wizmail-pop3-idle-")
os.makedirs(f"{home}/def")
open(f"{home}/def/popenv.dat", "w").write("host=pop.test\n")
os.makedirs(f"{home}/mailbox")
p = subprocess.Popen([f"{build}/tests/pop3/pop3_test_server", home], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, text=True)
try:
    port = int(p.stdout.readline().split()[1])

    def rss():
        for line in open(f"/proc/{p.pid}/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1])

    base = rss()
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        socks.append(s)
    for s in socks:
        assert s.recv(200).startswith(b"+OK")
    after = rss()
    print(f"{n} idle POP3 connections: server RSS {after / 1024:.1f} MiB "
          f"(empty {base / 1024:.1f} MiB, {(after - base) * 1024 / n:.0f} bytes/connection)")
    for s in socks:
        s.close()
finally:
    p.stdin.close()
    p.wait(timeout=60)
    shutil.rmtree(home)
