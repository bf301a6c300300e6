// The daemon's two UNIX sockets under var/run/ (ServerOptions::local_sockets):
//   control.sock (0600): the admin commands' channel (docs/control.md);
//   submit.sock  (0660): SMTP from wizmail-sendmail, a trusted local peer
//                        (relaying allowed, no AUTH), docs/operations.md.
// Both are bound under a temporary name, chmod-ed, then renamed into place,
// so no client ever sees them with looser permissions. Peers are checked
// with SO_PEERCRED: control accepts the server's own uid and root; submit
// also the server's group.
#pragma once

#include <asio/local/stream_protocol.hpp>

#include <filesystem>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "wizmail/config.hpp"
#include "wizmail/error.hpp"
#include "wizmail/server.hpp"

namespace wizmail::server {

class LocalSockets {
 public:
  LocalSockets(Server& server, Server::Impl& impl);
  ~LocalSockets();
  LocalSockets(const LocalSockets&) = delete;
  LocalSockets& operator=(const LocalSockets&) = delete;

  // Errc::busy when another server answers on control.sock.
  Status open(const std::filesystem::path& run_dir);
  // Stop taking local mail (graceful stop begins).
  void close_submit();
  // Close everything and remove the socket files (the server has stopped).
  void close();

  // The session config of trusted local submissions: the running one with
  // relaying allowed and POP-before-SMTP/AUTH-only rules off.
  std::shared_ptr<const Config> trusted_config(const std::shared_ptr<const Config>& running);

  struct ControlConn;

 private:
  void accept_control();
  void accept_submit();

  Server& server_;
  Server::Impl& impl_;
  asio::local::stream_protocol::acceptor control_, submit_;
  std::filesystem::path control_path_, submit_path_;
  std::mutex mu_;
  std::shared_ptr<const Config> trusted_for_, trusted_;
  std::uint64_t next_ = 0;
  std::unordered_map<std::uint64_t, std::weak_ptr<ControlConn>> conns_;
  bool closed_ = false;
};

}  // namespace wizmail::server
