// Fuzz target: the def-file parsers (SPEC §2): config/parser.hpp's
// key=value lines, the three server files through the key table
// (parse_config_texts), an account's config.def, and every key's value
// parser.
//
// Input: byte 0 chooses the mode.
//   even: files mode. The rest is split at 0x1e into smtpenv.dat,
//         popenv.dat, wiz98msenv.dat and an account's config.def.
//   odd:  value mode. Byte 1 picks a key of the table; the rest is a value.
// Properties: parsed lines have trimmed, valid keys and values free of
// control characters other than an inner TAB, in line order, and the error
// count stays bounded; a configuration that loads is shown (`config show`)
// as key=value lines that load again to the same configuration, and its
// JSON form is valid JSON; a value that parses is formatted to a text that
// parses to the same value.
#include <string>
#include <vector>

#include "config/parser.hpp"
#include "config/table.hpp"
#include "fuzz.hpp"
#include "util/strings.hpp"
#include "wizmail/config.hpp"
#include "wizmail/admin/control.hpp"

using namespace wizmail;
using wizmail::fuzz::show;

namespace {

void check_lines(const config::DefText& t) {
  int last = 0;
  for (const auto& l : t.lines) {
    FUZZ_CHECK(l.line > last);
    last = l.line;
    FUZZ_CHECK(!l.key.empty() && l.key.size() <= 128);
    for (char c : l.key)
      FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
    FUZZ_CHECK(l.value == std::string(util::trim(l.value)));
    // A TAB inside a value is kept (people align with it); any other
    // control character never reaches a value.
    for (char c : l.value)
      FUZZ_CHECK(c == '\t' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f));
  }
  FUZZ_CHECK(t.diagnostics.size() <= static_cast<std::size_t>(config::kMaxErrors) + 1);
}

// `config show` output back to def files: "key=value  # file[, default][, obsolete]".
std::vector<std::pair<std::string, std::string>> shown_to_texts(const std::string& shown) {
  std::vector<std::pair<std::string, std::string>> texts;
  for (const auto& name : def_file_names()) texts.emplace_back(name, std::string());
  std::string_view s = shown;
  while (!s.empty()) {
    auto nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    s.remove_prefix(nl == std::string_view::npos ? s.size() : nl + 1);
    if (line.empty() || line.starts_with('#')) continue;
    bool placed = false;
    for (auto& [name, text] : texts) {
      std::string tag = "  # " + name;
      auto at = line.rfind(tag);
      if (at == std::string_view::npos) continue;
      auto rest = line.substr(at + tag.size());
      if (!rest.empty() && rest != ", default" && rest != ", obsolete" && rest != ", default, obsolete")
        continue;
      text += std::string(line.substr(0, at)) + "\n";
      placed = true;
      break;
    }
    FUZZ_CHECK_MSG(placed, show(line));
  }
  return texts;
}

void files_mode(std::string_view rest) {
  std::vector<std::string> parts;
  for (int i = 0; i < 4; ++i) {
    auto sep = rest.find('\x1e');
    parts.emplace_back(rest.substr(0, sep));
    rest.remove_prefix(sep == std::string_view::npos ? rest.size() : sep + 1);
  }
  std::vector<std::pair<std::string, std::string>> texts;
  for (std::size_t i = 0; i < 3; ++i) {
    check_lines(config::parse_def_text(parts[i], def_file_names()[i]));
    if (!parts[i].empty()) texts.emplace_back(def_file_names()[i], parts[i]);
  }
  auto load = parse_config_texts("/home/wiz", texts);
  for (const auto& d : load.diagnostics) (void)d.to_string();
  if (!load.ok()) return;
  const Config& cfg = *load.config;
  std::string shown = show_config(cfg);
  auto again = parse_config_texts("/home/wiz", shown_to_texts(shown));
  std::string why;
  for (const auto& d : again.diagnostics) why += d.to_string() + "\n";
  FUZZ_CHECK_MSG(again.ok(), why + show(shown, 4000));
  FUZZ_CHECK_MSG(show_config(*again.config) == shown, show(shown, 4000));
  auto json = control::parse_json(show_config_json(cfg));
  FUZZ_CHECK_MSG(json.has_value(), json ? "" : json.error().message);
  (void)check_config(cfg);
  (void)cfg.local_domains();
  check_lines(config::parse_def_text(parts[3], "config.def"));
  (void)cfg.account_settings_from_text(parts[3], "mailbox/alice/config.def");
}

void value_mode(std::uint8_t which, std::string_view text) {
  const auto& keys = config::keys();
  const config::Key& key = keys[which % keys.size()];
  text = util::trim(text);
  if (text.empty()) return;
  auto v = config::parse_value(key, text);
  if (!v) return;
  std::string formatted = config::format_value(key, *v);
  if (formatted.empty()) return;  // "key=" means the default: the files mode checks that
  auto back = config::parse_value(key, formatted);
  FUZZ_CHECK_MSG(back.has_value(), std::string(key.name) + ": " + show(text) + " -> " + show(formatted));
  FUZZ_CHECK_MSG(*back == *v, std::string(key.name) + ": " + show(text) + " -> " + show(formatted));
  FUZZ_CHECK(config::format_value(key, *back) == formatted);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  std::uint8_t mode = in.byte();
  if (mode & 1) {
    std::uint8_t which = in.byte();
    value_mode(which, in.rest());
  } else {
    files_mode(in.rest());
  }
  return 0;
}
