#include "store/maildir_name.hpp"

#include <charconv>

namespace wizmail::store {

std::string_view maildir_base(std::string_view name) noexcept {
  return name.substr(0, name.find(':'));
}

std::optional<std::uint64_t> maildir_size_field(std::string_view base) noexcept {
  auto comma = base.find(',');
  while (comma != std::string_view::npos) {
    base.remove_prefix(comma + 1);
    comma = base.find(',');
    std::string_view field = base.substr(0, comma);
    if (field.size() > 2 && field[0] == 'S' && field[1] == '=') {
      std::uint64_t v = 0;
      auto [p, ec] = std::from_chars(field.data() + 2, field.data() + field.size(), v);
      if (ec == std::errc{} && p == field.data() + field.size()) return v;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::optional<std::int64_t> maildir_time_field(std::string_view name) noexcept {
  auto dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 18) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + dot, v);
  if (ec != std::errc{} || p != name.data() + dot || v < 0) return std::nullopt;
  return v;
}

std::optional<Writer> parse_writer(std::string_view name) noexcept {
  name = maildir_base(name);
  name = name.substr(0, name.find(','));
  // <sec> . M<usec>P<pid>Q<seq> . <host>
  auto dot1 = name.find('.');
  if (dot1 == std::string_view::npos) return std::nullopt;
  auto dot2 = name.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return std::nullopt;
  std::string_view mid = name.substr(dot1 + 1, dot2 - dot1 - 1);
  auto p = mid.find('P');
  if (mid.empty() || mid[0] != 'M' || p == std::string_view::npos) return std::nullopt;
  std::string_view pid_text = mid.substr(p + 1);
  pid_text = pid_text.substr(0, pid_text.find('Q'));
  long long pid = 0;
  auto [end, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
  if (ec != std::errc{} || end != pid_text.data() + pid_text.size() || pid <= 0 ||
      pid > 0x3fffffff)
    return std::nullopt;
  Writer w;
  w.host = name.substr(dot2 + 1);
  w.pid = static_cast<pid_t>(pid);
  if (w.host.empty()) return std::nullopt;
  return w;
}

}  // namespace wizmail::store
