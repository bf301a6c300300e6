#include "mime/header_section.hpp"

#include "util/strings.hpp"

namespace wizmail::mime {

namespace {

constexpr bool wsp(char c) noexcept { return c == ' ' || c == '\t'; }

}  // namespace

HeaderSection split_header_section(std::string_view m) {
  HeaderSection out;
  std::size_t pos = 0;
  while (pos < m.size()) {
    auto nl = m.find('\n', pos);
    std::size_t end = nl == std::string_view::npos ? m.size() : nl + 1;
    std::string_view bare = m.substr(pos, end - pos);
    while (!bare.empty() && (bare.back() == '\n' || bare.back() == '\r')) bare.remove_suffix(1);
    if (bare.empty()) {
      out.head_size = pos;
      out.body_offset = end;
      out.ended = true;
      return out;
    }
    if (wsp(bare.front()) && !out.fields.empty()) {
      auto& f = out.fields.back();
      f.text = m.substr(f.offset, end - f.offset);
    } else {
      std::string_view name;
      auto colon = bare.find(':');
      if (!wsp(bare.front()) && colon != std::string_view::npos) {
        name = bare.substr(0, colon);
        while (!name.empty() && wsp(name.back())) name.remove_suffix(1);
      }
      out.fields.push_back({name, m.substr(pos, end - pos), pos});
    }
    pos = end;
  }
  out.head_size = out.body_offset = m.size();
  return out;
}

std::string unfold_value(std::string_view raw) {
  auto colon = raw.find(':');
  std::string_view v = colon == std::string_view::npos ? std::string_view{} : raw.substr(colon + 1);
  std::string out;
  out.reserve(v.size());
  for (char c : v)
    if (c != '\r' && c != '\n') out += c;
  return std::string(util::trim(out));
}

std::vector<std::pair<std::string, std::string>> unfolded_fields(std::string_view text) {
  auto section = split_header_section(text);
  auto& fields = section.fields;
  if (!section.ended && !fields.empty() && !fields.back().text.ends_with('\n')) fields.pop_back();
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(fields.size());
  for (const auto& f : fields)
    if (!f.name.empty()) out.emplace_back(std::string(f.name), unfold_value(f.text));
  return out;
}

}  // namespace wizmail::mime
