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
  std::string sync = "syncfs";
  app.add_option("--sync", sync, "how a commit batch is made durable: fsync (each file and "
                 "folder) or syncfs (one syncfs per phase)")
      ->check(CLI::IsMember({"fsync", "syncfs"}));
  int ready_fd = -1;
  app.add_option("--ready-fd", ready_fd, "write \"ok\" or \"error: <reason>\" to this descriptor "
                 "once listening (used by `wizmail start`)")->check(CLI::Range(3, 1 << 20));
  app.set_version_flag("--version", "wizmail-server 0.1.0");
  CLI11_PARSE(app, argc, argv);
  auto home = wizmail::resolve_home(home_option);
  if (!home) {
    std::cerr << "wizmail-server: " << home.error().message << '\n';
    if (ready_fd >= 0) {
      std::string line = "error: " + home.error().message + "\n";
      (void)!::write(ready_fd, line.data(), line.size());
    }
    return 2;
  }
  wizmail::RunOptions run;
  run.threads = threads;
  run.use_syncfs = sync == "syncfs";
  run.ready_fd = ready_fd;
  return wizmail::run_server(*home, run);
}
