// The quarantine (hold queue) of milter-quarantined mail: the record's
// format both ways, malformed files refused, and the folder operations.
#include "wizmail/quarantine.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "temp_dir.hpp"

using namespace wizmail;
namespace fs = std::filesystem;

namespace {
const std::string message = "Subject: hi\r\nFrom: a@b.test\r\n\r\nbody\r\n";
}

TEST_CASE("quarantine record: written and read back, reason cleaned of control characters") {
  auto text = quarantine_record("bad\r\nX-Injected: 1", "a@b.test", {"x@local", "y@local"}, message);
  CHECK(text.starts_with("X-Wizmail-Quarantine: bad  X-Injected: 1\r\nX-Wizmail-Envelope-From: <a@b.test>\r\n"
                         "X-Wizmail-Envelope-To: <x@local>\r\nX-Wizmail-Envelope-To: <y@local>\r\nSubject: hi\r\n"));
  auto q = parse_quarantine_record(text);
  REQUIRE(q);
  CHECK(q->reason == "bad  X-Injected: 1");
  CHECK(q->sender == "a@b.test");
  CHECK(q->recipients == std::vector<std::string>{"x@local", "y@local"});
  CHECK(q->message == message);
  CHECK(q->size == message.size());

  auto null_sender = parse_quarantine_record(quarantine_record("r", "", {"x@local"}, message));
  REQUIRE(null_sender);
  CHECK(null_sender->sender.empty());
}

TEST_CASE("quarantine record: malformed files are refused, never half read") {
  const std::string ok = quarantine_record("r", "a@b.test", {"x@local"}, message);
  CHECK(parse_quarantine_record(ok));
  for (std::string_view bad : {
           std::string_view(""),
           std::string_view("Subject: hi\r\n\r\nbody\r\n"),                                         // no fields
           std::string_view("X-Wizmail-Quarantine: r\r\nSubject: hi\r\n\r\n"),                      // no sender
           std::string_view("X-Wizmail-Quarantine: r\r\nX-Wizmail-Envelope-From: <a@b>\r\n\r\nx"),  // no rcpt
           std::string_view("X-Wizmail-Quarantine: r\r\nX-Wizmail-Envelope-From: a@b\r\n"),         // no <>
           std::string_view("X-Wizmail-Quarantine: r\r\nX-Wizmail-Envelope-From: <a@b>\r\n"
                            "X-Wizmail-Envelope-To: <>\r\n\r\nx"),  // empty recipient
       }) {
    auto q = parse_quarantine_record(bad);
    CHECK_FALSE(q);
    if (!q) CHECK(q.error().code == Errc::parse);
  }
  // Cut anywhere inside the fields in front: refused.
  const auto fields_end = ok.find("Subject:");
  for (std::size_t cut = 0; cut < fields_end; ++cut) CHECK_FALSE(parse_quarantine_record(ok.substr(0, cut)));
}

TEST_CASE("quarantine folder: write durably (0600), list oldest first, load, delete; ids checked") {
  test::TempDir tmp("wizmail-quarantine");
  const auto dir = tmp.path() / "resendmail" / "quarantine";
  auto empty = list_quarantine(dir);
  REQUIRE(empty);
  CHECK(empty->empty());  // no folder yet: nothing quarantined

  auto a = quarantine_message(dir, "spam", "a@b.test", {"x@local"}, message);
  REQUIRE(a);
  auto b = quarantine_message(dir, "virus", "c@d.test", {"y@local", "z@local"}, message);
  REQUIRE(b);
  struct stat st{};
  REQUIRE(::stat((dir / (*a + ".eml")).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  // Not ours: skipped by the listing.
  std::ofstream(dir / "stray.eml") << "garbage";
  std::ofstream(dir / "notes.txt") << "x";

  auto all = list_quarantine(dir);
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  CHECK(((*all)[0].id == *a || (*all)[0].id == *b));
  for (const auto& q : *all) {
    CHECK(q.message.empty());               // the listing does not keep the text
    CHECK(q.size == message.size());        // but knows its size
    CHECK(q.created > 0);
  }

  auto loaded = load_quarantined(dir, *b);
  REQUIRE(loaded);
  CHECK(loaded->id == *b);
  CHECK(loaded->reason == "virus");
  CHECK(loaded->recipients.size() == 2);
  CHECK(loaded->message == message);

  CHECK(delete_quarantined(dir, *a));
  auto gone = load_quarantined(dir, *a);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().code == Errc::not_found);
  auto again = delete_quarantined(dir, *a);
  REQUIRE_FALSE(again);
  CHECK(again.error().code == Errc::not_found);

  for (std::string_view bad_id : {"../x", "", ".hidden", "a/b", "x y"}) {
    auto r = load_quarantined(dir, bad_id);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::invalid_argument);
    CHECK_FALSE(delete_quarantined(dir, bad_id));
  }
  // Fields longer than the 64 KiB the listing reads first (many
  // recipients): still listed whole, with the message's size.
  std::vector<std::string> many;
  for (int i = 0; i < 3000; ++i) many.push_back(std::string("recipient-") + std::to_string(i) + "@local.test");
  const std::string big_body(200000, 'x');
  auto c = quarantine_message(dir, "many", "a@b.test", many, message + big_body);
  REQUIRE(c);
  all = list_quarantine(dir);
  REQUIRE(all);
  auto it = std::find_if(all->begin(), all->end(), [&](const auto& q) { return q.id == *c; });
  REQUIRE(it != all->end());
  CHECK(it->recipients.size() == 3000);
  CHECK(it->recipients.back() == "recipient-2999@local.test");
  CHECK(it->size == message.size() + big_body.size());

  auto stray = load_quarantined(dir, "stray");
  REQUIRE_FALSE(stray);
  CHECK(stray.error().code == Errc::parse);
}
