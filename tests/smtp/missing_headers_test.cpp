#include "smtp/missing_headers.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace wizmail;
using namespace wizmail::smtp;

namespace {

struct Collect : MessageSink {
  std::string data;
  int fail_at = -1;  // the write number that fails
  int writes = 0;
  Status begin(const Transaction&) override { return {}; }
  Status write(std::string_view b) override {
    if (writes++ == fail_at) return fail(Errc::io, "disk full (test)");
    data.append(b);
    return {};
  }
  void abort() noexcept override {}
};

const std::string kAdd = "Date: D\r\nMessage-ID: <M@h>\r\n";

// `in` fed in pieces of `chunk` octets, then finish().
std::string run(std::string_view in, std::size_t chunk) {
  Collect sink;
  MissingHeaders m;
  m.start(sink, "D", "<M@h>");
  for (std::size_t i = 0; i < in.size(); i += chunk) REQUIRE(m.write(in.substr(i, chunk)));
  REQUIRE(m.finish());
  CHECK(static_cast<std::size_t>(m.added()) == sink.data.size() - in.size());
  return sink.data;
}

void same_at_every_chunk(std::string_view in, const std::string& want) {
  for (std::size_t chunk : {1, 2, 3, 5, 7, 11, 64, 4096}) {
    CAPTURE(chunk);
    CHECK(run(in, chunk) == want);
  }
}

}  // namespace

TEST_CASE("missing fields go at the end of the header section") {
  same_at_every_chunk("Subject: s\r\nTo: x@y\r\n\r\nbody\r\n",
                      "Subject: s\r\nTo: x@y\r\n" + kAdd + "\r\nbody\r\n");
}

TEST_CASE("present fields are recognised in any case, folded, with obsolete space") {
  std::string both = "date: x\r\nMESSAGE-ID\t:\r\n <a@b>\r\n\r\nbody\r\n";
  same_at_every_chunk(both, both);
  same_at_every_chunk("Message-Id: <a@b>\r\n\r\nb\r\n", "Message-Id: <a@b>\r\nDate: D\r\n\r\nb\r\n");
  same_at_every_chunk("Date: d\r\n\r\nb\r\n", "Date: d\r\nMessage-ID: <M@h>\r\n\r\nb\r\n");
}

TEST_CASE("fields of similar names, and names in the body, do not count") {
  same_at_every_chunk("Dates: 1\r\nMessage-IDs: 2\r\n\r\nDate: 3\r\n",
                      "Dates: 1\r\nMessage-IDs: 2\r\n" + kAdd + "\r\nDate: 3\r\n");
}

TEST_CASE("a first line that is no field starts the body: an empty line keeps it body") {
  same_at_every_chunk("hello world\r\n", kAdd + "\r\nhello world\r\n");
  same_at_every_chunk("From alice Tue Feb  4 1992\r\nSubject: x\r\n\r\n",
                      kAdd + "\r\nFrom alice Tue Feb  4 1992\r\nSubject: x\r\n\r\n");
  same_at_every_chunk(" indented first line\r\n", kAdd + "\r\n indented first line\r\n");
  same_at_every_chunk(": no name\r\n", kAdd + "\r\n: no name\r\n");
  // A non-field line after fields ends the section too.
  same_at_every_chunk("Subject: s\r\nno colon here\r\n", "Subject: s\r\n" + kAdd + "\r\nno colon here\r\n");
}

TEST_CASE("headers only, or nothing at all: the fields go at the end") {
  same_at_every_chunk("Subject: s\r\n", "Subject: s\r\n" + kAdd);
  same_at_every_chunk("", kAdd);
}

TEST_CASE("an undecided line is held at most kMaxHeld octets") {
  // A "name" longer than any field name: it is body, and the bytes seen
  // while deciding come out in order.
  std::string name(MissingHeaders::kMaxHeld + 50, 'x');
  same_at_every_chunk(name + ": v\r\n", kAdd + "\r\n" + name + ": v\r\n");
  // A long field name below the limit is still a field.
  std::string ok(900, 'y');
  same_at_every_chunk(ok + ": v\r\n\r\n", ok + ": v\r\n" + kAdd + "\r\n");
}

TEST_CASE("a sink error stops the filter and is reported") {
  for (int n = 0; n < 3; ++n) {
    CAPTURE(n);
    Collect sink;
    sink.fail_at = n;
    MissingHeaders m;
    m.start(sink, "D", "<M@h>");
    Status st = m.write("Subject: s\r\n");
    if (st) st = m.write("\r\nbody\r\n");
    if (st) st = m.finish();
    REQUIRE(!st);
    CHECK(st.error().message == "disk full (test)");
    CHECK(!m.write("more\r\n"));  // stays failed
  }
}
