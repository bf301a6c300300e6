#include "wizmail/mailing_list.hpp"

#include <doctest/doctest.h>

#include <string>

#include "mime/message_head.hpp"
#include "mime/header_codec.hpp"

using namespace wizmail;

namespace {

MailingList make(MailingListPolicy p, MailingListSettings ml = {}) {
  return MailingList("ml", "example.jp", std::move(ml), std::move(p),
                     {"alice@example.jp", "Bob@Remote.example", "carol@example.jp"},
                     {"example.jp", "alias.example"});
}

const std::string kPost =
    "Received: from x by y\r\n"
    "From: Bob <bob@remote.example>\r\n"
    "To: ml@example.jp\r\n"
    "Reply-To: bob-private@remote.example\r\n"
    "Subject: hello\r\n"
    "X-Mailer: Foo 1.0\r\n"
    "x-priority: 3\r\n"
    "Return-Path: <bob@remote.example>\r\n"
    "Message-ID: <1@remote.example>\r\n"
    "\r\n"
    "body line\r\nX-Not-A-Header: stays\r\n";

std::string field(const std::string& msg, std::string_view name) { return mime::MessageHead(msg).get(name); }

}  // namespace

TEST_CASE("identity: address, List-Id, envelope sender") {
  auto l = make({});
  CHECK(l.address() == "ml@example.jp");
  CHECK(l.list_id() == "<ml.example.jp>");
  CHECK(l.envelope_sender() == "postmaster@example.jp");
  MailingListSettings s;
  s.admin_mail_address = "admin@example.jp";
  CHECK(make({}, s).envelope_sender() == "admin@example.jp");
  s.return_path = "bounces@example.jp";
  CHECK(make({}, s).envelope_sender() == "bounces@example.jp");
}

TEST_CASE("public level: 1 anyone, 0 members (envelope or From), -1 the list itself") {
  MailingListPolicy p;
  p.public_level = 1;
  CHECK(make(p).check("stranger@else.where", "Subject: x\r\n\r\n").verdict == MailingList::Verdict::distribute);
  p.public_level = 0;
  auto l0 = make(p);
  CHECK(l0.check("stranger@else.where", "Subject: x\r\n\r\n").verdict == MailingList::Verdict::not_permitted);
  CHECK(l0.check("BOB@remote.example", "Subject: x\r\n\r\n").verdict == MailingList::Verdict::distribute);
  CHECK(l0.check("", "From: Alice <alice@example.jp>\r\n\r\n").verdict == MailingList::Verdict::distribute);
  CHECK(l0.check("", "From: bob@remote.example.evil\r\n\r\n").verdict == MailingList::Verdict::not_permitted);
  p.public_level = -1;
  auto lm = make(p);
  CHECK(lm.check("alice@example.jp", "\r\n").verdict == MailingList::Verdict::not_permitted);
  CHECK(lm.check("ml@example.jp", "\r\n").verdict == MailingList::Verdict::distribute);
  CHECK(lm.check("ML@alias.example", "\r\n").verdict == MailingList::Verdict::distribute);
  CHECK(lm.check("ml@else.where", "\r\n").verdict == MailingList::Verdict::not_permitted);
  CHECK(lm.check("x@y", "From: ml@example.jp\r\n\r\n").verdict == MailingList::Verdict::distribute);
}

TEST_CASE("filter strings (decoded subjects) and loops (own List-Id)") {
  MailingListPolicy p;
  p.filter_strings = {"未承諾広告", "viagra"};
  auto l = make(p);
  CHECK(l.check("a@b", "Subject: =?ISO-2022-JP?B?GyRCTCQ+NUJ6OS05cBsoQg==?=\r\n\r\n").verdict ==
        MailingList::Verdict::filtered);
  CHECK(l.check("a@b", "Subject: cheap VIAGRA\r\n\r\n").verdict == MailingList::Verdict::filtered);
  CHECK(l.check("a@b", "Subject: fine\r\n\r\n").verdict == MailingList::Verdict::distribute);
  CHECK(l.check("a@b", "List-Id: ML list <ml.example.jp>\r\n\r\n").verdict == MailingList::Verdict::loop);
  CHECK(l.check("a@b", "List-Id: <ML.Example.JP>\r\n\r\n").verdict == MailingList::Verdict::loop);
  CHECK(l.check("a@b", "List-Id: <other.example.jp>\r\n\r\n").verdict == MailingList::Verdict::distribute);
  CHECK(to_string(MailingList::Verdict::loop) == "loop");
}

TEST_CASE("subject prefix: the manual's forms and mode 2") {
  MailingListPolicy p;
  auto l = make(p);
  CHECK(l.prefix(1) == "[ml0001]");
  CHECK(l.prefix(12345) == "[ml12345]");
  CHECK(l.subject("○○について", 1) == "[ml0001]○○について");  // raw UTF-8 in, raw UTF-8 out
  CHECK(l.subject("", 7) == "[ml0007]");
  CHECK(l.subject("Re: [ml0001]hello", 2) == "[ml0002]Re: [ml0001]hello");  // mode 1 keeps old ones
  MailingListSettings named;
  named.name = "サンプルメール:";
  auto n = make(p, named);
  auto s = n.subject("hello", 1);
  CHECK(s.find("=?UTF-8?B?") == 0);  // non-ASCII prefix on an ASCII subject: encoded
  CHECK(mime::decode_header(s).utf8 == "[サンプルメール:0001]hello");
  p.subject_header = 2;
  CHECK(make(p).subject("Re: [ml0001]hello", 2) == "[ml0002]Re: hello");
  CHECK(make(p).subject("[ml0003] Re: [ml0002]Re: x [other0001]", 4) == "[ml0004]Re: Re: x [other0001]");
  CHECK(make(p).subject("[ml] [mlx0001] [ml12", 5) == "[ml0005][ml] [mlx0001] [ml12");
  p.subject_header = 0;
  CHECK(make(p).subject("=?UTF-8?B?5pel?=", 3) == "=?UTF-8?B?5pel?=");
}

TEST_CASE("subject: ISO-2022-JP and Shift_JIS subjects are decoded, changed, re-encoded") {
  MailingListPolicy p;
  p.subject_header = 2;
  MailingListSettings named;
  named.name = "サンプルメール:";
  auto l = make(p, named);
  std::string in = mime::encode_header("Re: [サンプルメール:0001]会議の件", "ISO-2022-JP");
  auto out = l.subject(in, 2);
  CHECK(out.find("=?ISO-2022-JP?B?") == 0);
  CHECK(mime::decode_header(out).utf8 == "[サンプルメール:0002]Re: 会議の件");
  auto sj = l.subject("=?Shift_JIS?B?g2WDWINn?=", 3);
  CHECK(sj.find("=?Shift_JIS?B?") == 0);
  CHECK(mime::decode_header(sj).utf8 == "[サンプルメール:0003]テスト");
  // Raw ISO-2022-JP in the header comes back as encoded-words.
  auto raw = l.subject("\x1b$B%F%9%H\x1b(B", 4);
  CHECK(mime::decode_header(raw).utf8 == "[サンプルメール:0004]テスト");
}

TEST_CASE("rewrite: every from_kind, to_kind and x_element") {
  for (int from_kind : {0, 1, 2})
    for (int to_kind : {0, 1})
      for (int x : {0, 1}) {
        CAPTURE(from_kind);
        CAPTURE(to_kind);
        CAPTURE(x);
        MailingListPolicy p;
        p.from_kind = from_kind;
        p.to_kind = to_kind;
        p.x_element = x;
        auto l = make(p);
        auto r = l.rewrite(kPost, 9);
        mime::MessageHead h(r);
        CHECK(h.get("Subject") == "[ml0009]hello");
        CHECK(h.get("List-Id") == "<ml.example.jp>");
        CHECK(h.get("List-Post") == "<mailto:ml@example.jp>");
        CHECK(h.get("Precedence") == "list");
        CHECK(!h.has("Return-Path"));
        CHECK(h.get("Message-ID") == "<1@remote.example>");
        CHECK(h.get("Received") == "from x by y");
        CHECK(h.body() == "body line\r\nX-Not-A-Header: stays\r\n");  // the body is untouched
        CHECK(h.has("X-Mailer") == (x == 1));
        CHECK(h.has("X-Priority") == (x == 1));
        switch (from_kind) {
          case 0:
            CHECK(h.get("From") == "Bob <bob@remote.example>");
            CHECK(h.get("Reply-To") == "ml@example.jp");
            break;
          case 1:
            CHECK(h.get("From") == "ml@example.jp");
            CHECK(h.get("Reply-To") == "bob-private@remote.example");
            break;
          case 2:
            CHECK(h.get("From") == "Bob <bob@remote.example>");
            CHECK(h.get("Reply-To") == "Bob <bob@remote.example>");
            break;
        }
        CHECK(h.count("Reply-To") == 1);
        auto copy = l.copy_for(r, "carol@example.jp");
        CHECK(field(copy, "To") == (to_kind == 0 ? "carol@example.jp" : "ml@example.jp"));
        CHECK(mime::MessageHead(copy).count("To") == 1);
      }
}

TEST_CASE("rewrite: a message without Subject or From, bare LF, folded fields") {
  MailingListPolicy p;
  p.from_kind = 2;
  auto l = make(p);
  auto r = l.rewrite("To: x\nX-A: 1\n  folded\n\nbody\n", 1);
  mime::MessageHead h(r);
  CHECK(h.get("Subject") == "[ml0001]");
  CHECK(!h.has("Reply-To"));
  CHECK(!h.has("X-A"));
  CHECK(h.body() == "body\n");
  // Folded Subject is unfolded before prefixing.
  auto f = make({}).rewrite("Subject: a\r\n b\r\n\r\n", 2);
  CHECK(field(f, "Subject") == "[ml0002]a b");
}
