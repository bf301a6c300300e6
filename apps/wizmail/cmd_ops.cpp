// monitor (wmsmonitor), maintenance (wmsmnt), parse (mailparser).
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "wizmail/config.hpp"
#include "wizmail/admin/maintenance.hpp"
#include "wizmail/admin/mime.hpp"
#include "wizmail/admin/monitor.hpp"

namespace wizmail::cli {

namespace {


volatile std::sig_atomic_t g_quit = 0;
volatile std::sig_atomic_t g_resized = 0;
extern "C" void on_quit(int) { g_quit = 1; }
extern "C" void on_winch(int) { g_resized = 1; }

// The terminal in raw mode on the alternate screen, restored on every exit.
class RawTerminal {
 public:
  RawTerminal() {
    if (::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
    raw.c_iflag &= static_cast<tcflag_t>(~(IXON | ICRNL));
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (::tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0) return;
    ok_ = true;
    write_out("\x1b[?1049h\x1b[?25l");
  }
  ~RawTerminal() {
    if (!ok_) return;
    write_out("\x1b[?25h\x1b[?1049l");
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }
  bool ok() const { return ok_; }
  static void write_out(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::write(STDOUT_FILENO, s.data(), s.size());
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return;
      }
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }

 private:
  termios saved_{};
  bool ok_ = false;
};

int run_live_monitor(Context& ctx, const Config& cfg, MonitorView& view, int interval) {
  if (!::isatty(STDIN_FILENO) || !::isatty(STDOUT_FILENO)) {
    ctx.error("monitor needs a terminal; use --once (and --json) in scripts");
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_quit;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  sa.sa_handler = on_winch;
  ::sigaction(SIGWINCH, &sa, nullptr);
  RawTerminal term;
  if (!term.ok()) {
    ctx.error("cannot put the terminal in raw mode");
    return 1;
  }
  auto size = [&] {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) view.set_size(ws.ws_row, ws.ws_col);
  };
  size();
  using clock = std::chrono::steady_clock;
  auto next = clock::now();
  std::string pending;
  while (!g_quit) {
    if (clock::now() >= next) {
      auto snap = collect_activity(cfg);
      if (snap) view.set_snapshot(std::move(*snap));
      next = clock::now() + std::chrono::seconds(interval);
      RawTerminal::write_out(view.render());
    }
    if (g_resized) {
      g_resized = 0;
      size();
      RawTerminal::write_out(view.render());
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - clock::now()).count();
    pollfd p{STDIN_FILENO, POLLIN, 0};
    long long limit = pending.empty() ? 1000 : 50;
    int r = ::poll(&p, 1, static_cast<int>(std::max<long long>(0, std::min<long long>(wait, limit))));
    if (r <= 0) {
      // A lone ESC with nothing after it is the Escape key.
      if (!pending.empty()) {
        for (const auto& in : MonitorView::flush_keys(pending)) view.handle(in);
        RawTerminal::write_out(view.render());
      }
      continue;
    }
    char buf[256];
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n <= 0) {
      if (n == 0) break;  // the terminal went away
      continue;
    }
    bool go_on = true;
    for (const auto& in : MonitorView::decode_keys(pending, std::string_view(buf, static_cast<std::size_t>(n))))
      go_on = view.handle(in) && go_on;
    if (!go_on) break;
    RawTerminal::write_out(view.render());
  }
  return 0;
}

std::string human_age(std::int64_t s) {
  if (s >= 86400) return std::to_string(s / 86400) + "d";
  if (s >= 3600) return std::to_string(s / 3600) + "h";
  return std::to_string(std::max<std::int64_t>(s, 0) / 60) + "m";
}

}  // namespace

void add_ops_commands(CLI::App& app, Context& ctx) {
  // --- monitor -------------------------------------------------------------
  auto* monitor = app.add_subcommand("monitor", "live per-account table (messages, bytes, sent, received, deleted)");
  struct MonitorArgs {
    bool once = false;
    std::string sort = "account";
    bool desc = false;
    int interval = 2;
    std::string search;
  };
  auto margs = std::make_shared<MonitorArgs>();
  monitor->add_flag("--once", margs->once, "print the table once and exit (for scripts)");
  monitor->add_flag("--json", ctx.json, "with --once: print JSON");
  monitor->add_option("--sort", margs->sort, "account, messages, bytes, sent, received or deleted");
  monitor->add_flag("--desc", margs->desc, "sort in descending order");
  monitor->add_option("--interval", margs->interval, "seconds between refreshes (live view)")
      ->check(CLI::Range(1, 3600));
  monitor->add_option("--search", margs->search, "start with the cursor on this account (live view)");
  monitor->callback([&ctx, margs] {
    auto sort = parse_activity_sort(margs->sort);
    if (!sort) return ctx.error("--sort: unknown key '" + margs->sort + "'", 2);
    auto cfg = ctx.config();
    if (!cfg) return;
    auto snap = collect_activity(*cfg);
    if (!snap) return ctx.error(snap.error());
    if (margs->once) {
      sort_activity(snap->accounts, *sort, margs->desc);
      std::cout << (ctx.json ? activity_json(*snap) : activity_table(*snap));
      return;
    }
    if (ctx.json) return ctx.error("--json needs --once", 2);
    MonitorView view;
    // Choose the sort through the view's own keys so it behaves as typed.
    if (*sort != ActivitySort::account) view.handle({MonitorView::Key::character, static_cast<char>('1' + static_cast<int>(*sort))});
    if (view.descending() != margs->desc) view.handle({MonitorView::Key::character, 'r'});
    view.set_snapshot(std::move(*snap));
    if (!margs->search.empty()) {
      view.handle({MonitorView::Key::character, '/'});
      for (char c : margs->search) view.handle({MonitorView::Key::character, c});
      view.handle({MonitorView::Key::enter, 0});
    }
    if (int rc = run_live_monitor(ctx, *cfg, view, margs->interval); rc != 0 && ctx.exit_code == 0) ctx.exit_code = rc;
  });

  // --- maintenance ---------------------------------------------------------
  auto* mnt = app.add_subcommand("maintenance",
                                 "purge old dustbox mail, dead mail, expired queue entries and rotated logs");
  auto mopt = std::make_shared<MaintenanceOptions>();
  mnt->add_flag("--dry-run,-n", mopt->dry_run, "list what would be removed, remove nothing");
  mnt->add_option("--dustbox-keep-days", mopt->dustbox_keep_days,
                  "keep dustbox mail this many days (default: dustbox_keep_days)")
      ->check(CLI::Range(0, 36500));
  mnt->add_option("--dead-keep-days", mopt->dead_keep_days,
                  "keep dead mail this many days (default: the dustbox's)")
      ->check(CLI::Range(0, 36500));
  mnt->add_option("--log-keep-days", mopt->log_keep_days, "keep rotated logs this many days (default 30)")
      ->check(CLI::Range(0, 36500));
  mnt->add_option("--log-generations", mopt->log_generations, "keep at most this many rotated generations (default 10)")
      ->check(CLI::Range(1, 1000));
  mnt->add_flag("--json", ctx.json, "print JSON");
  mnt->callback([&ctx, mopt] {
    auto cfg = ctx.config();
    if (!cfg) return;
    auto r = run_maintenance(*cfg, *mopt);
    if (!r) return ctx.error(r.error());
    for (const auto& w : r->warnings) std::cerr << "wizmail: warning: " << w << '\n';
    using K = MaintenanceItem::Kind;
    std::ostringstream out;
    if (ctx.json) {
      auto items = Json::array();
      for (const auto& it : r->items) {
        items.push_back({{"kind", std::string(to_string(it.kind))},
                         {"path", it.path.string()},
                         {"bytes", it.bytes},
                         {"age", it.age},
                         {"why", it.why}});
      }
      auto counts = Json::object();
      for (K k : {K::dustbox, K::dead, K::queue, K::log}) counts[std::string(to_string(k))] = r->count(k);
      out << json_text(Json{{"dry_run", mopt->dry_run},
                            {"items", std::move(items)},
                            {"counts", std::move(counts)},
                            {"bytes", r->bytes},
                            {"warnings", r->warnings}})
          << '\n';
    } else {
      const char* verb = mopt->dry_run ? "would remove" : "removed";
      for (const auto& it : r->items)
        out << verb << " " << to_string(it.kind) << " " << it.path.string() << " (" << it.bytes << " bytes, age "
            << human_age(it.age) << "): " << it.why << '\n';
      out << (mopt->dry_run ? "dry run: " : "") << "dustbox " << r->count(K::dustbox) << ", dead mail "
          << r->count(K::dead) << ", queue " << r->count(K::queue) << ", logs " << r->count(K::log) << "; "
          << r->bytes << " bytes " << (mopt->dry_run ? "would be freed" : "freed") << '\n';
    }
    std::cout << out.str();
  });

  // --- parse ---------------------------------------------------------------
  auto* parse = app.add_subcommand("parse", "MIME-parse a mail file or folder: headers, text, attachments");
  auto in = std::make_shared<std::string>();
  auto outdir = std::make_shared<std::string>();
  parse->add_option("-i,--input", *in, "a mail file, or a folder of mail files")->required();
  parse->add_option("-o,--output", *outdir, "the folder to write into (created when missing)")->required();
  parse->callback([&ctx, in, outdir] {
    auto r = parse_mail_files(*in, *outdir);
    if (!r) return ctx.error(r.error());
    for (const auto& e : r->errors) ctx.error(e);
    std::cout << "parsed " << r->messages << " message" << (r->messages == 1 ? "" : "s") << ", "
              << r->attachments << " attachment" << (r->attachments == 1 ? "" : "s") << " into " << *outdir
              << '\n';
  });
}

}  // namespace wizmail::cli
