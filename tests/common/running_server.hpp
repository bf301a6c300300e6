// An in-process wizmail::Server for loopback tests: a temporary home with
// accounts, the smallest config that listens on 127.0.0.1, and the server on
// free (ephemeral) ports with its io_context on a thread of its own.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "temp_dir.hpp"
#include "util/fs.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/server.hpp"

namespace wizmail::test {

// A home folder with mailbox/ and the given accounts (name, password),
// removed afterwards.
struct MailHome {
  TempDir tmp;
  std::filesystem::path path = tmp.path();
  AccountStore store{path / "mailbox"};

  explicit MailHome(const std::string& prefix,
                    std::initializer_list<std::pair<const char*, const char*>> accounts) : tmp(prefix) {
    REQUIRE(util::make_dirs(path / "mailbox"));
    for (const auto& [name, password] : accounts) REQUIRE(store.create(name, password));
  }
  std::filesystem::path dir(const std::string& account) const { return path / "mailbox" / account; }
  // The messages in the account's new/, in directory order.
  std::vector<std::string> messages(const std::string& account) const {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::directory_iterator(dir(account) / "new"))
      out.push_back(util::read_file(e.path()).value());
    return out;
  }
  std::size_t count_new(const std::string& account) const { return count_files(dir(account) / "new"); }
  // var/log/<name> as written so far; "" before it exists.
  std::string log(const std::string& name = "server.log") const {
    auto t = util::read_file(path / "var" / "log" / name);
    return t ? *t : std::string();
  }
};

// SMTP on 127.0.0.1 only, sending only after SMTP AUTH (no open relay).
inline std::shared_ptr<Config> loopback_config(const std::filesystem::path& home) {
  auto c = std::make_shared<Config>();
  c->home = home;
  c->smtp.bind_address = {"127.0.0.1"};
  c->smtp.send_permits_only_smtp_auth = true;
  return c;
}

// A started Server on ephemeral ports; stopped (with a grace period) by
// finish() or at the end of the scope.
struct RunningServer {
  asio::io_context io;
  std::unique_ptr<Server> server;
  std::thread thread;

  // From a Config or a home folder (whatever Server::create takes).
  template <class Source>
  explicit RunningServer(Source&& config_or_home, ServerOptions opt = {}) {
    opt.ephemeral_ports = true;
    auto s = Server::create(io, std::forward<Source>(config_or_home), opt);
    REQUIRE_MESSAGE(s, (s ? "" : s.error().message));
    server = std::move(*s);
    auto st = server->start();
    REQUIRE_MESSAGE(st, (st ? "" : st.error().message));
    thread = std::thread([this] { io.run(); });
  }
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;
  ~RunningServer() { finish(); }
  void finish(std::chrono::milliseconds grace = std::chrono::milliseconds(2000)) {
    if (!thread.joinable()) return;
    server->stop(grace);
    thread.join();
  }
  std::uint16_t port(Protocol p = Protocol::smtp) const { return server->port(p); }
};

}  // namespace wizmail::test
