#include "server/local_sockets.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include "server/smtp_connection.hpp"
#include "control/reply.hpp"
#include "control/unix_socket.hpp"
#include "net/stream.hpp"
#include "server/server_impl.hpp"
#include "wizmail/admin/cluster.hpp"
#include "wizmail/admin/control.hpp"

namespace wizmail::server {

using control::Command;
using control::connect_unix;
using control::error_reply;
using control::kMaxRequestLine;
using control::ok_reply;
using control::parse_request;

namespace fs = std::filesystem;
using local = asio::local::stream_protocol;
using namespace std::chrono_literals;

namespace {

struct PeerCred {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
  bool ok = false;
};

PeerCred peer_cred(local::socket& s) {
  PeerCred p;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    p.uid = cred.uid;
    p.gid = cred.gid;
    p.pid = cred.pid;
    p.ok = true;
  }
  return p;
}

// Whether the peer is a member of `gid` by its supplementary groups
// (SO_PEERGROUPS, Linux 4.13): a user who joined the socket's group as told
// may submit, whatever its primary group.
bool peer_in_group(local::socket& s, gid_t gid) {
  std::vector<gid_t> groups(64);
  for (int round = 0; round < 2; ++round) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      return std::find(groups.begin(), groups.end(), gid) != groups.end();
    }
    if (errno != ERANGE) return false;
    groups.resize(len / sizeof(gid_t) + 1);
  }
  return false;
}

// Bind at `path` with `mode`: under a temporary name first, then renamed.
Status bind_socket(local::acceptor& acc, const fs::path& path, mode_t mode) {
  auto tmp = path;
  tmp += ".new." + std::to_string(::getpid());
  auto name = control::UnixSocketName::make(tmp);  // a deep home's path is longer than sun_path
  if (!name) return unexpected(name.error());
  ::unlink(tmp.c_str());
  std::error_code ec;
  acc.open(local(), ec);
  if (!ec) acc.bind(local::endpoint(name->name()), ec);
  if (ec) {
    acc.close(ec);
    return fail(Errc::io, "cannot bind " + tmp.string() + ": " + ec.message());
  }
  if (::chmod(tmp.c_str(), mode) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    acc.close(ec);
    return fail_errno("install " + path.string(), err);
  }
  acc.listen(64, ec);
  if (ec) {
    ::unlink(path.c_str());
    acc.close(ec);
    return fail(Errc::io, "listen " + path.string() + ": " + ec.message());
  }
  return {};
}

nlohmann::ordered_json sessions_json(const Server& server) {
  auto sessions = nlohmann::ordered_json::array();
  for (const auto& s : server.sessions()) {
    sessions.push_back({{"id", s.id},
                        {"protocol", std::string(to_string(s.protocol))},
                        {"peer", s.peer},
                        {"account", s.account},
                        {"state", s.state},
                        {"command", s.command},
                        {"age", s.age.count()}});
  }
  auto workers = nlohmann::ordered_json::array();
  for (const auto& w : server.workers())
    workers.push_back({{"name", w.name}, {"state", w.state}, {"age", w.since.count()}});
  return {{"pid", ::getpid()}, {"sessions", std::move(sessions)}, {"workers", std::move(workers)}};
}

nlohmann::ordered_json stats_json(const Server& server) {
  auto s = server.stats();
  return {{"pid", ::getpid()},
          {"stats",
           {{"sessions_smtp", s.sessions_smtp},
            {"sessions_pop3", s.sessions_pop3},
            {"sessions_total", s.sessions_total},
            {"refused_busy", s.refused_busy},
            {"messages_received", s.messages_received},
            {"messages_delivered", s.messages_delivered},
            {"messages_relayed", s.messages_relayed},
            {"commit_batches", s.commit_batches}}}};
}

}  // namespace

// One admin connection: request lines in, one reply line each.
struct LocalSockets::ControlConn : std::enable_shared_from_this<ControlConn> {
  ControlConn(LocalSockets& owner, local::socket s)
      : owner(owner), sock(std::move(s)), idle(sock.get_executor()) {}

  LocalSockets& owner;
  local::socket sock;
  asio::steady_timer idle;

  void close() {
    std::error_code ec;
    sock.close(ec);
    idle.cancel();
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    auto& I = owner.impl_;
    auto cred = peer_cred(sock);
    if (!cred.ok || (cred.uid != ::geteuid() && cred.uid != 0)) {
      I.logger.log(server::LogFile::error, {}, "control", {},
                   "control socket: refused peer uid " + std::to_string(cred.uid));
      auto reply = error_reply("permission_denied", "not the server's user") + "\n";
      co_await asio::async_write(sock, asio::buffer(reply), net::use_tuple);
      close();
      co_return;
    }
    asio::streambuf buf(kMaxRequestLine + 1);
    for (;;) {
      idle.expires_after(30s);
      idle.async_wait([w = weak_from_this()](std::error_code ec) {
        if (ec) return;
        if (auto c = w.lock()) {
          std::error_code ignored;
          c->sock.close(ignored);
        }
      });
      auto [ec, n] = co_await asio::async_read_until(sock, buf, '\n', net::use_tuple);
      idle.cancel();
      std::string reply;
      bool stop = false, force = false;
      if (ec == asio::error::not_found) {
        reply = error_reply("bad_request", "request line too long");
        auto line = reply + "\n";
        co_await asio::async_write(sock, asio::buffer(line), net::use_tuple);
        break;
      }
      if (ec) break;
      std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + n - 1);
      buf.consume(n);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto req = parse_request(line);
      if (!req) {
        reply = error_reply("bad_request", req.error().message);
      } else {
        switch (req->command) {
          case Command::stop:
            reply = ok_reply({{"pid", ::getpid()}});
            stop = true;
            force = req->force;
            break;
          case Command::reload:
            if (auto st = owner.server_.reload(); st) reply = ok_reply();
            else reply = error_reply("reload_failed", st.error().message);
            break;
          case Command::sessions: reply = ok_reply(sessions_json(owner.server_)); break;
          case Command::stats: reply = ok_reply(stats_json(owner.server_)); break;
          case Command::cluster: {
            // The same answer as `wizmail cluster status --json`, read from
            // the shared home's nodes/ folder now.
            auto nodes = cluster::read_cluster_status(I.runtime()->config->home);
            if (!nodes) {
              reply = error_reply("cluster_failed", nodes.error().message);
              break;
            }
            auto j = nlohmann::ordered_json::parse(cluster::cluster_status_json(*nodes));
            j["node"] = I.runtime()->config->node;
            reply = ok_reply(j);
            break;
          }
          case Command::flush:
            if (auto st = owner.server_.flush_queue(); st) reply = ok_reply();
            else if (st.error().code == Errc::unavailable)
              reply = error_reply("not_supported", st.error().message);
            else reply = error_reply("flush_failed", st.error().message);
            break;
        }
        if (req->command == Command::stop || req->command == Command::reload)
          I.logger.server("control: " + std::string(to_string(req->command)) +
                          (force ? " (forced)" : "") + " from uid " + std::to_string(cred.uid));
      }
      reply += "\n";
      auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(reply), net::use_tuple);
      (void)wn;
      if (stop) {
        std::function<void(bool)> handler;
        {
          std::lock_guard lk(I.stop_handler_mu);
          handler = I.stop_handler;
        }
        if (handler) handler(force);
        else if (force) owner.server_.stop(0ms);
        else owner.server_.stop();
      }
      if (wec) break;
    }
    close();
  }
};

LocalSockets::LocalSockets(Server& server, Server::Impl& impl)
    : server_(server), impl_(impl), control_(impl.io), submit_(impl.io) {}

LocalSockets::~LocalSockets() { close(); }

Status LocalSockets::open(const fs::path& run_dir) {
  control_path_ = run_dir / "control.sock";
  submit_path_ = run_dir / "submit.sock";
  if (auto fd = connect_unix(control_path_); fd) {
    ::close(*fd);
    return fail(Errc::busy, "another server answers on " + control_path_.string());
  }
  if (auto st = bind_socket(control_, control_path_, 0600); !st) return st;
  if (auto st = bind_socket(submit_, submit_path_, 0660); !st) {
    std::error_code ec;
    control_.close(ec);
    ::unlink(control_path_.c_str());
    return st;
  }
  accept_control();
  accept_submit();
  return {};
}

void LocalSockets::accept_control() {
  control_.async_accept(asio::make_strand(impl_.io), [this](std::error_code ec, local::socket s) {
    if (ec) return;  // closed
    auto conn = std::make_shared<ControlConn>(*this, std::move(s));
    {
      std::lock_guard lk(mu_);
      if (closed_) return;
      std::erase_if(conns_, [](const auto& p) { return p.second.expired(); });
      conns_.emplace(++next_, conn);
    }
    // The handler keeps the connection alive until run() has started.
    asio::co_spawn(control_.get_executor(), conn->run(), [conn](std::exception_ptr) {});
    accept_control();
  });
}

void LocalSockets::accept_submit() {
  submit_.async_accept(asio::make_strand(impl_.io), [this](std::error_code ec, local::socket s) {
    if (ec) return;
    auto cred = peer_cred(s);
    if (!cred.ok || (cred.uid != ::geteuid() && cred.uid != 0 && cred.gid != ::getegid() &&
                     !peer_in_group(s, ::getegid()))) {
      impl_.logger.log(server::LogFile::error, {}, "local", {},
                       "submit socket: refused peer uid " + std::to_string(cred.uid));
      // Said, not just closed: the sendmail tool exits EX_NOPERM with it.
      // A fresh socket's send buffer takes one line without blocking.
      const std::string no = "554 5.7.1 Error: uid " + std::to_string(cred.uid) +
                             " may not submit here: only the server's user, root and members of gid " +
                             std::to_string(::getegid()) + " may\r\n";
      std::error_code ignored;
      s.non_blocking(true, ignored);
      asio::write(s, asio::buffer(no), ignored);
      s.close(ignored);
    } else {
      start_local_submit_connection(impl_, std::move(s), cred.uid, trusted_config(impl_.runtime()->config));
    }
    accept_submit();
  });
}

void LocalSockets::close_submit() {
  std::error_code ec;
  if (submit_.is_open()) {
    submit_.close(ec);
    ::unlink(submit_path_.c_str());
  }
}

void LocalSockets::close() {
  close_submit();
  std::error_code ec;
  if (control_.is_open()) {
    control_.close(ec);
    ::unlink(control_path_.c_str());
  }
  std::vector<std::shared_ptr<ControlConn>> live;
  {
    std::lock_guard lk(mu_);
    closed_ = true;
    for (auto& [id, w] : conns_)
      if (auto c = w.lock()) live.push_back(std::move(c));
    conns_.clear();
  }
  for (auto& c : live) asio::post(c->sock.get_executor(), [c] { c->close(); });
}

std::shared_ptr<const Config> LocalSockets::trusted_config(const std::shared_ptr<const Config>& running) {
  std::lock_guard lk(mu_);
  if (trusted_for_ != running) {
    auto c = std::make_shared<Config>(*running);
    c->smtp.relay = true;
    c->smtp.send_permits_only_smtp_auth = false;
    c->smtp.pop_before_smtp = false;
    trusted_ = std::move(c);
    trusted_for_ = running;
  }
  return trusted_;
}

}  // namespace wizmail::server
