// One inbound POP3 connection (port `port`, or `pop3s_port` with implicit
// TLS): the only Asio code of POP3. It drives the pure pop3::Session and
// carries out its actions: replies, messages streamed from disk through a
// DotStuffer with a fixed buffer, delays (login throttle, uidl_interval),
// STLS, close. A watchdog ends an idle session (RFC 1939 §3: at least ten
// minutes) without entering UPDATE, so nothing is deleted.
//
// Server wiring (server/server.cpp, Server::Impl::accept), like SMTP's:
//   if (protocol == Protocol::pop3 || protocol == Protocol::pop3s) {
//     server::start_pop3_connection(*this, std::move(s), protocol, std::move(r), limited);
//     return;
//   }
// and in Server::start(), listeners for cfg.pop.port (Protocol::pop3) and,
// when > 0, cfg.pop.pop3s_port (Protocol::pop3s, needs TLS), on
// cfg.smtp.bind_address.
#pragma once

#include <asio/ip/tcp.hpp>

#include <memory>

#include "net/client_connections.hpp"
#include "wizmail/server.hpp"

namespace wizmail::server {

struct Runtime;

// Start serving `socket` accepted on a listener of `protocol` (pop3 or
// pop3s); `capped` says whether the session counts against
// `multiprocessing` (released when the connection ends).
void start_pop3_connection(Server::Impl& server, asio::ip::tcp::socket socket, Protocol protocol,
                           std::shared_ptr<const Runtime> runtime, bool capped,
                           net::ClientConnections::Slot slot = {});

}  // namespace wizmail::server
