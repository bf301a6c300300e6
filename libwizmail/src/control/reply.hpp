// Private: the reply lines the server writes on the control socket
// (docs/control.md), built with nlohmann's JSON so nothing is escaped by hand.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace wizmail::control {

// {"v":1,"ok":true, ...fields} — `fields` is an object (its members follow
// "ok" in their order); invalid UTF-8 in strings becomes U+FFFD.
std::string ok_reply(const nlohmann::ordered_json& fields = nlohmann::ordered_json::object());
// {"v":1,"ok":false,"error":code,"message":message}
std::string error_reply(std::string_view code, std::string_view message);

}  // namespace wizmail::control
