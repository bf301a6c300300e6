#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace wizmail;


TEST_CASE("atomic write replaces the file and leaves no temporary") {
  test::TempDir tmp("wizmail-fs");
  const auto dir = tmp.path();
  auto file = dir / "f.dat";
  REQUIRE(util::write_file_atomic(file, "one", 0600));
  REQUIRE(util::write_file_atomic(file, "two", 0600));
  CHECK(util::read_file(file).value() == "two");
  struct stat st{};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  int entries = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++entries;
  CHECK(entries == 1);
}

TEST_CASE("errors are values naming the path") {
  auto r = util::read_file("/nonexistent/wizmail/x");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::not_found);
  CHECK(r.error().message.find("/nonexistent/wizmail/x") != std::string::npos);
  auto w = util::write_file_atomic("/nonexistent/wizmail/x", "a");
  CHECK_FALSE(w);
}

TEST_CASE("unique names differ") {
  CHECK(util::unique_name_part() != util::unique_name_part());
  CHECK(util::maildir_hostname().find('/') == std::string::npos);
}

TEST_CASE("make_dirs creates parents and refuses a file in the way") {
  test::TempDir tmp("wizmail-fs");
  const auto dir = tmp.path();
  REQUIRE(util::make_dirs(dir / "a" / "b" / "c"));
  CHECK(fs::is_directory(dir / "a" / "b" / "c"));
  REQUIRE(util::write_file_atomic(dir / "file", "x"));
  CHECK_FALSE(util::make_dirs(dir / "file"));
}
