#include "milter/codec.hpp"

#include <doctest/doctest.h>

#include "milter/chain.hpp"
#include "milter/client.hpp"

using namespace wizmail::milter;

namespace {

std::string be32(std::uint32_t v) {
  std::string s;
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

PacketReader::Packet pkt(char code, std::string data) { return {code, std::move(data)}; }

std::string z(std::string_view s) { return std::string(s) + '\0'; }

}  // namespace

TEST_CASE("packets are length, code, data") {
  CHECK(packet('Q', "") == std::string("\0\0\0\1Q", 5));
  CHECK(encode_optneg(6, 0x1FF, 0x1FFFFF) == be32(13) + "O" + be32(6) + be32(0x1FF) + be32(0x1FFFFF));
  CHECK(encode_helo("mx.example") == be32(12) + "H" + z("mx.example"));
  CHECK(encode_connect("unknown", '4', 2525, "192.0.2.7") ==
        be32(1 + 8 + 1 + 2 + 10) + "C" + z("unknown") + "4" + std::string("\x09\xdd", 2) + z("192.0.2.7"));
  CHECK(encode_connect("localhost", 'U', 0, "") == be32(1 + 10 + 1) + "C" + z("localhost") + "U");
  CHECK(encode_envelope(cmd::mail, "a@b.example", {"SIZE=10", "BODY=8BITMIME"}) ==
        be32(1 + 14 + 8 + 14) + "M" + z("<a@b.example>") + z("SIZE=10") + z("BODY=8BITMIME"));
  CHECK(encode_envelope(cmd::rcpt, "", {}) == be32(4) + "R" + z("<>"));
  CHECK(encode_macros(cmd::mail, {{"i", "Q1"}, {"{mail_addr}", "a@b"}}) ==
        be32(1 + 1 + 2 + 3 + 12 + 4) + "D" + "M" + z("i") + z("Q1") + z("{mail_addr}") + z("a@b"));
  CHECK(encode_header("Subject", "hi") == be32(1 + 8 + 3) + "L" + z("Subject") + z("hi"));
  CHECK(encode_simple(cmd::eom) == be32(1) + "E");
  CHECK(encode_unknown("XYZZY") == be32(7) + "U" + z("XYZZY"));
  // A NUL inside a string would end it early at the milter: cut there.
  CHECK(encode_helo(std::string("a\0b", 3)) == be32(3) + "H" + z("a"));
  // Body chunks are at most 65535 octets.
  std::string big(70000, 'x');
  CHECK(encode_body(big).size() == 5 + kChunk);
}

TEST_CASE("the reader cuts a stream into packets at any chunk size") {
  std::string stream = packet('c', "") + packet('h', z("X-A") + z("1")) + packet('y', z("550 5.7.1 no"));
  for (std::size_t step : {1u, 2u, 3u, 5u, 7u, 64u}) {
    PacketReader r;
    std::vector<char> codes;
    for (std::size_t i = 0; i < stream.size(); i += step) {
      r.feed(std::string_view(stream).substr(i, step));
      for (;;) {
        auto p = r.next();
        REQUIRE(p);
        if (!*p) break;
        codes.push_back((*p)->code);
      }
    }
    CHECK(codes == std::vector<char>{'c', 'h', 'y'});
    CHECK(r.empty());
  }
}

TEST_CASE("the reader refuses lengths of 0 and over the limit") {
  PacketReader r;
  r.feed(be32(0));
  CHECK_FALSE(r.next());
  PacketReader r2;
  r2.feed(be32(kMaxPacket + 1) + "b");
  CHECK_FALSE(r2.next());
  PacketReader r3;
  r3.feed(be32(kMaxPacket) + "b");
  auto p = r3.next();
  REQUIRE(p);
  CHECK_FALSE(*p);  // valid, waiting for more
}

TEST_CASE("negotiation replies") {
  auto ok = decode_optneg(pkt('O', be32(6) + be32(act::addhdrs | act::chgbody) + be32(proto::noconnect | proto::nr_hdr)),
                          act::all, proto::offered);
  REQUIRE(ok);
  CHECK(ok->version == 6);
  CHECK(ok->actions == (act::addhdrs | act::chgbody));
  CHECK(ok->protocol == (proto::noconnect | proto::nr_hdr));
  CHECK_FALSE(ok->symlist[static_cast<int>(Stage::mail)]);
  // Macro lists per stage.
  auto lists = decode_optneg(pkt('O', be32(6) + be32(0) + be32(0) + be32(2) + z("{mail_addr} i") + be32(5) + z("")),
                             act::all, proto::offered);
  REQUIRE(lists);
  REQUIRE(lists->symlist[2]);
  CHECK(*lists->symlist[2] == std::vector<std::string>{"{mail_addr}", "i"});
  REQUIRE(lists->symlist[5]);
  CHECK(lists->symlist[5]->empty());
  // Malformed: short, wrong code, old version, actions or steps not offered,
  // a bad macro list.
  CHECK_FALSE(decode_optneg(pkt('O', be32(6) + be32(0)), act::all, proto::offered));
  CHECK_FALSE(decode_optneg(pkt('c', be32(6) + be32(0) + be32(0)), act::all, proto::offered));
  CHECK_FALSE(decode_optneg(pkt('O', be32(1) + be32(0) + be32(0)), act::all, proto::offered));
  CHECK_FALSE(decode_optneg(pkt('O', be32(6) + be32(0x200) + be32(0)), act::all, proto::offered));
  CHECK_FALSE(decode_optneg(pkt('O', be32(6) + be32(0) + be32(proto::rcpt_rej)), act::all, proto::offered));
  CHECK_FALSE(decode_optneg(pkt('O', be32(6) + be32(0) + be32(0) + be32(9) + z("i")), act::all, proto::offered));
  CHECK_FALSE(decode_optneg(pkt('O', be32(6) + be32(0) + be32(0) + be32(2) + "i"), act::all, proto::offered));
  CHECK_FALSE(decode_optneg(pkt('O', be32(6) + be32(0) + be32(0) + "xy"), act::all, proto::offered));
}

TEST_CASE("every reply decodes") {
  using K = Reply::Kind;
  struct Case {
    char code;
    K kind;
  } simple[] = {{'a', K::accept}, {'c', K::cont}, {'r', K::reject}, {'t', K::tempfail}, {'d', K::discard},
                {'s', K::skip},   {'p', K::progress}, {'4', K::shutdown}, {'f', K::conn_fail}};
  for (auto c : simple) {
    auto r = decode_reply(pkt(c.code, ""));
    REQUIRE(r);
    CHECK(r->kind == c.kind);
    CHECK_FALSE(r->modification());
    CHECK_FALSE(decode_reply(pkt(c.code, "x")));  // no data allowed
  }
  CHECK(decode_reply(pkt('a', ""))->final());
  CHECK_FALSE(decode_reply(pkt('p', ""))->final());

  auto y = decode_reply(pkt('y', z("554 5.7.1 go away")));
  REQUIRE(y);
  CHECK(y->kind == K::replycode);
  CHECK(y->text == "554 5.7.1 go away");
  auto ml = decode_reply(pkt('y', z("550-5.7.1 first\r\n550 5.7.1 last")));
  REQUIRE(ml);
  CHECK(ml->text == "550-5.7.1 first\r\n550 5.7.1 last");

  auto h = decode_reply(pkt('h', z("X-Spam") + z("yes")));
  REQUIRE(h);
  CHECK(h->kind == K::addheader);
  CHECK(h->name == "X-Spam");
  CHECK(h->value == "yes");
  CHECK(h->modification());

  auto m = decode_reply(pkt('m', be32(2) + z("Subject") + z("")));
  REQUIRE(m);
  CHECK(m->kind == K::chgheader);
  CHECK(m->index == 2);
  CHECK(m->value.empty());
  auto i = decode_reply(pkt('i', be32(0) + z("X-First") + z("1")));
  REQUIRE(i);
  CHECK(i->kind == K::insheader);
  CHECK(i->index == 0);

  auto e = decode_reply(pkt('e', z("<new@example.org>")));
  REQUIRE(e);
  CHECK(e->kind == K::chgfrom);
  CHECK(e->value == "<new@example.org>");
  CHECK(e->args.empty());
  auto e2 = decode_reply(pkt('e', z("<new@example.org>") + z("SIZE=1")));
  REQUIRE(e2);
  CHECK(e2->args == "SIZE=1");

  CHECK(decode_reply(pkt('+', z("<x@y>")))->kind == K::addrcpt);
  CHECK(decode_reply(pkt('-', z("<x@y>")))->kind == K::delrcpt);
  auto ap = decode_reply(pkt('2', z("<x@y>") + z("NOTIFY=NEVER")));
  REQUIRE(ap);
  CHECK(ap->kind == K::addrcpt_par);
  CHECK(ap->args == "NOTIFY=NEVER");
  auto b = decode_reply(pkt('b', std::string("new\r\nbody\0x", 11)));
  REQUIRE(b);
  CHECK(b->kind == K::replbody);
  CHECK(b->body.size() == 11);
  auto q = decode_reply(pkt('q', z("looks odd")));
  REQUIRE(q);
  CHECK(q->kind == K::quarantine);
  CHECK(q->text == "looks odd");
}

TEST_CASE("malformed replies are refused") {
  CHECK_FALSE(decode_reply(pkt('Z', "")));                        // unknown code
  CHECK_FALSE(decode_reply(pkt('y', "550 5.7.1 no NUL")));        // string not terminated
  CHECK_FALSE(decode_reply(pkt('y', z("250 2.0.0 ok"))));         // not 4xx/5xx
  CHECK_FALSE(decode_reply(pkt('y', z("55"))));                   // too short
  CHECK_FALSE(decode_reply(pkt('y', z("550 4.7.1 mixed"))));      // enhanced of another class
  CHECK_FALSE(decode_reply(pkt('y', z("550-5.7.1 a\r\n451 4.7.1 b"))));  // lines disagree
  CHECK_FALSE(decode_reply(pkt('y', z("550 5.7.1 a\r\n550 5.7.1 b"))));  // no '-' on the first
  CHECK_FALSE(decode_reply(pkt('y', z("550 a\nb"))));             // bare LF
  CHECK_FALSE(decode_reply(pkt('y', z("550 ok") + "trailing")));  // data after the string
  CHECK_FALSE(decode_reply(pkt('h', z("X-A"))));                  // value missing
  CHECK_FALSE(decode_reply(pkt('h', z("") + z("v"))));            // empty name
  CHECK_FALSE(decode_reply(pkt('m', "\0\0")));                    // index cut short
  CHECK_FALSE(decode_reply(pkt('i', be32(1) + z("X-A"))));        // value missing
  CHECK_FALSE(decode_reply(pkt('e', "")));                        // no sender
  CHECK_FALSE(decode_reply(pkt('e', z(""))));                     // empty sender
  CHECK_FALSE(decode_reply(pkt('e', z("<a@b>") + z("X") + z("Y"))));  // too many strings
  CHECK_FALSE(decode_reply(pkt('+', z("<a@b>") + z("extra"))));
  CHECK_FALSE(decode_reply(pkt('-', "")));
  CHECK_FALSE(decode_reply(pkt('q', "no NUL")));
}

TEST_CASE("reply codes") {
  CHECK(valid_reply_code("550"));
  CHECK(valid_reply_code("451 4.7.1 later"));
  CHECK(valid_reply_code("421 4.7.0 closing"));
  CHECK_FALSE(valid_reply_code("350 x"));
  CHECK_FALSE(valid_reply_code("5x0 x"));
  CHECK_FALSE(valid_reply_code("550x"));
}

TEST_CASE("milter addresses") {
  auto a = parse_address("inet:127.0.0.1:11332");
  REQUIRE(a);
  CHECK(a->kind == Address::Kind::inet);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 11332);
  auto v6 = parse_address("inet:[::1]:8891");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  auto h = parse_address("inet6:localhost:8891");
  REQUIRE(h);
  CHECK(h->host == "localhost");
  auto u = parse_address(" unix:/run/opendkim/opendkim.sock ");
  REQUIRE(u);
  CHECK(u->kind == Address::Kind::unix_socket);
  CHECK(u->path == "/run/opendkim/opendkim.sock");
  CHECK(parse_address("local:/run/x.sock"));
  for (const char* bad : {"", "127.0.0.1:8891", "inet:", "inet:host", "inet::25", "inet:h:0", "inet:h:65536",
                          "inet:h:x", "unix:", "unix:relative.sock", "tcp:h:1"})
    CHECK_MESSAGE(!parse_address(bad), bad);
}

TEST_CASE("default actions") {
  CHECK(parse_default_action("tempfail") == DefaultAction::tempfail);
  CHECK(parse_default_action(" Accept ") == DefaultAction::accept);
  CHECK(parse_default_action("REJECT") == DefaultAction::reject);
  CHECK_FALSE(parse_default_action("quarantine"));
  CHECK_FALSE(parse_default_action(""));
}

TEST_CASE("messages split into headers and body and back") {
  const std::string text = "Received: from a\r\n\tby b\r\nSubject: hi\r\nX-Empty:\r\n\r\nbody\r\n.line\r\n";
  auto m = Message::parse(text);
  REQUIRE(m.headers.size() == 3);
  CHECK(m.headers[0].name == "Received");
  CHECK(m.headers[0].value == " from a\r\n\tby b");
  CHECK(m.headers[1].value == " hi");
  CHECK(m.headers[2].value.empty());
  CHECK(m.body == "body\r\n.line\r\n");
  CHECK(m.serialize() == text);
  // No body at all, and no blank line.
  auto h = Message::parse("Subject: x\r\n");
  CHECK(h.headers.size() == 1);
  CHECK(h.body.empty());
  // A line that is no header starts the body.
  auto odd = Message::parse("Subject: x\r\nnot a header\r\nmore\r\n");
  CHECK(odd.headers.size() == 1);
  CHECK(odd.body == "not a header\r\nmore\r\n");
}
