// Everything printed from the key table: `config show` (text and JSON), the
// def files `wizmail setup` writes, and docs/configuration.md.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "config/parser.hpp"
#include "config/table.hpp"
#include "util/strings.hpp"
#include "wizmail/config.hpp"

namespace wizmail {

using config::DefFile;
using config::Key;

namespace {

using Json = nlohmann::ordered_json;

Json json_value(const config::Value& v) {
  if (const auto* n = std::get_if<std::int64_t>(&v)) return *n;
  if (const auto* b = std::get_if<bool>(&v)) return *b;
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return std::get<std::vector<std::string>>(v);
}

bool shown(const Key& k, const Config& c) {
  // An obsolete key appears only when the file really sets it.
  return !k.obsolete || config::format_value(k, k.field.get(c)) != k.default_value;
}

std::string md_cell(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else out += c;
  }
  return out;
}

std::string file_title(DefFile f) {
  switch (f) {
    case DefFile::smtpenv: return "SMTP settings";
    case DefFile::popenv: return "POP3 settings";
    case DefFile::wiz98msenv: return "server-wide settings";
  }
  return "";
}

}  // namespace

std::string show_config(const Config& c) {
  std::string out = "# home: " + c.home.string() + "\n";
  for (DefFile f : config::all_files) {
    std::string file(config::file_name(f));
    out += "\n# " + (c.home / "def" / file).string() + "\n";
    for (const Key& k : config::keys()) {
      if (k.file != f || !shown(k, c)) continue;
      std::string value = config::format_value(k, k.field.get(c));
      std::string line = std::string(k.name) + "=" + value;
      out += line + "  # " + file;
      if (value == config::format_value(k, config::default_of(k))) out += ", default";
      if (k.obsolete) out += ", obsolete";
      out += "\n";
    }
  }
  return out;
}

std::string show_config_json(const Config& c) {
  Json files = Json::object();
  for (DefFile f : config::all_files) {
    Json keys = Json::object();
    for (const Key& k : config::keys()) {
      if (k.file != f || !shown(k, c)) continue;
      keys[std::string(k.name)] = json_value(k.field.get(c));
    }
    files[std::string(config::file_name(f))] = std::move(keys);
  }
  Json warnings = Json::array();
  for (const auto& w : c.warnings) warnings.push_back(w.to_string());
  Json out{{"home", c.home.string()},
           {"files", std::move(files)},
           {"local_domains", c.local_domains()},
           {"mailbox_dir", c.mailbox_dir().string()},
           {"dustbox_dir", c.dustbox_dir().string()},
           {"warnings", std::move(warnings)}};
  return out.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string default_def_file(std::string_view file_name, const DefFileOptions& opt) {
  DefFile f;
  if (!config::file_from_name(file_name, f)) return {};
  std::string out = "# def/" + std::string(config::file_name(f)) + ": wizmail " + file_title(f) +
                    ", written by `wizmail setup`.\n"
                    "# Format: key=value, one a line; lines starting with # or // are comments;\n"
                    "# an empty value means the default. UTF-8. Lists are comma-separated.\n"
                    "# Reference: docs/configuration.md (or `wizmail config reference`).\n";
  for (const Key& k : config::keys()) {
    if (k.file != f || k.obsolete) continue;
    std::string value(k.setup_value.empty() ? k.default_value : k.setup_value);
    if (k.file == DefFile::smtpenv && k.name == "port" && opt.smtp_port > 0)
      value = std::to_string(opt.smtp_port);
    if (k.file == DefFile::popenv && k.name == "port" && opt.pop_port > 0)
      value = std::to_string(opt.pop_port);
    if (k.name == "bind_address" && !opt.bind_address.empty()) {
      value.clear();
      for (const auto& a : opt.bind_address) value += (value.empty() ? "" : ",") + a;
    }
    if (k.name == "domain" && !opt.domain.empty()) value = opt.domain;
    out += "\n# " + std::string(k.doc) + "\n# (" + config::allowed_text(k) + "; default " +
           (k.default_value.empty() ? std::string("empty") : std::string(k.default_value)) +
           ")\n";
    out += std::string(k.name) + "=" + value + "\n";
  }
  return out;
}

std::string default_def_file(std::string_view file_name, int smtp_port, int pop_port) {
  DefFileOptions opt;
  opt.smtp_port = smtp_port;
  opt.pop_port = pop_port;
  return default_def_file(file_name, opt);
}

std::string config_reference_markdown() {
  std::string out =
      "# wizmail configuration reference\n"
      "\n"
      "<!-- Generated from the key table (libwizmail/src/config/table.cpp); do not edit.\n"
      "     Regenerate with:  build/apps/wizmail/wizmail config reference > docs/configuration.md\n"
      "     The config tests fail when this file and the table differ. -->\n"
      "\n"
      "A wizmail home keeps its settings in three files under `def/`. Each is a list of\n"
      "`key=value` lines: blank lines and lines starting with `#` or `//` are ignored,\n"
      "spaces around keys and values are trimmed, the files are UTF-8 (a leading BOM and\n"
      "CRLF line ends are accepted), and lists are comma-separated.\n"
      "\n"
      "- A key that is missing, or present with an empty value, takes its default.\n"
      "- A bad value, a value out of range, a key given twice, an unreadable file,\n"
      "  invalid UTF-8 or binary data is an error naming file, line and key\n"
      "  (`def/smtpenv.dat:3: port: 70000 is out of range (allowed: 1–65535)`); the server\n"
      "  does not start, and a reload keeps the running configuration.\n"
      "- An unknown key is a warning that suggests the nearest known key\n"
      "  (`unknown key 'prot'; did you mean 'port'?`).\n"
      "- Booleans accept `0`/`1` and `TRUE`/`FALSE` in any case.\n"
      "- Byte sizes accept a `K`, `M` or `G` suffix (powers of 1024).\n"
      "- A list whose default is not empty (`multiprocessing_exempt`) takes `none` for the\n"
      "  empty list.\n"
      "- `host` in smtpenv.dat is obsolete (the manual moved it to `alias`): it is accepted\n"
      "  with a warning and its value is one more local domain.\n"
      "\n"
      "`wizmail config show [--json]` prints the effective values; `wizmail config check`\n"
      "prints errors and warnings about dangerous combinations (exit status 0 when there\n"
      "is no error, 1 when there is one; warnings alone do not fail). `wizmail setup` writes\n"
      "all three files with every key and safe values (`relay=0`,\n"
      "`send_permits_only_smtp_auth=1`). `wizmail config set KEY [VALUE]` changes one key\n"
      "in its file (no value: the line goes and the default applies), refused with the\n"
      "parser's `file:line` message when the result would not load, every other line kept,\n"
      "and makes a running server reload (ports and addresses need a restart).\n";
  for (DefFile f : config::all_files) {
    out += "\n## def/" + std::string(config::file_name(f)) + " — " + file_title(f) + "\n\n";
    out += "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
    for (const Key& k : config::keys()) {
      if (k.file != f) continue;
      std::string name = util::cat("`", k.name, "`");
      for (auto s : k.synonyms) name += util::cat(" (also `", s, "`)");
      std::string doc(k.doc);
      if (k.account_override) doc += " Per-account override allowed.";
      if (!k.setup_value.empty()) doc += util::cat(" `wizmail setup` writes `", k.setup_value, "`.");
      const std::string dflt = k.default_value.empty() ? std::string("—") : util::cat("`", k.default_value, "`");
      out += util::cat("| ", md_cell(name), " | ", config::type_name(k.type), " | ", dflt, " | ",
                       md_cell(config::allowed_text(k)), " | ", md_cell(doc), " |\n");
    }
  }
  out +=
      "\n## What `wizmail config check` reports\n\n"
      "Errors (exit status 1):\n\n"
      "- `relay=1` while a listener is reachable from other hosts (`bind_address` empty or not\n"
      "  loopback): an open relay. On loopback only it is a warning.\n"
      "- `address_permits_relay` containing `0.0.0.0/0` or `::/0`.\n"
      "- `tls_cert_file` without `tls_key_file` or the reverse; a TLS file that is missing,\n"
      "  unreadable, empty, not a regular file or not an absolute path.\n"
      "- `smtps_port` or `pop3s_port` without a certificate; `auth_requires_tls=1` without a\n"
      "  certificate on a reachable listener.\n"
      "- Two of `port`, `submission_port`, `smtps_port` (smtpenv.dat), `port`, `pop3s_port`\n"
      "  (popenv.dat), `metrics_port` and `admin_port` on the same number.\n"
      "- `admin_bind_address` not exactly one address; an `admin_accounts` entry that is not\n"
      "  a valid account name.\n"
      "- A relative `mailbox_path`/`dustbox_path`, or one folder inside the other.\n"
      "\nWarnings (exit status unchanged):\n\n"
      "- `relay=0` with `send_permits_only_smtp_auth=0` and `pop_before_smtp=0`: anyone who\n"
      "  forges a local sender address can relay.\n"
      "- POP before SMTP instead of AUTH; an `address_permits_relay` block wider than /8;\n"
      "  `multiprocessing_exempt` covering every address.\n"
      "- TLS configured but `auth_requires_tls=0` on a reachable listener; no TLS at all on a\n"
      "  reachable listener (passwords in clear); `submission_port` without TLS.\n"
      "- `mailbox_capacity_mail_size` below `max_mail_size`; `mailbox_capacity_mail_count=0`;\n"
      "  `domain=localhost` on a reachable listener.\n"
      "- The web console (`admin_port`) on a non-loopback address without TLS.\n"
      "- `srs=1` with SRS addresses at `localhost` or an IP literal (`srs_domain`, else `domain`).\n"
      "- The systemd unit installed for this home (`--unit-dir DIR`, default\n"
      "  /etc/systemd/system) does not list the folders the server writes in `ReadWritePaths=`\n"
      "  (e.g. `mailbox_path` changed since `wizmail service install`).\n";
  out +=
      "\n## mailbox/&lt;account&gt;/config.def — per-account overrides\n\n"
      "Same format. Only these keys may appear; any other known key is an error naming\n"
      "the file, an unknown key a warning. A key left out (or empty) keeps the server's value.\n\n";
  for (const Key& k : config::keys())
    if (k.account_override) out += "- `" + std::string(k.name) + "`\n";
  out +=
      "\n## mailbox/&lt;list&gt;/ml.def — mailing lists\n\n"
      "| key | meaning |\n|---|---|\n"
      "| `count` | messages distributed so far (0 or more); the server increments it atomically |\n"
      "| `admin_mail_address` | the list's administrator; empty = `postmaster@<domain>` |\n"
      "| `return_path` | envelope sender and Return-Path of list mail; empty = admin_mail_address |\n"
      "| `name` | the subject prefix name; empty = the account name |\n"
      "\nAny other key, a duplicate key or a bad count is an error.\n";
  out +=
      "\n## def/aliases.def — aliases and catch-alls\n\n"
      "Postfix's `virtual_alias_maps` for wizmail, managed with `wizmail alias add|del|list`\n"
      "(or edited by hand; `wizmail reload` or SIGHUP re-reads it with the other files).\n"
      "One alias a line, `#` and `//` comment lines, UTF-8:\n\n"
      "```\n"
      "sales@example.org   alice, bob@partner.example\n"
      "info                alice          # info@ every local domain\n"
      "@example.net        catchall       # anything else @example.net\n"
      "```\n\n"
      "| key | meaning |\n|---|---|\n"
      "| `local@domain` | that address; the domain must be a local domain |\n"
      "| `local` | that local part at every local domain |\n"
      "| `@domain` | catch-all of a local domain: only for addresses that name no account and no other alias |\n"
      "\nTargets (comma-separated) are account names (`alice` = `alice@<domain>`) or\n"
      "addresses: a local address is resolved again (its account or alias), another one is\n"
      "relayed — without the relay rules, since the sender wrote to a local address (as\n"
      "Postfix does). At RCPT the exact address wins, then the bare local part, then the\n"
      "account, then the catch-all; an alias applies before an account of the same name,\n"
      "and `alice@d  alice, bob` keeps a copy for the account alice. Keys compare without\n"
      "ASCII case and with domains in their ASCII (A-label) form. A bad line, a key at a\n"
      "domain that is not local, a duplicate key or an alias loop is an error naming file\n"
      "and line; resolution stops after 20 levels and 1000 addresses (451 4.3.0).\n"
      "A copy delivered through an alias has `Delivered-To:` naming the address as it\n"
      "arrived (the alias, or the address a catch-all took), not the account's own\n"
      "address (docs/smtp.md says why).\n";
  out +=
      "\n## def/tls_policy.def — outbound TLS per destination\n\n"
      "Postfix's `smtp_tls_policy_maps` for wizmail: the TLS level (`none`, `may`, `encrypt`,\n"
      "`verify`; see `smtp_tls_security_level` and docs/outbound.md) of mail to one destination.\n"
      "One `destination level` a line, `#` comments, blank lines skipped; read with the other\n"
      "files at start and on `wizmail reload`:\n\n"
      "```\n"
      "example.com     verify     # mail for example.com itself\n"
      ".example.com    encrypt    # every subdomain of example.com\n"
      "legacy.example  none\n"
      "```\n\n"
      "A domain's own line wins, then the `.parent` line of its nearest parent domain, then\n"
      "`smtp_tls_security_level`. With `smart_host` the smart host's name is looked up (its\n"
      "host part, e.g. `relay.example.net`), not the recipient domains. Domains compare\n"
      "without case, in their A-label form. A line without exactly two fields, an unknown\n"
      "level, a bad domain or a destination given twice is an error naming file and line.\n";
  out +=
      "\n## def/srs.secret — the SRS key\n\n"
      "The secret of the Sender Rewriting Scheme (`srs=1`, docs/outbound.md), mode 0600:\n"
      "made by `wizmail setup`, or by the first start with `srs=1`, from 24 random octets;\n"
      "never replaced. One secret a line (`#` lines and blank lines skipped): the first signs\n"
      "new SRS addresses, every one is accepted for bounces. To rotate, put a new secret on\n"
      "the first line and remove the old one `srs_max_age` days later. PostSRSd's\n"
      "`secrets-file` has the same form.\n";
  return out;
}

}  // namespace wizmail
