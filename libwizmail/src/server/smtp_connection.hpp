// One inbound SMTP connection: the only Asio code of SMTP. Drives the pure
// smtp::Session, streams DATA into a StagedMessage, hands finished messages
// to the commit pipeline and replies only after they are durable.
#pragma once

#include <asio/ip/tcp.hpp>

#include <memory>

#include "net/client_connections.hpp"
#include "wizmail/server.hpp"

namespace wizmail::server {

struct Runtime;

// Start serving `socket` (accepted on a listener of `protocol`); `capped`
// says whether the session counts against `multiprocessing`; `slot` is its
// place under client_connection_limit (given back when the session ends).
void start_smtp_connection(Server::Impl& server, asio::ip::tcp::socket socket, Protocol protocol,
                           std::shared_ptr<const Runtime> runtime, bool capped,
                           net::ClientConnections::Slot slot = {});

}  // namespace wizmail::server
