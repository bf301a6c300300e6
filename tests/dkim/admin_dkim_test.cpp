// wizmail/admin/dkim.hpp (dkim_keygen, dkim_show) and the KeyRing the relay
// loads from a home's def/dkim/: modes, refusals, the selector in use, and
// keys that cannot be used (left out, said in problems()).
#include "wizmail/admin/dkim.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>

#include "dkim/dkim.hpp"
#include "temp_dir.hpp"
#include "util/fs.hpp"

using namespace wizmail;
namespace fs = std::filesystem;

namespace {

unsigned mode_of(const fs::path& p) {
  struct stat sb{};
  REQUIRE(::stat(p.c_str(), &sb) == 0);
  return sb.st_mode & 07777;
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

TEST_CASE("keygen writes the key 0600 in def/dkim/<domain>/, prints its record, refuses to overwrite") {
  test::TempDir home;
  auto k = dkim_keygen(home.path(), "Example.COM", {});
  REQUIRE(k);
  CHECK(k->domain == "example.com");
  CHECK(k->selector == "wizmail");
  CHECK(k->algorithm == "rsa-sha256");
  CHECK(k->bits == 2048);
  CHECK(k->active);
  CHECK(k->file == home.path() / "def" / "dkim" / "example.com" / "wizmail.key");
  CHECK(mode_of(k->file) == 0600);
  CHECK(mode_of(home.path() / "def" / "dkim") == 0700);
  CHECK(mode_of(home.path() / "def" / "dkim" / "example.com") == 0700);
  CHECK(k->record_name == "wizmail._domainkey.example.com");
  CHECK(k->record.starts_with("v=DKIM1; k=rsa; p="));
  REQUIRE(k->strings.size() == 2);
  CHECK(k->zone_line() == "wizmail._domainkey.example.com. IN TXT \"" + k->strings[0] + "\" \"" + k->strings[1] + "\"");
  // The record matches the key on disk.
  auto pem = util::read_file(k->file);
  REQUIRE(pem);
  auto key = dkim::parse_private_key(*pem);
  REQUIRE(key);
  CHECK(dkim::key_record(*key) == k->record);

  auto again = dkim_keygen(home.path(), "example.com", {});
  REQUIRE(!again);
  CHECK(again.error().code == Errc::already_exists);
  auto pem_after = util::read_file(k->file);
  CHECK(*pem_after == *pem);  // untouched

  DkimKeygenOptions force;
  force.force = true;
  auto replaced = dkim_keygen(home.path(), "example.com", force);
  REQUIRE(replaced);
  CHECK(replaced->record != k->record);
  CHECK(replaced->active);

  auto shown = dkim_show(home.path(), "example.com");
  REQUIRE(shown);
  CHECK(shown->record == replaced->record);
}

TEST_CASE("a second selector is not used until activated") {
  test::TempDir home;
  REQUIRE(dkim_keygen(home.path(), "example.com", {}));
  DkimKeygenOptions ed;
  ed.ed25519 = true;
  auto k2 = dkim_keygen(home.path(), "example.com", ed);
  REQUIRE(k2);
  CHECK(k2->selector == "wizmail-ed25519");
  CHECK(k2->algorithm == "ed25519-sha256");
  CHECK_FALSE(k2->active);
  CHECK(dkim::active_selector(home.path(), "example.com").value_or("") == "wizmail");
  CHECK(dkim_show(home.path(), "example.com")->selector == "wizmail");
  CHECK(dkim_show(home.path(), "example.com", "wizmail-ed25519")->record == k2->record);

  DkimKeygenOptions act;
  act.selector = "2027";
  act.ed25519 = true;
  act.activate = true;
  auto k3 = dkim_keygen(home.path(), "example.com", act);
  REQUIRE(k3);
  CHECK(k3->active);
  auto ring = dkim::KeyRing::load(home.path());
  CHECK(ring.problems().empty());
  REQUIRE(ring.find("EXAMPLE.com"));
  CHECK(ring.find("example.com")->selector() == "2027");
  CHECK(ring.find("example.com")->algorithm() == dkim::Algorithm::ed25519_sha256);
  CHECK(ring.find("example.org") == nullptr);
}

TEST_CASE("keygen and show refuse bad names, and write nothing for them") {
  test::TempDir home;
  for (const char* d : {"", "localhost", "../etc", "a/b.example", "bad_domain.example", "-x.example", "bücher.example"}) {
    CAPTURE(d);
    auto r = dkim_keygen(home.path(), d, {});
    REQUIRE(!r);
    CHECK(r.error().code == Errc::invalid_argument);
  }
  for (const char* s : {"a/b", "..", "-x", "a b", "x;y"}) {
    CAPTURE(s);
    DkimKeygenOptions o;
    o.selector = s;
    auto r = dkim_keygen(home.path(), "example.com", o);
    REQUIRE(!r);
    CHECK(r.error().code == Errc::invalid_argument);
    CHECK(dkim_show(home.path(), "example.com", s).error().code == Errc::invalid_argument);
  }
  CHECK(!fs::exists(home.path() / "def" / "dkim"));
  CHECK(dkim_show(home.path(), "example.com").error().code == Errc::not_found);
}

TEST_CASE("KeyRing: a key that cannot be used is left out and said") {
  test::TempDir home;
  REQUIRE(dkim_keygen(home.path(), "good.example", {}));
  REQUIRE(dkim_keygen(home.path(), "corrupt.example", {}));
  REQUIRE(dkim_keygen(home.path(), "unreadable.example", {}));
  REQUIRE(dkim_keygen(home.path(), "two.example", {}));
  const fs::path dir = home.path() / "def" / "dkim";
  write(dir / "corrupt.example" / "wizmail.key", "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n");
  // A key file that cannot be read, even by root: a folder in its place.
  fs::remove(dir / "unreadable.example" / "wizmail.key");
  fs::create_directory(dir / "unreadable.example" / "wizmail.key");
  // Two keys and no selector file: which one is meant is not guessed.
  fs::remove(dir / "two.example" / "selector");
  DkimKeygenOptions o;
  o.selector = "other";
  REQUIRE(dkim_keygen(home.path(), "two.example", o));
  fs::remove(dir / "two.example" / "selector");
  fs::create_directory(dir / "not a domain");
  auto ring = dkim::KeyRing::load(home.path());
  CHECK(ring.size() == 1);
  CHECK(ring.find("good.example"));
  CHECK_FALSE(ring.find("corrupt.example"));
  CHECK_FALSE(ring.find("unreadable.example"));
  CHECK_FALSE(ring.find("two.example"));
  std::string all;
  for (const auto& p : ring.problems()) all += p + "\n";
  CAPTURE(all);
  CHECK(ring.problems().size() == 4);
  CHECK(all.find("corrupt.example") != std::string::npos);
  CHECK(all.find("unreadable.example") != std::string::npos);
  CHECK(all.find("two.example") != std::string::npos);
  CHECK(all.find("not a domain") != std::string::npos);
  auto shown = dkim_show(home.path(), "corrupt.example");
  REQUIRE(!shown);
  CHECK(shown.error().message.find("corrupt.example") != std::string::npos);
  // A home without def/dkim: an empty ring, nothing to say.
  test::TempDir empty;
  auto none = dkim::KeyRing::load(empty.path());
  CHECK(none.size() == 0);
  CHECK(none.problems().empty());
}
