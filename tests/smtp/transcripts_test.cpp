// Golden transcripts: tests/smtp/transcripts/NAME.in is a client script (see
// harness.hpp), NAME.ref the exact server output. Each script runs at every
// chunk size of chunk_sizes(), with policy lookups at once and deferred to
// Session::proceed(); all must produce the .ref.
// WIZMAIL_UPDATE_REF=1 rewrites the .ref files (review the diff!).
#include "harness.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using namespace wizmail::smtp::test;

namespace {

fs::path transcripts_dir() {
  const char* src = std::getenv("WIZMAIL_SOURCE_DIR");
  return fs::path(src ? src : ".") / "tests" / "smtp" / "transcripts";
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("golden transcripts at every chunk size") {
  auto dir = transcripts_dir();
  REQUIRE(fs::is_directory(dir));
  std::vector<fs::path> inputs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".in") inputs.push_back(e.path());
  std::sort(inputs.begin(), inputs.end());
  REQUIRE(inputs.size() >= 20);
  bool update = std::getenv("WIZMAIL_UPDATE_REF") != nullptr;
  for (const auto& in : inputs) {
    CAPTURE(in.filename().string());
    std::string script = slurp(in);
    auto ref_path = fs::path(in).replace_extension(".ref");
    if (update) {
      std::ofstream(ref_path, std::ios::binary) << run_script(script, 1 << 20).output;
    }
    REQUIRE(fs::exists(ref_path));
    std::string ref = slurp(ref_path);
    for (auto chunk : chunk_sizes()) {
      CAPTURE(chunk);
      CHECK(run_script(script, chunk).output == ref);
      // Check, then proceed: lookups deferred to proceed() (the server's
      // way) give the same transcript, and none runs outside it (FakeEnv
      // throws).
      CHECK(run_script(script, chunk, true).output == ref);
    }
  }
}
