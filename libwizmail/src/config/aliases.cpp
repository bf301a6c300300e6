// def/aliases.def (wizmail/aliases.hpp): parsing, load-time checks,
// resolution and the CLI's edits.
#include "util/utf8.hpp"
#include "wizmail/aliases.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "config/parser.hpp"
#include "config/table.hpp"
#include "util/fs.hpp"
#include "util/idna.hpp"
#include "util/strings.hpp"
#include "wizmail/account_store.hpp"

namespace wizmail {

namespace fs = std::filesystem;

namespace {

// A dot-atom local part whose atoms may hold UTF-8 (RFC 6531 §3.3), at most
// 64 octets.
Status check_local_part(std::string_view local) {
  if (local.empty()) return fail(Errc::invalid_argument, "empty local part");
  if (local.size() > 64) return fail(Errc::invalid_argument, "local part longer than 64 octets");
  if (!util::valid_utf8(local)) return fail(Errc::invalid_argument, "local part is not UTF-8");
  bool prev_dot = true;
  for (char c : local) {
    if (c == '.') {
      if (prev_dot) return fail(Errc::invalid_argument, "empty atom in local part '" + std::string(local) + "'");
      prev_dot = true;
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x80 && !util::is_atext(c))
      return fail(Errc::invalid_argument, "character '" + std::string(1, c) + "' in local part '" +
                                              std::string(local) + "' (quote-free addresses only)");
    prev_dot = false;
  }
  if (prev_dot) return fail(Errc::invalid_argument, "local part '" + std::string(local) + "' ends with '.'");
  return {};
}

Result<std::string> ascii_domain(std::string_view domain) {
  if (domain.empty()) return fail(Errc::invalid_argument, "empty domain");
  auto d = util::domain_to_ascii(domain);
  if (!d) return unexpected(d.error());
  if (config::valid_ip(*d) || d->front() == '[' || !config::valid_hostname(*d))
    return fail(Errc::invalid_argument, "'" + std::string(domain) + "' is not a domain name");
  return d;
}

// local@domain → "lower(local)@ascii(domain)" ("local@ascii(domain)" when
// `keep_case`).
Result<std::string> normal_address(std::string_view address, bool keep_case = false) {
  auto at = address.rfind('@');
  auto local = address.substr(0, at);
  if (auto st = check_local_part(local); !st) return unexpected(st.error());
  auto d = ascii_domain(address.substr(at + 1));
  if (!d) return unexpected(d.error());
  return util::cat(keep_case ? std::string(local) : util::to_lower(local), "@", *d);
}

bool is_local(const std::vector<std::string>& domains, std::string_view d) {
  return std::find(domains.begin(), domains.end(), d) != domains.end();
}

std::string domain_of(std::string_view key) { return std::string(key.substr(key.rfind('@') + 1)); }

// Split one line into its key and its targets ("KEY[:] T1, T2").
struct RawLine {
  std::string_view key, targets;
};
std::optional<RawLine> split_line(std::string_view t) {
  std::size_t i = 0;
  while (i < t.size() && t[i] != ' ' && t[i] != '\t') ++i;
  std::string_view key = t.substr(0, i);
  if (key.ends_with(':')) key.remove_suffix(1);
  std::string_view rest = util::trim(t.substr(i));
  if (key.empty() || rest.empty()) return std::nullopt;
  return RawLine{key, rest};
}

}  // namespace

Result<std::string> AliasMap::normalise_key(std::string_view key) {
  if (key.empty()) return fail(Errc::invalid_argument, "empty alias");
  if (key.front() == '@') {
    auto d = ascii_domain(key.substr(1));
    if (!d) return unexpected(d.error());
    return "@" + *d;
  }
  if (key.find('@') == std::string_view::npos) {
    if (auto st = check_local_part(key); !st) return unexpected(st.error());
    return util::to_lower(key);
  }
  return normal_address(key);
}

Result<std::string> AliasMap::normalise_target(std::string_view target) {
  if (target.empty()) return fail(Errc::invalid_argument, "empty target");
  if (target.find('@') == std::string_view::npos) {
    auto name = AccountStore::normalize_name(target);
    if (!name)
      return fail(Errc::invalid_argument, "'" + std::string(target) +
                                              "' is neither an account name ([a-z0-9._-]) nor an address");
    return *name;
  }
  if (target.front() == '@') return fail(Errc::invalid_argument, "a target must be an account or an address, not '" +
                                                                     std::string(target) + "'");
  // A remote local part keeps its case (RFC 5321 §2.4); local ones are
  // compared without it.
  return normal_address(target, true);
}

AliasMap AliasMap::parse(std::string_view text, const std::string& path,
                         const std::vector<std::string>& local_domains, std::string_view primary_domain,
                         std::vector<ConfigDiagnostic>& diagnostics) {
  AliasMap m;
  m.primary_ = util::to_lower(primary_domain);
  auto error = [&](int line, std::string key, std::string msg) {
    diagnostics.push_back({ConfigDiagnostic::Severity::error, path, line, std::move(key), std::move(msg)});
  };
  config::for_each_def_line(text, path, diagnostics, [&](int line, std::string_view t) {
    auto raw = split_line(t);
    if (!raw) {
      error(line, {}, "expected 'ADDRESS TARGET[,TARGET…]', got '" + std::string(t.substr(0, 60)) + "'");
      return;
    }
    std::string shown(raw->key.substr(0, 80));
    auto key = normalise_key(raw->key);
    if (!key) {
      error(line, shown, key.error().message);
      return;
    }
    if (key->find('@') != std::string::npos && !is_local(local_domains, domain_of(*key))) {
      error(line, shown, "'" + domain_of(*key) + "' is not a local domain (domain, alias or subhost)");
      return;
    }
    if (auto it = m.index_.find(*key); it != m.index_.end()) {
      error(line, shown, "duplicate alias (first on line " + std::to_string(m.entries_[it->second].line) + ")");
      return;
    }
    AliasEntry e{*key, {}, line};
    std::string_view rest = raw->targets;
    bool ok = true;
    while (ok) {
      auto comma = rest.find(',');
      auto piece = util::trim(rest.substr(0, comma));
      auto target = piece.find_first_of(" \t") == std::string_view::npos
                        ? normalise_target(piece)
                        : Result<std::string>(fail(Errc::invalid_argument, "'" + std::string(piece) +
                                                                               "': separate targets with ','"));
      if (!target) {
        error(line, shown, piece.empty() ? std::string("empty target (two commas, or one at an end)")
                                         : target.error().message);
        ok = false;
        break;
      }
      if (std::find(e.targets.begin(), e.targets.end(), *target) == e.targets.end()) e.targets.push_back(*target);
      if (e.targets.size() > kMaxTargets) {
        error(line, shown, "more than " + std::to_string(kMaxTargets) + " targets");
        ok = false;
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (!ok) return;
    m.index_.emplace(e.key, m.entries_.size());
    m.entries_.push_back(std::move(e));
  });

  // Cycles through exact and bare keys are known now: refuse them here
  // rather than at some RCPT (catch-alls depend on which accounts exist and
  // are checked when they are used).
  auto next_keys = [&](const AliasEntry& e) {
    std::vector<const AliasEntry*> out;
    for (const auto& t : e.targets) {
      std::string addr = t.find('@') == std::string::npos ? t + "@" + m.primary_ : t;
      auto at = addr.rfind('@');
      std::string d = addr.substr(at + 1);
      if (!is_local(local_domains, d)) continue;
      std::string lk = util::to_lower(addr.substr(0, at)) + "@" + d;
      // "a@d: a" is the account a, not the alias again.
      bool self = e.key == lk || (e.key.find('@') == std::string::npos && e.key == util::to_lower(addr.substr(0, at)));
      if (self) continue;
      if (const AliasEntry* n = m.find(lk)) out.push_back(n);
      else if (const AliasEntry* b = m.find(util::to_lower(addr.substr(0, at)))) out.push_back(b);
    }
    return out;
  };
  std::map<const AliasEntry*, int> state;  // 1 = on the path, 2 = done
  std::vector<const AliasEntry*> stack;
  std::set<const AliasEntry*> reported;
  std::function<void(const AliasEntry*)> visit = [&](const AliasEntry* e) {
    state[e] = 1;
    stack.push_back(e);
    for (const AliasEntry* n : next_keys(*e)) {
      if (state[n] == 1) {
        auto from = std::find(stack.begin(), stack.end(), n);
        if (!reported.insert(n).second) continue;
        std::string chain;
        for (auto it = from; it != stack.end(); ++it) chain += (*it)->key + " → ";
        chain += n->key;
        error(n->line, n->key, "alias loop: " + chain);
      } else if (state[n] == 0) {
        visit(n);
      }
    }
    stack.pop_back();
    state[e] = 2;
  };
  for (const auto& e : m.entries_)
    if (state[&e] == 0) visit(&e);
  return m;
}

const AliasEntry* AliasMap::find(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Result<AliasMap::Resolution> AliasMap::resolve(std::string_view local, std::string_view domain,
                                               const Directory& dir) const {
  Resolution r;
  std::vector<std::string> path;  // the addresses being expanded (loop check)
  std::size_t seen = 0;           // every address expansion visited (kMaxTargets)

  auto account_name = [](std::string_view l) -> std::optional<std::string> {
    auto n = AccountStore::normalize_name(l);
    if (!n) return std::nullopt;
    return *n;
  };
  auto add = [&](Target t) {
    bool dup = std::any_of(r.targets.begin(), r.targets.end(), [&](const Target& x) {
      return t.local() ? x.account == t.account : (!x.local() && util::iequals(x.address, t.address));
    });
    if (!dup) r.targets.push_back(std::move(t));
  };
  // The account `l` names, as a target (nothing when it names none).
  auto account_target = [&](std::string_view l, std::string_view d) -> Status {
    std::string address = std::string(l) + "@" + std::string(d);
    auto name = account_name(l);
    if (name) {
      auto exists = *name == "postmaster" ? Result<bool>(true) : dir.account_exists(*name);
      if (!exists) return unexpected(exists.error());
      if (*exists) {
        add({address, *name});
        return {};
      }
    }
    r.unknown.push_back(address);
    return {};
  };

  std::function<Result<bool>(std::string_view, std::string_view, int)> expand;
  auto expand_entry = [&](const AliasEntry& e, const std::string& self, int depth) -> Status {
    if (depth > kMaxDepth)
      return fail(Errc::limit, "aliases nested deeper than " + std::to_string(kMaxDepth) + " at " + self);
    if (std::find(path.begin(), path.end(), self) != path.end())
      return fail(Errc::limit, "alias loop at " + self + " (aliases.def line " + std::to_string(e.line) + ")");
    path.push_back(self);
    for (const auto& t : e.targets) {
      if (++seen > kMaxTargets)
        return fail(Errc::limit, "alias expansion of more than " + std::to_string(kMaxTargets) + " addresses");
      std::string addr = t.find('@') == std::string::npos ? t + "@" + primary_ : t;
      auto at = addr.rfind('@');
      std::string_view tl = std::string_view(addr).substr(0, at);
      std::string td = addr.substr(at + 1);
      if (!dir.is_local_domain(td)) {
        add({addr, {}});
        continue;
      }
      std::string lk = util::to_lower(tl) + "@" + td;
      if (lk == self) {  // "a@d: a, b": the account a
        if (auto st = account_target(tl, td); !st) return st;
        continue;
      }
      auto done = expand(tl, td, depth + 1);
      if (!done) return unexpected(done.error());
      if (!*done) r.unknown.push_back(addr);
    }
    path.pop_back();
    return {};
  };
  // true when `l@d` led somewhere (alias or account), false when nowhere.
  expand = [&](std::string_view l, std::string_view d, int depth) -> Result<bool> {
    std::string key = util::to_lower(l) + "@" + std::string(d);
    const AliasEntry* e = find(key);
    if (!e) e = find(util::to_lower(l));
    if (e) {
      if (auto st = expand_entry(*e, key, depth); !st) return unexpected(st.error());
      return true;
    }
    if (auto name = account_name(l)) {
      auto exists = *name == "postmaster" ? Result<bool>(true) : dir.account_exists(*name);
      if (!exists) return unexpected(exists.error());
      if (*exists) {
        add({std::string(l) + "@" + std::string(d), *name});
        return true;
      }
    }
    if (const AliasEntry* c = find("@" + std::string(d))) {
      if (auto st = expand_entry(*c, key, depth); !st) return unexpected(st.error());
      return true;
    }
    return false;
  };

  // The top level: only an alias or a catch-all makes a difference; an
  // account is left to the caller.
  std::string key = util::to_lower(local) + "@" + std::string(domain);
  const AliasEntry* e = find(key);
  if (!e) e = find(util::to_lower(local));
  if (!e) {
    if (auto name = account_name(local)) {
      auto exists = *name == "postmaster" ? Result<bool>(true) : dir.account_exists(*name);
      if (!exists) return unexpected(exists.error());
      if (*exists) return r;
    }
    e = find("@" + std::string(domain));
    if (!e) return r;
  }
  r.aliased = true;
  if (auto st = expand_entry(*e, key, 0); !st) return unexpected(st.error());
  return r;
}

fs::path aliases_file(const Config& config) { return config.home / "def" / "aliases.def"; }

namespace {

// Rewrite `text` with `key`'s line replaced by `line` (removed when empty);
// appended when absent and `line` is not empty. found = whether it was there.
std::string edit_lines(std::string_view text, std::string_view key, const std::string& line, bool& found) {
  std::string out;
  found = false;
  std::string_view rest = text;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    std::string_view l = rest.substr(0, nl == std::string_view::npos ? rest.size() : nl + 1);
    rest.remove_prefix(l.size());
    std::string_view t = util::trim(l);
    if (!t.empty() && !t.starts_with('#') && !t.starts_with("//")) {
      if (auto raw = split_line(t)) {
        auto k = AliasMap::normalise_key(raw->key);
        if (k && *k == key) {
          if (!found && !line.empty()) out += line + "\n";
          found = true;
          continue;
        }
      }
    }
    out += l;
    if (nl == std::string_view::npos) out += '\n';
  }
  if (!found && !line.empty()) out += line + "\n";
  return out;
}

Status edit_aliases(const Config& config, std::string_view key_text, const std::string& line, bool must_exist) {
  auto key = AliasMap::normalise_key(key_text);
  if (!key) return unexpected(key.error());
  const fs::path file = aliases_file(config);
  auto lock = util::FileLock::acquire(file);
  if (!lock) return unexpected(lock.error());
  std::string text;
  if (auto cur = config::read_def_file(file)) text = std::move(*cur);
  else if (cur.error().code != Errc::not_found) return unexpected(cur.error());
  bool found = false;
  std::string next = edit_lines(text, *key, line, found);
  if (must_exist && !found) return fail(Errc::not_found, "no alias " + std::string(key_text) + " in " + file.string());
  std::vector<ConfigDiagnostic> diags;
  AliasMap::parse(next, file.string(), config.local_domains(), config.server.domain, diags);
  std::string errors;
  for (const auto& d : diags) {
    if (d.severity != ConfigDiagnostic::Severity::error) continue;
    if (!errors.empty()) errors += '\n';
    errors += d.to_string();
  }
  if (!errors.empty()) return fail(Errc::invalid_argument, errors);
  return util::write_file_atomic(file, next, 0644);
}

}  // namespace

Status set_alias(const Config& config, std::string_view key, const std::vector<std::string>& targets) {
  if (targets.empty()) return fail(Errc::invalid_argument, "an alias needs at least one target");
  std::string line(key);
  line += "  ";
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const auto& t = targets[i];
    if (t.find_first_of(",\r\n\t ") != std::string::npos || util::trim(t).empty())
      return fail(Errc::invalid_argument, "bad target '" + t + "'");
    line += (i ? ", " : "") + t;
  }
  if (key.find_first_of(" \t\r\n,") != std::string_view::npos)
    return fail(Errc::invalid_argument, "bad alias '" + std::string(key) + "'");
  return edit_aliases(config, key, line, false);
}

Status delete_alias(const Config& config, std::string_view key) { return edit_aliases(config, key, {}, true); }

}  // namespace wizmail
