// One inbound SMTP connection: the only Asio code of SMTP, for every
// listener (port 25, submission, smtps and the local submit socket). Drives
// the pure smtp::Session, streams DATA into a StagedMessage, hands finished
// messages to the commit pipeline and replies only after they are durable.
#pragma once

#include <sys/types.h>

#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include <memory>

#include "net/client_connections.hpp"
#include "wizmail/config.hpp"
#include "wizmail/server.hpp"

namespace wizmail::server {

struct Runtime;

// Start serving `socket` (accepted on a listener of `protocol`); `capped`
// says whether the session counts against `multiprocessing`; `slot` is its
// place under client_connection_limit (given back when the session ends).
void start_smtp_connection(Server::Impl& server, asio::ip::tcp::socket socket, Protocol protocol,
                           std::shared_ptr<const Runtime> runtime, bool capped,
                           net::ClientConnections::Slot slot = {});

// Start serving a connection of var/run/submit.sock: SMTP from a trusted
// local program (wizmail-sendmail) whose peer uid is `uid`, with a session
// config that allows relaying (LocalSockets::trusted_config); its messages
// go through the same commit pipeline, so a 250 still means durable.
void start_local_submit_connection(Server::Impl& server, asio::local::stream_protocol::socket socket,
                                   uid_t uid, std::shared_ptr<const Config> session_config);

}  // namespace wizmail::server
