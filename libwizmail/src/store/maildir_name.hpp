// Private: parsing Maildir file names ("<sec>.M<usec>P<pid>Q<seq>.<host>,S=<size>:2,<flags>").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wizmail::store {

// The base name: everything before the ':' that starts the info part.
std::string_view maildir_base(std::string_view name) noexcept;

// The ",S=<size>" field of a base name, when present and well formed.
std::optional<std::uint64_t> maildir_size_field(std::string_view base) noexcept;

// The leading "<sec>" of a name made by util::unique_name_part() (the
// delivery time), when it is 1–18 digits followed by '.'.
std::optional<std::int64_t> maildir_time_field(std::string_view name) noexcept;

// Who wrote a file named by util::unique_name_part() + "." + host.
struct Writer {
  std::string_view host;
  pid_t pid = 0;
};
std::optional<Writer> parse_writer(std::string_view name) noexcept;

}  // namespace wizmail::store
