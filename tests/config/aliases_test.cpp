// def/aliases.def: the parser (good and bad lines, file:line errors), the
// load with the other def files, resolution, and the CLI's edits.
#include "wizmail/aliases.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>

#include "helpers.hpp"

using namespace wizmail;

namespace {

const std::vector<std::string> kDomains = {"example.org", "example.net", "xn--mnchen-3ya.example"};

AliasMap parse(std::string_view text, std::vector<ConfigDiagnostic>& diags) {
  return AliasMap::parse(text, "/h/def/aliases.def", kDomains, "example.org", diags);
}

std::string errors_of(const std::vector<ConfigDiagnostic>& diags) {
  std::string out;
  for (const auto& d : diags) out += d.to_string() + "\n";
  return out;
}

// A directory of accounts for resolve().
struct World {
  std::set<std::string> accounts{"alice", "bob", "carol"};
  bool broken = false;
  AliasMap::Directory dir() {
    return {[](std::string_view d) {
              return std::find(kDomains.begin(), kDomains.end(), d) != kDomains.end();
            },
            [this](std::string_view a) -> Result<bool> {
              if (broken) return fail(Errc::io, "EIO on the mailbox folder");
              return accounts.count(std::string(a)) > 0;
            }};
  }
};

std::string targets(const AliasMap::Resolution& r) {
  std::string out;
  for (const auto& t : r.targets) out += (out.empty() ? "" : " ") + (t.local() ? t.account : "<" + t.address + ">");
  return out;
}

}  // namespace

TEST_CASE("aliases.def: every form of key and target, comments, BOM, CRLF") {
  std::vector<ConfigDiagnostic> diags;
  auto m = parse("\xef\xbb\xbf# aliases\r\n"
                 "Sales@Example.ORG   alice, Bob@Partner.Example\r\n"
                 "// another comment\n"
                 "info:   alice\n"
                 "@example.net\tcarol\n"
                 "j\xc3\xb6rg@M\xc3\x9cNCHEN.example  bob\n"
                 "\n"
                 "list@example.org a,b ,  c@b\xc3\xbcro.example\n",
                 diags);
  CHECK(errors_of(diags) == "");
  REQUIRE(m.entries().size() == 5);
  CHECK(m.entries()[0].key == "sales@example.org");
  CHECK(m.entries()[0].targets == std::vector<std::string>{"alice", "Bob@partner.example"});
  CHECK(m.entries()[0].line == 2);
  CHECK(m.entries()[1].key == "info");
  CHECK(m.entries()[2].key == "@example.net");
  CHECK(m.entries()[3].key == "j\xc3\xb6rg@xn--mnchen-3ya.example");
  CHECK(m.entries()[4].targets == std::vector<std::string>{"a", "b", "c@xn--bro-hoa.example"});
  CHECK(m.find("sales@example.org") == &m.entries()[0]);
  CHECK(m.find("nobody@example.org") == nullptr);
}

TEST_CASE("aliases.def: bad lines are errors naming file, line and key; good lines stay") {
  const std::map<std::string, std::string> bad = {
      {"lonely@example.org", "expected 'ADDRESS TARGET"},
      {"x@remote.example alice", "'remote.example' is not a local domain"},
      {"@remote.example alice", "'remote.example' is not a local domain"},
      {"x@example.org a,,b", "empty target"},
      {"x@example.org a,", "empty target"},
      {"x@example.org a b", "separate targets with ','"},
      {"x@example.org Not_An+Account", "neither an account name"},
      {"x@example.org @example.net", "a target must be an account or an address"},
      {"x@example.org a@-bad-.example", "is not a domain name"},
      {"x@example.org a@[192.0.2.1]", "is not a domain name"},
      {"\"q\"@example.org alice", "quote-free"},
      {"a..b@example.org alice", "empty atom"},
      {".a@example.org alice", "empty atom"},
      {"x@b\xc3\xa4" "d-\xe2\x80\x8d.example alice", "internationalised domain"},
      {std::string(65, 'l') + "@example.org alice", "longer than 64"},
      {"x@example.org ok\nx@EXAMPLE.org alice", "duplicate alias (first on line 2)"},
      {"a@example.org b@example.org\nb@example.org a", "alias loop: "},
      {"caf\xe9" "@example.org alice", "invalid UTF-8"},
  };
  for (const auto& [text, want] : bad) {
    CAPTURE(text);
    std::vector<ConfigDiagnostic> diags;
    auto m = parse("good@example.org alice\n" + text + "\n", diags);
    REQUIRE_FALSE(diags.empty());
    CHECK(diags.front().severity == ConfigDiagnostic::Severity::error);
    CHECK(diags.front().file == "/h/def/aliases.def");
    CHECK(diags.front().line >= 2);
    CHECK(errors_of(diags).find(want) != std::string::npos);
    CHECK(m.find("good@example.org") != nullptr);
  }
  // A self-reference is not a loop; a chain is fine.
  std::vector<ConfigDiagnostic> diags;
  parse("a@example.org a, b@example.org\nb@example.org c@example.org\nc@example.org carol\ninfo info, bob\n", diags);
  CHECK(errors_of(diags) == "");
  // Binary garbage: one error, not one per byte.
  diags.clear();
  parse(std::string("x@example.org a\0b\n", 18), diags);
  CHECK(diags.size() == 1);
}

TEST_CASE("resolve: exact key, bare local part, account, catch-all, in that order") {
  std::vector<ConfigDiagnostic> diags;
  auto m = parse("sales@example.org alice, Partner@Remote.Example\n"
                 "info bob\n"
                 "alice@example.org alice, carol\n"
                 "@example.net alice\n"
                 "chain@example.org sales@example.org, bob\n"
                 "ghosts@example.org nobody, bob\n"
                 "dead@example.org nobody\n",
                 diags);
  REQUIRE(errors_of(diags) == "");
  World w;
  auto r = m.resolve("SALES", "example.org", w.dir());
  REQUIRE(r);
  CHECK(r->aliased);
  // "alice" is alice@example.org, itself an alias (alice, carol).
  CHECK(targets(*r) == "alice carol <Partner@remote.example>");
  r = m.resolve("info", "example.net", w.dir());  // bare key wins over the catch-all
  CHECK(targets(*r) == "bob");
  r = m.resolve("bob", "example.net", w.dir());  // an account: left to the caller
  CHECK_FALSE(r->aliased);
  r = m.resolve("anything", "example.net", w.dir());
  CHECK(targets(*r) == "alice carol");
  r = m.resolve("anything", "example.org", w.dir());  // no catch-all there
  CHECK_FALSE(r->aliased);
  CHECK(r->targets.empty());
  r = m.resolve("alice", "example.org", w.dir());  // the alias applies before the account; self = account
  CHECK(targets(*r) == "alice carol");
  r = m.resolve("chain", "example.org", w.dir());  // recursive, de-duplicated
  CHECK(targets(*r) == "alice carol <Partner@remote.example> bob");
  r = m.resolve("ghosts", "example.org", w.dir());
  CHECK(targets(*r) == "bob");
  CHECK(r->unknown == std::vector<std::string>{"nobody@example.org"});
  r = m.resolve("dead", "example.org", w.dir());
  CHECK(r->aliased);
  CHECK(r->targets.empty());
  r = m.resolve("postmaster", "example.net", w.dir());  // always exists, so no catch-all
  CHECK_FALSE(r->aliased);
  w.broken = true;  // a disk error is an error, not "no such user"
  r = m.resolve("ghosts", "example.org", w.dir());
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::io);
}

TEST_CASE("resolve: depth and expansion limits, loops through a catch-all") {
  World w;
  std::string text;
  for (int i = 0; i < AliasMap::kMaxDepth + 2; ++i) {
    // Appends only: GCC 12 at -O3 reports a false -Wrestrict on
    // `"literal" + std::string&&` (it inlines basic_string::insert).
    text.append("d").append(std::to_string(i)).append("@example.org d");
    text.append(std::to_string(i + 1)).append("@example.org\n");
  }
  std::vector<ConfigDiagnostic> diags;
  auto m = parse(text, diags);
  REQUIRE(errors_of(diags) == "");
  auto r = m.resolve("d0", "example.org", w.dir());
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::limit);
  std::string wide = "wide@example.org ";
  for (std::size_t i = 0; i < 600; ++i)
    wide.append(i ? "," : "").append("r").append(std::to_string(i)).append("@x.example");
  wide += "\nwider@example.org wide@example.org, w2@example.org\nw2@example.org ";
  for (std::size_t i = 0; i < 600; ++i)
    wide.append(i ? "," : "").append("s").append(std::to_string(i)).append("@x.example");
  diags.clear();
  m = parse(wide + "\n", diags);
  REQUIRE(errors_of(diags) == "");
  r = m.resolve("wide", "example.org", w.dir());
  REQUIRE(r);
  CHECK(r->targets.size() == 600);
  r = m.resolve("wider", "example.org", w.dir());
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("more than 1000") != std::string::npos);
  diags.clear();
  m = parse("@example.net a@example.net\na@example.net b@example.net\n", diags);
  REQUIRE(errors_of(diags) == "");
  r = m.resolve("b", "example.net", w.dir());
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("alias loop") != std::string::npos);
}

TEST_CASE("aliases.def loads with the other def files; an error refuses the whole load") {
  cfgtest::TempDir home;
  cfgtest::write(home.path / "def" / "wiz98msenv.dat", "domain=example.org\nalias=example.net\n");
  cfgtest::write(home.path / "def" / "aliases.def", "sales@example.org alice\n@example.net bob\n");
  auto cfg = load_config(home.path);
  REQUIRE(cfg);
  REQUIRE((*cfg)->aliases);
  CHECK((*cfg)->aliases->entries().size() == 2);
  cfgtest::write(home.path / "def" / "aliases.def", "sales@example.org alice\n@example.com bob\n");
  auto bad = load_config(home.path);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("aliases.def:2: @example.com: 'example.com' is not a local domain") !=
        std::string::npos);
  // Removing the alias domain from the config makes the file invalid too.
  cfgtest::write(home.path / "def" / "aliases.def", "@example.net bob\n");
  cfgtest::write(home.path / "def" / "wiz98msenv.dat", "domain=example.org\n");
  CHECK_FALSE(load_config(home.path));
}

TEST_CASE("set_alias / delete_alias keep comments and other lines, and refuse what would not load") {
  cfgtest::TempDir home;
  cfgtest::write(home.path / "def" / "wiz98msenv.dat", "domain=example.org\n");
  cfgtest::write(home.path / "def" / "aliases.def", "# keep me\nsales@example.org alice\n\n// me too\ninfo bob\n");
  auto cfg = load_config(home.path);
  REQUIRE(cfg);
  REQUIRE(set_alias(**cfg, "SALES@example.org", {"carol", "dave@remote.example"}));
  CHECK(cfgtest::slurp(home.path / "def" / "aliases.def") ==
        "# keep me\nSALES@example.org  carol, dave@remote.example\n\n// me too\ninfo bob\n");
  REQUIRE(set_alias(**cfg, "new@example.org", {"alice"}));
  CHECK(cfgtest::slurp(home.path / "def" / "aliases.def").ends_with("info bob\nnew@example.org  alice\n"));
  REQUIRE(delete_alias(**cfg, "info"));
  CHECK(cfgtest::slurp(home.path / "def" / "aliases.def") ==
        "# keep me\nSALES@example.org  carol, dave@remote.example\n\n// me too\nnew@example.org  alice\n");
  const std::string before = cfgtest::slurp(home.path / "def" / "aliases.def");
  CHECK(delete_alias(**cfg, "info").error().code == Errc::not_found);
  CHECK_FALSE(set_alias(**cfg, "x@remote.example", {"alice"}));    // not a local domain
  CHECK_FALSE(set_alias(**cfg, "x@example.org", {}));               // no target
  CHECK_FALSE(set_alias(**cfg, "x@example.org", {"a b"}));          // one target per element
  CHECK_FALSE(set_alias(**cfg, "x@example.org", {"a\nb@example.org c"}));  // no line injection
  REQUIRE(set_alias(**cfg, "loop@example.org", {"loop2@example.org"}));
  auto looped = set_alias(**cfg, "loop2@example.org", {"loop@example.org"});
  CHECK_FALSE(looped);
  CHECK(looped.error().message.find("alias loop") != std::string::npos);
  CHECK(load_config(home.path));  // whatever was refused, the file still loads
  CHECK(cfgtest::slurp(home.path / "def" / "aliases.def") == before + "loop@example.org  loop2@example.org\n");
}
