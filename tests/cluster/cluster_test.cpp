// The public header first: it must be self-contained.
#include "wizmail/admin/cluster.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "ops/metrics.hpp"
#include "server/node_heartbeat.hpp"
#include "state/shared_state.hpp"
#include "temp_dir.hpp"
#include "wizmail/admin/control.hpp"
#include "wizmail/config.hpp"

using namespace wizmail;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

cluster::Heartbeat sample() {
  cluster::Heartbeat b;
  b.node = "mx-1_a";
  b.pid = 4711;
  b.host = "mail-a.example.org";
  b.listen = {"smtp 127.0.0.1:2525", "pop3 [::1]:1110"};
  b.started = 1765080000;
  b.beat_ms = 1765080123456;
  b.interval = 2;
  b.sessions_smtp = 3;
  b.sessions_pop3 = 1;
  b.queue_held = 7;
  return b;
}

std::chrono::system_clock::time_point at_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

std::string util_read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

// ---- unit: node names

TEST_CASE("node names: letters, digits, '-', '_', 1 to 63 characters") {
  const std::vector<std::string> good = {"a", "mx1", "node-2", "Node_3", "0", std::string(63, 'n')};
  for (const auto& name : good) CHECK_MESSAGE(validate_node_name(name), name);
  struct Bad {
    std::string name;
    std::string says;
  };
  for (const auto& [name, says] : std::vector<Bad>{{"", "empty"},
                                                   {std::string(64, 'n'), "longer than 63"},
                                                   {"a.b", "only letters"},
                                                   {"..", "only letters"},
                                                   {"a/b", "only letters"},
                                                   {"a b", "only letters"},
                                                   {"é", "only letters"},
                                                   {std::string("a\0b", 3), "only letters"},
                                                   {"a\n", "only letters"}}) {
    auto st = validate_node_name(name);
    REQUIRE_FALSE(st);
    CHECK(st.error().code == Errc::invalid_argument);
    CHECK_MESSAGE(st.error().message.find(says) != std::string::npos, st.error().message);
  }
}

TEST_CASE("a node's folders: log, run and the sockets under nodes/<node>/; without a node as before") {
  CHECK(node_dir("/h", "a") == fs::path("/h/nodes/a"));
  CHECK(run_dir("/h") == fs::path("/h/var/run"));
  CHECK(log_dir("/h") == fs::path("/h/var/log"));
  CHECK(run_dir("/h", "a") == fs::path("/h/nodes/a/run"));
  CHECK(log_dir("/h", "a") == fs::path("/h/nodes/a/log"));
  CHECK(control::control_socket_path("/h") == fs::path("/h/var/run/control.sock"));
  CHECK(control::pid_file_path("/h") == fs::path("/h/var/run/wizmail.pid"));
  CHECK(control::control_socket_path("/h", "a") == fs::path("/h/nodes/a/run/control.sock"));
  CHECK(control::submit_socket_path("/h", "a") == fs::path("/h/nodes/a/run/submit.sock"));
  CHECK(control::pid_file_path("/h", "b") == fs::path("/h/nodes/b/run/wizmail.pid"));
  Config c;
  c.home = "/h";
  CHECK(c.log_dir() == fs::path("/h/var/log"));
  CHECK(c.run_dir() == fs::path("/h/var/run"));
  CHECK(c.node_dir().empty());
  c.node = "n1";
  CHECK(c.log_dir() == fs::path("/h/nodes/n1/log"));
  CHECK(c.run_dir() == fs::path("/h/nodes/n1/run"));
  CHECK(c.node_dir() == fs::path("/h/nodes/n1"));
  // Shared: mailboxes, queue, dead mail.
  CHECK(c.mailbox_dir() == fs::path("/h/mailbox"));
  CHECK(c.queue_dir() == fs::path("/h/resendmail"));
  CHECK(c.dead_dir() == fs::path("/h/deadmail"));
}

// ---- unit: node.dat over the def files

TEST_CASE("node.dat overrides any key of the three def files; the rest stays the shared files'") {
  std::vector<std::pair<std::string, std::string>> texts = {
      {"smtpenv.dat", "port=2525\nbind_address=127.0.0.1\nmax_recipients=50\n"},
      {"popenv.dat", "port=1110\n"},
      {"wiz98msenv.dat", "domain=example.org\ncluster_heartbeat_seconds=5\n"},
      {"node.dat", "# node a\nsmtpenv.port=2601\nbind_address=127.0.0.2\nPOP3 port=x\n"}};
  // "POP3 port" is not a key name at all (blank): an error with its line.
  auto bad = parse_config_texts("/h", texts, "a");
  REQUIRE_FALSE(bad.ok());
  REQUIRE(bad.diagnostics.size() == 1);
  CHECK(bad.diagnostics[0].file == "/h/nodes/a/node.dat");
  CHECK(bad.diagnostics[0].line == 4);
  // "port" is smtpenv.dat's and popenv.dat's: node.dat must say which.
  texts.back().second = "bind_address=127.0.0.2\nport=2601\n";
  bad = parse_config_texts("/h", texts, "a");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.diagnostics[0].to_string() ==
        "/h/nodes/a/node.dat:2: port: ambiguous: more than one def file has this key; write smtpenv.port or "
        "popenv.port");

  texts.back().second =
      "# node a\nsmtpenv.port=2601\npopenv.port=1101\nbind_address=127.0.0.2\n\ncluster_heartbeat_seconds=1\n"
      "wiz98msenv.metrics_port=9101\n";
  auto r = parse_config_texts("/h", texts, "a");
  REQUIRE_MESSAGE(r.ok(), (r.diagnostics.empty() ? "" : r.diagnostics[0].to_string()));
  const Config& c = *r.config;
  CHECK(c.node == "a");
  CHECK(c.smtp.port == 2601);
  CHECK(c.pop.port == 1101);
  CHECK(c.smtp.bind_address == std::vector<std::string>{"127.0.0.2"});
  CHECK(c.server.cluster_heartbeat_seconds == 1);
  CHECK(c.server.metrics_port == 9101);
  CHECK(c.smtp.max_recipients == 50);          // not overridden: the shared file's
  CHECK(c.server.domain == "example.org");     // likewise
  CHECK(c.log_dir() == fs::path("/h/nodes/a/log"));

  // Without a node, node.dat is not read at all.
  auto plain = parse_config_texts("/h", texts);
  REQUIRE(plain.ok());
  CHECK(plain.config->node.empty());
  CHECK(plain.config->smtp.port == 2525);
  CHECK(plain.config->smtp.bind_address == std::vector<std::string>{"127.0.0.1"});
  CHECK(plain.config->server.cluster_heartbeat_seconds == 5);
}

TEST_CASE("node.dat: an unknown key, a duplicate and a bad value are errors with file:line") {
  auto load = [](std::string node_dat) {
    return parse_config_texts("/h", {{"smtpenv.dat", "port=2525\n"}, {"node.dat", std::move(node_dat)}}, "n");
  };
  auto r = load("bind_address=127.0.0.1\nprot=2526\n");
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(r.diagnostics[0].severity == ConfigDiagnostic::Severity::error);
  CHECK(r.diagnostics[0].to_string().starts_with("/h/nodes/n/node.dat:2: prot: unknown key 'prot'"));
  CHECK(r.diagnostics[0].message.find("did you mean 'port'") != std::string::npos);

  r = load("no_such_setting_at_all=1\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.diagnostics[0].to_string().starts_with("/h/nodes/n/node.dat:1: no_such_setting_at_all: unknown key"));

  r = load("metrics_port=9100\nmetrics_port=9101\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.diagnostics[0].line == 2);
  CHECK(r.diagnostics[0].message.find("duplicate") != std::string::npos);
  // The same key with and without its file's prefix is still one key.
  r = load("metrics_port=9100\nwiz98msenv.metrics_port=9101\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.diagnostics[0].line == 2);
  CHECK(r.diagnostics[0].message.find("duplicate") != std::string::npos);
  // A key under the wrong file's prefix is unknown there.
  r = load("popenv.metrics_port=9100\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.diagnostics[0].message.find("unknown key") != std::string::npos);
  r = load("nosuchfile.port=1\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.diagnostics[0].message.find("unknown key") != std::string::npos);

  r = load("\n\nmetrics_port=99999\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.diagnostics[0].to_string().starts_with("/h/nodes/n/node.dat:3: metrics_port: "));

  r = load("just words\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.diagnostics[0].line == 1);

  // A bad node name is refused before anything is read.
  auto named = parse_config_texts("/h", {{"node.dat", "port=1\n"}}, "../x");
  REQUIRE_FALSE(named.ok());
  CHECK(named.diagnostics[0].to_string().find("only letters") != std::string::npos);
}

TEST_CASE("node.dat: an empty value gives the key its default back") {
  auto r = parse_config_texts("/h", {{"wiz98msenv.dat", "metrics_port=9100\n"}, {"node.dat", "metrics_port=\n"}}, "n");
  REQUIRE(r.ok());
  CHECK(r.config->server.metrics_port == 0);
}

// ---- unit: heartbeat format and parse

TEST_CASE("heartbeat: format then parse gives it back") {
  auto b = sample();
  auto text = cluster::format_heartbeat(b);
  CHECK(text ==
        "node=mx-1_a\npid=4711\nhost=mail-a.example.org\nlisten=smtp 127.0.0.1:2525,pop3 [::1]:1110\n"
        "started=1765080000\nbeat_ms=1765080123456\ninterval=2\nsessions_smtp=3\nsessions_pop3=1\nqueue_held=7\n");
  auto back = cluster::parse_heartbeat(text);
  REQUIRE(back);
  CHECK(back->node == b.node);
  CHECK(back->pid == b.pid);
  CHECK(back->host == b.host);
  CHECK(back->listen == b.listen);
  CHECK(back->started == b.started);
  CHECK(back->beat_ms == b.beat_ms);
  CHECK(back->interval == 2);
  CHECK(back->sessions_smtp == 3);
  CHECK(back->sessions_pop3 == 1);
  CHECK(back->queue_held == 7);
  // No listener at all is a valid (empty) list.
  b.listen.clear();
  auto empty = cluster::parse_heartbeat(cluster::format_heartbeat(b));
  REQUIRE(empty);
  CHECK(empty->listen.empty());
}

TEST_CASE("heartbeat: malformed files are refused, saying where") {
  const std::string good = cluster::format_heartbeat(sample());
  auto refuse = [](const std::string& text, std::string_view says) {
    auto r = cluster::parse_heartbeat(text);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::parse);
    CHECK_MESSAGE(r.error().message.find(says) != std::string::npos, r.error().message);
  };
  auto replace = [&](std::string_view from, std::string_view to) {
    std::string t = good;
    auto at = t.find(from);
    REQUIRE(at != std::string::npos);
    t.replace(at, from.size(), to);
    return t;
  };
  refuse("", "missing key 'node'");
  refuse(good.substr(0, good.size() - 1), "not ended by a line end");   // written in part
  refuse(good.substr(0, good.find("queue_held")), "missing key 'queue_held'");
  refuse(good + "queue_held=1\n", "line 11: duplicate key 'queue_held'");
  refuse(good + "colour=blue\n", "line 11: unknown key 'colour'");
  refuse(replace("pid=4711", "pid=0"), "line 2: pid: expected a number");
  refuse(replace("pid=4711", "pid=-3"), "line 2: pid");
  refuse(replace("pid=4711", "pid=12x"), "line 2: pid");
  refuse(replace("interval=2", "interval=0"), "line 7: interval");
  refuse(replace("interval=2", "interval=301"), "line 7: interval");
  refuse(replace("beat_ms=1765080123456", "beat_ms="), "line 6: beat_ms");
  refuse(replace("beat_ms=1765080123456", "beat_ms=99999999999999999999"), "line 6: beat_ms");
  refuse(replace("node=mx-1_a", "node=a/b"), "line 1: node name");
  refuse(replace("node=mx-1_a", "node="), "line 1: node name: empty");
  refuse(replace("host=mail-a.example.org", "host="), "line 3: host");
  refuse(replace("host=mail-a.example.org", "host=a\tb"), "line 3: host: control character");
  refuse(replace("\nstarted", "\nstarted has no equals\nstarted"), "line 5: expected key=value");
  refuse(std::string(70000, 'x'), "larger than 64 KiB");
}

TEST_CASE("node status: alive up to three intervals after the last beat, stale after") {
  auto b = sample();  // interval 2 s
  auto s = cluster::node_status("mx-1_a", b, at_ms(b.beat_ms + 500));
  CHECK(s.alive);
  CHECK(s.age_seconds == doctest::Approx(0.5));
  s = cluster::node_status("mx-1_a", b, at_ms(b.beat_ms + 6000));
  CHECK(s.alive);  // exactly three intervals: not yet missed
  s = cluster::node_status("mx-1_a", b, at_ms(b.beat_ms + 6001));
  CHECK_FALSE(s.alive);
  CHECK(s.age_seconds == doctest::Approx(6.001));
  // A reader whose clock is behind the writer's: age 0, alive.
  s = cluster::node_status("mx-1_a", b, at_ms(b.beat_ms - 1500));
  CHECK(s.alive);
  CHECK(s.age_seconds == 0);
  // No heartbeat: neither alive nor an age.
  s = cluster::node_status("x", std::nullopt, at_ms(b.beat_ms));
  CHECK_FALSE(s.alive);
  CHECK(s.age_seconds == -1);
}

TEST_CASE("cluster status as JSON and as a table") {
  auto b = sample();
  std::vector<cluster::NodeStatus> nodes = {cluster::node_status("mx-1_a", b, at_ms(b.beat_ms + 1000)),
                                            cluster::node_status("mx2", std::nullopt, at_ms(b.beat_ms))};
  nodes[1].problem = "no heartbeat yet";
  auto j = nlohmann::json::parse(cluster::cluster_status_json(nodes));
  REQUIRE(j["nodes"].size() == 2);
  CHECK(j["nodes"][0]["name"] == "mx-1_a");
  CHECK(j["nodes"][0]["alive"] == true);
  CHECK(j["nodes"][0]["state"] == "alive");
  CHECK(j["nodes"][0]["heartbeat_age_seconds"].get<double>() == doctest::Approx(1.0));
  CHECK(j["nodes"][0]["pid"] == 4711);
  CHECK(j["nodes"][0]["sessions"]["smtp"] == 3);
  CHECK(j["nodes"][0]["sessions"]["pop3"] == 1);
  CHECK(j["nodes"][0]["queue_held"] == 7);
  CHECK(j["nodes"][0]["listen"][0] == "smtp 127.0.0.1:2525");
  CHECK(j["nodes"][1]["state"] == "unknown");
  CHECK(j["nodes"][1]["alive"] == false);
  CHECK(j["nodes"][1]["heartbeat_age_seconds"].is_null());
  CHECK(j["nodes"][1]["problem"] == "no heartbeat yet");
  auto table = cluster::cluster_status_table(nodes);
  CHECK(table.find("mx-1_a") != std::string::npos);
  CHECK(table.find("alive") != std::string::npos);
  CHECK(table.find("unknown") != std::string::npos);
  CHECK(cluster::cluster_status_table({}).find("no nodes") != std::string::npos);
}

TEST_CASE("metrics: a gauge per node for its heartbeat age, only for a node of a shared home") {
  auto b = sample();
  ops::MetricsSnapshot m;
  auto plain = ops::render_metrics(m);
  CHECK(plain.find("wizmail_cluster") == std::string::npos);
  m.cluster = true;
  m.nodes = {cluster::node_status("mx-1_a", b, at_ms(b.beat_ms + 1500)),
             cluster::node_status("mx2", b, at_ms(b.beat_ms + 60000)),
             cluster::node_status("mx3", std::nullopt, at_ms(b.beat_ms))};
  auto text = ops::render_metrics(m);
  CHECK(text.find("# TYPE wizmail_cluster_node_heartbeat_age_seconds gauge\n") != std::string::npos);
  CHECK(text.find("wizmail_cluster_node_heartbeat_age_seconds{node=\"mx-1_a\"} 1.500\n") != std::string::npos);
  CHECK(text.find("wizmail_cluster_node_heartbeat_age_seconds{node=\"mx2\"} 60.000\n") != std::string::npos);
  CHECK(text.find("wizmail_cluster_node_heartbeat_age_seconds{node=\"mx3\"} -1.000\n") != std::string::npos);
  CHECK(text.find("wizmail_cluster_node_alive{node=\"mx-1_a\"} 1\n") != std::string::npos);
  CHECK(text.find("wizmail_cluster_node_alive{node=\"mx2\"} 0\n") != std::string::npos);
  // Everything before is what a single server shows.
  CHECK(text.starts_with(plain));
}

// ---- integration: a shared home on disk

TEST_CASE("read_cluster_status: every node folder under nodes/, its heartbeat read and judged") {
  test::TempDir tmp("wizmail-cluster");
  const fs::path home = tmp.path();
  CHECK(cluster::read_cluster_status(home)->empty());  // no nodes/ yet
  auto b = sample();
  b.node = "b";
  fs::create_directories(home / "nodes" / "b");
  REQUIRE(cluster::write_heartbeat(home / "nodes" / "b", b));
  CHECK_FALSE(fs::exists(home / "nodes" / "b" / ".heartbeat.tmp"));
  write(home / "nodes" / "a" / "node.dat", "port=2526\n");         // made, never started
  write(home / "nodes" / "c" / "heartbeat", "garbage\n");          // unreadable beat
  auto other = b;
  other.node = "b";
  write(home / "nodes" / "d" / "heartbeat", cluster::format_heartbeat(other));  // another node's file
  write(home / "nodes" / "bad.name" / "heartbeat", cluster::format_heartbeat(b));  // not a node name
  write(home / "nodes" / "file", "not a folder");
  auto st = cluster::read_cluster_status(home, at_ms(b.beat_ms + 1000));
  REQUIRE(st);
  REQUIRE(st->size() == 4);
  CHECK((*st)[0].name == "a");
  CHECK((*st)[0].problem == "no heartbeat yet");
  CHECK((*st)[1].name == "b");
  CHECK((*st)[1].alive);
  CHECK((*st)[2].name == "c");
  CHECK_FALSE((*st)[2].beat);
  CHECK((*st)[2].problem.find("expected key=value") != std::string::npos);
  CHECK((*st)[3].name == "d");
  CHECK((*st)[3].problem.find("written by node 'b'") != std::string::npos);
  // A later beat replaces the file whole.
  b.sessions_smtp = 42;
  REQUIRE(cluster::write_heartbeat(home / "nodes" / "b", b));
  st = cluster::read_cluster_status(home, at_ms(b.beat_ms + 7000));
  REQUIRE(st);
  CHECK((*st)[1].beat->sessions_smtp == 42);
  CHECK_FALSE((*st)[1].alive);  // 7 s > 3 × 2 s
}

TEST_CASE("load_config(home, node): node.dat read from nodes/<node>/, errors with file:line") {
  test::TempDir tmp("wizmail-cluster");
  const fs::path home = tmp.path();
  write(home / "def" / "smtpenv.dat", "port=2525\n");
  auto c = load_config(home, "n1");  // no node.dat: the shared files alone
  REQUIRE(c);
  CHECK((*c)->node == "n1");
  CHECK((*c)->smtp.port == 2525);
  write(home / "nodes" / "n1" / "node.dat", "smtp_port_typo=1\n");
  c = load_config(home, "n1");
  REQUIRE_FALSE(c);
  CHECK(c.error().message.starts_with((home / "nodes" / "n1" / "node.dat").string() + ":1: smtp_port_typo: unknown key"));
  write(home / "nodes" / "n1" / "node.dat", "metrics_port=9109\n");
  c = load_config(home, "n1");
  REQUIRE(c);
  CHECK((*c)->server.metrics_port == 9109);
  // The plain load ignores nodes/ entirely.
  c = load_config(home);
  REQUIRE(c);
  CHECK((*c)->server.metrics_port == 0);
  CHECK((*c)->node.empty());
  auto bad = load_config(home, "no/such");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("node name 'no/such'") != std::string::npos);
}

// ---- integration: the server's heartbeat thread (file and shared state)

TEST_CASE("NodeHeartbeat: a first beat at start, then one each interval, to the file and the shared state") {
  test::TempDir tmp("wizmail-cluster");
  const fs::path dir = tmp.path() / "nodes" / "n1";
  fs::create_directories(dir);
  auto shared = state::make_memory_state();
  std::atomic<int> calls{0};
  std::vector<std::string> logs;
  std::mutex log_mu;
  server::NodeHeartbeat hb(
      dir, 1s,
      [&] {
        auto b = sample();
        b.node = "n1";
        b.sessions_smtp = static_cast<std::uint64_t>(++calls);
        return b;
      },
      [&](const std::string& line) {
        std::lock_guard lk(log_mu);
        logs.push_back(line);
      },
      shared.get());
  hb.start();
  // The first beat is there when start() returns.
  auto text = util_read(dir / "heartbeat");
  auto first = cluster::parse_heartbeat(text);
  REQUIRE(first);
  CHECK(first->node == "n1");
  CHECK(first->interval == 1);  // the writer's interval, not the snapshot's
  CHECK(first->sessions_smtp == 1);
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(std::llabs(first->beat_ms - now_ms) < 5000);
  auto put = shared->get(server::NodeHeartbeat::redis_key("n1"));
  REQUIRE(put);
  REQUIRE(put->has_value());
  CHECK(**put == text);
  CHECK(server::NodeHeartbeat::redis_key("n1") == "wizmail:node:n1");
  // A later beat replaces it.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (calls.load() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  hb.stop();
  CHECK(calls.load() >= 2);
  auto later = cluster::parse_heartbeat(util_read(dir / "heartbeat"));
  REQUIRE(later);
  CHECK(later->sessions_smtp >= 2);
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  CHECK(files == 1);  // no temporary file left behind
  std::lock_guard lk(log_mu);
  CHECK(logs.empty());
}

TEST_CASE("NodeHeartbeat: a beat that cannot be written is logged once, and its return too") {
  test::TempDir tmp("wizmail-cluster");
  const fs::path dir = tmp.path() / "gone";  // not made: every write fails
  std::vector<std::string> logs;
  std::mutex log_mu;
  std::atomic<int> calls{0};
  server::NodeHeartbeat hb(
      dir, 1s,
      [&] {
        ++calls;
        auto b = sample();
        return b;
      },
      [&](const std::string& line) {
        std::lock_guard lk(log_mu);
        logs.push_back(line);
      },
      nullptr);
  hb.start();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (calls.load() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  fs::create_directories(dir);
  deadline = std::chrono::steady_clock::now() + 10s;
  while (!fs::exists(dir / "heartbeat") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  hb.stop();
  CHECK(fs::exists(dir / "heartbeat"));
  std::lock_guard lk(log_mu);
  REQUIRE(logs.size() == 2);
  CHECK(logs[0].starts_with("heartbeat not written: "));
  CHECK(logs[1] == "heartbeat written again");
}

TEST_CASE("takeover: a node is taken over once its beat is older than the takeover time and 4 of its intervals") {
  auto b = sample();  // interval 2 s
  auto beat = [&](std::string name, std::int64_t age_ms, int interval) {
    auto x = b;
    x.node = name;
    x.interval = interval;
    return cluster::node_status(std::move(name), x, at_ms(b.beat_ms + age_ms));
  };
  std::vector<cluster::NodeStatus> nodes = {
      beat("self", 600000, 2),      // its own (old) beat: never itself
      beat("fresh", 1000, 2),       // alive
      beat("stale", 20000, 2),      // stale (past 3 beats) but not yet past 30 s
      beat("edge", 30000, 2),       // exactly the limit: not yet
      beat("dead", 30001, 2),       // past it
      beat("slow", 50000, 15),      // 50 s old but beats every 15 s: 4 × 15 = 60 s
      beat("slowdead", 60001, 15),
      cluster::node_status("nobeat", std::nullopt, at_ms(b.beat_ms)),  // never taken over
  };
  CHECK(cluster::nodes_to_take_over(nodes, "self", 30s) == std::vector<std::string>{"dead", "slowdead"});
  CHECK(cluster::nodes_to_take_over(nodes, "dead", 30s) == std::vector<std::string>{"self", "slowdead"});
  CHECK(cluster::nodes_to_take_over({}, "self", 30s).empty());
}

TEST_CASE("heartbeat lease: valid after a beat is written, for the age given, and false once the heartbeat is gone") {
  test::TempDir t;
  std::function<bool()> lease, short_lease;
  {
    server::NodeHeartbeat hb(t.path() / "nodes" / "mx1", 1s, [] { return sample(); }, [](const std::string&) {},
                             nullptr);
    lease = hb.lease(60s);
    short_lease = hb.lease(1ms);
    CHECK_FALSE(lease());  // no beat written yet
    fs::create_directories(t.path() / "nodes" / "mx1");
    hb.start();
    CHECK(lease());
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(short_lease());  // older than 1 ms: the node holds nothing
    hb.stop();
  }
  CHECK_FALSE(lease());  // the heartbeat is gone: no lease
}

TEST_CASE("heartbeat lease: a beat that cannot be written does not renew it") {
  test::TempDir t;
  // The node folder is a file: every write fails.
  write(t.path() / "nodes", "not a folder");
  server::NodeHeartbeat hb(t.path() / "nodes" / "mx1", 1s, [] { return sample(); }, [](const std::string&) {},
                           nullptr);
  auto lease = hb.lease(60s);
  hb.start();
  CHECK_FALSE(lease());
  hb.stop();
}
