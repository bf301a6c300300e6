#include "wizmail/account_store.hpp"

#include <crypt.h>
#include <sys/stat.h>

#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "temp_dir.hpp"
#include "util/fs.hpp"

using namespace wizmail;
namespace fs = std::filesystem;
using test::TempDir;
using test::tree;

namespace {

struct Home {
  TempDir tmp;
  fs::path mailbox = tmp.path() / "mailbox";
  AccountStore store{mailbox};
  Home() { fs::create_directory(mailbox); }
};

std::string slurp(const fs::path& p) {
  auto r = util::read_file(p);
  REQUIRE(r);
  return *r;
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

const std::string kNul("a\0b", 3);

}  // namespace

TEST_CASE("validate_name accepts the SPEC's names") {
  for (std::string n : std::vector<std::string>{"a", "alice", "a.b_c-d", "0", "postmaster", std::string(64, 'x'),
                        "x..y", "-dash", "_u"}) {
    CAPTURE(n);
    CHECK(AccountStore::validate_name(n));
  }
}

TEST_CASE("validate_name refuses everything else") {
  for (std::string n : std::vector<std::string>{std::string(), std::string("../x"), std::string("a/b"),
                        std::string(65, 'x'), std::string(".hidden"), std::string("."),
                        std::string(".."), std::string("Alice"), kNul, std::string("a b"),
                        std::string("a:b"), std::string("caf\xc3\xa9"), std::string("/etc"),
                        std::string("a\\b"), std::string("a\nb"), std::string("~root")}) {
    CAPTURE(n);
    auto st = AccountStore::validate_name(n);
    REQUIRE(!st);
    CHECK(st.error().code == Errc::invalid_argument);
  }
}

TEST_CASE("normalize_name folds case, then validates") {
  CHECK(AccountStore::normalize_name("Alice").value() == "alice");
  CHECK(AccountStore::normalize_name("POSTMASTER").value() == "postmaster");
  CHECK(!AccountStore::normalize_name("../X"));
  CHECK(!AccountStore::normalize_name(".Hidden"));
  auto e = AccountStore::normalize_name("A/B");
  REQUIRE(!e);
  CHECK(e.error().message.find("\"A/B\"") != std::string::npos);
  // Control characters never reach stderr raw.
  auto n = AccountStore::normalize_name("a\x1b[31mb");
  REQUIRE(!n);
  CHECK(n.error().message.find('\x1b') == std::string::npos);
}

TEST_CASE("account_dir stays inside the mailbox folder") {
  Home h;
  CHECK(h.store.account_dir("Bob").value() == h.mailbox / "bob");
  for (std::string n : std::vector<std::string>{"../x", "a/b", "..", ".", "", std::string(65, 'a')}) {
    CAPTURE(n);
    CHECK(!h.store.account_dir(n));
    CHECK(h.store.lookup(n).value() == AccountKind::none);
  }
}

TEST_CASE("create makes a whole account, mode 0600 password") {
  Home h;
  REQUIRE(h.store.create("Alice", "s3cret"));
  const fs::path d = h.mailbox / "alice";
  for (auto sub : {"new", "cur", "tmp"}) CHECK(fs::is_directory(d / sub));
  CHECK(slurp(d / "password") == "s3cret\n");
  CHECK(mode_of(d / "password") == 0600);
  CHECK(h.store.lookup("alice").value() == AccountKind::mailbox);
  CHECK(h.store.lookup("ALICE").value() == AccountKind::mailbox);
  // No staging leftovers beside it.
  CHECK(tree(h.mailbox) == std::set<std::string>{"alice", "alice/cur", "alice/new",
                                                 "alice/password", "alice/tmp"});
}

TEST_CASE("create refuses duplicates, bad names and bad passwords without changing disk") {
  Home h;
  REQUIRE(h.store.create("alice", "pw"));
  const auto before = tree(h.tmp.path());
  const auto pw_before = slurp(h.mailbox / "alice" / "password");

  auto dup = h.store.create("ALICE", "other");
  REQUIRE(!dup);
  CHECK(dup.error().code == Errc::already_exists);
  CHECK(slurp(h.mailbox / "alice" / "password") == pw_before);

  for (std::string n : std::vector<std::string>{"../evil", "a/b", "", ".x", std::string(65, 'a'), kNul}) {
    CAPTURE(n);
    auto st = h.store.create(n, "pw");
    REQUIRE(!st);
    CHECK(st.error().code == Errc::invalid_argument);
  }
  for (std::string pw : std::vector<std::string>{std::string(), std::string("a\nb"), std::string("a\rb"), kNul,
                         std::string(1025, 'p'), std::string("{CRYPT}$6$abc")}) {
    CAPTURE(pw);
    auto st = h.store.create("bob", pw);
    REQUIRE(!st);
    CHECK(st.error().code == Errc::invalid_argument);
  }
  CHECK(tree(h.tmp.path()) == before);
  CHECK(!fs::exists(h.tmp.path() / "evil"));
}

TEST_CASE("create needs the mailbox folder") {
  TempDir t;
  AccountStore s(t.path() / "nope");
  auto st = s.create("alice", "pw");
  REQUIRE(!st);
  CHECK(st.error().code == Errc::not_found);
  CHECK(st.error().message.find("wizmail setup") != std::string::npos);
  CHECK(!fs::exists(t.path() / "nope"));
}

TEST_CASE("create with a long password and the longest name") {
  Home h;
  const std::string name(64, 'n');
  REQUIRE(h.store.create(name, std::string(1024, 'p')));
  CHECK(h.store.authenticate(name, std::string(1024, 'p')).value());
}

TEST_CASE("remove deletes the account; notifi and postmaster are protected") {
  Home h;
  for (auto n : {"alice", "notifi", "postmaster"}) REQUIRE(h.store.create(n, "pw"));
  REQUIRE(util::write_file_atomic(h.mailbox / "alice" / "new" / "m1", "hello\r\n"));
  REQUIRE(h.store.remove("Alice"));
  CHECK(h.store.lookup("alice").value() == AccountKind::none);
  CHECK(tree(h.mailbox).count("alice") == 0);
  // Nothing left aside.
  for (auto& e : fs::directory_iterator(h.mailbox))
    CHECK(e.path().filename().string().rfind(".deleted", 0) != 0);

  for (auto n : {"notifi", "postmaster", "PostMaster"}) {
    CAPTURE(n);
    auto st = h.store.remove(n);
    REQUIRE(!st);
    CHECK(st.error().code == Errc::permission_denied);
  }
  CHECK(h.store.lookup("notifi").value() == AccountKind::mailbox);
  CHECK(h.store.lookup("postmaster").value() == AccountKind::mailbox);

  auto missing = h.store.remove("ghost");
  REQUIRE(!missing);
  CHECK(missing.error().code == Errc::not_found);
}

TEST_CASE("remove cannot reach outside the mailbox folder") {
  Home h;
  fs::create_directory(h.tmp.path() / "victim");
  spit(h.tmp.path() / "victim" / "file", "keep");
  for (std::string n : std::vector<std::string>{"../victim", "..", ".", "a/../../victim", ""}) {
    CAPTURE(n);
    auto st = h.store.remove(n);
    REQUIRE(!st);
    CHECK(st.error().code == Errc::invalid_argument);
  }
  CHECK(slurp(h.tmp.path() / "victim" / "file") == "keep");
  CHECK(fs::exists(h.mailbox));
  // An account that is a symbolic link to a folder elsewhere: only the link goes.
  fs::create_directory_symlink(h.tmp.path() / "victim", h.mailbox / "linked");
  CHECK(h.store.lookup("linked").value() == AccountKind::mailbox);
  REQUIRE(h.store.remove("linked"));
  CHECK(!fs::exists(h.mailbox / "linked"));
  CHECK(slurp(h.tmp.path() / "victim" / "file") == "keep");
}

TEST_CASE("list returns valid account folders, sorted") {
  Home h;
  for (auto n : {"zed", "alice", "m.l"}) REQUIRE(h.store.create(n, "pw"));
  fs::create_directory(h.mailbox / ".deleted-old.1");
  fs::create_directory(h.mailbox / "UPPER");
  spit(h.mailbox / "afile", "x");
  auto l = h.store.list();
  REQUIRE(l);
  CHECK(*l == std::vector<std::string>{"alice", "m.l", "zed"});

  TempDir t;
  AccountStore none(t.path() / "missing");
  CHECK(!none.list());
}

TEST_CASE("set_password, authenticate and plain_password") {
  Home h;
  REQUIRE(h.store.create("alice", "old"));
  CHECK(h.store.authenticate("alice", "old").value());
  CHECK(!h.store.authenticate("alice", "Old").value());
  CHECK(!h.store.authenticate("alice", "").value());
  CHECK(!h.store.authenticate("alice", "old ").value());
  CHECK(!h.store.authenticate("alice", "ol").value());

  REQUIRE(h.store.set_password("ALICE", "new"));
  CHECK(mode_of(h.mailbox / "alice" / "password") == 0600);
  CHECK(!h.store.authenticate("alice", "old").value());
  CHECK(h.store.authenticate("alice", "new").value());
  CHECK(h.store.plain_password("alice").value() == "new");

  SUBCASE("crypt") {
    REQUIRE(h.store.set_password("alice", "hashed pw", PasswordScheme::crypt));
    const std::string stored = slurp(h.mailbox / "alice" / "password");
    CHECK(stored.rfind("{CRYPT}$6$", 0) == 0);
    CHECK(stored.find("hashed pw") == std::string::npos);
    CHECK(h.store.authenticate("alice", "hashed pw").value());
    CHECK(!h.store.authenticate("alice", "hashed").value());
    CHECK(!h.store.authenticate("alice", "new").value());
    auto p = h.store.plain_password("alice");
    REQUIRE(!p);
    CHECK(p.error().code == Errc::permission_denied);
  }
  SUBCASE("yescrypt hash written by hand") {
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    REQUIRE(crypt_gensalt_rn("$y$", 0, nullptr, 0, salt, sizeof salt));
    crypt_data data{};
    const char* hash = crypt_r("yes pw", salt, &data);
    REQUIRE(hash);
    spit(h.mailbox / "alice" / "password", std::string("{CRYPT}") + hash + "\n");
    CHECK(h.store.authenticate("alice", "yes pw").value());
    CHECK(!h.store.authenticate("alice", "no pw").value());
  }
  SUBCASE("a corrupt hash never lets anybody in") {
    spit(h.mailbox / "alice" / "password", "{CRYPT}garbage\n");
    CHECK(!h.store.authenticate("alice", "garbage").value());
    CHECK(!h.store.authenticate("alice", "").value());
  }
  SUBCASE("manual-format files: no newline, CRLF, extra lines") {
    spit(h.mailbox / "alice" / "password", "admin");
    CHECK(h.store.authenticate("alice", "admin").value());
    spit(h.mailbox / "alice" / "password", "admin\r\n");
    CHECK(h.store.authenticate("alice", "admin").value());
    CHECK(h.store.plain_password("alice").value() == "admin");
    spit(h.mailbox / "alice" / "password", "admin\nsecond line\n");
    CHECK(h.store.authenticate("alice", "admin").value());
    CHECK(!h.store.authenticate("alice", "second line").value());
  }
  SUBCASE("an empty password file never lets anybody in") {
    spit(h.mailbox / "alice" / "password", "\n");
    CHECK(!h.store.authenticate("alice", "").value());
    CHECK(!h.store.plain_password("alice"));
  }
}

TEST_CASE("password methods refuse bad input and missing accounts") {
  Home h;
  REQUIRE(h.store.create("alice", "pw"));
  const auto before = slurp(h.mailbox / "alice" / "password");
  for (std::string pw : std::vector<std::string>{std::string(), std::string("x\ny"), kNul, std::string(1025, 'a')}) {
    CAPTURE(pw);
    CHECK(!h.store.set_password("alice", pw));
  }
  CHECK(slurp(h.mailbox / "alice" / "password") == before);

  auto a = h.store.authenticate("ghost", "pw");
  REQUIRE(!a);
  CHECK(a.error().code == Errc::not_found);
  CHECK(h.store.set_password("ghost", "pw").error().code == Errc::not_found);
  CHECK(h.store.plain_password("ghost").error().code == Errc::not_found);
  CHECK(h.store.authenticate("../alice", "pw").error().code == Errc::invalid_argument);
  CHECK(!h.store.authenticate("alice", "p\0w").value_or(true));

  fs::remove(h.mailbox / "alice" / "password");
  auto np = h.store.authenticate("alice", "pw");
  REQUIRE(!np);
  CHECK(np.error().message.find("no password file") != std::string::npos);
}

TEST_CASE("validate_address") {
  for (std::string a : std::vector<std::string>{"a@b", "user.name+tag@example.com", "x@[127.0.0.1]", "x@[IPv6:::1]",
                        "o'neil@ex-ample.org"}) {
    CAPTURE(a);
    CHECK(AccountStore::validate_address(a));
  }
  for (std::string a : std::vector<std::string>{std::string(), std::string("nodomain"), std::string("@b"),
                        std::string("a@"), std::string("a b@c"), std::string("a@b c"),
                        std::string("a@b\n"), std::string("a\0@b", 4), std::string(".a@b"),
                        std::string("a..b@c"), std::string("a@.b"), std::string("a@b..c"),
                        std::string("<a@b>"), std::string("a,b@c"), std::string("a@[1.2.3]"),
                        std::string(65, 'l') + "@b", "a@" + std::string(260, 'd')}) {
    CAPTURE(a);
    CHECK(!AccountStore::validate_address(a));
  }
}

TEST_CASE("mailing lists: create, members, add, remove") {
  Home h;
  REQUIRE(h.store.create_mailing_list("ML", "pw", "ml_err@localhost"));
  CHECK(h.store.lookup("ml").value() == AccountKind::mailing_list);
  CHECK(h.store.authenticate("ml", "pw").value());
  CHECK(slurp(h.mailbox / "ml" / "ml.def") == "count=0\nadmin_mail_address=ml_err@localhost\n");
  CHECK(h.store.members("ml").value().empty());

  REQUIRE(h.store.add_member("ml", "a@localhost"));
  REQUIRE(h.store.add_member("ML", "B@Example.com"));
  CHECK(h.store.members("ml").value() == std::vector<std::string>{"a@localhost", "B@Example.com"});
  CHECK(slurp(h.mailbox / "ml" / "ml_member.csv") == "a@localhost\nB@Example.com\n");

  auto dup = h.store.add_member("ml", "b@example.COM");
  REQUIRE(!dup);
  CHECK(dup.error().code == Errc::already_exists);

  REQUIRE(h.store.remove_member("ml", "A@LOCALHOST"));
  CHECK(h.store.members("ml").value() == std::vector<std::string>{"B@Example.com"});
  auto gone = h.store.remove_member("ml", "a@localhost");
  REQUIRE(!gone);
  CHECK(gone.error().code == Errc::not_found);

  SUBCASE("without admin") {
    REQUIRE(h.store.create_mailing_list("ml2", "pw"));
    CHECK(slurp(h.mailbox / "ml2" / "ml.def") == "count=0\nadmin_mail_address=\n");
  }
}

TEST_CASE("mailing lists refuse bad input without changing disk") {
  Home h;
  REQUIRE(h.store.create("plain", "pw"));
  REQUIRE(h.store.create_mailing_list("ml", "pw"));
  REQUIRE(h.store.add_member("ml", "a@b"));
  const auto before = tree(h.tmp.path());
  const auto csv = slurp(h.mailbox / "ml" / "ml_member.csv");

  CHECK(h.store.create_mailing_list("bad", "pw", "not an address").error().code ==
        Errc::invalid_argument);
  CHECK(h.store.create_mailing_list("../x", "pw").error().code == Errc::invalid_argument);
  CHECK(h.store.create_mailing_list("ml", "pw").error().code == Errc::already_exists);
  CHECK(h.store.add_member("ml", "bad address").error().code == Errc::invalid_argument);
  CHECK(h.store.add_member("ml", "x@y\nz@w").error().code == Errc::invalid_argument);
  CHECK(h.store.add_member("plain", "x@y").error().code == Errc::not_found);
  CHECK(h.store.add_member("ghost", "x@y").error().code == Errc::not_found);
  CHECK(h.store.add_member("../ml", "x@y").error().code == Errc::invalid_argument);
  CHECK(h.store.remove_member("ml", "").error().code == Errc::invalid_argument);
  CHECK(h.store.remove_member("ml", "a@b\n").error().code == Errc::invalid_argument);
  CHECK(h.store.members("plain").error().code == Errc::not_found);
  CHECK(h.store.lookup("plain").value() == AccountKind::mailbox);
  CHECK(h.store.lookup("ghost").value() == AccountKind::none);
  CHECK(h.store.lookup("../ml").value() == AccountKind::none);

  CHECK(tree(h.tmp.path()) == before);
  CHECK(slurp(h.mailbox / "ml" / "ml_member.csv") == csv);
}

TEST_CASE("members of a hand-edited CSV") {
  Home h;
  REQUIRE(h.store.create_mailing_list("ml", "pw"));
  const fs::path csv = h.mailbox / "ml" / "ml_member.csv";
  spit(csv, "# members\r\na@x, Alice\r\n\r\n  b@x  \r\nc@x");
  CHECK(h.store.members("ml").value() == std::vector<std::string>{"a@x", "b@x", "c@x"});
  REQUIRE(h.store.add_member("ml", "d@x"));
  CHECK(slurp(csv) == "# members\r\na@x, Alice\r\n\r\n  b@x  \r\nc@x\r\nd@x\r\n");
  REQUIRE(h.store.remove_member("ml", "a@x"));
  CHECK(slurp(csv) == "# members\r\n  b@x  \r\nc@x\r\nd@x\r\n");
  // A malformed entry can still be removed.
  spit(csv, "broken entry\nok@x\n");
  REQUIRE(h.store.remove_member("ml", "broken entry"));
  CHECK(h.store.members("ml").value() == std::vector<std::string>{"ok@x"});
  // A missing CSV is an empty list.
  fs::remove(csv);
  CHECK(h.store.members("ml").value().empty());
  REQUIRE(h.store.add_member("ml", "e@x"));
  CHECK(slurp(csv) == "e@x\n");
}

TEST_CASE("POP login record: the manual's ip file") {
  Home h;
  REQUIRE(h.store.create("alice", "pw"));
  const fs::path ip = h.mailbox / "alice" / "ip";

  auto none = h.store.read_pop_login("alice");
  REQUIRE(!none);
  CHECK(none.error().code == Errc::not_found);

  REQUIRE(h.store.write_pop_login("alice", "127.0.0.1", 1700000000));
  CHECK(slurp(ip) == "1700000000,127.000.000.001\n");
  auto r = h.store.read_pop_login("ALICE");
  REQUIRE(r);
  CHECK(r->time == 1700000000);
  CHECK(r->ip == "127.0.0.1");

  REQUIRE(h.store.write_pop_login("alice", "2001:DB8::1", 5));
  CHECK(slurp(ip) == "5,2001:db8::1\n");
  CHECK(h.store.read_pop_login("alice")->ip == "2001:db8::1");

  REQUIRE(h.store.write_pop_login("alice", "::ffff:192.168.1.20", 6));
  CHECK(slurp(ip) == "6,192.168.001.020\n");
  CHECK(h.store.read_pop_login("alice")->ip == "192.168.1.20");

  // A file written by the original server (no newline) reads too.
  spit(ip, "1234,010.000.000.001");
  CHECK(h.store.read_pop_login("alice")->ip == "10.0.0.1");

  const auto before = slurp(ip);
  for (std::string bad : std::vector<std::string>{"", "localhost", "1.2.3", "1.2.3.256", "1.2.3.4/24", "::g",
                          "1.2.3.4\n", "1.2.3.4,5"}) {
    CAPTURE(bad);
    CHECK(h.store.write_pop_login("alice", bad, 1).error().code == Errc::invalid_argument);
  }
  CHECK(h.store.write_pop_login("alice", "1.2.3.4", -1).error().code == Errc::invalid_argument);
  CHECK(h.store.write_pop_login("ghost", "1.2.3.4", 1).error().code == Errc::not_found);
  CHECK(h.store.write_pop_login("../alice", "1.2.3.4", 1).error().code == Errc::invalid_argument);
  CHECK(slurp(ip) == before);

  for (std::string junk : std::vector<std::string>{"garbage", "12,", ",1.2.3.4", "x,1.2.3.4", "-5,1.2.3.4",
                           "5,1.2.3.4.5", std::string("5,1.2\0.3.4", 10)}) {
    CAPTURE(junk);
    spit(ip, junk);
    auto j = h.store.read_pop_login("alice");
    REQUIRE(!j);
    CHECK(j.error().code == Errc::parse);
  }
}

TEST_CASE("lookup: a store that cannot tell is an error, never \"no such account\"") {
  Home h;
  REQUIRE(h.store.create("alice", "pw"));
  REQUIRE(h.store.create_mailing_list("ml", "pw"));
  CHECK(h.store.lookup("alice").value() == AccountKind::mailbox);
  CHECK(h.store.lookup("ml").value() == AccountKind::mailing_list);
  CHECK(h.store.lookup("ghost").value() == AccountKind::none);
  // A dangling link is nobody.
  fs::create_symlink(h.tmp.path() / "gone", h.mailbox / "dangling");
  CHECK(h.store.lookup("dangling").value() == AccountKind::none);

  // Faults that work as root too: a loop of symbolic links (ELOOP) and a
  // file where the account's folder should be.
  fs::create_symlink(h.mailbox / "loop", h.mailbox / "loop");
  spit(h.mailbox / "plainfile", "x");
  for (std::string n : {"loop", "LOOP", "plainfile"}) {
    CAPTURE(n);
    auto k = h.store.lookup(n);
    REQUIRE(!k);
    CHECK(k.error().code == Errc::io);
    CHECK(k.error().temporary());
    // Every method that needs the account says the same, not not_found.
    auto a = h.store.authenticate(n, "pw");
    REQUIRE(!a);
    CHECK(a.error().code == Errc::io);
    CHECK(h.store.plain_password(n).error().code == Errc::io);
    CHECK(h.store.read_pop_login(n).error().code == Errc::io);
    CHECK(h.store.remove(n).error().code == Errc::io);
  }
  CHECK(h.store.lookup("loop").error().message.find("loop") != std::string::npos);
  // One bad entry neither fails the list nor hides itself: the loop is
  // listed (its lookup says why), files and dangling links are not.
  auto l = h.store.list();
  REQUIRE(l);
  CHECK(*l == std::vector<std::string>{"alice", "loop", "ml"});

  // ml.def that cannot be examined.
  fs::create_symlink("ml.def", h.mailbox / "alice" / "ml.def");  // a link to itself
  auto k = h.store.lookup("alice");
  REQUIRE(!k);
  CHECK(k.error().code == Errc::io);
  CHECK(h.store.members("alice").error().code == Errc::io);

  // The mailbox folder itself is not a folder (ENOTDIR).
  TempDir t;
  spit(t.path() / "mailbox", "not a folder");
  AccountStore broken(t.path() / "mailbox");
  auto b = broken.lookup("alice");
  REQUIRE(!b);
  CHECK(b.error().code == Errc::io);
}
