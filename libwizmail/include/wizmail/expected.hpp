// The one place that chooses wizmail's expected<T, E>.
// g++ 12 with -std=c++23 has std::expected, whose API is tl::expected's.
#pragma once

#include <expected>

namespace wizmail {

template <class T, class E>
using expected = std::expected<T, E>;

using std::unexpected;

}  // namespace wizmail
