// Protocol states as `wizmail sessions` shows them.
#pragma once

#include <string_view>

namespace wizmail::smtp {
enum class State;
}
namespace wizmail::pop3 {
enum class State;
}

namespace wizmail::server {

std::string_view state_name(smtp::State s) noexcept;
std::string_view state_name(pop3::State s) noexcept;

}  // namespace wizmail::server
