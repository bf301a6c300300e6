#include "mime/message_head.hpp"

#include "mime/header_section.hpp"
#include "util/strings.hpp"

namespace wizmail::mime {

MessageHead::MessageHead(std::string_view m) {
  auto section = split_header_section(m);
  fields_.reserve(section.fields.size());
  for (const auto& f : section.fields) {
    // Every line end becomes CRLF (str() writes a well-formed head).
    std::string raw;
    raw.reserve(f.text.size() + 2);
    std::size_t pos = 0;
    while (pos < f.text.size()) {
      auto nl = f.text.find('\n', pos);
      std::size_t end = nl == std::string_view::npos ? f.text.size() : nl + 1;
      std::string_view line = f.text.substr(pos, end - pos);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
      raw += line;
      raw += "\r\n";
      pos = end;
    }
    fields_.push_back({std::string(f.name), std::move(raw)});
  }
  if (section.ended) body_ = std::string(m.substr(section.body_offset));
}

std::string MessageHead::get(std::string_view name) const {
  for (const auto& f : fields_)
    if (util::iequals(f.name, name)) return unfold_value(f.raw);
  return {};
}

bool MessageHead::has(std::string_view name) const { return count(name) > 0; }

std::size_t MessageHead::count(std::string_view name) const {
  std::size_t n = 0;
  for (const auto& f : fields_)
    if (util::iequals(f.name, name)) ++n;
  return n;
}

std::vector<std::string> MessageHead::get_all(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& f : fields_)
    if (util::iequals(f.name, name)) out.push_back(unfold_value(f.raw));
  return out;
}

std::vector<std::pair<std::string, std::string>> MessageHead::unfolded() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : fields_)
    if (!f.name.empty()) out.emplace_back(f.name, unfold_value(f.raw));
  return out;
}

void MessageHead::remove(std::string_view name) {
  std::erase_if(fields_, [&](const Field& f) { return util::iequals(f.name, name); });
}

void MessageHead::remove_prefix(std::string_view prefix) {
  std::erase_if(fields_, [&](const Field& f) { return util::istarts_with(f.name, prefix); });
}

void MessageHead::set(std::string_view name, std::string_view value) {
  Field nf{std::string(name), std::string(name) + ": " + std::string(value) + "\r\n"};
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    if (util::iequals(fields_[i].name, name)) {
      fields_[i] = nf;
      for (std::size_t j = fields_.size(); j-- > i + 1;)
        if (util::iequals(fields_[j].name, name)) fields_.erase(fields_.begin() + static_cast<long>(j));
      return;
    }
  }
  fields_.push_back(std::move(nf));
}

void MessageHead::prepend(std::string_view name, std::string_view value) {
  fields_.insert(fields_.begin(), Field{std::string(name), std::string(name) + ": " + std::string(value) + "\r\n"});
}

void MessageHead::append(std::string_view name, std::string_view value) {
  fields_.push_back(Field{std::string(name), std::string(name) + ": " + std::string(value) + "\r\n"});
}

std::string MessageHead::str() const {
  std::string out;
  std::size_t n = body_.size() + 2;
  for (const auto& f : fields_) n += f.raw.size();
  out.reserve(n);
  for (const auto& f : fields_) out += f.raw;
  out += "\r\n";
  out += body_;
  return out;
}

std::string extract_address(std::string_view v) {
  auto lt = v.rfind('<');
  if (lt != std::string_view::npos) {
    auto gt = v.find('>', lt);
    if (gt != std::string_view::npos) return std::string(util::trim(v.substr(lt + 1, gt - lt - 1)));
  }
  // Bare "a@b" possibly followed by a comment.
  std::string_view s = util::trim(v);
  auto paren = s.find('(');
  if (paren != std::string_view::npos) s = util::trim(s.substr(0, paren));
  auto sp = s.find_first_of(" \t,");
  if (sp != std::string_view::npos) s = s.substr(0, sp);
  if (s.find('@') == std::string_view::npos) return {};
  return std::string(s);
}

}  // namespace wizmail::mime
