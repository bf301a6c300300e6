#include "server/pop3_connection.hpp"

#include <doctest/doctest.h>

#include <asio/connect.hpp>
#include <asio/read_until.hpp>
#include <asio/ssl.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <fstream>
#include <thread>

#include "pop3/mailbox_lock.hpp"
#include "pop3/session.hpp"
#include "util/strings.hpp"
#include "temp_dir.hpp"
#include "test_server.hpp"
#include "util/fs.hpp"
#include "wait_until.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"

namespace fs = std::filesystem;
using namespace wizmail;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

namespace {

struct Home {
  test::TempDir tmp{"wizmail-pop3-conn"};
  fs::path root = tmp.path();
  explicit Home(bool tls = false, const std::string& popenv = "") {
    fs::create_directories(root / "def");
    fs::create_directories(root / "mailbox");
    std::ofstream(root / "def" / "popenv.dat") << "host=pop.test\n" << popenv;
    if (tls) {
      REQUIRE(pop3test::make_self_signed(root / "cert.pem", root / "key.pem"));
      std::ofstream(root / "def" / "wiz98msenv.dat")
          << "tls_cert_file=" << (root / "cert.pem").string() << "\n"
          << "tls_key_file=" << (root / "key.pem").string() << "\n";
    }
    AccountStore store(root / "mailbox");
    REQUIRE(store.create("alice", "secret"));
  }
  fs::path acct() const { return root / "mailbox" / "alice"; }
  void put(const std::string& name, const std::string& content) const {
    std::ofstream(acct() / "new" / name, std::ios::binary) << content;
  }
  std::size_t count() const { return Mailbox(acct()).list()->size(); }
};

// A blocking line-oriented client.
struct Client {
  asio::io_context io;
  tcp::socket sock{io};
  asio::streambuf buf;
  explicit Client(std::uint16_t port) {
    sock.connect({asio::ip::make_address("127.0.0.1"), port});
  }
  std::string line() {
    std::error_code ec;
    asio::read_until(sock, buf, "\r\n", ec);
    if (ec) return util::cat("<", ec.message(), ">");
    std::istream is(&buf);
    std::string l;
    std::getline(is, l);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    return l;
  }
  // Lines up to the "." terminator, unstuffed, joined with CRLF.
  std::string multi() {
    std::string out;
    for (;;) {
      std::string l = line();
      if (l == "." || l.front() == '<') return out;
      if (!l.empty() && l[0] == '.') l.erase(0, 1);
      out += l + "\r\n";
    }
  }
  void send(const std::string& s) { asio::write(sock, asio::buffer(s)); }
  std::string cmd(const std::string& s) {
    send(s + "\r\n");
    return line();
  }
};

// The loopback tests give the server 3 s to settle.
bool wait_for(const std::function<bool()>& pred) { return test::wait_until(pred, 3s); }

}  // namespace

TEST_CASE("loopback: login, STAT, RETR with dot-stuffing, DELE, QUIT deletes") {
  Home h;
  const std::string m1 = "Subject: one\r\n\r\n.leading dot\r\nbody\r\n";
  h.put("1000.M1P1.host,S=" + std::to_string(m1.size()), m1);
  h.put("1001.M2P1.host", "Subject: two\n\nbare lf\n");
  auto srv = pop3test::Server::start(h.root);
  REQUIRE(srv);
  Client c((*srv)->port());
  std::string greet = c.line();
  CHECK(greet.rfind("+OK wizmail POP3 server ready <", 0) == 0);
  CHECK(greet.find("@pop.test>") != std::string::npos);
  CHECK(c.cmd("CAPA") == "+OK capability list follows");
  std::string capa = c.multi();
  CHECK(capa.find("USER\r\n") != std::string::npos);
  CHECK(capa.find("STLS") == std::string::npos);  // no certificate
  CHECK(c.cmd("USER alice") == "+OK send PASS");
  CHECK(c.cmd("PASS secret").rfind("+OK logged in; 2 messages", 0) == 0);
  CHECK(fs::is_empty(h.acct() / "new"));
  CHECK(AccountStore(h.root / "mailbox").read_pop_login("alice")->ip == "127.0.0.1");
  CHECK(c.cmd("RETR 1") == "+OK " + std::to_string(m1.size()) + " octets");
  CHECK(c.multi() == m1);
  CHECK(c.cmd("RETR 2") == "+OK 25 octets");
  CHECK(c.multi() == "Subject: two\r\n\r\nbare lf\r\n");
  CHECK(c.cmd("DELE 1") == "+OK message 1 deleted");
  CHECK(c.cmd("QUIT") == "+OK wizmail POP3 server signing off (1 messages deleted)");
  CHECK(c.line().front() == '<');  // closed by the server
  CHECK(h.count() == 1);
  CHECK(wait_for([&] { return (*srv)->sessions() == 0; }));
  (*srv)->stop();
  auto log = util::read_file(h.root / "var" / "log" / "pop.log");
  REQUIRE(log);
  CHECK(log->find("PASS **** -> +OK logged in") != std::string::npos);
  CHECK(log->find("secret") == std::string::npos);
}

TEST_CASE("loopback: a dropped connection deletes nothing and frees the lock; IN-USE") {
  Home h;
  h.put("1000.M1P1.host", "A: 1\r\n\r\nx\r\n");
  auto srv = pop3test::Server::start(h.root);
  REQUIRE(srv);
  {
    Client c((*srv)->port());
    c.line();
    c.cmd("USER alice");
    REQUIRE(c.cmd("PASS secret").rfind("+OK", 0) == 0);
    CHECK(c.cmd("DELE 1") == "+OK message 1 deleted");
    Client d((*srv)->port());
    d.line();
    d.cmd("USER alice");
    CHECK(d.cmd("PASS secret") == "-ERR [IN-USE] mailbox is locked by another POP3 session");
  }  // both sockets closed without QUIT
  CHECK(wait_for([&] { return !fs::exists(h.acct() / pop3::lock_file_name); }));
  CHECK(h.count() == 1);
  Client e((*srv)->port());
  e.line();
  e.cmd("USER alice");
  CHECK(e.cmd("PASS secret").rfind("+OK logged in; 1 messages", 0) == 0);
}

TEST_CASE("loopback: 40 pipelined RETRs in one write, a large message, bad input") {
  Home h;
  std::string big;
  for (int i = 0; i < 30000; ++i) big += (i % 10 == 0 ? ".line " : "line ") + std::to_string(i) + "\r\n";
  h.put("1000.M1P1.host", "Subject: big\r\n\r\n" + big);
  h.put("1001.M1P1.host", "Subject: small\r\n\r\nhi\r\n");
  auto srv = pop3test::Server::start(h.root);
  REQUIRE(srv);
  Client c((*srv)->port());
  c.line();
  std::string batch = "USER alice\r\nPASS secret\r\n";
  for (int i = 0; i < 40; ++i) batch += "RETR " + std::to_string(i % 2 + 1) + "\r\n";
  batch += std::string(10000, 'Z') + "\r\nRETR 0\r\nRETR 3\r\nNOOP\r\n";
  c.send(batch);
  CHECK(c.line() == "+OK send PASS");
  CHECK(c.line().rfind("+OK logged in; 2 messages", 0) == 0);
  for (int i = 0; i < 40; ++i) {
    CHECK(c.line().rfind("+OK ", 0) == 0);
    std::string body = c.multi();
    if (i % 2 == 0) CHECK(body == "Subject: big\r\n\r\n" + big);
    else CHECK(body == "Subject: small\r\n\r\nhi\r\n");
  }
  CHECK(c.line() == "-ERR line too long (at most 512 octets)");
  CHECK(c.line() == "-ERR invalid message number: 0");
  CHECK(c.line() == "-ERR no such message: 3 (maildrop has 2)");
  CHECK(c.line() == "+OK");
  CHECK(c.cmd("TOP 1 2") == "+OK top of message follows");
  CHECK(c.multi() == "Subject: big\r\n\r\n.line 0\r\nline 1\r\n");
}

TEST_CASE("loopback: STLS, then login over TLS; implicit TLS port") {
  Home h(true);
  h.put("1000.M1P1.host", "A: 1\r\n\r\nx\r\n");
  auto srv = pop3test::Server::start(h.root);
  REQUIRE(srv);
  REQUIRE((*srv)->pop3s_port() != 0);
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_verify_mode(asio::ssl::verify_none);
  auto tls_line = [](auto& s, asio::streambuf& b) {
    asio::read_until(s, b, "\r\n");
    std::istream is(&b);
    std::string l;
    std::getline(is, l);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    return l;
  };
  {
    Client c((*srv)->port());
    c.line();
    CHECK(c.cmd("CAPA") == "+OK capability list follows");
    CHECK(c.multi().find("STLS\r\n") != std::string::npos);
    // Plaintext pipelined after STLS must be discarded.
    c.send("STLS\r\nUSER alice\r\n");
    CHECK(c.line() == "+OK begin TLS negotiation");
    REQUIRE(c.buf.size() == 0);
    asio::ssl::stream<tcp::socket&> s(c.sock, ctx);
    s.handshake(asio::ssl::stream_base::client);
    asio::streambuf b;
    asio::write(s, asio::buffer(std::string("CAPA\r\n")));
    CHECK(tls_line(s, b) == "+OK capability list follows");
    std::string capa;
    for (std::string l; (l = tls_line(s, b)) != ".";) capa += l + "\n";
    CHECK(capa.find("STLS") == std::string::npos);
    asio::write(s, asio::buffer(std::string("USER alice\r\nPASS secret\r\nSTAT\r\n")));
    CHECK(tls_line(s, b) == "+OK send PASS");
    CHECK(tls_line(s, b).rfind("+OK logged in", 0) == 0);
    CHECK(tls_line(s, b) == "+OK 1 11");
  }
  CHECK(wait_for([&] { return !fs::exists(h.acct() / pop3::lock_file_name); }));
  asio::io_context io;
  tcp::socket sock(io);
  sock.connect({asio::ip::make_address("127.0.0.1"), (*srv)->pop3s_port()});
  asio::ssl::stream<tcp::socket&> s(sock, ctx);
  s.handshake(asio::ssl::stream_base::client);
  asio::streambuf b;
  CHECK(tls_line(s, b).rfind("+OK wizmail", 0) == 0);
  asio::write(s, asio::buffer(std::string("USER alice\r\nPASS secret\r\nQUIT\r\n")));
  CHECK(tls_line(s, b) == "+OK send PASS");
  CHECK(tls_line(s, b).rfind("+OK logged in", 0) == 0);
  CHECK(tls_line(s, b).rfind("+OK wizmail POP3 server signing off", 0) == 0);
}

TEST_CASE("loopback: uidl_interval paces lines; server stop ends idle sessions") {
  Home h(false, "uidl_interval=50\n");
  for (int i = 0; i < 4; ++i) h.put("100" + std::to_string(i) + ".M1P1.host", "A: 1\r\n\r\nx\r\n");
  auto srv = pop3test::Server::start(h.root);
  REQUIRE(srv);
  Client c((*srv)->port());
  c.line();
  c.cmd("USER alice");
  c.cmd("PASS secret");
  auto t0 = std::chrono::steady_clock::now();
  CHECK(c.cmd("UIDL") == "+OK unique-id listing follows");
  CHECK(c.multi() == "1 1000.M1P1.host\r\n2 1001.M1P1.host\r\n3 1002.M1P1.host\r\n4 1003.M1P1.host\r\n");
  CHECK(std::chrono::steady_clock::now() - t0 >= 190ms);
  CHECK(c.cmd("DELE 1") == "+OK message 1 deleted");
  (*srv)->stop();
  CHECK(c.line() == "-ERR [SYS/TEMP] server shutting down");
  CHECK(h.count() == 4);  // no QUIT: nothing deleted
  CHECK_FALSE(fs::exists(h.acct() / pop3::lock_file_name));
}
