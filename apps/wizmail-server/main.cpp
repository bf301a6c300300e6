// wizmail-server: run the mail server in the foreground (SPEC §11).
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <iostream>

#include "wizmail/config.hpp"
#include "wizmail/server.hpp"

int main(int argc, char** argv) {
  CLI::App app{"wizmail-server: the wizmail mail server (foreground)", "wizmail-server"};
  std::string home_option;
  unsigned threads = 0;
  app.add_option("--home", home_option, "the server home (default: $WIZ98MS_HOME)");
  app.add_option("--threads", threads, "session threads, each with its own event loop (default: one per core)");
  std::string node;
  app.add_option("--node", node, "run as node NAME of a home shared by several nodes: settings from "
                 "HOME/nodes/NAME/node.dat over the def files, logs, sockets and pid file under "
                 "HOME/nodes/NAME/, a heartbeat for `wizmail cluster status`, every file and folder "
                 "fsynced (docs/cluster.md). NAME: 1-63 letters, digits, '-', '_'");
  std::string sync = "syncfs";
  app.add_option("--sync", sync, "how a commit batch is made durable: fsync (each file and "
                 "folder) or syncfs (one syncfs per phase); with --node always fsync")
      ->check(CLI::IsMember({"fsync", "syncfs"}));
  int ready_fd = -1;
  app.add_option("--ready-fd", ready_fd, "write \"ok\" or \"error: <reason>\" to this descriptor "
                 "once listening (used by `wizmail start`)")->check(CLI::Range(3, 1 << 20));
  app.set_version_flag("--version", "wizmail-server 0.1.0");
  CLI11_PARSE(app, argc, argv);
  auto refuse = [&](const std::string& message) {
    std::cerr << "wizmail-server: " << message << '\n';
    if (ready_fd >= 0) {
      std::string line = "error: ";
      line += message;
      line += '\n';
      (void)!::write(ready_fd, line.data(), line.size());
    }
    return 2;
  };
  auto home = wizmail::resolve_home(home_option);
  if (!home) return refuse(home.error().message);
  if (app.count("--node") > 0) {
    if (auto st = wizmail::validate_node_name(node); !st) {
      std::string why = "--node: ";
      why += st.error().message;
      return refuse(why);
    }
    // syncfs() makes only the local file system durable (docs/cluster.md).
    if (app.count("--sync") > 0 && sync == "syncfs")
      return refuse("--sync syncfs cannot be used with --node: a shared home is made durable by fsync");
    sync = "fsync";
  }
  wizmail::RunOptions run;
  run.threads = threads;
  run.use_syncfs = sync == "syncfs";
  run.ready_fd = ready_fd;
  run.node = node;
  return wizmail::run_server(*home, run);
}
