#include "srs/secret.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "temp_dir.hpp"

using namespace wizmail;
using wizmail::test::TempDir;
namespace fs = std::filesystem;

TEST_CASE("parse_secrets: one a line, comments and blank lines skipped") {
  auto s = srs::parse_secrets("# rotated 2026-01\nnew one\r\n\nold one\n", "f");
  REQUIRE(s);
  REQUIRE(s->size() == 2);
  CHECK((*s)[0] == "new one");
  CHECK((*s)[1] == "old one");
  CHECK(srs::parse_secrets("tops3cr3t", "f")->front() == "tops3cr3t");
  auto none = srs::parse_secrets("# nothing\n\n", "def/srs.secret");
  REQUIRE_FALSE(none);
  CHECK(none.error().message.find("def/srs.secret") != std::string::npos);
}

TEST_CASE("the secret file: made once, mode 0600, random, kept") {
  TempDir dir;
  const fs::path f = dir.path() / "srs.secret";
  auto made = srs::create_secret_file(f);
  REQUIRE(made);
  CHECK(*made);
  struct stat st {};
  REQUIRE(::stat(f.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto first = srs::load_secrets(f);
  REQUIRE(first);
  REQUIRE(first->size() == 1);
  CHECK(first->front().size() == 32);  // 24 octets in base64
  auto again = srs::create_secret_file(f);
  REQUIRE(again);
  CHECK_FALSE(*again);
  CHECK(srs::load_secrets(f)->front() == first->front());
  const fs::path g = dir.path() / "other.secret";
  REQUIRE(srs::load_secrets(g));
  CHECK(srs::load_secrets(g)->front() != first->front());
  CHECK(srs::secret_file("/h") == fs::path("/h/def/srs.secret"));
  auto missing_dir = srs::create_secret_file(dir.path() / "no" / "such" / "srs.secret");
  CHECK_FALSE(missing_dir);
}
