// wizmail alias add|del|list: def/aliases.def (wizmail/aliases.hpp). The
// edits are libwizmail's (checked, locked, atomic); a running server is told
// to reload so the change applies to the next RCPT.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/aliases.hpp"
#include "wizmail/admin/control.hpp"

namespace wizmail::cli {

namespace {

// Tell a running server to re-read its def files; say what happened.
void reload_running(Context& ctx, const Config& cfg) {
  if (!control::running_server(cfg.home, cfg.node)) {
    std::cout << "(the server is not running: the change applies when it starts)\n";
    return;
  }
  control::Request req;
  req.command = control::Command::reload;
  auto r = control::call(control::control_socket_path(cfg.home, cfg.node), req);
  Status st = r ? control::check_reply(*r) : Status(unexpected(r.error()));
  if (!st) return ctx.error("changed aliases.def, but the running server did not reload: " + st.error().message);
  std::cout << "(the running server reloaded its configuration)\n";
}

// Targets at a local domain that lead nowhere (warned, not refused: the
// account may be created next).
void warn_unknown(const Config& cfg, std::string_view key) {
  auto loaded = load_config(cfg.home, cfg.node);
  if (!loaded || !(*loaded)->aliases) return;
  const auto& c = **loaded;
  auto locals = c.local_domains();
  AccountStore store(c.mailbox_dir());
  AliasMap::Directory dir{
      [&](std::string_view d) { return std::find(locals.begin(), locals.end(), d) != locals.end(); },
      [&](std::string_view a) -> Result<bool> {
        auto kind = store.lookup(a);
        if (!kind) return unexpected(kind.error());
        return *kind != AccountKind::none;
      }};
  auto k = AliasMap::normalise_key(key);
  if (!k || k->starts_with('@')) return;  // a catch-all names no one address
  auto at = k->rfind('@');
  std::string local = at == std::string::npos ? *k : k->substr(0, at);
  std::string domain = at == std::string::npos ? locals.front() : k->substr(at + 1);
  auto res = c.aliases->resolve(local, domain, dir);
  if (!res) {
    std::cerr << "wizmail: warning: " << res.error().message << '\n';
    return;
  }
  for (const auto& u : res->unknown)
    std::cerr << "wizmail: warning: target " << u << " names no account (mail for it is skipped)\n";
}

}  // namespace

void add_alias_commands(CLI::App& app, Context& ctx) {
  auto* alias = app.add_subcommand("alias", "aliases and catch-alls (def/aliases.def): add, del, list");
  alias->require_subcommand(1);
  struct Args {
    std::string key;
    std::vector<std::string> targets;
  };
  auto a = std::make_shared<Args>();

  auto* add = alias->add_subcommand(
      "add", "set ADDRESS (local@domain, local, or @domain for a catch-all) to deliver to TARGETs");
  add->add_option("address", a->key, "the alias: local@domain, a bare local part, or @domain")->required();
  add->add_option("targets", a->targets, "account names or addresses (comma lists allowed)")->required();
  add->callback([&ctx, a] {
    auto cfg = ctx.config();
    if (!cfg) return;
    // "a, b" typed as two arguments ("a," "b") is one list; an empty
    // element anywhere else ("a,,b", "a,") is refused by set_alias.
    std::vector<std::string> targets;
    for (std::size_t i = 0; i < a->targets.size(); ++i) {
      std::string_view rest = a->targets[i];
      if (i + 1 < a->targets.size() && rest.ends_with(',')) rest.remove_suffix(1);
      while (true) {
        auto comma = rest.find(',');
        auto piece = rest.substr(0, comma);
        while (!piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
        while (!piece.empty() && piece.back() == ' ') piece.remove_suffix(1);
        targets.emplace_back(piece);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    if (auto st = set_alias(*cfg, a->key, targets); !st) return ctx.error(st.error());
    std::cout << "alias " << a->key << " -> ";
    for (std::size_t i = 0; i < targets.size(); ++i) std::cout << (i ? ", " : "") << targets[i];
    std::cout << '\n';
    warn_unknown(*cfg, a->key);
    reload_running(ctx, *cfg);
  });

  auto* del = alias->add_subcommand("del", "remove the alias ADDRESS");
  del->add_option("address", a->key, "the alias as added")->required();
  del->callback([&ctx, a] {
    auto cfg = ctx.config();
    if (!cfg) return;
    if (auto st = delete_alias(*cfg, a->key); !st) return ctx.error(st.error());
    std::cout << "removed alias " << a->key << '\n';
    reload_running(ctx, *cfg);
  });

  auto* list = alias->add_subcommand("list", "print every alias (normalised: domains in ASCII form)");
  list->add_flag("--json", ctx.json, "print JSON");
  list->callback([&ctx] {
    auto cfg = ctx.config();
    if (!cfg) return;
    std::ostringstream out;
    static const AliasMap empty;
    const AliasMap& m = cfg->aliases ? *cfg->aliases : empty;
    if (ctx.json) {
      auto list = Json::array();
      for (const auto& e : m.entries())
        list.push_back({{"alias", e.key}, {"targets", e.targets}, {"line", e.line}});
      out << json_text(list, true) << '\n';
    } else {
      for (const auto& e : m.entries()) {
        out << e.key << "  ";
        for (std::size_t i = 0; i < e.targets.size(); ++i) out << (i ? ", " : "") << e.targets[i];
        out << '\n';
      }
    }
    std::cout << out.str();
  });
}

}  // namespace wizmail::cli
