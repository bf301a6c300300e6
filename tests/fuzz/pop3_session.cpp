// Fuzz target: the POP3 session (pop3::Session) fed arbitrary client bytes
// in arbitrary chunks, over the in-memory maildrop of its unit tests
// (tests/pop3/fake_store.hpp).
//
// Input: 2 option bytes, then the client's bytes.
//   byte 0: bit 0 STLS offered, 1 implicit TLS, 2 auth_requires_tls,
//           3 loopback peer, 4 uidl_interval, 5 UPDATE fails, 6 opening a
//           message fails, 7 the password check fails (I/O)
//   byte 1: bit 0 alice's mailbox is locked elsewhere, 1 at most 2 login
//           failures, bits 2-7 the chunk seed
// Properties: the server only ever writes whole CRLF lines; nothing happens
// after a close; a feed that may_block() calls harmless never logs in or
// deletes (those run off the I/O thread only when may_block() says so);
// UPDATE removes only existing messages, each once; the mailbox lock is
// released when the session ends; without STLS the transcript and the
// deletions do not depend on how the bytes were split.
#include <string>
#include <vector>

#include "../pop3/fake_store.hpp"
#include "fuzz.hpp"
#include "mime/dot_stuffer.hpp"
#include "pop3/session.hpp"

using namespace wizmail;
using namespace wizmail::pop3;
using wizmail::fuzz::show;

namespace {

fake::World make_world(std::uint8_t a, std::uint8_t b) {
  fake::World w;
  w.accounts["alice"] = {"secret", false,
                         {{"1000.M1P1.host", "Subject: one\r\n\r\nhello\r\n"},
                          {"1001.M2P1.host", "Subject: two\r\n\r\n.dot\r\n.\r\nline3\r\n"},
                          {"1002.M3P1.host", "Subject: three\n\nbare lf\n.\n"},
                          {"1003.M4P1.host", ""},
                          {"1004.M5P1.host", "no header end\r\n.. \rbare cr\r"},
                          {std::string(80, 'u'), "From: x\r\n\r\n" + std::string(1500, 'x')}}};
  w.accounts["bob"] = {"bobpw", true, {}};
  auto& many = w.accounts["carol"];
  many.password = "pw";
  for (int i = 0; i < 40; ++i) {
    // Appends: GCC 12 at -O3 reports a false -Wrestrict on "m" + std::string&&.
    std::string uid = "m", text = "Subject: ";
    uid.append(std::to_string(i));
    text.append(std::to_string(i)).append("\r\n\r\nx\r\n");
    many.messages.push_back({uid, text});
  }
  w.fail_commit = a & 32;
  w.fail_open_message = a & 64;
  w.fail_verify = a & 128;
  if (b & 1) w.locked.insert("alice");
  return w;
}

SessionOptions options(std::uint8_t a, std::uint8_t b) {
  SessionOptions o;
  o.host = "pop.example";
  o.peer_ip = (a & 8) ? "127.0.0.1" : "192.0.2.7";
  o.peer_loopback = a & 8;
  o.apop_timestamp = "<123.456.1@pop.example>";
  o.local_domains = {"example.com"};
  o.tls_available = a & 1;
  o.tls_active = a & 2;
  o.auth_requires_tls = a & 4;
  o.uidl_interval_ms = (a & 16) ? 100 : 0;
  o.failure_delay = std::chrono::milliseconds(100);
  o.max_login_failures = (b & 2) ? 2 : 5;
  return o;
}

void check_send(std::string_view t) {
  FUZZ_CHECK_MSG(t.ends_with("\r\n"), show(t));
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '\n') FUZZ_CHECK_MSG(i > 0 && t[i - 1] == '\r', show(t));
    if (t[i] == '\r') FUZZ_CHECK_MSG(i + 1 < t.size() && t[i + 1] == '\n', show(t));
  }
}

struct Run {
  std::string text;
  std::vector<std::vector<std::size_t>> commits;
  std::vector<std::string> logins;
  bool tls = false;
};

Run run(std::uint8_t a, std::uint8_t b, std::string_view bytes, bool whole) {
  Run r;
  fake::World world = make_world(a, b);
  {
    fake::Backend backend(world);
    Session s(options(a, b), backend);
    Output out;
    bool closed = false;
    auto render = [&] {
      for (auto& act : out.actions) {
        FUZZ_CHECK(!closed);  // nothing after a close
        switch (act.kind) {
          case Action::Kind::send:
            check_send(act.text);
            r.text += act.text;
            break;
          case Action::Kind::stream: {
            FUZZ_CHECK(act.reader);
            mime::DotStuffer d(act.body_lines);
            char buf[97];
            for (;;) {
              auto n = act.reader->read(buf, sizeof buf);
              FUZZ_CHECK(n.has_value());
              if (*n == 0 || !d.feed(std::string_view(buf, *n), r.text)) break;
            }
            d.finish(r.text);
            break;
          }
          case Action::Kind::delay: r.text += "<delay>"; break;
          case Action::Kind::start_tls:
            r.tls = true;
            r.text += "<starttls>";
            s.tls_started();
            break;
          case Action::Kind::close: closed = true; break;
        }
      }
      out.clear();
    };
    // A step that may_block() calls harmless must not reach the disk.
    auto guarded = [&](std::string_view more, auto&& step) {
      bool harmless = !s.may_block(more);
      auto logins = world.logins.size();
      auto commits = world.commits.size();
      step();
      if (harmless) {
        FUZZ_CHECK_MSG(world.logins.size() == logins, "login on the I/O thread: " + show(more));
        FUZZ_CHECK_MSG(world.commits.size() == commits, "UPDATE on the I/O thread: " + show(more));
      }
    };
    s.greeting(out);
    render();
    fuzz::Chunker chunker(static_cast<std::uint8_t>(b >> 2));
    while (!bytes.empty() && !closed) {
      auto piece = bytes.substr(0, whole ? bytes.size() : chunker.next());
      bytes.remove_prefix(piece.size());
      guarded(piece, [&] { s.feed(piece, out); });
      render();
      while (s.has_backlog() && !closed) {
        guarded({}, [&] { s.resume(out); });
        render();
      }
    }
    if (closed) {
      s.feed("NOOP\r\nQUIT\r\n", out);
      FUZZ_CHECK(out.actions.empty());
    }
    s.connection_lost();
  }
  FUZZ_CHECK(world.open_drops == 0);  // the lock is released
  for (const auto& c : world.commits) {
    for (std::size_t i = 0; i < c.size(); ++i) {
      FUZZ_CHECK(c[i] < 40);  // the largest mailbox
      if (i) FUZZ_CHECK(c[i - 1] < c[i]);
    }
  }
  r.commits = world.commits;
  r.logins = world.logins;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  std::uint8_t a = in.byte(), b = in.byte();
  std::string_view bytes = in.rest();
  Run chunked = run(a, b, bytes, false);
  if (!chunked.tls) {
    Run whole = run(a, b, bytes, true);
    FUZZ_CHECK_MSG(whole.text == chunked.text,
                   "whole: " + show(whole.text) + "\nchunked: " + show(chunked.text));
    FUZZ_CHECK(whole.commits == chunked.commits && whole.logins == chunked.logins);
  }
  return 0;
}
