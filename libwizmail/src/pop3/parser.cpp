#include "pop3/parser.hpp"

#include <algorithm>
#include <climits>
#include <cstring>

#include "util/strings.hpp"

namespace wizmail::pop3 {

LineParser::Result LineParser::parse(std::string_view in) {
  const char* nl = static_cast<const char*>(std::memchr(in.data(), '\n', in.size()));
  std::size_t take = nl ? static_cast<std::size_t>(nl - in.data()) : in.size();
  std::size_t used = nl ? take + 1 : take;

  if (discarding_) {
    if (nl) discarding_ = false;
    return {Status::need_more, used};
  }
  if (buf_.size() + take > max_line_octets) {
    // Over the limit: report once, drop what we have and the rest of the line.
    buf_.clear();
    discarding_ = nl == nullptr;
    return {Status::too_long, used};
  }
  buf_.append(in.data(), take);
  if (!nl) return {Status::need_more, used};
  if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
  line_.swap(buf_);
  buf_.clear();
  return {Status::line, used};
}

void LineParser::reset() noexcept {
  buf_.clear();
  line_.clear();
  discarding_ = false;
}

namespace {

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr VerbName verbs[] = {
    {"USER", Verb::user}, {"PASS", Verb::pass}, {"APOP", Verb::apop},
    {"STAT", Verb::stat}, {"LIST", Verb::list}, {"RETR", Verb::retr},
    {"DELE", Verb::dele}, {"NOOP", Verb::noop}, {"RSET", Verb::rset},
    {"QUIT", Verb::quit}, {"TOP", Verb::top},   {"UIDL", Verb::uidl},
    {"CAPA", Verb::capa}, {"STLS", Verb::stls}, {"AUTH", Verb::auth},
};

}  // namespace

Command parse_command(std::string_view line) {
  Command cmd;
  std::size_t sp = line.find(' ');
  std::string_view kw = line.substr(0, sp);
  cmd.keyword = std::string(kw);
  for (const auto& v : verbs) {
    if (util::iequals(kw, v.name)) {
      cmd.verb = v.verb;
      break;
    }
  }
  if (sp == std::string_view::npos) return cmd;
  std::string_view rest = line.substr(sp + 1);
  cmd.rest = std::string(rest);
  std::size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    if (i >= rest.size()) break;
    std::size_t j = rest.find(' ', i);
    if (j == std::string_view::npos) j = rest.size();
    cmd.args.emplace_back(rest.substr(i, j - i));
    i = j;
  }
  return cmd;
}

std::size_t parse_msg_number(std::string_view s) noexcept {
  if (s.empty() || s.size() > 10) return 0;
  std::size_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  return n > static_cast<std::size_t>(INT_MAX) ? 0 : n;
}

long parse_line_count(std::string_view s) noexcept {
  if (s.empty() || s.size() > 10) return -1;
  long n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n > INT_MAX ? -1 : n;
}

}  // namespace wizmail::pop3
