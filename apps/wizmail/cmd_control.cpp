// wizmail start | stop [-f] | reload | sessions [-n N] [--json] |
//         supervise [SEC] | service install|uninstall [--print] | notify FILE
// (the manual's wmsstr, wmsstp, wmsmng -t, wmsresur, wmssvcsetup,
// wmssvcunsetup, wmsntu). docs/operations.md, docs/control.md.
//
// Exit status: 0 = done; 1 = failed (reason on stderr); 2 = bad command line.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "commands.hpp"
#include "wizmail/config.hpp"
#include "wizmail/admin/control.hpp"
#include "wizmail/admin/daemon.hpp"

namespace wizmail::cli {

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted = true; }

void catch_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

void add_control_commands(CLI::App& app, Context& ctx) {
  // ---- start
  auto* start = app.add_subcommand("start", "start the server in the background; returns once it listens");
  static daemon::StartOptions start_opt;
  static std::string server_path;
  start->add_option("--server", server_path, "the wizmail-server program (default: next to wizmail, or $PATH)");
  start->add_option("--threads", start_opt.threads, "worker threads (default: one per core)");
  start->add_option("--sync", start_opt.sync, "fsync or syncfs (see wizmail-server --help)")
      ->check(CLI::IsMember({"fsync", "syncfs"}));
  start->callback([&ctx] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    start_opt.program = server_path;
    start_opt.node = ctx.node_option;
    auto r = daemon::start(std::filesystem::absolute(*home), start_opt);
    if (!r) return ctx.error("cannot start: " + r.error().message);
    if (r->removed_stale_pid_file) std::cerr << "wizmail: removed a stale pid file\n";
    std::cout << "wizmail: server started (pid " << r->pid << ")\n";
  });

  // ---- stop
  auto* stop = app.add_subcommand("stop", "stop the server (waits for sessions up to time_out_of_stop)");
  static bool force = false;
  static int wait_seconds = 0;
  stop->add_flag("-f,--force", force, "close sessions at once (accepted mail is still kept)");
  stop->add_option("--wait", wait_seconds, "give up after this many seconds (default: time_out_of_stop + 30)")
      ->check(CLI::Range(1, 86400));
  stop->callback([&ctx] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    auto r = daemon::stop(*home, force, std::chrono::seconds(wait_seconds), ctx.node_option);
    if (!r) return ctx.error("cannot stop: " + r.error().message);
    if (!r->was_running) {
      ctx.error(std::string("the server is not running") +
                (r->removed_stale_pid_file ? " (removed a stale pid file)" : ""));
      return;
    }
    std::cout << "wizmail: server stopped (pid " << r->pid << ")\n";
  });

  // ---- reload
  auto* reload = app.add_subcommand("reload", "reload the def files of the running server");
  reload->callback([&ctx] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    control::Request req;
    req.command = control::Command::reload;
    auto r = control::call(control::control_socket_path(*home, ctx.node_option), req);
    if (!r) return ctx.error(r.error());
    if (auto st = control::check_reply(*r); !st) return ctx.error(st.error());
    std::cout << "wizmail: configuration reloaded\n";
  });

  // ---- sessions
  auto* sessions = app.add_subcommand("sessions", "live sessions and background workers of the running server");
  static int count = 1;
  sessions->add_option("-n,--count", count, "refresh this many times, once a second")->check(CLI::Range(1, 1000000));
  sessions->add_flag("--json", ctx.json, "print the server's JSON reply (one line per refresh)");
  sessions->callback([&ctx] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    catch_signals();
    control::Request req;
    req.command = control::Command::sessions;
    for (int i = 0; i < count && !g_interrupted; ++i) {
      if (i > 0) {
        for (int k = 0; k < 10 && !g_interrupted; ++k) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (g_interrupted) break;
        if (!ctx.json) std::cout << '\n';
      }
      auto line = control::call_raw(control::control_socket_path(*home, ctx.node_option), req);
      if (!line) return ctx.error(line.error());
      auto r = control::parse_json(*line);
      if (!r) return ctx.error("malformed reply from the server: " + r.error().message);
      if (auto st = control::check_reply(*r); !st) return ctx.error(st.error());
      if (ctx.json) {
        std::cout << *line << std::endl;
        continue;
      }
      auto table = control::sessions_table(*r);
      if (!table) return ctx.error(table.error());
      std::cout << *table << std::flush;
    }
  });

  // ---- supervise
  auto* supervise = app.add_subcommand("supervise", "restart the server whenever it is not running");
  static int interval = 60;
  static std::string sup_server;
  supervise->add_option("SEC", interval, "seconds between checks (default 60)")->check(CLI::Range(1, 86400));
  supervise->add_option("--server", sup_server, "the wizmail-server program");
  supervise->callback([&ctx] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    catch_signals();
    daemon::SuperviseOptions o;
    o.interval = std::chrono::seconds(interval);
    o.start.program = sup_server;
    o.start.node = ctx.node_option;
    o.keep_going = [] { return !g_interrupted.load(); };
    std::cout << "wizmail: supervising " << home->string()
              << (ctx.node_option.empty() ? std::string() : std::string(" node ") + ctx.node_option) << " every " << interval
              << " s (log: "
              << (ctx.node_option.empty() ? std::string("var/log") : std::string("nodes/") + ctx.node_option + "/log")
              << "/supervise.log); Ctrl-C ends\n"
              << std::flush;
    daemon::supervise(std::filesystem::absolute(*home), o);
  });

  // ---- service
  auto* service = app.add_subcommand("service", "install or remove the systemd unit");
  service->require_subcommand(1);
  auto* install = service->add_subcommand("install", "write wizmail.service (and enable it when systemd runs)");
  static bool print_only = false;
  static std::string unit_dir, unit_user, unit_server;
  install->add_flag("--print", print_only, "print the unit, install nothing");
  install->add_option("--unit-dir", unit_dir, "where to write it (default /etc/systemd/system)");
  install->add_option("--user", unit_user, "run as this user from the start (User=); default: root, "
                                           "which drops to run_as_user after binding");
  install->add_option("--server", unit_server, "the wizmail-server program (absolute path)");
  install->callback([&ctx] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    // The unit lists the folders the server writes: it needs the configuration.
    auto cfg = ctx.config();
    if (!cfg) return;
    daemon::UnitOptions o = daemon::unit_options(*cfg);
    o.home = std::filesystem::absolute(*home);
    auto program = daemon::server_program(unit_server);
    std::error_code ec;
    auto canonical = std::filesystem::weakly_canonical(program, ec);
    o.program = ec ? program : canonical;
    o.user = unit_user;
    for (const auto& w : o.writable)
      if (!std::filesystem::is_directory(w, ec))
        std::cerr << "wizmail: warning: " << w.string()
                  << " does not exist; create it (owned by the server's user) before the service "
                     "starts: the unit lets the server write there but not create it\n";
    if (print_only) {
      auto text = daemon::systemd_unit(o);
      if (!text) return ctx.error(text.error());
      std::cout << *text;
      return;
    }
    auto r = daemon::install_service(o, unit_dir);
    if (!r) return ctx.error(r.error());
    std::cout << "wizmail: wrote " << r->unit_file.string() << '\n';
    if (r->systemctl_ran) std::cout << "wizmail: enabled " << daemon::unit_name() << '\n';
    else if (unit_dir.empty()) std::cout << "wizmail: systemd is not running; nothing enabled\n";
  });
  auto* uninstall = service->add_subcommand("uninstall", "disable and remove wizmail.service");
  uninstall->add_option("--unit-dir", unit_dir, "where it was written (default /etc/systemd/system)");
  uninstall->callback([&ctx] {
    auto r = daemon::uninstall_service(unit_dir);
    if (!r) return ctx.error(r.error());
    std::cout << "wizmail: removed " << r->unit_file.string() << '\n';
  });

  // ---- notify
  auto* notify = app.add_subcommand("notify", "store a notice in every ordinary account's mailbox");
  static std::string notice_file;
  notify->add_option("FILE", notice_file, "subject-and-body file (line 1 subject, then the body; UTF-8)")
      ->required();
  notify->callback([&ctx] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    auto cfg = load_config(*home, ctx.node_option);
    if (!cfg) return ctx.error(cfg.error());
    std::ifstream in(notice_file, std::ios::binary);
    if (!in) return ctx.error("cannot read " + notice_file);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return ctx.error("cannot read " + notice_file);
    auto r = daemon::notify(**cfg, content);
    if (!r) return ctx.error(r.error());
    for (const auto& [account, why] : r->failed) ctx.error("not delivered to " + account + ": " + why);
    std::cout << "wizmail: notice stored in " << r->delivered.size() << " mailbox"
              << (r->delivered.size() == 1 ? "" : "es") << " (" << r->skipped.size() << " skipped";
    if (!r->failed.empty()) std::cout << ", " << r->failed.size() << " failed";
    std::cout << ")\n";
  });
}

}  // namespace wizmail::cli
