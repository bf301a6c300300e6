// One connection on var/run/submit.sock: SMTP from a trusted local program
// (wizmail-sendmail). The pure smtp::Session drives it like a TCP session,
// with a session config that allows relaying (LocalSockets::trusted_config);
// messages go through the same commit pipeline, so a 250 still means durable.
#pragma once

#include <sys/types.h>

#include <asio/local/stream_protocol.hpp>

#include "wizmail/server.hpp"

namespace wizmail::server {

class LocalSockets;

// `socket` runs on its own strand; `uid` is the peer's (logged).
void start_submit_connection(Server::Impl& server, LocalSockets& sockets,
                             asio::local::stream_protocol::socket socket, uid_t uid);

}  // namespace wizmail::server
