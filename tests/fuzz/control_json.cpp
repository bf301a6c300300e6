// Fuzz target: the control socket's JSON reader (control/json_reader.cpp),
// the request grammar and the sessions table the CLI prints from a reply.
// Properties: a document that parses prints (canonically) to a text that
// parses to the same value and prints the same again; a request that
// parses formats to a line that parses to the same request; parsing stays
// within the nesting limit.
#include <cmath>
#include <cstdio>

#include "fuzz.hpp"
#include "wizmail/admin/control.hpp"
#include "wizmail/admin/json.hpp"

using wizmail::control::Json;

namespace {

void print(const Json& j, std::string& out) {
  switch (j.kind) {
    case Json::Kind::null: out += "null"; break;
    case Json::Kind::boolean: out += j.b ? "true" : "false"; break;
    case Json::Kind::number: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", j.n);
      out += buf;
      // Always a fraction or an exponent: JSON's "-0" is the integer 0 to
      // the parser, "-0.0" keeps the sign of a negative zero.
      if (std::string_view(buf).find_first_of(".e") == std::string_view::npos) out += ".0";
      break;
    }
    case Json::Kind::string: out += wizmail::json_string(j.s); break;
    case Json::Kind::array:
      out += '[';
      for (std::size_t i = 0; i < j.items.size(); ++i) {
        if (i) out += ',';
        print(j.items[i], out);
      }
      out += ']';
      break;
    case Json::Kind::object:
      out += '{';
      for (std::size_t i = 0; i < j.members.size(); ++i) {
        if (i) out += ',';
        out += wizmail::json_string(j.members[i].first);
        out += ':';
        print(j.members[i].second, out);
      }
      out += '}';
      break;
  }
}

bool same(const Json& a, const Json& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Json::Kind::null: return true;
    case Json::Kind::boolean: return a.b == b.b;
    case Json::Kind::number: return a.n == b.n && std::signbit(a.n) == std::signbit(b.n);
    case Json::Kind::string: return a.s == b.s;
    case Json::Kind::array:
      if (a.items.size() != b.items.size()) return false;
      for (std::size_t i = 0; i < a.items.size(); ++i)
        if (!same(a.items[i], b.items[i])) return false;
      return true;
    case Json::Kind::object:
      if (a.members.size() != b.members.size()) return false;
      for (std::size_t i = 0; i < a.members.size(); ++i)
        if (a.members[i].first != b.members[i].first || !same(a.members[i].second, b.members[i].second))
          return false;
      return true;
  }
  return false;
}

int depth(const Json& j) {
  int d = 0;
  for (const auto& i : j.items) d = std::max(d, depth(i));
  for (const auto& m : j.members) d = std::max(d, depth(m.second));
  return (j.kind == Json::Kind::array || j.kind == Json::Kind::object) ? d + 1 : d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto doc = wizmail::control::parse_json(text)) {
    FUZZ_CHECK(depth(*doc) <= 33);
    std::string once;
    print(*doc, once);
    auto again = wizmail::control::parse_json(once);
    FUZZ_CHECK_MSG(again.has_value(), wizmail::fuzz::show(once));
    FUZZ_CHECK(same(*doc, *again));
    std::string twice;
    print(*again, twice);
    FUZZ_CHECK(once == twice);
    // The CLI turns a sessions reply into a table whatever the server sent.
    if (auto table = wizmail::control::sessions_table(*doc)) {
      for (char c : *table) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 || c == '\n');
    }
    (void)wizmail::control::check_reply(*doc);
  }
  if (auto req = wizmail::control::parse_request(text)) {
    auto line = wizmail::control::format_request(*req);
    auto back = wizmail::control::parse_request(line);
    FUZZ_CHECK_MSG(back.has_value(), line);
    FUZZ_CHECK(back->command == req->command && back->force == req->force);
  }
  return 0;
}
