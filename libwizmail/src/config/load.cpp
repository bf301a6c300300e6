// Loading the three def files and per-account config.def through the key table.
#include <algorithm>
#include <map>
#include <system_error>

#include "config/parser.hpp"
#include "config/table.hpp"
#include "util/strings.hpp"
#include "wizmail/aliases.hpp"
#include "wizmail/config.hpp"

namespace wizmail {

namespace fs = std::filesystem;
using config::DefFile;
using config::Key;
using Severity = ConfigDiagnostic::Severity;

std::string ConfigDiagnostic::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  if (!key.empty()) out += (out.empty() ? "" : ": ") + key;
  if (!out.empty()) out += ": ";
  out += message;
  return out;
}

namespace {

// The nearest key name (or synonym) among `candidates`, or "" when none is near.
std::string nearest_key(std::string_view name, const std::vector<const Key*>& candidates) {
  std::string best;
  std::size_t best_d = std::max<std::size_t>(2, name.size() / 3) + 1;
  auto consider = [&](std::string_view cand) {
    std::size_t d = util::edit_distance(name, cand);
    if (d < best_d) {
      best_d = d;
      best = cand;
    }
  };
  for (const Key* k : candidates) {
    consider(k->name);
    for (auto s : k->synonyms) consider(s);
  }
  return best;
}

std::string unknown_key_message(std::string_view name, const std::vector<const Key*>& candidates,
                                std::string_view where) {
  std::string msg = "unknown key '" + std::string(name) + "'";
  std::string near = nearest_key(name, candidates);
  if (!near.empty()) return msg + "; did you mean '" + near + "'?";
  if (!where.empty()) return msg + "; " + std::string(where);
  return msg + " (ignored)";
}

std::vector<const Key*> keys_of(DefFile f) {
  std::vector<const Key*> out;
  for (const Key& k : config::keys())
    if (k.file == f) out.push_back(&k);
  return out;
}

std::vector<const Key*> override_keys() {
  std::vector<const Key*> out;
  for (const Key& k : config::keys())
    if (k.account_override) out.push_back(&k);
  return out;
}

// Apply one parsed def file to `c`, appending diagnostics.
void apply_def(Config& c, DefFile file, const config::DefText& text, const std::string& path,
               std::vector<ConfigDiagnostic>& diags) {
  std::map<std::string_view, int> seen;  // canonical key -> first line
  for (const auto& line : text.lines) {
    const Key* key = config::find_key(file, line.key);
    if (!key) {
      std::string where;
      for (DefFile other : config::all_files) {
        if (other != file && config::find_key(other, line.key)) {
          where = "it belongs in " + std::string(config::file_name(other)) + " (ignored here)";
          break;
        }
      }
      diags.push_back({Severity::warning, path, line.line, line.key,
                       unknown_key_message(line.key, keys_of(file), where)});
      continue;
    }
    if (auto [it, fresh] = seen.emplace(key->name, line.line); !fresh) {
      diags.push_back({Severity::error, path, line.line, line.key,
                       "duplicate key (first set on line " + std::to_string(it->second) + ")"});
      continue;
    }
    if (key->obsolete) {
      diags.push_back({Severity::warning, path, line.line, line.key,
                       "obsolete key (the manual moved it to wiz98msenv.dat 'alias'); its value "
                       "is used as one more local domain"});
    }
    if (line.value.empty()) continue;  // unset: the default stays
    auto v = config::parse_value(*key, line.value);
    if (!v) {
      diags.push_back({Severity::error, path, line.line, line.key, v.error().message});
      continue;
    }
    key->field.set(c, *v);
  }
}

// Lay a node's node.dat over `c`: any key of the three files, once each.
// A name two files share (`port`: smtpenv.dat's and popenv.dat's) must say
// which: `smtpenv.port`, `popenv.port`; any key may carry its file's prefix.
// Unlike the def files (shared by every node, where an unknown key is a
// warning) an unknown key is an error: a node's overrides are few, and a
// misspelt port would put two nodes on one.
void apply_node_def(Config& c, const config::DefText& text, const std::string& path,
                    std::vector<ConfigDiagnostic>& diags) {
  std::map<const Key*, int> seen;
  for (const auto& line : text.lines) {
    std::string_view name = line.key;
    const Key* key = nullptr;
    std::vector<DefFile> holders;
    if (auto dot = name.find('.'); dot != std::string_view::npos) {
      DefFile f;
      std::string file = util::cat(name.substr(0, dot), ".dat");
      if (config::file_from_name(file, f)) {
        key = config::find_key(f, name.substr(dot + 1));
        if (key) holders.push_back(f);
      }
    } else {
      for (DefFile f : config::all_files)
        if (const Key* k = config::find_key(f, name)) key = key ? key : k, holders.push_back(f);
    }
    if (!key) {
      std::vector<const Key*> all;
      for (const Key& k : config::keys()) all.push_back(&k);
      std::string msg = unknown_key_message(name, all, {});
      if (msg.ends_with(" (ignored)")) msg.resize(msg.size() - 10);
      util::append(msg, " (node.dat takes the keys of smtpenv.dat, popenv.dat and wiz98msenv.dat)");
      diags.push_back({Severity::error, path, line.line, line.key, std::move(msg)});
      continue;
    }
    if (holders.size() > 1) {
      std::string msg = "ambiguous: more than one def file has this key; write ";
      for (std::size_t i = 0; i < holders.size(); ++i) {
        auto file = config::file_name(holders[i]);
        util::append(msg, i == 0 ? "" : i + 1 == holders.size() ? " or " : ", ",
                     file.substr(0, file.size() - 4), ".", name);
      }
      diags.push_back({Severity::error, path, line.line, line.key, std::move(msg)});
      continue;
    }
    if (auto [it, fresh] = seen.emplace(key, line.line); !fresh) {
      diags.push_back({Severity::error, path, line.line, line.key,
                       util::cat("duplicate key (first set on line ", std::to_string(it->second), ")")});
      continue;
    }
    if (line.value.empty()) {
      key->field.set(c, config::default_of(*key));  // unset here: the key's default
      continue;
    }
    auto v = config::parse_value(*key, line.value);
    if (!v) {
      diags.push_back({Severity::error, path, line.line, line.key, v.error().message});
      continue;
    }
    key->field.set(c, *v);
  }
}

std::string strip_path_prefix(const std::string& msg, const std::string& path) {
  if (msg.starts_with(path + ": ")) return msg.substr(path.size() + 2);
  return msg;
}

bool account_name_ok(std::string_view a) noexcept {
  return !a.empty() && a.front() != '.' && a.find('/') == std::string_view::npos &&
         a.find('\0') == std::string_view::npos && a.size() <= 255;
}

}  // namespace

const std::vector<std::string>& def_file_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (DefFile f : config::all_files) out.emplace_back(config::file_name(f));
    return out;
  }();
  return names;
}

ConfigLoad parse_config_texts(const fs::path& home,
                              const std::vector<std::pair<std::string, std::string>>& texts,
                              std::string_view node) {
  auto c = std::make_shared<Config>();
  c->home = home;
  ConfigLoad out;
  if (!node.empty()) {
    if (auto st = validate_node_name(node); !st) {
      out.diagnostics.push_back({Severity::error, "--node", 0, {}, st.error().message});
      return out;
    }
    c->node = std::string(node);
  }
  for (DefFile f : config::all_files) {
    auto it = std::find_if(texts.begin(), texts.end(),
                           [&](const auto& t) { return t.first == config::file_name(f); });
    if (it == texts.end()) continue;
    std::string path = (home / "def" / std::string(config::file_name(f))).string();
    auto parsed = config::parse_def_text(it->second, path);
    std::vector<ConfigDiagnostic> diags = parsed.diagnostics;
    apply_def(*c, f, parsed, path, diags);
    std::stable_sort(diags.begin(), diags.end(),
                     [](const ConfigDiagnostic& a, const ConfigDiagnostic& b) {
                       return a.line < b.line;
                     });
    out.diagnostics.insert(out.diagnostics.end(), diags.begin(), diags.end());
  }
  if (auto it = std::find_if(texts.begin(), texts.end(), [](const auto& t) { return t.first == "node.dat"; });
      !node.empty() && it != texts.end()) {
    std::string path = (node_dir(home, node) / "node.dat").string();
    auto parsed = config::parse_def_text(it->second, path);
    std::vector<ConfigDiagnostic> diags = parsed.diagnostics;
    apply_node_def(*c, parsed, path, diags);
    std::stable_sort(diags.begin(), diags.end(),
                     [](const ConfigDiagnostic& a, const ConfigDiagnostic& b) { return a.line < b.line; });
    out.diagnostics.insert(out.diagnostics.end(), diags.begin(), diags.end());
  }
  if (auto it = std::find_if(texts.begin(), texts.end(), [](const auto& t) { return t.first == "aliases.def"; });
      it != texts.end()) {
    std::vector<ConfigDiagnostic> diags;
    auto map = AliasMap::parse(it->second, aliases_file(*c).string(), c->local_domains(), c->server.domain, diags);
    std::stable_sort(diags.begin(), diags.end(),
                     [](const ConfigDiagnostic& a, const ConfigDiagnostic& b) { return a.line < b.line; });
    out.diagnostics.insert(out.diagnostics.end(), diags.begin(), diags.end());
    c->aliases = std::make_shared<const AliasMap>(std::move(map));
  }
  if (auto it = std::find_if(texts.begin(), texts.end(), [](const auto& t) { return t.first == "tls_policy.def"; });
      it != texts.end()) {
    std::vector<ConfigDiagnostic> diags;
    c->tls_policy = TlsPolicyTable::parse(it->second, (home / "def" / "tls_policy.def").string(), diags);
    out.diagnostics.insert(out.diagnostics.end(), diags.begin(), diags.end());
  }
  bool errors = false;
  for (const auto& d : out.diagnostics) {
    if (d.severity == Severity::error) errors = true;
    else c->warnings.push_back(d);
  }
  if (!errors) out.config = std::move(c);
  return out;
}

ConfigLoad load_config_report(const fs::path& home, std::string_view node) {
  std::error_code ec;
  if (!node.empty()) {
    if (auto st = validate_node_name(node); !st) {
      ConfigLoad out;
      out.diagnostics.push_back({Severity::error, "--node", 0, {}, st.error().message});
      return out;
    }
  }
  if (!fs::is_directory(home, ec)) {
    ConfigLoad out;
    out.diagnostics.push_back({Severity::error, home.string(), 0, {},
                               fs::exists(home, ec) ? "the home is not a directory"
                                                    : "the home directory does not exist"});
    return out;
  }
  std::vector<std::pair<std::string, std::string>> texts;
  std::vector<ConfigDiagnostic> read_errors;
  for (const auto& name : def_file_names()) {
    fs::path p = home / "def" / name;
    auto data = config::read_def_file(p);
    if (data) {
      texts.emplace_back(name, std::move(*data));
    } else if (data.error().code != Errc::not_found) {
      read_errors.push_back({Severity::error, p.string(), 0, {},
                             strip_path_prefix(data.error().message, p.string())});
    }
  }
  for (const char* name : {"aliases.def", "tls_policy.def"}) {
    fs::path p = home / "def" / name;
    auto data = config::read_def_file(p);
    if (data) texts.emplace_back(name, std::move(*data));
    else if (data.error().code != Errc::not_found)
      read_errors.push_back({Severity::error, p.string(), 0, {}, strip_path_prefix(data.error().message, p.string())});
  }
  if (!node.empty()) {
    fs::path p = node_dir(home, node) / "node.dat";
    auto data = config::read_def_file(p);
    if (data) texts.emplace_back("node.dat", std::move(*data));
    else if (data.error().code != Errc::not_found)
      read_errors.push_back({Severity::error, p.string(), 0, {}, strip_path_prefix(data.error().message, p.string())});
  }
  ConfigLoad out = parse_config_texts(home, texts, node);
  if (!read_errors.empty()) {
    out.config.reset();
    out.diagnostics.insert(out.diagnostics.begin(), read_errors.begin(), read_errors.end());
  }
  return out;
}

Result<std::shared_ptr<const Config>> load_config(const fs::path& home) { return load_config(home, {}); }

Result<std::shared_ptr<const Config>> load_config(const fs::path& home, std::string_view node) {
  ConfigLoad r = load_config_report(home, node);
  if (r.ok()) return r.config;
  std::string msg;
  for (const auto& d : r.diagnostics) {
    if (d.severity != Severity::error) continue;
    if (!msg.empty()) msg += '\n';
    msg += d.to_string();
  }
  return fail(Errc::parse, msg);
}

Status validate_node_name(std::string_view node) {
  if (node.empty()) return fail(Errc::invalid_argument, "node name: empty");
  if (node.size() > 63)
    return fail(Errc::invalid_argument, util::cat("node name '", node.substr(0, 63), "...': longer than 63 characters"));
  for (char ch : node) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_';
    if (!ok)
      return fail(Errc::invalid_argument,
                  util::cat("node name '", node, "': only letters, digits, '-' and '_' are allowed"));
  }
  return {};
}

fs::path node_dir(const fs::path& home, std::string_view node) { return home / "nodes" / std::string(node); }

fs::path run_dir(const fs::path& home, std::string_view node) {
  return node.empty() ? home / "var" / "run" : node_dir(home, node) / "run";
}

fs::path log_dir(const fs::path& home, std::string_view node) {
  return node.empty() ? home / "var" / "log" : node_dir(home, node) / "log";
}

fs::path Config::log_dir() const { return wizmail::log_dir(home, node); }
fs::path Config::run_dir() const { return wizmail::run_dir(home, node); }
fs::path Config::node_dir() const { return node.empty() ? fs::path() : wizmail::node_dir(home, node); }

fs::path Config::mailbox_dir() const {
  return server.mailbox_path.empty() ? home / "mailbox" : fs::path(server.mailbox_path);
}

fs::path Config::dustbox_dir() const {
  return server.dustbox_path.empty() ? home / "dustbox" : fs::path(server.dustbox_path);
}

std::vector<std::string> Config::local_domains() const {
  std::vector<std::string> out;
  auto add = [&](std::string_view d) {
    std::string l = util::to_lower(util::trim(d));
    if (!l.empty() && std::find(out.begin(), out.end(), l) == out.end()) out.push_back(l);
  };
  add(server.domain);
  for (const auto& d : server.alias) add(d);
  for (const auto& d : smtp.subhost) add(d);
  add(smtp.host);
  return out;
}

Result<AccountSettings> Config::account_settings_from_text(std::string_view text,
                                                           const std::string& path) const {
  AccountSettings acc;
  for (const Key& k : config::keys())
    if (k.account_override) k.set_account(acc, k.field.get(*this));

  auto parsed = config::parse_def_text(text, path);
  std::vector<ConfigDiagnostic> diags = parsed.diagnostics;
  std::map<std::string_view, int> seen;
  for (const auto& line : parsed.lines) {
    const Key* key = config::find_key_any(line.key);
    if (!key) {
      diags.push_back({Severity::warning, path, line.line, line.key,
                       unknown_key_message(line.key, override_keys(), {})});
      continue;
    }
    if (!key->account_override) {
      diags.push_back({Severity::error, path, line.line, line.key,
                       "may not be set per account (only in def/" +
                           std::string(config::file_name(key->file)) + ")"});
      continue;
    }
    if (auto [it, fresh] = seen.emplace(key->name, line.line); !fresh) {
      diags.push_back({Severity::error, path, line.line, line.key,
                       "duplicate key (first set on line " + std::to_string(it->second) + ")"});
      continue;
    }
    if (line.value.empty()) continue;
    auto v = config::parse_value(*key, line.value);
    if (!v) {
      diags.push_back({Severity::error, path, line.line, line.key, v.error().message});
      continue;
    }
    key->set_account(acc, *v);
  }
  std::stable_sort(diags.begin(), diags.end(),
                   [](const ConfigDiagnostic& a, const ConfigDiagnostic& b) { return a.line < b.line; });
  std::string errors;
  for (auto& d : diags) {
    if (d.severity == Severity::warning) {
      acc.warnings.push_back(std::move(d));
      continue;
    }
    if (!errors.empty()) errors += '\n';
    errors += d.to_string();
  }
  if (!errors.empty()) return fail(Errc::parse, errors);
  return acc;
}

Result<AccountSettings> Config::account_settings(std::string_view account) const {
  if (!account_name_ok(account))
    return fail(Errc::invalid_argument, "invalid account name '" + std::string(account) + "'");
  fs::path p = mailbox_dir() / std::string(account) / "config.def";
  auto data = config::read_def_file(p);
  if (!data) {
    if (data.error().code == Errc::not_found) return account_settings_from_text({}, p.string());
    return unexpected(data.error());
  }
  return account_settings_from_text(*data, p.string());
}

}  // namespace wizmail
