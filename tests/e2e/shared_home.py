#!/usr/bin/env python3
"""Two wizmail-server nodes on one shared home (issue 17, items 2 and 5;
docs/cluster.md): nodes a and b, each with its ports (chosen now) in
HOME/nodes/<node>/node.dat, started with --node. Both accept SMTP (smtplib);
mail through either lands in the one shared mailbox under names that carry
the node; each node logs under its own nodes/<node>/log and has its own pid
file and control socket; `wizmail cluster status --json` (and the control
socket's "cluster", and the metrics) show both alive, then b stale once it
was killed with SIGKILL (cluster_heartbeat_seconds=1: stale after 3 s). A
bad node.dat key is refused with file:line, a bad --node name is refused,
--sync syncfs is refused with --node, and a node makes no delivery journal.
With redis_url (a redis-server the test starts) the beat is also in Redis,
with a ttl of three intervals."""
import json, os, signal, smtplib, socket, subprocess, sys, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness
from harness import CLI, SERVER, Home, check, free_port, poll, port_open, wait_for

home = Home(server_extra="cluster_heartbeat_seconds=1\n")
H = home.path
ports = {n: {"smtp": free_port(), "pop": free_port(), "metrics": free_port()} for n in ("a", "b")}


def node_dir(n):
    return os.path.join(H, "nodes", n)


for n, p in ports.items():
    os.makedirs(node_dir(n))
    with open(os.path.join(node_dir(n), "node.dat"), "w") as f:
        f.write(f"# node {n}: its own ports on the same host\n"
                f"smtpenv.port={p['smtp']}\nsubmission_port=0\npopenv.port={p['pop']}\n"
                f"metrics_port={p['metrics']}\n")

procs = {}


def start(n):
    procs[n] = harness.start_node(H, n, ports[n]["smtp"])


def cli(*args):
    return subprocess.run([CLI, "--home", H, *args], capture_output=True, text=True, timeout=30)


def status():
    r = cli("cluster", "status", "--json")
    if r.returncode != 0:
        raise SystemExit("FAILED: cluster status: " + r.stderr)
    return {n["name"]: n for n in json.loads(r.stdout)["nodes"]}


def send(n, subject):
    with smtplib.SMTP("127.0.0.1", ports[n]["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        refused = s.sendmail("alice@localhost", ["alice@localhost"],
                             f"From: alice@localhost\r\nTo: alice@localhost\r\nSubject: {subject}\r\n\r\nvia {n}\r\n")
    return refused


def control(n, cmd):
    path = os.path.join(node_dir(n), "run", "control.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(json.dumps({"v": 1, "cmd": cmd}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def metrics(n):
    with urllib.request.urlopen(f"http://127.0.0.1:{ports[n]['metrics']}/metrics", timeout=10) as r:
        return r.read().decode()


def test_1_bad_node_name_refused():
    for bad in ("../x", "a/b", "has space", "x" * 64, ""):
        r = subprocess.run([SERVER, "--home", H, "--node", bad], capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and "--node: node name" in r.stderr,
              f"wizmail-server --node {bad[:10]!r}: refused ({r.stderr.strip()[:80]})")
    r = cli("--node", "a/b", "sessions")
    check(r.returncode != 0 and "node name 'a/b'" in r.stderr, "wizmail --node a/b: refused")
    check(not os.path.exists(os.path.join(H, "var")), "nothing written for a refused node")


def test_2_bad_node_dat_key_refused():
    os.makedirs(node_dir("c"))
    with open(os.path.join(node_dir("c"), "node.dat"), "w") as f:
        f.write("# c\nbind_address=127.0.0.1\nsmtp_prot=2600\n")
    r = subprocess.run([SERVER, "--home", H, "--node", "c"], capture_output=True, text=True, timeout=30)
    where = os.path.join(node_dir("c"), "node.dat") + ":3: smtp_prot: unknown key"
    check(r.returncode == 2 and where in r.stderr, f"unknown node.dat key refused with file:line ({where})")
    with open(os.path.join(node_dir("c"), "node.dat"), "w") as f:
        f.write("port=2600\n")
    r = subprocess.run([SERVER, "--home", H, "--node", "c"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 2 and "node.dat:1: port: ambiguous" in r.stderr, "ambiguous node.dat key refused")
    r = subprocess.run([SERVER, "--home", H, "--node", "c", "--sync", "syncfs"], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 2 and "--sync syncfs cannot be used with --node" in r.stderr, "--sync syncfs refused")
    import shutil
    shutil.rmtree(node_dir("c"))


def test_3_two_nodes_accept_and_share_the_mailbox():
    start("a")
    start("b")
    check(send("a", "one") == {}, "node a accepted a message")
    check(send("b", "two") == {}, "node b accepted a message")
    check(send("a", "three") == {}, "node a accepted another")
    names = sorted(os.listdir(home.new_dir()))
    check(len(names) == 3 and len(set(names)) == 3, f"three distinct files in the shared mailbox: {names}")
    writers = sorted(n.split(",")[0].split(".", 2)[2] for n in names)
    check(writers == ["a", "a", "b"], f"each name carries its node ({writers})")
    bodies = b"".join(home.messages())
    check(b"via a" in bodies and b"via b" in bodies, "both messages whole in alice's new/")
    check(not os.path.exists(os.path.join(H, "var", "journal")), "no delivery journal on a shared home")


def test_3b_sendmail_through_a_node():
    sendmail = os.path.join(harness.BUILD, "apps", "wizmail-sendmail", "wizmail-sendmail")
    msg = "From: alice@localhost\nSubject: local\n\nby wizmail-sendmail via {}\n"
    r = subprocess.run([sendmail, "--home", H, "--node", "b", "-f", "alice@localhost", "alice@localhost"],
                       input=msg.format("b"), capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"wizmail-sendmail --node b: sent ({r.stderr.strip()})")
    env = dict(os.environ, WIZMAIL_NODE="a")
    r = subprocess.run([sendmail, "--home", H, "-f", "alice@localhost", "alice@localhost"],
                       input=msg.format("a"), capture_output=True, text=True, timeout=30, env=env)
    check(r.returncode == 0, f"wizmail-sendmail with WIZMAIL_NODE=a: sent ({r.stderr.strip()})")
    r = subprocess.run([sendmail, "--home", H, "-f", "alice@localhost", "alice@localhost"],
                       input=msg.format("none"), capture_output=True, text=True, timeout=30)
    check(r.returncode == 75, "wizmail-sendmail without a node: no server of its own (75)")
    r = subprocess.run([sendmail, "--home", H, "--node", "a/b", "alice@localhost"],
                       input=msg.format("bad"), capture_output=True, text=True, timeout=30)
    check(r.returncode == 64 and "node name 'a/b'" in r.stderr, "wizmail-sendmail --node a/b: usage error")
    names = os.listdir(home.new_dir())
    writers = sorted(n.split(",")[0].split(".", 2)[2] for n in names)
    check(len(names) == 5 and writers == ["a", "a", "a", "b", "b"], f"both submitted through their node ({writers})")


def test_4_each_node_logs_and_runs_in_its_own_folder():
    for n in ("a", "b"):
        other = "b" if n == "a" else "a"
        log = os.path.join(node_dir(n), "log", "smtp.log")
        wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 0,
                 f"node {n} logs to nodes/{n}/log/smtp.log")
        server_log = open(os.path.join(node_dir(n), "log", "server.log")).read()
        check(f"port {ports[n]['smtp']}" in server_log and f"port {ports[other]['smtp']}" not in server_log,
              f"nodes/{n}/log/server.log names node {n}'s port only")
        pid = open(os.path.join(node_dir(n), "run", "wizmail.pid")).read().strip()
        check(pid == str(procs[n].pid), f"nodes/{n}/run/wizmail.pid holds node {n}'s pid")
        check(os.path.exists(os.path.join(node_dir(n), "run", "control.sock")), f"node {n}'s control socket")
    check(not os.path.exists(os.path.join(H, "var", "log", "smtp.log")), "nothing in the home's var/log")
    check(not os.path.exists(os.path.join(H, "var", "run", "wizmail.pid")), "no pid file in the home's var/run")
    # The admin commands reach a node with --node.
    for n in ("a", "b"):
        r = cli("--node", n, "sessions", "--json")
        check(r.returncode == 0 and json.loads(r.stdout)["pid"] == procs[n].pid,
              f"wizmail --node {n} sessions reaches node {n}")
    r = cli("sessions")
    check(r.returncode != 0, "wizmail sessions without --node finds no server of its own")


def test_5_cluster_status_alive_then_stale():
    wait_for(lambda: all(s["alive"] for s in status().values()) and set(status()) == {"a", "b"},
             "cluster status: a and b alive")
    s = status()
    for n in ("a", "b"):
        check(s[n]["pid"] == procs[n].pid and s[n]["state"] == "alive" and s[n]["interval"] == 1,
              f"node {n}: pid, state, interval")
        check(f"smtp 127.0.0.1:{ports[n]['smtp']}" in s[n]["listen"], f"node {n}: its listeners")
        check(s[n]["heartbeat_age_seconds"] < 3 and s[n]["queue_held"] == 0, f"node {n}: fresh beat, nothing held")
        # The sessions of the tests before (and the start-up probe, which
        # ends after greet_wait) are gone by a later beat.
        wait_for(lambda: status()[n]["sessions"] == {"smtp": 0, "pop3": 0}, f"node {n}: no sessions left")
    # An open SMTP session shows in the next beat.
    c = smtplib.SMTP("127.0.0.1", ports["a"]["smtp"], timeout=10)
    c.ehlo("client.example")
    wait_for(lambda: status()["a"]["sessions"]["smtp"] == 1, "node a's beat counts its open SMTP session")
    c.quit()
    # The same on the control socket and in the metrics.
    r = control("a", "cluster")
    check(r["ok"] and r["node"] == "a" and sorted(x["name"] for x in r["nodes"]) == ["a", "b"]
          and all(x["alive"] for x in r["nodes"]), "control socket 'cluster': both alive")
    m = metrics("b")
    check('wizmail_cluster_node_alive{node="a"} 1' in m and 'wizmail_cluster_node_alive{node="b"} 1' in m
          and 'wizmail_cluster_node_heartbeat_age_seconds{node="a"} ' in m, "metrics: a gauge per node")
    text = cli("cluster", "status")
    check(text.returncode == 0 and "alive" in text.stdout and "NODE" in text.stdout, "cluster status as a table")

    procs["b"].send_signal(signal.SIGKILL)
    procs["b"].wait()
    wait_for(lambda: status()["b"]["state"] == "stale", "node b stale after SIGKILL", timeout=15)
    s = status()
    check(s["b"]["heartbeat_age_seconds"] > 3 and not s["b"]["alive"], "b's beat older than 3 intervals")
    check(s["a"]["alive"], "a still alive")
    r = control("a", "cluster")
    check([x["alive"] for x in sorted(r["nodes"], key=lambda x: x["name"])] == [True, False],
          "control socket: a alive, b stale")
    m = metrics("a")
    check('wizmail_cluster_node_alive{node="b"} 0' in m, "metrics: b not alive")
    check(send("a", "after b died") == {}, "node a still accepts mail")


def test_6_stop_node_a_with_the_cli():
    r = cli("--node", "a", "stop")
    check(r.returncode == 0, "wizmail --node a stop: " + r.stdout.strip() + r.stderr.strip())
    check(procs["a"].wait(30) == 0, "node a exited cleanly")
    check(not os.path.exists(os.path.join(node_dir("a"), "run", "wizmail.pid")), "node a's pid file removed")


def test_7_heartbeat_in_redis():
    """With redis_url the beat is also wizmail:node:<node> with a ttl of three
    intervals: there while the node lives, gone after it was killed."""
    import shutil
    redis_cli = shutil.which("redis-cli")
    if not redis_cli:
        raise SystemExit("FAILED: redis-cli is needed (Debian package redis-server, scripts/packages.txt)")
    rport = free_port()
    r = harness.start_redis(rport)
    check(port_open(rport), "redis-server listens")

    def redis(*args):
        return subprocess.run([redis_cli, "-p", str(rport), *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()

    ports["r"] = {"smtp": free_port(), "pop": free_port(), "metrics": free_port()}
    os.makedirs(node_dir("r"))
    with open(os.path.join(node_dir("r"), "node.dat"), "w") as f:
        f.write(f"smtpenv.port={ports['r']['smtp']}\nsubmission_port=0\npopenv.port={ports['r']['pop']}\n"
                f"redis_url=redis://127.0.0.1:{rport}/0\n")
    start("r")
    wait_for(lambda: "node=r\n" in redis("GET", "wizmail:node:r") + "\n", "node r's beat is in Redis")
    beat = redis("GET", "wizmail:node:r")
    check(f"pid={procs['r'].pid}" in beat and f"smtp 127.0.0.1:{ports['r']['smtp']}" in beat,
          "the Redis copy is the heartbeat file's text")
    ttl = int(redis("PTTL", "wizmail:node:r"))
    check(0 < ttl <= 3000, f"its ttl is at most three intervals ({ttl} ms)")
    procs["r"].send_signal(signal.SIGKILL)
    procs["r"].wait()
    wait_for(lambda: redis("EXISTS", "wizmail:node:r") == "0", "node r's beat expired in Redis", timeout=10)
    r.kill()
    r.wait()


harness.run_tests(globals())
