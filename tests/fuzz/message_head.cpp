// Fuzz target: the message head parser (mime/message_head.hpp) and what
// the mailing list does with a posted message (wizmail/mailing_list.hpp).
//
// Input: byte 0 = list policy (bits 0-1 from_kind, 2 to_kind, 3 keep X-,
// 4-5 subject_header, 6-7 public_level -1..1), byte 1 = post number; the
// rest is a message as received.
// Properties: parsing the printed head gives the same head (idempotent);
// every field is CRLF-terminated lines without bare LF; a value set is read
// back as set, also after printing and parsing again; the list's copy has
// exactly one Subject, List-Id, List-Post and Precedence, no Return-Path or
// Delivered-To, no header field that neither the post nor the list wrote
// (an encoded subject cannot inject one), and the post's body unchanged.
#include <set>
#include <string>

#include "mime/message_head.hpp"
#include "fuzz.hpp"
#include "util/strings.hpp"
#include "wizmail/mailing_list.hpp"

using namespace wizmail;
using wizmail::mime::MessageHead;
using wizmail::fuzz::show;

namespace {

void check_fields(const MessageHead& h) {
  for (const auto& f : h.fields()) {
    FUZZ_CHECK(f.raw.ends_with("\r\n"));
    for (std::size_t i = 0; i < f.raw.size(); ++i)
      if (f.raw[i] == '\n') FUZZ_CHECK_MSG(i > 0 && f.raw[i - 1] == '\r', show(f.raw));
    FUZZ_CHECK(f.name.find_first_of("\n:") == std::string::npos);
  }
}

std::string lower(std::string_view s) { return util::to_lower(s); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  std::uint8_t policy_bits = in.byte();
  std::int64_t count = in.byte();
  std::string_view message = in.rest();

  MessageHead head(message);
  check_fields(head);
  std::string once = head.str();
  MessageHead again(once);
  FUZZ_CHECK_MSG(again.str() == once, show(once));
  FUZZ_CHECK(again.fields().size() == head.fields().size());
  FUZZ_CHECK(again.body() == head.body());
  for (const auto& [name, value] : head.unfolded()) {
    FUZZ_CHECK(value.find_first_of("\r\n") == std::string::npos);
    (void)mime::extract_address(value);
  }

  // A value without line breaks is read back as set, before and after printing.
  std::string value(util::trim(head.body().substr(0, head.body().find_first_of("\r\n"))));
  MessageHead edited(message);
  edited.set("Subject", value);
  edited.prepend("X-Fuzz", "1");
  FUZZ_CHECK(edited.get("Subject") == value);
  FUZZ_CHECK(edited.count("Subject") == 1);
  MessageHead reread(edited.str());
  FUZZ_CHECK_MSG(reread.get("Subject") == value, show(edited.str()));
  FUZZ_CHECK(reread.count("Subject") == 1);
  edited.remove_prefix("x-");
  FUZZ_CHECK(!edited.has("X-Fuzz"));

  // The list's copy.
  MailingListPolicy policy;
  policy.from_kind = policy_bits & 3;
  policy.to_kind = (policy_bits >> 2) & 1;
  policy.x_element = (policy_bits >> 3) & 1;
  policy.subject_header = (policy_bits >> 4) & 3;
  policy.public_level = static_cast<int>((policy_bits >> 6) % 3) - 1;
  policy.filter_strings = {"spam", "[wiz-list"};
  MailingListSettings ml;
  ml.name = (policy_bits & 1) ? "wiz-list" : "";
  MailingList list("wiz", "Example.org", ml, policy, {"alice@example.org", "bob@remote.example"});
  (void)list.check("alice@example.org", message);
  (void)list.check("", message);
  std::string copy = list.copy_for(list.rewrite(message, count), "bob@remote.example");
  MessageHead out(copy);
  check_fields(out);
  FUZZ_CHECK_MSG(out.body() == head.body(), show(copy));
  for (const char* one : {"List-Id", "List-Post", "Precedence"}) FUZZ_CHECK_MSG(out.count(one) == 1, show(copy));
  FUZZ_CHECK(!out.has("Return-Path") && !out.has("Delivered-To"));
  if (policy.subject_header != 0) FUZZ_CHECK_MSG(out.count("Subject") == 1, show(copy));
  std::set<std::string> known;
  for (const auto& f : head.fields()) known.insert(lower(f.name));
  for (const char* n : {"subject", "from", "reply-to", "to", "list-id", "list-post", "precedence"})
    known.insert(n);
  for (const auto& f : out.fields())
    FUZZ_CHECK_MSG(known.count(lower(f.name)), "new field " + show(f.name) + " in " + show(copy));
  return 0;
}
