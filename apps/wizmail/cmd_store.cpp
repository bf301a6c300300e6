// `wizmail setup`, `account …`, `ml …`, `mailbox status`: argument parsing
// and output only; the work is libwizmail's (AccountStore, Mailbox, config).
//
// Every command checks all of its input before it changes anything, so a
// refused command leaves the home exactly as it was.
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/config.hpp"
#include "wizmail/home.hpp"
#include "wizmail/mailbox.hpp"

namespace wizmail::cli {

namespace fs = std::filesystem;

namespace {


// Read one line from stdin (the terminal's echo off when `secret`).
std::optional<std::string> prompt(const std::string& question, bool secret) {
  std::cerr << question << std::flush;
  const bool tty = ::isatty(STDIN_FILENO) == 1;
  termios saved{};
  bool restore = false;
  if (secret && tty && ::tcgetattr(STDIN_FILENO, &saved) == 0) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    restore = ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0;
  }
  std::string line;
  bool ok = static_cast<bool>(std::getline(std::cin, line));
  if (restore) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << '\n';
  }
  if (!ok) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// Ask for a password; on a terminal twice, to catch typos.
std::optional<std::string> prompt_password(Context& ctx, const std::string& account) {
  auto pw = prompt("Password for " + account + ": ", true);
  if (!pw) {
    ctx.error("no password given (end of input)");
    return std::nullopt;
  }
  if (::isatty(STDIN_FILENO) == 1) {
    auto again = prompt("Retype the password: ", true);
    if (!again || *again != *pw) {
      ctx.error("the passwords differ; nothing was changed");
      return std::nullopt;
    }
  }
  return pw;
}

struct SetupOptions {
  int smtp_port = 0;
  int pop_port = 0;
  std::vector<std::string> bind;
  std::string domain;
  std::string password;
};

void run_setup(Context& ctx, const SetupOptions& o) {
  auto home = ctx.home();
  if (!home) return ctx.error(home.error());
  HomeOptions ho;
  ho.smtp_port = o.smtp_port;
  ho.pop_port = o.pop_port;
  ho.bind_address = o.bind;
  ho.domain = o.domain;
  ho.password = o.password;
  auto made = make_home(*home, ho);
  if (!made) {
    // A bad option is named as the command line spells it.
    std::string msg = made.error().message;
    for (auto [field, option] : {std::pair{"bind_address: ", "--bind: "}, std::pair{"domain: ", "--domain: "},
                                 std::pair{"password: ", "--password: "}})
      if (msg.starts_with(field)) msg = std::string(option).append(msg.substr(std::string_view(field).size()));
    return ctx.error(msg);
  }
  for (const auto& f : made->def_written) std::cout << "wrote def/" << f << '\n';
  if (made->srs_secret_written) std::cout << "wrote def/srs.secret (mode 0600)\n";
  for (const auto& f : made->def_kept) {
    std::cout << "kept existing def/" << f;
    if (std::find(made->options_not_applied.begin(), made->options_not_applied.end(), f) !=
        made->options_not_applied.end())
      std::cout << " (the options for it were not applied: edit the file)";
    std::cout << '\n';
  }
  for (const auto& w : made->warnings) std::cerr << "wizmail: warning: " << w << '\n';
  for (const auto& a : made->accounts) {
    if (!a.created)
      std::cout << "kept existing account " << a.name << '\n';
    else if (!a.password.empty())
      std::cout << "created account " << a.name << " with password " << a.password << "   (shown only now)\n";
    else
      std::cout << "created account " << a.name << '\n';
  }
  std::cout << "home ready: " << made->home.string() << '\n';
}

}  // namespace

void add_setup_command(CLI::App& app, Context& ctx) {
  auto opt = std::make_shared<SetupOptions>();
  auto* cmd = app.add_subcommand(
      "setup", "create the home layout, def files and initial accounts (keeps what exists)");
  cmd->add_option("--smtp-port", opt->smtp_port, "SMTP port written to def/smtpenv.dat")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--pop-port", opt->pop_port, "POP3 port written to def/popenv.dat")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--bind", opt->bind, "address(es) to listen on (bind_address)")
      ->delimiter(',');
  cmd->add_option("--domain", opt->domain, "the primary mail domain");
  cmd->add_option("--password", opt->password,
                  "password of the initial accounts (default: random, printed once)");
  cmd->callback([&ctx, opt] { run_setup(ctx, *opt); });
}

void add_account_commands(CLI::App& app, Context& ctx) {
  auto* account = app.add_subcommand("account", "create, delete, list accounts; change passwords");
  account->require_subcommand(1);

  struct Args {
    std::string name, password;
    bool crypt = false;
  };
  auto a = std::make_shared<Args>();

  auto* create = account->add_subcommand("create", "create an account (prompts when no args)");
  create->add_option("name", a->name, "account name");
  create->add_option("password", a->password, "password");
  create->add_flag("--crypt", a->crypt, "store a {CRYPT} SHA-512 hash instead of the password");
  create->callback([&ctx, a] {
    // Check the name before asking for anything else.
    std::string name = a->name;
    if (name.empty()) {
      auto n = prompt("Account name: ", false);
      if (!n || n->empty()) return ctx.error("no account name given; nothing was changed");
      name = *n;
    }
    auto norm = AccountStore::normalize_name(name);
    if (!norm) return ctx.error(norm.error());
    auto cfg = ctx.config();
    if (!cfg) return;
    AccountStore store(cfg->mailbox_dir());
    auto kind = store.lookup(*norm);
    if (!kind) return ctx.error(kind.error());
    if (*kind != AccountKind::none) return ctx.error("account " + *norm + " already exists");
    std::string pw = a->password;
    if (pw.empty()) {
      auto p = prompt_password(ctx, *norm);
      if (!p) return;
      pw = *p;
    }
    auto st = store.create(*norm, pw, a->crypt ? PasswordScheme::crypt : PasswordScheme::plain);
    if (!st) return ctx.error(st.error());
    std::cout << "created account " << *norm << '\n';
  });

  auto* del = account->add_subcommand("delete", "delete an account and its mail");
  del->add_option("name", a->name, "account name")->required();
  del->callback([&ctx, a] {
    auto cfg = ctx.config();
    if (!cfg) return;
    AccountStore store(cfg->mailbox_dir());
    if (auto st = store.remove(a->name); !st) return ctx.error(st.error());
    std::cout << "deleted account " << *AccountStore::normalize_name(a->name) << '\n';
  });

  auto* passwd = account->add_subcommand("passwd", "change an account's password");
  passwd->add_option("name", a->name, "account name")->required();
  passwd->add_option("password", a->password, "new password")->required();
  passwd->add_flag("--crypt", a->crypt, "store a {CRYPT} SHA-512 hash instead of the password");
  passwd->callback([&ctx, a] {
    auto cfg = ctx.config();
    if (!cfg) return;
    AccountStore store(cfg->mailbox_dir());
    auto st = store.set_password(a->name, a->password,
                                 a->crypt ? PasswordScheme::crypt : PasswordScheme::plain);
    if (!st) return ctx.error(st.error());
    std::cout << "changed the password of " << *AccountStore::normalize_name(a->name) << '\n';
  });

  auto* list = account->add_subcommand("list", "list accounts");
  list->add_flag("--json", ctx.json, "print JSON");
  list->callback([&ctx] {
    auto cfg = ctx.config();
    if (!cfg) return;
    AccountStore store(cfg->mailbox_dir());
    auto names = store.list();
    if (!names) return ctx.error(names.error());
    std::ostringstream out;
    auto rows = Json::array();
    for (const auto& n : *names) {
      auto kind = store.lookup(n);
      if (!kind) {
        // Named on stderr (exit status 1); the other accounts are still listed.
        ctx.error(kind.error());
        continue;
      }
      const bool ml = *kind == AccountKind::mailing_list;
      if (ctx.json) {
        rows.push_back({{"name", n}, {"mailing_list", ml}});
      } else {
        out << n << (ml ? "   (mailing list)" : "") << '\n';
      }
    }
    if (ctx.json) out << json_text(rows, true) << '\n';
    std::cout << out.str();
  });
}

void add_ml_commands(CLI::App& app, Context& ctx) {
  auto* ml = app.add_subcommand("ml", "mailing lists: create, add/del members, list members");
  ml->require_subcommand(1);
  struct Args {
    std::string name, password, admin, address;
  };
  auto a = std::make_shared<Args>();

  auto* create = ml->add_subcommand("create", "create a mailing-list account");
  create->add_option("name", a->name, "list (account) name")->required();
  create->add_option("password", a->password, "password")->required();
  create->add_option("admin", a->admin, "administrator address (default postmaster@<domain>)");
  create->callback([&ctx, a] {
    auto cfg = ctx.config();
    if (!cfg) return;
    AccountStore store(cfg->mailbox_dir());
    if (auto st = store.create_mailing_list(a->name, a->password, a->admin); !st)
      return ctx.error(st.error());
    std::cout << "created mailing list " << *AccountStore::normalize_name(a->name) << '\n';
  });

  auto* add = ml->add_subcommand("add", "add a member");
  add->add_option("list", a->name, "list name")->required();
  add->add_option("address", a->address, "member address")->required();
  add->callback([&ctx, a] {
    auto cfg = ctx.config();
    if (!cfg) return;
    AccountStore store(cfg->mailbox_dir());
    if (auto st = store.add_member(a->name, a->address); !st) return ctx.error(st.error());
    std::cout << "added " << a->address << " to " << *AccountStore::normalize_name(a->name)
              << '\n';
  });

  auto* del = ml->add_subcommand("del", "remove a member");
  del->add_option("list", a->name, "list name")->required();
  del->add_option("address", a->address, "member address")->required();
  del->callback([&ctx, a] {
    auto cfg = ctx.config();
    if (!cfg) return;
    AccountStore store(cfg->mailbox_dir());
    if (auto st = store.remove_member(a->name, a->address); !st) return ctx.error(st.error());
    std::cout << "removed " << a->address << " from " << *AccountStore::normalize_name(a->name)
              << '\n';
  });

  auto* list = ml->add_subcommand("list", "print a list's members");
  list->add_option("list", a->name, "list name")->required();
  list->add_flag("--json", ctx.json, "print JSON");
  list->callback([&ctx, a] {
    auto cfg = ctx.config();
    if (!cfg) return;
    AccountStore store(cfg->mailbox_dir());
    auto m = store.members(a->name);
    if (!m) return ctx.error(m.error());
    std::ostringstream out;
    if (ctx.json) {
      out << json_text(Json(*m)) << '\n';
    } else {
      for (const auto& x : *m) out << x << '\n';
    }
    std::cout << out.str();
  });
}

void add_mailbox_commands(CLI::App& app, Context& ctx) {
  auto* mailbox = app.add_subcommand("mailbox", "mailbox information");
  mailbox->require_subcommand(1);
  auto* status = mailbox->add_subcommand("status", "per-account counts, sizes and counters");
  status->add_flag("--json", ctx.json, "print JSON");
  status->callback([&ctx] {
    auto cfg = ctx.config();
    if (!cfg) return;
    AccountStore store(cfg->mailbox_dir());
    auto names = store.list();
    if (!names) return ctx.error(names.error());
    std::vector<std::pair<std::string, MailboxStats>> rows;
    MailboxStats total;
    for (const auto& n : *names) {
      auto s = Mailbox(cfg->mailbox_dir() / n).stats();
      if (!s) return ctx.error(s.error());
      total.messages += s->messages;
      total.bytes += s->bytes;
      total.new_count += s->new_count;
      total.cur_count += s->cur_count;
      total.counters.received += s->counters.received;
      total.counters.sent += s->counters.sent;
      total.counters.deleted += s->counters.deleted;
      rows.emplace_back(n, *s);
    }
    std::ostringstream out;
    auto json_row = [](Json o, const MailboxStats& s) {
      o["messages"] = s.messages;
      o["bytes"] = s.bytes;
      o["new"] = s.new_count;
      o["cur"] = s.cur_count;
      o["received"] = s.counters.received;
      o["sent"] = s.counters.sent;
      o["deleted"] = s.counters.deleted;
      return o;
    };
    if (ctx.json) {
      auto accounts = Json::array();
      for (const auto& [name, s] : rows) accounts.push_back(json_row(Json{{"name", name}}, s));
      out << json_text(Json{{"accounts", std::move(accounts)}, {"total", json_row(Json::object(), total)}}, true)
          << '\n';
    } else {
      char line[256];
      auto row = [&](const std::string& name, const MailboxStats& s) {
        std::snprintf(line, sizeof line, "%-24s %9llu %12llu %7llu %7llu %9llu %7llu %8llu\n",
                      name.c_str(), static_cast<unsigned long long>(s.messages),
                      static_cast<unsigned long long>(s.bytes),
                      static_cast<unsigned long long>(s.new_count),
                      static_cast<unsigned long long>(s.cur_count),
                      static_cast<unsigned long long>(s.counters.received),
                      static_cast<unsigned long long>(s.counters.sent),
                      static_cast<unsigned long long>(s.counters.deleted));
        out << line;
      };
      std::snprintf(line, sizeof line, "%-24s %9s %12s %7s %7s %9s %7s %8s\n", "account",
                    "messages", "bytes", "new", "cur", "received", "sent", "deleted");
      out << line;
      for (const auto& [n, s] : rows) row(n, s);
      row("(total)", total);
    }
    std::cout << out.str();
  });
}

}  // namespace wizmail::cli
