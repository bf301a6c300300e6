#include "store/journal_record.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace journal = wizmail::store::journal;
namespace fs = std::filesystem;

TEST_CASE("journal records: what the writer lays out, recovery reads back") {
  std::vector<fs::path> dirs{"/home/wiz/mailbox/alice", "/home/wiz/mailbox/bob"};
  std::string rec = journal::encode_record("1700000000.M1P2.host", dirs, "Subject: x\r\n\r\nhi\r\n", 7);
  CHECK(rec.size() % 8 == 0);
  CHECK(rec.size() == journal::record_size("1700000000.M1P2.host", dirs, 18));
  CHECK(journal::record_length(rec, 7, rec.size()) == rec.size());
  auto r = journal::parse_record(rec + std::string(64, '\xff'), 7);  // what follows is ignored
  REQUIRE(r);
  CHECK(r->len == rec.size());
  CHECK(r->name == "1700000000.M1P2.host");
  CHECK(r->maildirs == dirs);
  CHECK(r->data == "Subject: x\r\n\r\nhi\r\n");
}

TEST_CASE("journal records: torn, stale, short or escaping records are refused") {
  std::vector<fs::path> dirs{"/m/a"};
  std::string rec = journal::encode_record("name", dirs, "data", 3);
  CHECK_FALSE(journal::parse_record(rec, 4));                      // another sequence
  CHECK_FALSE(journal::record_length(rec, 3, rec.size() - 8));      // does not fit the ring
  CHECK_FALSE(journal::parse_record(rec.substr(0, rec.size() - 8), 3));
  for (std::size_t i = 0; i < rec.size(); ++i) {
    std::string torn = rec;
    torn[i] = static_cast<char>(torn[i] ^ 1);
    CAPTURE(i);
    CHECK_FALSE(journal::parse_record(torn, 3));
  }
  for (const char* bad : {"", ".hidden", "../x", "a/b"})
    CHECK_FALSE(journal::parse_record(journal::encode_record(bad, dirs, "d", 1), 1));
}
