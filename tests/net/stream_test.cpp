// net::Stream on its own: the same code over a UNIX socketpair (the local
// submit socket's kind) and loopback TCP.
#include "net/stream.hpp"

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "util/strings.hpp"

using namespace wizmail;
using asio::local::stream_protocol;

namespace {

// Runs the coroutine to completion on io.
template <class F>
void run(asio::io_context& io, F&& f) {
  bool done = false;
  asio::co_spawn(io, std::forward<F>(f)(), [&](std::exception_ptr e) {
    done = true;
    if (e) std::rethrow_exception(e);
  });
  io.run_for(std::chrono::seconds(10));
  REQUIRE(done);
}

}  // namespace

TEST_CASE("net::Stream over a UNIX socketpair: endpoints, read, write, close") {
  asio::io_context io;
  stream_protocol::socket a(io), b(io);
  asio::local::connect_pair(a, b);
  net::Stream s(std::move(a));
  CHECK(s.load_endpoints());  // connected
  CHECK_FALSE(s.is_tcp());
  CHECK_FALSE(s.is_tls());
  CHECK_FALSE(s.peer_gone());  // no TCP state to ask: never "gone" on a UNIX socket

  run(io, [&]() -> asio::awaitable<void> {
    CHECK_FALSE(co_await s.write_all(std::string_view("220 hello\r\n")));
    std::string got(11, '\0');
    auto [ec, n] = co_await asio::async_read(b, asio::buffer(got), net::use_tuple);
    CHECK_FALSE(ec);
    CHECK(got == "220 hello\r\n");

    co_await asio::async_write(b, asio::buffer(std::string_view("QUIT\r\n")), net::use_tuple);
    char buf[64];
    auto [rec, rn] = co_await s.read_some(asio::buffer(buf));
    CHECK_FALSE(rec);
    CHECK(std::string_view(buf, rn) == "QUIT\r\n");

    // Without TLS the graceful close is a close at once: the peer reads EOF.
    co_await s.close_gracefully(std::chrono::steady_clock::now() + std::chrono::seconds(1));
    CHECK_FALSE(s.is_open());
    auto [eec, en] = co_await b.async_read_some(asio::buffer(buf), net::use_tuple);
    CHECK(eec == asio::error::eof);
    CHECK(en == 0);
  });
}

TEST_CASE("net::Stream: cancel ends a pending read with operation_aborted; the stream stays open") {
  asio::io_context io;
  stream_protocol::socket a(io), b(io);
  asio::local::connect_pair(a, b);
  net::Stream s(std::move(a));
  REQUIRE(s.load_endpoints());
  asio::steady_timer t(io);
  t.expires_after(std::chrono::milliseconds(50));
  t.async_wait([&](std::error_code) { s.cancel(); });
  run(io, [&]() -> asio::awaitable<void> {
    char buf[16];
    auto [ec, n] = co_await s.read_some(asio::buffer(buf));
    CHECK(ec == asio::error::operation_aborted);
    CHECK(n == 0);
    CHECK(s.is_open());
    CHECK_FALSE(co_await s.write_all(std::string_view("421 bye\r\n")));
  });
  char buf[16];
  std::error_code ec;
  auto n = b.read_some(asio::buffer(buf), ec);
  CHECK(std::string_view(buf, n) == "421 bye\r\n");
}

TEST_CASE("net::Stream over loopback TCP: endpoints and peer_gone") {
  asio::io_context io;
  net::tcp::acceptor acc(io, net::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  net::tcp::socket client(io);
  client.connect(acc.local_endpoint());
  net::Stream s(acc.accept());
  REQUIRE(s.load_endpoints());
  CHECK(s.is_tcp());
  CHECK(s.local().port() == acc.local_endpoint().port());
  CHECK(s.remote().port() == client.local_endpoint().port());
  CHECK(s.remote().address().to_string() == "127.0.0.1");
  CHECK_FALSE(s.peer_gone());
  client.close();
  // The FIN arrives at once on loopback; give the kernel a moment.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = s.peer_gone();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(gone);
  s.close();
  CHECK_FALSE(s.is_open());
  CHECK(s.peer_gone());  // closed on our side counts as gone
}

TEST_CASE("net::Stream: a socket that is not connected has no endpoints") {
  asio::io_context io;
  net::tcp::socket unconnected(io);
  unconnected.open(net::tcp::v4());
  net::Stream s(std::move(unconnected));
  CHECK_FALSE(s.load_endpoints());
}

namespace {

// A loopback TCP pair: the server side as a Stream, the client's socket.
struct TcpPair {
  asio::io_context& io;
  net::tcp::acceptor acc;
  net::tcp::socket client;
  std::unique_ptr<net::Stream> server;
  explicit TcpPair(asio::io_context& i)
      : io(i), acc(i, net::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), client(i) {
    client.connect(acc.local_endpoint());
    server = std::make_unique<net::Stream>(acc.accept());
    REQUIRE(server->load_endpoints());
  }
};

}  // namespace

TEST_CASE("net::Stream::read_proxy_header takes the header and not one byte more") {
  const std::string header = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\n";
  const std::string after = "EHLO client.example\r\nNOOP\r\n";
  asio::io_context io;
  SUBCASE("sent with the client's first commands in one write") {
    TcpPair p(io);
    asio::write(p.client, asio::buffer(util::cat(header, after)));
    run(io, [&]() -> asio::awaitable<void> {
      auto got = co_await p.server->read_proxy_header(std::chrono::steady_clock::now() + std::chrono::seconds(5));
      CHECK_FALSE(got.ec);
      REQUIRE(got.result.status == net::proxy::ParseResult::Status::done);
      CHECK(got.result.header.size == header.size());
      // What followed is there for read(), whole.
      std::string rest;
      while (rest.size() < after.size()) {
        auto [ec, data] = co_await p.server->read();
        REQUIRE_FALSE(ec);
        rest += data;
      }
      CHECK(rest == after);
    });
  }
  SUBCASE("a v2 header sent a byte at a time, then the client's bytes") {
    TcpPair p(io);
    std::string v2("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c", 16);
    v2 += std::string("\xc0\x00\x02\x07\xc6\x33\x64\x01\x10\x00\x00\x19", 12);
    asio::steady_timer pace(io);
    run(io, [&]() -> asio::awaitable<void> {
      // The writer: one byte every millisecond, then the commands.
      asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        for (char c : v2) {
          co_await asio::async_write(p.client, asio::buffer(&c, 1), net::use_tuple);
          pace.expires_after(std::chrono::milliseconds(1));
          co_await pace.async_wait(net::use_tuple);
        }
        co_await asio::async_write(p.client, asio::buffer(after), net::use_tuple);
      }, asio::detached);
      auto got = co_await p.server->read_proxy_header(std::chrono::steady_clock::now() + std::chrono::seconds(5));
      CHECK_FALSE(got.ec);
      REQUIRE(got.result.status == net::proxy::ParseResult::Status::done);
      CHECK(got.result.header.size == 28);
      CHECK(got.result.header.source.port == 4096);
      std::string rest;
      while (rest.size() < after.size()) {
        auto [ec, data] = co_await p.server->read();
        REQUIRE_FALSE(ec);
        rest += data;
      }
      CHECK(rest == after);
    });
  }
  SUBCASE("bad at once, nothing taken beyond what was judged") {
    TcpPair p(io);
    asio::write(p.client, asio::buffer(after));
    run(io, [&]() -> asio::awaitable<void> {
      auto got = co_await p.server->read_proxy_header(std::chrono::steady_clock::now() + std::chrono::seconds(5));
      CHECK_FALSE(got.ec);
      CHECK(got.result.status == net::proxy::ParseResult::Status::bad);
      // Judged on a peek: the bytes are still the socket's.
      std::string rest;
      while (rest.size() < after.size()) {
        auto [ec, data] = co_await p.server->read();
        REQUIRE_FALSE(ec);
        rest += data;
      }
      CHECK(rest == after);
    });
  }
  SUBCASE("the deadline, for a header cut short and for silence") {
    TcpPair p(io);
    asio::write(p.client, asio::buffer(header.substr(0, 20)));
    run(io, [&]() -> asio::awaitable<void> {
      const auto t0 = std::chrono::steady_clock::now();
      auto got = co_await p.server->read_proxy_header(t0 + std::chrono::milliseconds(200));
      CHECK(got.ec == asio::error::timed_out);
      CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(200));
    });
  }
  SUBCASE("the peer closes in the middle") {
    TcpPair p(io);
    asio::write(p.client, asio::buffer(header.substr(0, 20)));
    p.client.close();
    run(io, [&]() -> asio::awaitable<void> {
      auto got = co_await p.server->read_proxy_header(std::chrono::steady_clock::now() + std::chrono::seconds(5));
      CHECK(got.ec == asio::error::eof);
    });
  }
}

TEST_CASE("net::Stream::set_proxied: remote() is the client, transport_remote() the proxy") {
  asio::io_context io;
  TcpPair p(io);
  const auto proxy = p.server->remote();
  CHECK_FALSE(p.server->proxied());
  CHECK(p.server->transport_remote() == proxy);
  const net::tcp::endpoint client(asio::ip::make_address("192.0.2.7"), 4000);
  const net::tcp::endpoint dest(asio::ip::make_address("198.51.100.1"), 25);
  p.server->set_proxied(client, dest);
  CHECK(p.server->proxied());
  CHECK(p.server->remote() == client);
  CHECK(p.server->local() == dest);
  CHECK(p.server->transport_remote() == proxy);
}
