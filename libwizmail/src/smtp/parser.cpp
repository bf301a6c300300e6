#include "smtp/parser.hpp"

#include <cstring>

#include "util/strings.hpp"
#include "util/utf8.hpp"

namespace wizmail::smtp {

namespace {

bool starts_auth(std::string_view s) noexcept {
  if (s.size() < 5) return false;
  return (s[0] | 0x20) == 'a' && (s[1] | 0x20) == 'u' && (s[2] | 0x20) == 't' &&
         (s[3] | 0x20) == 'h' && s[4] == ' ';
}

// No control characters (HT excepted), no DEL; octets over 0x7f only in
// MAIL and RCPT lines and only as valid UTF-8 (SMTPUTF8 addresses).
bool clean(std::string_view s) noexcept {
  auto verb = [&](std::string_view v) {
    if (s.size() <= v.size() || s[v.size()] != ' ') return false;
    for (std::size_t i = 0; i < v.size(); ++i)
      if ((s[i] | 0x20) != v[i]) return false;
    return true;
  };
  const bool utf8 = verb("mail") || verb("rcpt");
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == 0x7f || (c < 0x20 && c != '\t')) return false;
    std::size_t n = c < 0x80 ? 1 : utf8 ? util::utf8_sequence_length(s.substr(i)) : 0;
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Classify a complete line (without LF): strip one CR, check its bytes.
LineReader::Status finish(std::string_view& line) noexcept {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return clean(line) ? LineReader::Status::line : LineReader::Status::bad_bytes;
}

}  // namespace

LineReader::Status LineReader::next(std::string_view& in, std::string_view& line,
                                    std::size_t limit, std::size_t auth_limit,
                                    bool sasl) {
  if (partial_ready_) {
    partial_.clear();
    partial_ready_ = false;
  }
  if (discarding_) {
    const void* nl = std::memchr(in.data(), '\n', in.size());
    if (!nl) {
      in = {};
      return Status::need_more;
    }
    auto used = static_cast<std::size_t>(static_cast<const char*>(nl) - in.data()) + 1;
    in.remove_prefix(used);
    discarding_ = false;
    return Status::too_long;
  }
  // The long limit applies to SASL responses and to lines starting "AUTH ".
  auto limit_for = [&](std::string_view more) {
    if (sasl) return auth_limit;
    char head[5];
    std::size_t k = 0;
    for (char c : partial_) {
      if (k == 5) break;
      head[k++] = c;
    }
    for (char c : more) {
      if (k == 5) break;
      head[k++] = c;
    }
    return starts_auth(std::string_view(head, k)) ? auth_limit : limit;
  };
  const void* nl = std::memchr(in.data(), '\n', in.size());
  if (!nl) {
    if (partial_.size() + in.size() > limit &&
        partial_.size() + in.size() > limit_for(in)) {
      partial_.clear();
      discarding_ = true;
      in = {};
      return Status::need_more;
    }
    partial_.append(in);
    in = {};
    return Status::need_more;
  }
  auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - in.data());
  std::string_view chunk = in.substr(0, len);
  std::size_t total = partial_.size() + len + 1;
  if (total > limit && total > limit_for(chunk)) {
    partial_.clear();
    in.remove_prefix(len + 1);
    return Status::too_long;
  }
  in.remove_prefix(len + 1);
  if (partial_.empty()) {
    line = chunk;
    return finish(line);
  }
  partial_.append(chunk);
  partial_ready_ = true;
  line = partial_;
  return finish(line);
}

CommandLine split_command(std::string_view line) noexcept {
  CommandLine c;
  std::size_t i = 0;
  while (i < line.size() && line[i] != ' ') ++i;
  c.verb = line.substr(0, i);
  while (i < line.size() && line[i] == ' ') ++i;
  c.args = line.substr(i);
  // Trailing spaces are not part of the argument.
  while (!c.args.empty() && (c.args.back() == ' ' || c.args.back() == '\t'))
    c.args.remove_suffix(1);
  return c;
}

bool parse_params(std::string_view s, std::vector<EsmtpParam>& out,
                  std::size_t max) {
  out.clear();
  std::size_t i = 0;
  const std::size_t n = s.size();
  for (;;) {
    while (i < n && s[i] == ' ') ++i;
    if (i >= n) return true;
    if (out.size() >= max) return false;
    std::size_t k = i;
    // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    auto alnum = [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    if (!alnum(s[i])) return false;
    while (i < n && (alnum(s[i]) || s[i] == '-')) ++i;
    EsmtpParam p;
    p.keyword = s.substr(k, i - k);
    if (i < n && s[i] == '=') {
      ++i;
      std::size_t v = i;
      // esmtp-value = 1*(%d33-60 / %d62-126)
      while (i < n && s[i] != ' ') {
        char c = s[i];
        if (c < 33 || c > 126 || c == '=') return false;
        ++i;
      }
      if (i == v) return false;
      p.value = s.substr(v, i - v);
      p.has_value = true;
    }
    if (i < n && s[i] != ' ') return false;
    out.push_back(p);
  }
}

}  // namespace wizmail::smtp
