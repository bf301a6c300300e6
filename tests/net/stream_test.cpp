// net::Stream on its own: the same code over a UNIX socketpair (the local
// submit socket's kind) and loopback TCP.
#include "net/stream.hpp"

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <string>
#include <thread>

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
