#include "wizmail/admin/json.hpp"

#include <nlohmann/json.hpp>

namespace wizmail {

std::string json_string(std::string_view s) {
  // nlohmann's serializer: control characters escaped, a byte that does not
  // start a valid UTF-8 sequence replaced by U+FFFD (JSON must be UTF-8).
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace wizmail
