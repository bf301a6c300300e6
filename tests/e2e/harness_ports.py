"""The harness itself: a port free_port() chose and another process took
before the server bound it (two tests run in parallel) makes Server()
start again on new ports instead of failing the test."""
import os, smtplib, socket, sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Home, Server, check  # noqa: E402

home = Home()
blocker = socket.socket()
blocker.bind(("127.0.0.1", home.port))
blocker.listen(1)  # it answers, as another test's server would
taken = home.port
server = Server(home)
check(home.port != taken, f"moved from the taken port {taken} to {home.port}")
with open(os.path.join(home.path, "def", "smtpenv.dat")) as f:
    check(f"port={home.port}\n" in f.read(), "smtpenv.dat names the new port")
s = smtplib.SMTP("127.0.0.1", home.port, timeout=10)
check(s.noop()[0] == 250, "wizmail answers on the new port")
s.quit()
server.stop()
blocker.close()
print("all harness port checks passed")
