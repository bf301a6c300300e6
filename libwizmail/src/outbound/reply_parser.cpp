#include "outbound/reply_parser.hpp"

#include <optional>

#include "util/strings.hpp"

namespace wizmail {

std::string SmtpReply::to_string() const {
  std::string out = std::to_string(code);
  bool first = true;
  for (const auto& l : lines) {
    out += first ? " " : " / ";
    out += l;
    first = false;
  }
  return out;
}

}  // namespace wizmail

namespace wizmail::outbound {

namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }

// "5.1.1" at the start of `text` (RFC 3463 class.subject.detail).
std::string enhanced_code(std::string_view text) {
  std::size_t i = 0;
  if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') return {};
  i = 2;
  for (int part = 0; part < 2; ++part) {
    std::size_t start = i;
    while (i < text.size() && digit(text[i]) && i - start < 3) ++i;
    if (i == start) return {};
    if (part == 0) {
      if (i >= text.size() || text[i] != '.') return {};
      ++i;
    }
  }
  if (i < text.size() && text[i] != ' ') return {};
  return std::string(text.substr(0, i));
}

}  // namespace

ReplyParser::Step ReplyParser::parse(std::string_view in) {
  Step step;
  if (done_) {
    step.status = Status::done;
    return step;
  }
  while (true) {
    auto rest = in.substr(step.used);
    auto nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      if (rest.size() > kMaxLine) {
        error_ = "reply line longer than " + std::to_string(kMaxLine) + " octets";
        step.status = Status::bad;
      }
      return step;
    }
    if (nl > kMaxLine) {
      error_ = "reply line longer than " + std::to_string(kMaxLine) + " octets";
      step.status = Status::bad;
      return step;
    }
    std::string_view line = rest.substr(0, nl);
    step.used += nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]) || line[0] < '2' ||
        line[0] > '5' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      error_ = "malformed reply line '" + std::string(line.substr(0, 80)) + "'";
      step.status = Status::bad;
      return step;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!cur_.lines.empty() && code != cur_.code) {
      error_ = "reply code changes within a multi-line reply (" + std::to_string(cur_.code) + " then " +
               std::to_string(code) + ")";
      step.status = Status::bad;
      return step;
    }
    if (cur_.lines.size() >= kMaxLines) {
      error_ = "reply longer than " + std::to_string(kMaxLines) + " lines";
      step.status = Status::bad;
      return step;
    }
    cur_.code = code;
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
    if (cur_.lines.empty()) cur_.enhanced = enhanced_code(text);
    cur_.lines.emplace_back(text);
    bool last = line.size() == 3 || line[3] == ' ';
    if (last) {
      done_ = true;
      step.status = Status::done;
      return step;
    }
  }
}

SmtpReply ReplyParser::take() {
  SmtpReply r = std::move(cur_);
  cur_ = {};
  done_ = false;
  error_.clear();
  return r;
}

std::vector<std::string> ehlo_capabilities(const SmtpReply& ehlo) {
  std::vector<std::string> out;
  for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
    std::string_view l = util::trim(ehlo.lines[i]);
    if (l.empty()) continue;
    auto sp = l.find(' ');
    std::string kw = util::to_lower(l.substr(0, sp));
    for (auto& c : kw) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (sp != std::string_view::npos) kw += util::cat(" ", util::trim(l.substr(sp + 1)));
    out.push_back(std::move(kw));
  }
  return out;
}

std::optional<std::string> find_capability(const std::vector<std::string>& caps, std::string_view keyword) {
  for (const auto& c : caps) {
    std::string_view v = c;
    auto sp = v.find(' ');
    if (util::iequals(v.substr(0, sp), keyword))
      return sp == std::string_view::npos ? std::string() : std::string(v.substr(sp + 1));
  }
  return std::nullopt;
}

}  // namespace wizmail::outbound
