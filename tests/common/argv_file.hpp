// The argv a recording program wrote (tests/agent/hook_helper.cpp: each
// argument followed by a NUL), read back for comparison.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "util/fs.hpp"

namespace wizmail::test {

inline std::vector<std::string> read_argv_file(const std::filesystem::path& file) {
  auto text = util::read_file(file).value();
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto z = text.find('\0', pos);
    out.push_back(text.substr(pos, z - pos));
    pos = z + 1;
  }
  return out;
}

}  // namespace wizmail::test
