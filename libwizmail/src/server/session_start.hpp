// Starting a TCP session, the same for SMTP and POP3: re-home the accepted
// socket on the executor the session lives on (its pool thread, or a strand
// on the server's io_context), register the connection in the server's
// ConnectionRegistry and run it.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/ip/tcp.hpp>

#include <exception>
#include <utility>

#include "server/server_impl.hpp"

namespace wizmail::server {

// make(executor, socket, id, lease) builds the connection (a shared_ptr to a
// class with run()); it runs under the registry's lock. `capped`: the
// session was counted against `multiprocessing` (given back here when the
// socket cannot be re-homed; the connection gives it back otherwise).
template <class Make>
void start_tcp_session(Server::Impl& srv, asio::ip::tcp::socket socket, bool capped, Make&& make) {
  auto [ex, place] = srv.place_session();
  auto adopted = srv.adopt(std::move(socket), ex);
  if (!adopted) {
    if (capped) srv.counters.capped.fetch_sub(1);
    return;
  }
  auto conn = srv.connections.add(
      [&](ConnectionRegistry::Id id) { return make(ex, std::move(*adopted), id, place); });
  // The completion handler keeps the connection alive until run() has
  // started (it may start later on another thread) and holds the session's
  // place in the pool until it ends.
  asio::co_spawn(ex, conn->run(), [conn, place = std::move(place)](std::exception_ptr) {});
}

}  // namespace wizmail::server
