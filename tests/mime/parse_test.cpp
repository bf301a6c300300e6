#include "wizmail/admin/mime.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.hpp"

using namespace wizmail;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

}  // namespace

TEST_CASE("sanitize_file_name") {
  CHECK(sanitize_file_name("report.pdf", "x") == "report.pdf");
  CHECK(sanitize_file_name("../../x", "f") == "x");
  CHECK(sanitize_file_name("..\\..\\windows\\evil.exe", "f") == "evil.exe");
  CHECK(sanitize_file_name("/etc/passwd", "f") == "passwd");
  CHECK(sanitize_file_name("..", "f") == "f");
  CHECK(sanitize_file_name(".", "f") == "f");
  CHECK(sanitize_file_name("", "f") == "f");
  CHECK(sanitize_file_name("dir/", "f") == "f");
  CHECK(sanitize_file_name("   ", "f") == "f");
  CHECK(sanitize_file_name("...", "f") == "f");
  CHECK(sanitize_file_name(".bashrc", "f") == "_bashrc");
  CHECK(sanitize_file_name("-rf", "f") == "_rf");
  CHECK(sanitize_file_name(std::string("a\0b.txt", 7), "f") == "a_b.txt");
  CHECK(sanitize_file_name("a\r\nb\x1b[2J.txt", "f") == "a__b_[2J.txt");
  CHECK(sanitize_file_name("what?<*>|:\".txt", "f") == "what_______.txt");
  CHECK(sanitize_file_name("name. . ", "f") == "name");
  CHECK(sanitize_file_name("\xff\xfe.txt", "f") == "__.txt");
  CHECK(sanitize_file_name("日本語.txt", "f") == "日本語.txt");
  // Long names: cut on a UTF-8 boundary, extension kept, never over the limit.
  auto long_ascii = sanitize_file_name(std::string(500, 'a') + ".pdf", "f", 200);
  CHECK(long_ascii.size() == 200);
  CHECK(long_ascii.ends_with(".pdf"));
  std::string jp;
  for (int i = 0; i < 200; ++i) jp += "あ";
  auto long_jp = sanitize_file_name(jp + ".txt", "f", 200);
  CHECK(long_jp.size() <= 200);
  CHECK(long_jp.ends_with(".txt"));
  CHECK(sanitize_file_name(long_jp, "f", 200) == long_jp);  // valid UTF-8 left
  auto long_ext = sanitize_file_name("a." + std::string(300, 'b'), "f", 100);
  CHECK(long_ext.size() <= 100);
  CHECK(!long_ext.empty());
}

TEST_CASE("parse_mail_files: refuses bad inputs and an output inside the input") {
  test::TempDir h("wizmail-mime");
  CHECK_FALSE(parse_mail_files(h.path() / "missing", h.path() / "out"));
  fs::create_directories(h.path() / "in");
  write(h.path() / "in" / "m", "Subject: hi\r\n\r\nbody\r\n");
  CHECK_FALSE(parse_mail_files(h.path() / "in", h.path() / "in" / "out"));
  CHECK_FALSE(fs::exists(h.path() / "in" / "out"));
  auto r = parse_mail_files(h.path() / "in", h.path() / "out");
  REQUIRE(r);
  CHECK(r->messages == 1);
  CHECK(r->errors.empty());
  std::ifstream body(h.path() / "out" / "m" / "body.txt");
  std::string text((std::istreambuf_iterator<char>(body)), {});
  CHECK(text == "body\n");
  // Again into the same folder: nothing is overwritten.
  auto again = parse_mail_files(h.path() / "in" / "m", h.path() / "out");
  REQUIRE(again);
  CHECK(fs::exists(h.path() / "out" / "m-1" / "headers.txt"));
}
